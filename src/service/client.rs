//! [`Client`]: makes calls.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::Arc;
use std::time::Duration;

use super::error::CallError;
use super::ServiceShared;
use crate::attach::Deadline;
use crate::error::Error;
use crate::layout::ROLE_CLIENT;
use crate::layout::ROLE_SERVER;
use crate::ring::call::{self, Call, CallMem, Cancelled, Progress};
use crate::ring::RingMem;
use crate::sync::Ordering::Relaxed;
use crate::wait::Step;

/// Identifies a request among the calls of its client process (a call number, increasing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The call number.
    pub fn value(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A call in flight: its id, its call slot (index `k` among ours) and call.
#[derive(Clone, Copy, Debug)]
struct Pending {
    id: RequestId,
    k: u64,
    call: Call,
}

/// How a call ended.
enum Outcome {
    Answered(usize),
    Dropped,
    ServerGone,
    Unavailable,
    Corrupted(String),
}

/// Calls a service: [`call`](Self::call) sends a request and waits for its response;
/// [`send_request`](Self::send_request) and [`recv_response`](Self::recv_response) keep several
/// calls in flight (up to the service's `max_in_flight` per process).
#[derive(Debug)]
pub struct Client {
    shared: Arc<ServiceShared>,
    /// Our calls in flight, oldest first.
    calls: Vec<Pending>,
    /// A call slot this client keeps between calls (its bit stays set in the process's pool):
    /// a client making one call after another takes no slot from the pool and gives none back.
    spare: Option<u64>,
}

impl Client {
    pub(crate) fn new(shared: Arc<ServiceShared>) -> Client {
        shared.att.join_role(ROLE_CLIENT);
        let calls = Vec::with_capacity(shared.per_client() as usize);
        Client { shared, calls, spare: None }
    }

    /// Sends `request` and waits for its response (per the service's `WaitStrategy`).
    ///
    /// # Errors
    /// [`CallError::ServiceUnavailable`] (no live server; within 10 ms),
    /// [`CallError::ServerGone`] (the server died holding the request; within 10 ms),
    /// [`CallError::Dropped`], [`CallError::RequestTooLarge`], [`CallError::InFlightFull`],
    /// `ClaimRevoked`, `Corrupted`.
    pub fn call(&mut self, request: &[u8]) -> Result<Response<'_>, CallError> {
        let id = self.send_request(request)?;
        self.wait(Some(id), Deadline::Forever)
    }

    /// [`call`](Self::call), for at most `timeout`: then [`CallError::Timeout`], and the call is
    /// given up (withdrawn if no server took it yet; otherwise its answer is dropped).
    ///
    /// # Errors
    /// As for [`call`](Self::call), and `Timeout`.
    pub fn call_timeout(&mut self, request: &[u8], timeout: Duration) -> Result<Response<'_>, CallError> {
        let id = self.send_request(request)?;
        self.wait(Some(id), Deadline::after(timeout))
    }

    /// Sends `request` without waiting; its response comes from
    /// [`recv_response`](Self::recv_response) (or `try_` / `_timeout`), with this id.
    ///
    /// # Errors
    /// [`CallError::RequestTooLarge`], [`CallError::InFlightFull`] (this process has
    /// `max_in_flight` calls in flight), `ClaimRevoked`.
    pub fn send_request(&mut self, request: &[u8]) -> Result<RequestId, CallError> {
        self.send_request_kind(0, request)
    }

    /// [`send_request`](Self::send_request) with a kind tag for the server.
    ///
    /// # Errors
    /// As for [`send_request`](Self::send_request).
    pub fn send_request_kind(&mut self, kind: u32, request: &[u8]) -> Result<RequestId, CallError> {
        let max = self.shared.mem.max_msg();
        if request.len() > max {
            return Err(CallError::RequestTooLarge { len: request.len(), max });
        }
        let (k, c) = self.alloc()?;
        // SAFETY: the call slot is ours (WRITING) and has max_msg >= request.len() bytes; our
        // slice is not in shared memory's call slot.
        unsafe { std::ptr::copy_nonoverlapping(request.as_ptr(), self.shared.mem.payload(c.i), request.len()) };
        self.submit(k, c, request.len(), kind)
    }

    /// Lends a request buffer (the service's max request size) to write the request in place;
    /// [`RequestLoan::send`] sends it.
    ///
    /// # Errors
    /// [`CallError::InFlightFull`].
    pub fn loan_request(&mut self) -> Result<RequestLoan<'_>, CallError> {
        let (k, call) = self.alloc()?;
        Ok(RequestLoan { client: self, k, call, done: false })
    }

    /// The response of the oldest call that has ended, if one has: [`CallError::Empty`] if none
    /// (or nothing is in flight). A call that failed is reported here with its id.
    ///
    /// # Errors
    /// `Empty`, and the call errors of [`call`](Self::call).
    pub fn try_recv_response(&mut self) -> Result<Response<'_>, CallError> {
        self.wait(None, Deadline::Now)
    }

    /// Waits for the response of the oldest call to end (of those in flight).
    ///
    /// # Errors
    /// `Empty` if no call is in flight; the call errors of [`call`](Self::call).
    pub fn recv_response(&mut self) -> Result<Response<'_>, CallError> {
        self.wait(None, Deadline::Forever)
    }

    /// [`recv_response`](Self::recv_response) for at most `timeout` (`Timeout`; no call is
    /// given up).
    ///
    /// # Errors
    /// As for [`recv_response`](Self::recv_response), and `Timeout`.
    pub fn recv_response_timeout(&mut self, timeout: Duration) -> Result<Response<'_>, CallError> {
        self.wait(None, Deadline::after(timeout))
    }

    /// Calls in flight (sent, response not yet received).
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Gives up call `id`: withdrawn if no server took it yet, otherwise its answer will be
    /// dropped. `false` if it is not in flight.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        let Some(idx) = self.calls.iter().position(|p| p.id == id) else { return false };
        let p = self.calls.remove(idx);
        call::cancel(&self.shared.mem, p.call);
        self.end(p, false);
        true
    }

    fn me(&self) -> u16 {
        self.shared.att.id
    }

    /// Takes one of our call slots (shared with the other clients of this process) and starts
    /// a call in it.
    fn alloc(&mut self) -> Result<(u64, Call), CallError> {
        let s = &*self.shared;
        if let Some(k) = self.spare.take() {
            let corr = s.next_corr.fetch_add(1, Relaxed);
            if let Some(c) = call::begin(&s.mem, s.att.id, k, corr) {
                return Ok((k, c));
            }
            s.slots.fetch_and(!(1 << k), Release); // still held: back to the pool
        }
        let k_max = s.per_client();
        let all = if k_max >= 64 { !0 } else { (1u64 << k_max) - 1 };
        let mut tried = 0u64;
        loop {
            let used = s.slots.load(Acquire);
            let free = !used & !tried & all;
            if free == 0 {
                return Err(CallError::InFlightFull { max: k_max as usize });
            }
            let k = free.trailing_zeros() as u64;
            if s.slots.compare_exchange(used, used | 1 << k, AcqRel, Acquire).is_err() {
                continue;
            }
            let corr = s.next_corr.fetch_add(1, Relaxed);
            let mut began = call::begin(&s.mem, self.me(), k, corr);
            if began.is_none() {
                // Not free, though no call of ours uses it: a server finishing a call we gave
                // up keeps it; a dead server's or garbage is freed (a system call per look).
                let alive = |id: u16| !s.att.parts.is_dead(id);
                if call::reclaim(&s.mem, self.me(), k, alive) {
                    began = call::begin(&s.mem, self.me(), k, corr);
                }
            }
            match began {
                Some(c) => return Ok((k, c)),
                None => {
                    s.slots.fetch_and(!(1 << k), Release);
                    tried |= 1 << k;
                }
            }
        }
    }

    /// Publishes the request written in call slot `k` and wakes a server.
    fn submit(&mut self, k: u64, c: Call, len: usize, kind: u32) -> Result<RequestId, CallError> {
        let s = &*self.shared;
        if let Err(e) = call::submit(&s.mem, self.me(), c, len, kind) {
            s.slots.fetch_and(!(1 << k), Release);
            return Err(CallError::from_internal(e));
        }
        s.att.notify_data();
        super::bump(&s.mem.channel(self.me()).calls);
        let id = RequestId(c.corr);
        self.calls.push(Pending { id, k, call: c });
        Ok(id)
    }

    /// A call left our list: its slot goes back to the process's pool; counted.
    fn end(&mut self, p: Pending, answered: bool) {
        let s = &*self.shared;
        match self.spare {
            None => self.spare = Some(p.k),
            Some(_) => {
                s.slots.fetch_and(!(1 << p.k), Release);
            }
        }
        let ch = s.mem.channel(self.me());
        super::bump(if answered { &ch.answered } else { &ch.failed });
    }

    /// Waits for call `which` (or the oldest of any) to end.
    fn wait(&mut self, which: Option<RequestId>, deadline: Deadline) -> Result<Response<'_>, CallError> {
        if self.calls.is_empty() || which.is_some_and(|id| !self.calls.iter().any(|p| p.id == id)) {
            return Err(CallError::Empty);
        }
        let s = &*self.shared;
        let me = self.me();
        let calls = &self.calls;
        let r = s.att.run_client(&s.mem.channel(me).responses, deadline, |check| {
            // Whether a server lives: asked at most once per check (a system call per process).
            let mut server_alive = None;
            let mut waiting = false;
            for (idx, p) in calls.iter().enumerate() {
                if which.is_some_and(|id| id != p.id) {
                    continue;
                }
                let progress = match call::progress(&s.mem, p.call) {
                    Ok(pr) => pr,
                    Err(Error::Corrupted(e)) => return Ok(Step::Ready((idx, Outcome::Corrupted(e)))),
                    Err(e) => return Err(e),
                };
                match progress {
                    Progress::Answered { len, ok: true } => return Ok(Step::Ready((idx, Outcome::Answered(len)))),
                    Progress::Answered { ok: false, .. } => return Ok(Step::Ready((idx, Outcome::Dropped))),
                    Progress::Failed => return Ok(Step::Ready((idx, Outcome::ServerGone))),
                    Progress::Taken { server, word } => {
                        if check && s.att.parts.is_dead(server) && call::server_died(&s.mem, p.call, word) {
                            return Ok(Step::Ready((idx, Outcome::ServerGone)));
                        }
                    }
                    Progress::Requested => {
                        if check {
                            // A server may have died between clearing our pending bit and
                            // setting it back: set it again.
                            call::mark_pending(&s.mem, me);
                            let alive = *server_alive.get_or_insert_with(|| s.att.parts.any_alive(ROLE_SERVER, me));
                            if !alive && call::cancel(&s.mem, p.call) == Cancelled::Withdrawn {
                                return Ok(Step::Ready((idx, Outcome::Unavailable)));
                            }
                        }
                    }
                }
                waiting = true;
            }
            // Held: calls in flight are checked every 10 ms (dead servers, no server).
            Ok(if waiting { Step::Held } else { Step::Wait })
        });
        let (idx, outcome) = match r {
            Ok(v) => v,
            Err(Error::Timeout) => {
                if let Some(id) = which {
                    self.cancel(id);
                }
                return Err(CallError::Timeout);
            }
            Err(e) => return Err(CallError::from_internal(e)),
        };
        let p = self.calls[idx];
        let err = match outcome {
            Outcome::Answered(len) => return Ok(Response { client: self, idx, len }),
            Outcome::Dropped => CallError::Dropped { id: p.id },
            Outcome::ServerGone => CallError::ServerGone { id: p.id },
            Outcome::Unavailable => CallError::ServiceUnavailable { service: s.att.seg.name.clone() },
            Outcome::Corrupted(e) => CallError::Corrupted(e),
        };
        self.calls.remove(idx);
        if !matches!(err, CallError::ServiceUnavailable { .. }) {
            // Answered-as-dropped or failed: free the slot (a no-op if it is free already).
            call::cancel(&self.shared.mem, p.call);
        }
        self.end(p, false);
        Err(err)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for p in std::mem::take(&mut self.calls) {
            call::cancel(&self.shared.mem, p.call);
            self.end(p, false);
        }
        if let Some(k) = self.spare.take() {
            self.shared.slots.fetch_and(!(1 << k), Release);
        }
        self.shared.att.leave_role(ROLE_CLIENT);
    }
}

