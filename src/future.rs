//! Futures and streams for async code (the `async` feature): runtime-agnostic, woken by one
//! background thread per process (see the `reactor` module docs) rather than a thread per
//! stream.
//!
//! - [`Consumer::recv_async`] and [`Subscriber::recv_async`]: the next message, into a buffer.
//! - [`Producer::send_async`] and [`Publisher::send_async`]: send, waiting for space.
//! - [`Consumer::into_stream`] and [`Subscriber::into_stream`]: a `futures_core::Stream` of
//!   [`Message`]s that ends when every sender has left and everything was received.
//!
//! Cancellation-safe: a future dropped before it completes has received or sent nothing (the
//! message stays in the queue, the payload is not sent), so `select!` loses no message.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! use shmq::QueueOptions;
//! let q = QueueOptions::new().dir(dir.path()).create("jobs")?;
//! let (mut tx, mut rx) = (q.producer()?, q.consumer()?);
//! tx.send_async(b"hello").await?;
//! let mut buf = [0u8; 64];
//! let m = rx.recv_async(&mut buf).await?;
//! assert_eq!(&buf[..m.len], b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{Error, RecvError, SendError, TryRecvError, TrySendError};
use crate::message::{Message, Received};
use crate::queue::{Consumer, Producer};
use crate::reactor::Registration;

/// For tests: how long the reactor may sleep before it polls every pending future again
/// (100 ms; a lost wake-up would then stall a future that long).
#[doc(hidden)]
pub fn set_reactor_slice_for_tests(slice: std::time::Duration) {
    crate::reactor::set_slice_for_tests(slice);
}
use crate::topic::{Publisher, Subscriber};

macro_rules! receiver {
    ($t:ty) => {
        impl $t {
            /// Receives the next message into `buf`, waiting (asynchronously) for one. Dropping
            /// the future before it completes receives nothing.
            ///
            /// # Errors
            /// As [`recv_into`](Self::recv_into): `Disconnected` once every sender has left
            /// and everything was received, `BufferTooSmall`, `Lagged`, ...
            pub fn recv_async<'a>(&'a mut self, buf: &'a mut [u8]) -> RecvFuture<'a, $t> {
                RecvFuture { rx: self, buf, reg: Registration::default() }
            }

            /// A stream of this receiver's messages (each in a new `Vec` of the ring's
            /// maximum message size, shrunk to the message), ending when every sender has left
            /// and everything was received.
            pub fn into_stream(self) -> MessageStream<$t> {
                let max = self.attachment().seg.config.max_msg as usize;
                MessageStream { rx: self, max, reg: Registration::default(), done: false }
            }
        }

        impl Future for RecvFuture<'_, $t> {
            type Output = Result<Received, RecvError>;
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                let this = self.get_mut();
                let (rx, buf) = (&mut *this.rx, &mut *this.buf);
                let att = rx.attachment();
                let gone = att.clone();
                this.reg.poll_with(cx, || att, false, || attempt_recv(|b| rx.try_recv(b), &gone, buf))
            }
        }

        impl futures_core::Stream for MessageStream<$t> {
            /// A message, or an error other than `Disconnected` (which ends the stream).
            type Item = Result<Message, RecvError>;
            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                let this = self.get_mut();
                if this.done {
                    return Poll::Ready(None);
                }
                let mut buf = vec![0u8; this.max];
                let rx = &mut this.rx;
                let att = rx.attachment();
                let gone = att.clone();
                let r = this.reg.poll_with(cx, || att, false, || attempt_recv(|b| rx.try_recv(b), &gone, &mut buf));
                match r {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(m)) => {
                        buf.truncate(m.len);
                        Poll::Ready(Some(Ok(Message { kind: m.kind, data: buf })))
                    }
                    Poll::Ready(Err(RecvError::Disconnected)) => {
                        this.done = true;
                        Poll::Ready(None)
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                }
            }
        }
    };
}
receiver!(Consumer);
receiver!(Subscriber);

macro_rules! sender {
    ($t:ty) => {
        impl $t {
            /// Sends `payload`, waiting (asynchronously) for space. Dropping the future before
            /// it completes sends nothing.
            ///
            /// # Errors
            /// As [`send`](Self::send).
            pub fn send_async<'a>(&'a mut self, payload: &'a [u8]) -> SendFuture<'a, $t> {
                SendFuture { tx: self, kind: 0, payload, reg: Registration::default() }
            }

            /// [`send_async`](Self::send_async) with a kind tag.
            pub fn send_kind_async<'a>(&'a mut self, kind: u32, payload: &'a [u8]) -> SendFuture<'a, $t> {
                SendFuture { tx: self, kind, payload, reg: Registration::default() }
            }
        }

        impl Future for SendFuture<'_, $t> {
            type Output = Result<(), SendError>;
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                let this = self.get_mut();
                let (tx, kind, payload) = (&mut *this.tx, this.kind, this.payload);
                let att = tx.attachment();
                this.reg.poll_with(
                    cx,
                    || att,
                    true,
                    || match tx.try_send_kind(kind, payload) {
                        Err(TrySendError::Full) => None,
                        r => Some(r.map_err(|e| SendError::from_internal(Error::from(e)))),
                    },
                )
            }
        }
    };
}
sender!(Producer);
sender!(Publisher);

/// One receive attempt: `None` if there is nothing yet and senders remain.
fn attempt_recv(
    mut try_recv: impl FnMut(&mut [u8]) -> Result<Received, TryRecvError>,
    att: &crate::attach::AttRef,
    buf: &mut [u8],
) -> Option<Result<Received, RecvError>> {
    let done = |r: Result<Received, TryRecvError>| Some(r.map_err(|e| RecvError::from_internal(Error::from(e))));
    match try_recv(buf) {
        Err(TryRecvError::Empty) => {
            // Nothing comes from senders that are all gone (the reactor polls us at least every
            // 100 ms): one more look for what they sent before leaving.
            if att.sender_gone() {
                match try_recv(buf) {
                    Err(TryRecvError::Empty) => Some(Err(RecvError::Disconnected)),
                    r => done(r),
                }
            } else {
                None
            }
        }
        r => done(r),
    }
}

/// The future of `recv_async`.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'a, R> {
    rx: &'a mut R,
    buf: &'a mut [u8],
    reg: Registration,
}

/// The future of `send_async`.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, S> {
    tx: &'a mut S,
    kind: u32,
    payload: &'a [u8],
    reg: Registration,
}

/// A stream of messages from a consumer or subscriber ([`Consumer::into_stream`],
/// [`Subscriber::into_stream`]). Dropping it (or a `next()` future) loses no message.
#[derive(Debug)]
pub struct MessageStream<R> {
    rx: R,
    max: usize,
    reg: Registration,
    done: bool,
}

impl<R> MessageStream<R> {
    /// The receiver back.
    pub fn into_inner(self) -> R {
        self.rx
    }
}
