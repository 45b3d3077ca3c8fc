//! The message methods, written once for queues and topics: [`sender_methods!`] gives
//! [`Producer`](crate::Producer) and [`Publisher`](crate::Publisher) the same methods,
//! [`receiver_methods!`] gives [`Consumer`](crate::Consumer) and
//! [`Subscriber`](crate::Subscriber) theirs. Each form (copy, kind, try, timeout, deadline,
//! typed, loan, batch, iterators) is one line over the handle's internal `*_with` function,
//! and each returns its operation's error (see [`crate::error`]).
//!
//! A sender provides `send_with(kind, payload, Deadline)`, `loan_with(Deadline)` and
//! `send_batch_now(msgs)`; a receiver provides `recv_with(buf, Deadline)`,
//! `recv_ref_with(Deadline)`, `recv_value_with::<T>(Deadline)`, `recv_batch_now(max, f)` and
//! `recv_message(Deadline)` (a copy in a new `Vec`).
//! All return the internal [`crate::Error`].

/// The send methods, for a handle type whose loan guard is `$loan`.
macro_rules! sender_methods {
    ($loan:ident) => {
        /// Sends `payload` (kind 0), waiting for space per the wait strategy.
        ///
        /// # Errors
        /// [`SendError::MessageTooLarge`](crate::SendError::MessageTooLarge) if `payload` is
        /// over the maximum message size; [`SendError::Disconnected`](crate::SendError::Disconnected)
        /// if the queue is full and every consumer left.
        pub fn send(&mut self, payload: &[u8]) -> Result<(), crate::SendError> {
            self.send_with(0, payload, crate::attach::Deadline::Forever).map_err(crate::SendError::from_internal)
        }
        /// [`send`](Self::send) with a kind tag (any `u32`, given to the receiver).
        pub fn send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<(), crate::SendError> {
            self.send_with(kind, payload, crate::attach::Deadline::Forever).map_err(crate::SendError::from_internal)
        }
        /// Sends without waiting: [`TrySendError::Full`](crate::TrySendError::Full) if there is
        /// no space now.
        pub fn try_send(&mut self, payload: &[u8]) -> Result<(), crate::TrySendError> {
            self.send_with(0, payload, crate::attach::Deadline::Now).map_err(crate::TrySendError::from_internal)
        }
        /// [`try_send`](Self::try_send) with a kind tag.
        pub fn try_send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<(), crate::TrySendError> {
            self.send_with(kind, payload, crate::attach::Deadline::Now).map_err(crate::TrySendError::from_internal)
        }
        /// Sends, waiting at most `timeout` for space:
        /// [`SendTimeoutError::Timeout`](crate::SendTimeoutError::Timeout) after that.
        pub fn send_timeout(
            &mut self,
            payload: &[u8],
            timeout: std::time::Duration,
        ) -> Result<(), crate::SendTimeoutError> {
            self.send_with(0, payload, crate::attach::Deadline::after(timeout))
                .map_err(crate::SendTimeoutError::from_internal)
        }
        /// [`send_timeout`](Self::send_timeout) with a kind tag.
        pub fn send_kind_timeout(
            &mut self,
            kind: u32,
            payload: &[u8],
            timeout: std::time::Duration,
        ) -> Result<(), crate::SendTimeoutError> {
            self.send_with(kind, payload, crate::attach::Deadline::after(timeout))
                .map_err(crate::SendTimeoutError::from_internal)
        }
        /// Sends, waiting for space until `deadline` at the latest.
        pub fn send_deadline(
            &mut self,
            payload: &[u8],
            deadline: std::time::Instant,
        ) -> Result<(), crate::SendTimeoutError> {
            self.send_with(0, payload, crate::attach::Deadline::At(deadline))
                .map_err(crate::SendTimeoutError::from_internal)
        }
        /// Sends the bytes of a plain-old-data value (kind 0), as [`send`](Self::send). Derive
        /// `Pod` with [`shmq::bytemuck`](crate::bytemuck).
        pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), crate::SendError> {
            self.send(bytemuck::bytes_of(value))
        }
        /// [`send_value`](Self::send_value) with a kind tag.
        pub fn send_kind_value<T: bytemuck::Pod>(&mut self, kind: u32, value: &T) -> Result<(), crate::SendError> {
            self.send_kind(kind, bytemuck::bytes_of(value))
        }
        /// [`send_value`](Self::send_value) without waiting.
        pub fn try_send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), crate::TrySendError> {
            self.try_send(bytemuck::bytes_of(value))
        }
        /// [`send_value`](Self::send_value) waiting at most `timeout`.
        pub fn send_value_timeout<T: bytemuck::Pod>(
            &mut self,
            value: &T,
            timeout: std::time::Duration,
        ) -> Result<(), crate::SendTimeoutError> {
            self.send_timeout(bytemuck::bytes_of(value), timeout)
        }
        /// Borrows the next free slot to write a message in place (zero-copy), waiting for
        /// space per the wait strategy. The guard's `commit(len)` sends it; dropping the guard
        /// sends nothing.
        pub fn loan(&mut self) -> Result<$loan<'_>, crate::SendError> {
            self.loan_with(crate::attach::Deadline::Forever).map_err(crate::SendError::from_internal)
        }
        /// [`loan`](Self::loan) without waiting.
        pub fn try_loan(&mut self) -> Result<$loan<'_>, crate::TrySendError> {
            self.loan_with(crate::attach::Deadline::Now).map_err(crate::TrySendError::from_internal)
        }
        /// [`loan`](Self::loan) waiting at most `timeout`.
        pub fn loan_timeout(&mut self, timeout: std::time::Duration) -> Result<$loan<'_>, crate::SendTimeoutError> {
            self.loan_with(crate::attach::Deadline::after(timeout)).map_err(crate::SendTimeoutError::from_internal)
        }
        /// Sends as many of `msgs` (kind 0) as fit now, in order, without waiting; returns how
        /// many were sent (0 when full).
        ///
        /// # Errors
        /// [`TrySendError::MessageTooLarge`](crate::TrySendError::MessageTooLarge) if any
        /// message is too large (then none is sent);
        /// [`TrySendError::Disconnected`](crate::TrySendError::Disconnected) if none fit and
        /// every consumer left.
        pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, crate::TrySendError> {
            self.send_batch_now(msgs).map_err(crate::TrySendError::from_internal)
        }
    };
}
pub(crate) use sender_methods;

