//! [`Server`]: takes requests and answers them.

use std::sync::Arc;
use std::time::Duration;

use super::error::ServeError;
use super::{RequestId, ServiceShared};
use crate::attach::Deadline;
use crate::layout::call::{STATUS_DROPPED, STATUS_OK};
use crate::layout::ROLE_SERVER;
use crate::ring::call::{self, CallMem, Taken};
use crate::ring::RingMem;
use crate::wait::{self, Step};

/// Serves a service: takes its requests one at a time ([`recv`](Self::recv)) and answers each
/// ([`ActiveRequest::respond`]). Any number of servers, in any processes, share the requests;
/// each request goes to exactly one.
#[derive(Debug)]
pub struct Server {
    shared: Arc<ServiceShared>,
    /// The client to look at first next time (clients take turns).
    cursor: usize,
}

impl Server {
    pub(crate) fn new(shared: Arc<ServiceShared>) -> Server {
        shared.att.join_role(ROLE_SERVER);
        Server { shared, cursor: 0 }
    }

    /// Waits for the next request (per the service's `WaitStrategy`).
    ///
    /// # Errors
    /// `Corrupted` if a request in shared memory is impossible (it is dropped; call again).
    pub fn recv(&mut self) -> Result<ActiveRequest<'_>, ServeError> {
        self.take(Deadline::Forever)
    }

    /// The next request, if one waits: [`ServeError::Empty`] if none.
    ///
    /// # Errors
    /// `Empty`; `Corrupted` as for [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<ActiveRequest<'_>, ServeError> {
        self.take(Deadline::Now)
    }

    /// [`recv`](Self::recv) for at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`; `Corrupted` as for [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ActiveRequest<'_>, ServeError> {
        self.take(Deadline::after(timeout))
    }

    fn take(&mut self, deadline: Deadline) -> Result<ActiveRequest<'_>, ServeError> {
        let s = &*self.shared;
        let cursor = &mut self.cursor;
        let t = s
            .att
            .run_consumer(deadline, |_| {
                Ok(match call::take(&s.mem, s.att.id, cursor)? {
                    Some(t) => Step::Ready(t),
                    None => Step::Wait,
                })
            })
            .map_err(ServeError::from_internal)?;
        Ok(ActiveRequest { server: self, t, done: false })
    }

    /// Ends a call taken by this server with `len` response bytes (already written) or as
    /// dropped, and wakes its client.
    fn answer(&self, t: &Taken, len: usize, status: u32) -> Result<(), ServeError> {
        let s = &*self.shared;
        let delivered = call::answer(&s.mem, s.att.id, t.call, len, status).map_err(ServeError::from_internal)?;
        let me = s.mem.channel(s.att.id);
        super::bump(if status == STATUS_OK { &me.served } else { &me.dropped });
        if delivered {
            wait::notify(&s.mem.channel(t.client).responses);
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.att.leave_role(ROLE_SERVER);
    }
}

/// A request taken by a [`Server`]: read it (it derefs to the request's bytes, in shared
/// memory), then answer it with [`respond`](Self::respond) or
/// [`loan_response`](Self::loan_response). Dropped without an answer, its client gets
/// [`CallError::Dropped`](super::CallError::Dropped).
#[derive(Debug)]
pub struct ActiveRequest<'a> {
    server: &'a mut Server,
    t: Taken,
    done: bool,
}

impl<'a> ActiveRequest<'a> {
    /// The request's id, as its client knows it.
    pub fn id(&self) -> RequestId {
        RequestId(self.t.call.corr)
    }
    /// The request's kind tag.
    pub fn kind(&self) -> u32 {
        self.t.kind
    }
    /// The process id of the client that asked (information only).
    pub fn client_pid(&self) -> u32 {
        self.server.shared.att.parts.pid(self.t.client)
    }

    /// Answers with `response`.
    ///
    /// # Errors
    /// [`ServeError::ResponseTooLarge`] (nothing is sent, the request stays ours: answer again
    /// or drop it); `ClaimRevoked`.
    pub fn respond(mut self, response: &[u8]) -> Result<(), ServeError> {
        let max = self.server.shared.mem.max_response();
        if response.len() > max {
            return Err(ServeError::ResponseTooLarge { len: response.len(), max });
        }
        let (_, out) = self.server.shared.mem.response(self.t.call.i);
        // SAFETY: the call is TAKEN by us, so its response buffer is ours to write until we
        // answer; it has max_response >= response.len() bytes; shared memory and our slice do
        // not overlap.
        unsafe { std::ptr::copy_nonoverlapping(response.as_ptr(), out, response.len()) };
        self.done = true;
        self.server.answer(&self.t, response.len(), STATUS_OK)
    }