/// A response, read in place from shared memory (it derefs to the response's bytes); the call
/// slot is freed when it is dropped.
#[derive(Debug)]
pub struct Response<'a> {
    client: &'a mut Client,
    idx: usize,
    len: usize,
}

impl Response<'_> {
    /// The id of the request this answers.
    pub fn id(&self) -> RequestId {
        self.client.calls[self.idx].id
    }
}

impl std::ops::Deref for Response<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let mem = &self.client.shared.mem;
        let call = self.client.calls[self.idx].call;
        // SAFETY: the call is ANSWERED and ours: its server wrote the response before it
        // answered (Release, seen by our Acquire) and writes it no more; len <= max_response
        // was validated.
        unsafe { std::slice::from_raw_parts(mem.response(call.i).1, self.len) }
    }
}

impl Drop for Response<'_> {
    fn drop(&mut self) {
        let p = self.client.calls.remove(self.idx);
        call::finish(&self.client.shared.mem, p.call);
        self.client.end(p, true);
    }
}

/// A request written in place ([`Client::loan_request`]): it derefs to the whole request
/// buffer; [`send`](Self::send) sends its first `len` bytes. Dropped unsent, nothing is sent.
#[derive(Debug)]
pub struct RequestLoan<'a> {
    client: &'a mut Client,
    k: u64,
    call: Call,
    done: bool,
}