/// The receive methods, for a handle type whose in-place guard is `$guard`.
macro_rules! receiver_methods {
    ($guard:ident) => {
        /// Receives the next message into `buf`, waiting per the wait strategy.
        ///
        /// # Errors
        /// [`RecvError::BufferTooSmall`](crate::RecvError::BufferTooSmall) if the message does
        /// not fit (it is not consumed); [`RecvError::Disconnected`](crate::RecvError::Disconnected)
        /// once every sender left and everything they sent was received;
        /// [`RecvError::Lagged`](crate::RecvError::Lagged) for a lossy subscriber that was
        /// overtaken.
        pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<crate::Received, crate::RecvError> {
            self.recv_with(buf, crate::attach::Deadline::Forever).map_err(crate::RecvError::from_internal)
        }
        /// Receives without waiting: [`TryRecvError::Empty`](crate::TryRecvError::Empty) if no
        /// message can be received now.
        pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<crate::Received, crate::TryRecvError> {
            self.recv_with(buf, crate::attach::Deadline::Now).map_err(crate::TryRecvError::from_internal)
        }
        /// Receives, waiting at most `timeout`:
        /// [`RecvTimeoutError::Timeout`](crate::RecvTimeoutError::Timeout) after that.
        pub fn recv_timeout(
            &mut self,
            buf: &mut [u8],
            timeout: std::time::Duration,
        ) -> Result<crate::Received, crate::RecvTimeoutError> {
            self.recv_with(buf, crate::attach::Deadline::after(timeout)).map_err(crate::RecvTimeoutError::from_internal)
        }
        /// Receives, waiting until `deadline` at the latest.
        pub fn recv_deadline(
            &mut self,
            buf: &mut [u8],
            deadline: std::time::Instant,
        ) -> Result<crate::Received, crate::RecvTimeoutError> {
            self.recv_with(buf, crate::attach::Deadline::At(deadline)).map_err(crate::RecvTimeoutError::from_internal)
        }
        /// Borrows the next message in place (zero-copy), waiting per the wait strategy. The
        /// message counts as received when the guard drops.
        pub fn recv_ref(&mut self) -> Result<$guard<'_>, crate::RecvError> {
            self.recv_ref_with(crate::attach::Deadline::Forever).map_err(crate::RecvError::from_internal)
        }
        /// [`recv_ref`](Self::recv_ref) without waiting.
        pub fn try_recv_ref(&mut self) -> Result<$guard<'_>, crate::TryRecvError> {
            self.recv_ref_with(crate::attach::Deadline::Now).map_err(crate::TryRecvError::from_internal)
        }
        /// [`recv_ref`](Self::recv_ref) waiting at most `timeout`.
        pub fn recv_ref_timeout(
            &mut self,
            timeout: std::time::Duration,
        ) -> Result<$guard<'_>, crate::RecvTimeoutError> {
            self.recv_ref_with(crate::attach::Deadline::after(timeout)).map_err(crate::RecvTimeoutError::from_internal)
        }
        /// Receives a plain-old-data value (whatever its kind).
        ///
        /// # Errors
        /// [`RecvError::SizeMismatch`](crate::RecvError::SizeMismatch) if the message is not
        /// exactly `size_of::<T>()` bytes (it is consumed: the sender broke the protocol).
        pub fn recv_value<T: bytemuck::Pod>(&mut self) -> Result<T, crate::RecvError> {
            self.recv_value_with(crate::attach::Deadline::Forever).map_err(crate::RecvError::from_internal)
        }
        /// [`recv_value`](Self::recv_value) without waiting.
        pub fn try_recv_value<T: bytemuck::Pod>(&mut self) -> Result<T, crate::TryRecvError> {
            self.recv_value_with(crate::attach::Deadline::Now).map_err(crate::TryRecvError::from_internal)
        }
        /// [`recv_value`](Self::recv_value) waiting at most `timeout`.
        pub fn recv_value_timeout<T: bytemuck::Pod>(
            &mut self,
            timeout: std::time::Duration,
        ) -> Result<T, crate::RecvTimeoutError> {
            self.recv_value_with(crate::attach::Deadline::after(timeout))
                .map_err(crate::RecvTimeoutError::from_internal)
        }
        /// Hands up to `max` waiting messages, in order, to `f(payload, kind)` without waiting;
        /// returns how many (0 if none is waiting).
        ///
        /// # Errors
        /// [`TryRecvError::Disconnected`](crate::TryRecvError::Disconnected) if none is waiting
        /// and every sender left; [`TryRecvError::Lagged`](crate::TryRecvError::Lagged) as for
        /// `try_recv`.
        pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8], u32)) -> Result<usize, crate::TryRecvError> {
            self.recv_batch_now(max, f).map_err(crate::TryRecvError::from_internal)
        }
        /// A blocking iterator over messages (one `Vec` allocated per message). It ends when
        /// nothing is left to receive ([`Disconnected`](crate::RecvError::Disconnected));
        /// other errors are items.
        pub fn iter(&mut self) -> impl Iterator<Item = Result<crate::Message, crate::RecvError>> + '_ {
            std::iter::from_fn(move || match self.recv_message(crate::attach::Deadline::Forever) {
                Err(crate::Error::Disconnected) => None,
                r => Some(r.map_err(crate::RecvError::from_internal)),
            })
        }
        /// An iterator over the messages that can be received now, without waiting (one `Vec`
        /// allocated per message). It ends at the first `Empty` or `Disconnected`; other errors
        /// are items.
        pub fn try_iter(&mut self) -> impl Iterator<Item = Result<crate::Message, crate::TryRecvError>> + '_ {
            std::iter::from_fn(move || match self.recv_message(crate::attach::Deadline::Now) {
                Err(crate::Error::Disconnected | crate::Error::Empty) => None,
                r => Some(r.map_err(crate::TryRecvError::from_internal)),
            })
        }
    };
}
pub(crate) use receiver_methods;

