//! `unix-rr`: a request/response over a Unix domain socket, the way an application without a
//! shared-memory library does it: one `SOCK_STREAM` connection (`std::os::unix::net`), named in
//! Linux's abstract namespace (no file to remove), blocking `write_all` of the request and
//! blocking `read_exact` of the response. No busy-polling: each side sleeps in `read` until the
//! other's bytes arrive, so a round trip includes two wake-ups.
//!
//! The parent (client) listens before it spawns the child; the child (server) connects before it
//! answers `ready`, and the parent accepts in [`ParentEnd::connected`]. A request is the
//! stamped `N`-byte payload; the response is the request's `N` bytes sent back (same size, same
//! sequence number), which the parent checks.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use crate::proto::{seq_of, stamp, ChildEnd, ParentEnd};

fn address(prefix: &str) -> SocketAddr {
    SocketAddr::from_abstract_name(format!("shmq.{prefix}-rr").as_bytes()).expect("an abstract socket name")
}

/// Process A: the client.
pub struct UnixParent<const N: usize> {
    listener: UnixListener,
    conn: Option<UnixStream>,
    buf: [u8; N],
}

impl<const N: usize> UnixParent<N> {
    /// Listens on the abstract address of `prefix` (before the child exists).
    pub fn create(prefix: &str) -> Self {
        let listener = UnixListener::bind_addr(&address(prefix)).expect("binding the unix-rr socket");
        UnixParent { listener, conn: None, buf: [0; N] }
    }
}

impl<const N: usize> ParentEnd for UnixParent<N> {
    /// Accepts the child's connection (it connected before it answered `ready`).
    fn connected(&mut self) {
        let (conn, _) = self.listener.accept().expect("accepting the unix-rr child");
        self.conn = Some(conn);
    }
    #[inline]
    fn send(&mut self, seq: u64) {
        stamp(&mut self.buf, seq);
        let conn = self.conn.as_mut().expect("connected() accepted the child's connection");
        conn.write_all(&self.buf).expect("unix-rr: writing the request");
    }
    #[inline]
    fn recv(&mut self) -> u64 {
        let mut resp = [0u8; N];
        let conn = self.conn.as_mut().expect("connected() accepted the child's connection");
        conn.read_exact(&mut resp).expect("unix-rr: reading the response");
        seq_of(&resp)
    }
}

/// Process B: the server.
pub struct UnixChild<const N: usize> {
    conn: UnixStream,
}

impl<const N: usize> UnixChild<N> {
    /// Connects to the parent's socket.
    pub fn open(prefix: &str) -> Self {
        UnixChild { conn: UnixStream::connect_addr(&address(prefix)).expect("connecting to the unix-rr socket") }
    }
}

impl<const N: usize> ChildEnd for UnixChild<N> {
    /// Reads one request and writes the same `N` bytes back as the response.
    #[inline]
    fn echo(&mut self) -> u64 {
        let mut req = [0u8; N];
        self.conn.read_exact(&mut req).expect("unix-rr: reading the request");
        let seq = seq_of(&req);
        self.conn.write_all(&req).expect("unix-rr: writing the response");
        seq
    }
    fn drain(&mut self) -> u64 {
        unreachable!("unix-rr is run for round trips only")
    }
}
