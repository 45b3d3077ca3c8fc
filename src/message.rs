//! What receivers hand back: [`Received`] (into the caller's buffer) and [`Message`] (a copy,
//! from the iterators), the same for queues and topics.

/// What a receive into a buffer (`recv_into`, `try_recv`, ...) received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Payload length (the first `len` bytes of the buffer).
    pub len: usize,
    /// The sender's kind tag (0 for plain `send`).
    pub kind: u32,
}

/// A message from `iter` or `try_iter` (allocated; the other receives do not allocate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender's kind tag.
    pub kind: u32,
    /// The payload.
    pub data: Vec<u8>,
}
