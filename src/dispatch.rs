//! Push-style handling: register a handler per consumer, subscriber or timer, and one thread
//! runs them as messages arrive ([`Dispatcher`]), on a [`WaitSet`].
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::dispatch::Dispatcher;
//! use shmq::{QueueOptions, TopicOptions};
//!
//! let orders = QueueOptions::new().dir(dir.path()).create("orders")?;
//! let prices = TopicOptions::new().dir(dir.path()).create("prices")?;
//! let mut seen = Vec::new();
//! let mut d = Dispatcher::new()
//!     .on(orders.consumer()?, |msg, _kind| {
//!         seen.push(msg.to_vec());
//!         Ok(())
//!     })
//!     .on(prices.subscriber().build()?, |_msg, _kind| Err("no price feed here".into()))
//!     .on_error(|e| eprintln!("{e}"));
//! let stop = d.stopper();
//! let mut tx = orders.producer()?;
//! tx.send(b"buy 10")?;
//! drop(tx); // the only producer leaves: the dispatcher drops the stream once it is drained
//! stop.stop_when_idle();
//! d.run()?;
//! drop(d);
//! assert_eq!(seen, [b"buy 10".to_vec()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{RecvError, TryRecvError};
use crate::queue::Consumer;
use crate::topic::Subscriber;
use crate::waitset::{Interval, Key, Token, WaitSet, Wake, Waker};

/// What a handler returns: an error goes to the [`on_error`](Dispatcher::on_error) callback.
pub type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Messages a stream's handler gets per turn before the other ready streams get theirs.
const TURN: usize = 64;

/// A handler or receive error, as the [`on_error`](Dispatcher::on_error) callback sees it.
#[derive(Debug)]
pub struct DispatchError {
    /// The queue or topic the message came from (empty for a timer).
    pub stream: String,
    /// What went wrong.
    pub kind: DispatchErrorKind,
}

/// What went wrong in a [`DispatchError`].
#[derive(Debug)]
pub enum DispatchErrorKind {
    /// The handler returned this error for the message of this kind (the message is consumed).
    Handler {
        /// The message's kind tag.
        kind: u32,
        /// The handler's error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A timer's handler returned this error.
    Timer(Box<dyn std::error::Error + Send + Sync>),
    /// Receiving failed (a lossy subscriber that missed messages, a corrupted segment, ...);
    /// the stream stays registered unless the error is `Disconnected`.
    Receive(TryRecvError),
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DispatchErrorKind::Handler { kind, error } => {
                write!(f, "the handler of \"{}\" failed on a message of kind {kind}: {error}", self.stream)
            }
            DispatchErrorKind::Timer(e) => write!(f, "a timer's handler failed: {e}"),
            DispatchErrorKind::Receive(e) => write!(f, "receiving from \"{}\" failed: {e}", self.stream),
        }
    }
}

impl std::error::Error for DispatchError {}

/// Consumers and subscribers a [`Dispatcher`] can run handlers for (sealed).
pub trait Stream: crate::waitset::Attach + private::Sealed {
    #[doc(hidden)]
    fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<crate::Received, TryRecvError>;
    #[doc(hidden)]
    fn info(&self) -> (String, usize);
}

mod private {
    pub trait Sealed {}
    impl Sealed for crate::queue::Consumer {}
    impl Sealed for crate::topic::Subscriber {}
}

macro_rules! stream {
    ($t:ty) => {
        impl Stream for $t {
            fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<crate::Received, TryRecvError> {
                self.try_recv(buf)
            }
            fn info(&self) -> (String, usize) {
                let a = self.attachment();
                (a.seg.name.clone(), a.seg.config.max_msg as usize)
            }
        }
    };
}
stream!(Consumer);
stream!(Subscriber);

type MessageHandler<'h> = Box<dyn FnMut(&[u8], u32) -> HandlerResult + 'h>;
type Recv = fn(&mut WaitSet, Token, &mut [u8]) -> Option<Result<crate::Received, TryRecvError>>;

enum Entry<'h> {
    Stream { token: Token, recv: Recv, name: String, buf: Vec<u8>, handler: MessageHandler<'h> },
    Timer { key: Key<Interval>, handler: Box<dyn FnMut() -> HandlerResult + 'h> },
}

impl Entry<'_> {
    fn token(&self) -> Token {
        match self {
            Entry::Stream { token, .. } => *token,
            Entry::Timer { key, .. } => key.token(),
        }
    }
}

/// Receives from the stream of type `S` at `token`.
fn recv_via<S: Stream>(
    ws: &mut WaitSet,
    token: Token,
    buf: &mut [u8],
) -> Option<Result<crate::Received, TryRecvError>> {
    Some(ws.by_token_mut::<S>(token)?.try_recv_into(buf))
}

/// Stop requests: none, now, or once every stream is drained.
const RUN: u8 = 0;
const STOP_NOW: u8 = 1;
const STOP_IDLE: u8 = 2;

/// Stops a [`Dispatcher`] from another thread; `Clone`, `Send`, `Sync`.
#[derive(Clone, Debug)]
pub struct Stopper {
    state: Arc<AtomicU8>,
    waker: Waker,
}

impl Stopper {
    /// `run` returns after the handler that is running (if any) returns; messages not yet
    /// handled stay in their queues and topics.
    pub fn stop(&self) {
        self.state.store(STOP_NOW, SeqCst);
        self.waker.wake();
    }