/// The copying send methods every sender has, for code generic over queues and topics (a stage
/// of a pipeline that sends to either). [`Producer`](crate::Producer) and
/// [`Publisher`](crate::Publisher) implement it with their inherent methods of the same names.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{QueueOptions, Sender, TopicOptions};
/// fn greet(to: &mut impl Sender) -> Result<(), shmq::SendError> {
///     to.send_kind(1, b"hello")
/// }
/// let q = QueueOptions::new().dir(dir.path()).create("q")?;
/// let t = TopicOptions::new().dir(dir.path()).create("t")?;
/// greet(&mut q.producer()?)?;
/// greet(&mut t.publisher()?)?;
/// # Ok::<(), shmq::Error>(())
/// ```
pub trait Sender {
    /// See [`Producer::send`](crate::Producer::send).
    fn send(&mut self, payload: &[u8]) -> Result<(), crate::SendError>;
    /// See [`Producer::send_kind`](crate::Producer::send_kind).
    fn send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<(), crate::SendError>;
    /// See [`Producer::try_send`](crate::Producer::try_send).
    fn try_send(&mut self, payload: &[u8]) -> Result<(), crate::TrySendError>;
    /// See [`Producer::try_send_kind`](crate::Producer::try_send_kind).
    fn try_send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<(), crate::TrySendError>;
    /// See [`Producer::send_timeout`](crate::Producer::send_timeout).
    fn send_timeout(&mut self, payload: &[u8], timeout: std::time::Duration) -> Result<(), crate::SendTimeoutError>;
    /// See [`Producer::send_kind_timeout`](crate::Producer::send_kind_timeout).
    fn send_kind_timeout(
        &mut self,
        kind: u32,
        payload: &[u8],
        timeout: std::time::Duration,
    ) -> Result<(), crate::SendTimeoutError>;
}