    /// Answers in place: `f` gets the request and the response buffer (the service's max
    /// response size) at once, both in shared memory, and returns the response's length.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let svc = shmq::service::ServiceOptions::new().dir(dir.path()).create("echo")?;
    /// # let (mut server, mut client) = (svc.server()?, svc.client()?);
    /// # client.send_request(b"ping")?;
    /// let req = server.recv()?;
    /// req.respond_with(|request, response| {
    ///     response[..request.len()].copy_from_slice(request); // an echo, without a copy of our own
    ///     request.len()
    /// })?;
    /// # assert_eq!(&client.recv_response()?[..], b"ping");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ServeError::ResponseTooLarge`] if `f` returns more than the buffer (the request is
    /// then answered as dropped); `ClaimRevoked`.
    pub fn respond_with(mut self, f: impl FnOnce(&[u8], &mut [u8]) -> usize) -> Result<(), ServeError> {
        let mem = &self.server.shared.mem;
        let max = mem.max_response();
        // SAFETY: as in `deref` (the request) and `ResponseLoan::deref_mut` (the response
        // buffer, ours while the call is TAKEN); the two do not overlap (the request is in the
        // call slot's payload, the response in the response array).
        let (req, out) = unsafe {
            (
                std::slice::from_raw_parts(mem.payload(self.t.call.i), self.t.len),
                std::slice::from_raw_parts_mut(mem.response(self.t.call.i).1, max),
            )
        };
        let len = f(req, out);
        self.done = true;
        if len > max {
            let _ = self.server.answer(&self.t, 0, STATUS_DROPPED);
            return Err(ServeError::ResponseTooLarge { len, max });
        }
        self.server.answer(&self.t, len, STATUS_OK)
    }

    /// Lends the response buffer (the service's max response size) to write the answer in
    /// place; [`ResponseLoan::send`] delivers it.
    pub fn loan_response(mut self) -> ResponseLoan<'a> {
        self.done = true; // the loan answers from now on
        ResponseLoan { req: self, done: false }
    }
}

impl std::ops::Deref for ActiveRequest<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let mem = &self.server.shared.mem;
        // SAFETY: the call is TAKEN by us: its client wrote the request before it published it
        // (and does not write it again until the call ends); len <= max_msg was validated when
        // we took it.
        unsafe { std::slice::from_raw_parts(mem.payload(self.t.call.i), self.t.len) }
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.server.answer(&self.t, 0, STATUS_DROPPED);
        }
    }
}

/// A response written in place ([`ActiveRequest::loan_response`]): it derefs to the whole
/// response buffer; [`send`](Self::send) delivers its first `len` bytes. Dropped without
/// sending, the request is answered as dropped.
#[derive(Debug)]
pub struct ResponseLoan<'a> {
    req: ActiveRequest<'a>,
    done: bool,
}

impl ResponseLoan<'_> {
    /// Delivers the first `len` bytes of the buffer.
    ///
    /// # Errors
    /// [`ServeError::ResponseTooLarge`] if `len` exceeds the buffer (the request is then
    /// answered as dropped); `ClaimRevoked`.
    pub fn send(mut self, len: usize) -> Result<(), ServeError> {
        self.done = true;
        let max = self.req.server.shared.mem.max_response();
        if len > max {
            let _ = self.req.server.answer(&self.req.t, 0, STATUS_DROPPED);
            return Err(ServeError::ResponseTooLarge { len, max });
        }
        self.req.server.answer(&self.req.t, len, STATUS_OK)
    }
}

impl std::ops::Deref for ResponseLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let mem = &self.req.server.shared.mem;
        // SAFETY: the call is TAKEN by us: its response buffer (max_response bytes) is ours.
        unsafe { std::slice::from_raw_parts(mem.response(self.req.t.call.i).1, mem.max_response()) }
    }
}

impl std::ops::DerefMut for ResponseLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let mem = &self.req.server.shared.mem;
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the buffer.
        unsafe { std::slice::from_raw_parts_mut(mem.response(self.req.t.call.i).1, mem.max_response()) }
    }
}

impl Drop for ResponseLoan<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.req.server.answer(&self.req.t, 0, STATUS_DROPPED);
        }
    }
}