impl RequestLoan<'_> {
    /// Sends the first `len` bytes of the buffer; the response comes as for
    /// [`Client::send_request`].
    ///
    /// # Errors
    /// [`CallError::RequestTooLarge`] if `len` exceeds the buffer (nothing is sent);
    /// `ClaimRevoked`.
    pub fn send(self, len: usize) -> Result<RequestId, CallError> {
        self.send_kind(0, len)
    }

    /// [`send`](Self::send) with a kind tag.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_kind(mut self, kind: u32, len: usize) -> Result<RequestId, CallError> {
        let max = self.client.shared.mem.max_msg();
        if len > max {
            return Err(CallError::RequestTooLarge { len, max });
        }
        self.done = true;
        let (k, call) = (self.k, self.call);
        self.client.submit(k, call, len, kind)
    }
}

impl std::ops::Deref for RequestLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let mem = &self.client.shared.mem;
        // SAFETY: the call slot is ours (WRITING): its max_msg request bytes are ours.
        unsafe { std::slice::from_raw_parts(mem.payload(self.call.i), mem.max_msg()) }
    }
}

impl std::ops::DerefMut for RequestLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let mem = &self.client.shared.mem;
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the buffer.
        unsafe { std::slice::from_raw_parts_mut(mem.payload(self.call.i), mem.max_msg()) }
    }
}

impl Drop for RequestLoan<'_> {
    fn drop(&mut self) {
        if !self.done {
            call::cancel(&self.client.shared.mem, self.call);
            self.client.shared.slots.fetch_and(!(1 << self.k), Release);
        }
    }
}