/// The copying receive methods every receiver has, for code generic over queues and topics.
/// [`Consumer`](crate::Consumer) and [`Subscriber`](crate::Subscriber) implement it with their
/// inherent methods of the same names.
pub trait Receiver {
    /// See [`Consumer::recv_into`](crate::Consumer::recv_into).
    fn recv_into(&mut self, buf: &mut [u8]) -> Result<crate::Received, crate::RecvError>;
    /// See [`Consumer::try_recv`](crate::Consumer::try_recv).
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<crate::Received, crate::TryRecvError>;
    /// See [`Consumer::recv_timeout`](crate::Consumer::recv_timeout).
    fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: std::time::Duration,
    ) -> Result<crate::Received, crate::RecvTimeoutError>;
}

/// Implements [`Sender`] for a type with [`sender_methods!`].
macro_rules! impl_sender {
    ($t:ty) => {
        impl crate::methods::Sender for $t {
            #[inline]
            fn send(&mut self, payload: &[u8]) -> Result<(), crate::SendError> {
                <$t>::send(self, payload)
            }
            #[inline]
            fn send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<(), crate::SendError> {
                <$t>::send_kind(self, kind, payload)
            }
            #[inline]
            fn try_send(&mut self, payload: &[u8]) -> Result<(), crate::TrySendError> {
                <$t>::try_send(self, payload)
            }
            #[inline]
            fn try_send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<(), crate::TrySendError> {
                <$t>::try_send_kind(self, kind, payload)
            }
            #[inline]
            fn send_timeout(
                &mut self,
                payload: &[u8],
                timeout: std::time::Duration,
            ) -> Result<(), crate::SendTimeoutError> {
                <$t>::send_timeout(self, payload, timeout)
            }
            #[inline]
            fn send_kind_timeout(
                &mut self,
                kind: u32,
                payload: &[u8],
                timeout: std::time::Duration,
            ) -> Result<(), crate::SendTimeoutError> {
                <$t>::send_kind_timeout(self, kind, payload, timeout)
            }
        }
    };
}
pub(crate) use impl_sender;

/// Implements [`Receiver`] for a type with [`receiver_methods!`].
macro_rules! impl_receiver {
    ($t:ty) => {
        impl crate::methods::Receiver for $t {
            #[inline]
            fn recv_into(&mut self, buf: &mut [u8]) -> Result<crate::Received, crate::RecvError> {
                <$t>::recv_into(self, buf)
            }
            #[inline]
            fn try_recv(&mut self, buf: &mut [u8]) -> Result<crate::Received, crate::TryRecvError> {
                <$t>::try_recv(self, buf)
            }
            #[inline]
            fn recv_timeout(
                &mut self,
                buf: &mut [u8],
                timeout: std::time::Duration,
            ) -> Result<crate::Received, crate::RecvTimeoutError> {
                <$t>::recv_timeout(self, buf, timeout)
            }
        }
    };
}
pub(crate) use impl_receiver;