    /// `run` returns once no stream has a message ready (timers do not count).
    pub fn stop_when_idle(&self) {
        let _ = self.state.compare_exchange(RUN, STOP_IDLE, SeqCst, SeqCst);
        self.waker.wake();
    }
}

/// Runs a handler per consumer, subscriber or timer, on one thread, as messages arrive. Handlers
/// of one dispatcher never run at the same time. See the [module docs](self).
pub struct Dispatcher<'h> {
    ws: WaitSet,
    entries: Vec<Entry<'h>>,
    on_error: Box<dyn FnMut(DispatchError) + 'h>,
    stop_key: Key<Wake>,
    stopper: Stopper,
    ready: Vec<Token>,
}

impl fmt::Debug for Dispatcher<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher").field("ws", &self.ws).field("handlers", &self.entries.len()).finish()
    }
}

impl Default for Dispatcher<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'h> Dispatcher<'h> {
    /// A dispatcher with no handlers; handler errors are printed to stderr until
    /// [`on_error`](Self::on_error) says otherwise.
    pub fn new() -> Dispatcher<'h> {
        let mut ws = WaitSet::new();
        let (stop_key, waker) = ws.add_waker();
        Dispatcher {
            ws,
            entries: Vec::new(),
            on_error: Box::new(|e| eprintln!("shmq dispatcher: {e}")),
            stop_key,
            stopper: Stopper { state: Arc::new(AtomicU8::new(RUN)), waker },
            ready: Vec::new(),
        }
    }

    /// Runs `handler` for every message of `stream` (a [`Consumer`] or a [`Subscriber`]), with
    /// the message's bytes and kind. The message is consumed whatever the handler returns; an
    /// error goes to [`on_error`](Self::on_error).
    pub fn on<S: Stream>(mut self, stream: S, handler: impl FnMut(&[u8], u32) -> HandlerResult + 'h) -> Self {
        let (name, max) = stream.info();
        let token = self.ws.add(stream).token();
        self.entries.push(Entry::Stream {
            token,
            recv: recv_via::<S>,
            name,
            buf: vec![0u8; max],
            handler: Box::new(handler),
        });
        self.ready.reserve(2);
        self
    }

    /// Runs `handler` every `period` (the first time one period after `run` starts waiting).
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn every(mut self, period: Duration, handler: impl FnMut() -> HandlerResult + 'h) -> Self {
        let key = self.ws.add_interval(period);
        self.entries.push(Entry::Timer { key, handler: Box::new(handler) });
        self.ready.reserve(2);
        self
    }

    /// Where handler and receive errors go (by default: printed to stderr).
    pub fn on_error(mut self, f: impl FnMut(DispatchError) + 'h) -> Self {
        self.on_error = Box::new(f);
        self
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Handles messages as they arrive, until stopped, or until every stream has reported
    /// `Disconnected` (its senders left and it is drained; such a stream is dropped) and no
    /// timer is left. A stream gets at most 64 messages per turn, so that a busy stream does
    /// not starve the others. Blocks in the kernel while nothing arrives.
    ///
    /// # Errors
    /// `Corrupted` if a segment holds impossible indices.
    pub fn run(&mut self) -> Result<(), RecvError> {
        loop {
            if self.stopper.state.load(SeqCst) == STOP_NOW || self.entries.is_empty() {
                return Ok(());
            }
            if self.stopper.state.load(SeqCst) == STOP_IDLE {
                self.ws.poll(&mut self.ready)?;
            } else {
                self.ws.wait(&mut self.ready)?;
            }
            let mut streams_ready = false;
            let ready = std::mem::take(&mut self.ready);
            for &token in &ready {
                if token == self.stop_key {
                    continue;
                }
                let Some(i) = self.entries.iter().position(|e| e.token() == token) else { continue };
                if self.stopper.state.load(SeqCst) == STOP_NOW {
                    break;
                }
                streams_ready |= !matches!(self.entries[i], Entry::Timer { .. });
                if self.turn(i) {
                    // Disconnected and drained: drop the stream.
                    let e = self.entries.remove(i);
                    self.remove(e);
                }
            }
            self.ready = ready;
            if !streams_ready && self.stopper.state.load(SeqCst) == STOP_IDLE {
                return Ok(());
            }
        }
    }

    /// One turn of entry `i`; true if its stream is disconnected and drained.
    fn turn(&mut self, i: usize) -> bool {
        let on_error = &mut self.on_error;
        match &mut self.entries[i] {
            Entry::Timer { handler, .. } => {
                if let Err(e) = handler() {
                    on_error(DispatchError { stream: String::new(), kind: DispatchErrorKind::Timer(e) });
                }
                false
            }
            Entry::Stream { token, recv, name, buf, handler } => {
                for _ in 0..TURN {
                    match recv(&mut self.ws, *token, buf) {
                        Some(Ok(m)) => {
                            if let Err(error) = handler(&buf[..m.len], m.kind) {
                                let kind = DispatchErrorKind::Handler { kind: m.kind, error };
                                on_error(DispatchError { stream: name.clone(), kind });
                            }
                        }
                        Some(Err(TryRecvError::Empty)) => return false,
                        None | Some(Err(TryRecvError::Disconnected)) => return true,
                        Some(Err(e)) => {
                            on_error(DispatchError { stream: name.clone(), kind: DispatchErrorKind::Receive(e) })
                        }
                    }
                }
                false
            }
        }
    }

    fn remove(&mut self, e: Entry<'h>) {
        match e {
            Entry::Stream { token, .. } => self.ws.remove_token(token),
            Entry::Timer { key, .. } => drop(self.ws.remove(key)),
        }
    }
}
