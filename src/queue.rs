//! Queues: each message goes to exactly one consumer.
//!
//! A [`Queue`] is a process's attachment to a named queue segment; from it come
//! [`Producer`]s and [`Consumer`]s. An SPSC queue allows one live producer and one live
//! consumer at a time ([`Error::RoleTaken`] otherwise; a dead holder's role is taken over); an
//! MPMC queue allows any number of each.
//!
//! Ownership: creating a queue does not tie its lifetime to the creator. The segment stays,
//! with its messages, until [`Queue::unlink`], [`remove`] or `shmq rm` removes it; dropping
//! handles only detaches them.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::attach::{Attachment, Deadline};
use crate::error::{Error, Result};
use crate::layout::{slot, Kind, DEFAULT_PARTICIPANTS, ROLE_CONSUMER, ROLE_PRODUCER};
use crate::options::{common_setters, Common};
pub use crate::options::{DEFAULT_CAPACITY, DEFAULT_MAX_MSG, DEFAULT_MODE};
use crate::ring::{mpmc, spsc, MappedRing, Poll, RingMem};
use crate::segment::{self, Config, Expect, Segment};
use crate::sync::{AtomicU32, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use crate::wait::{Step, WaitStrategy};

/// Which ring a queue uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueKind {
    /// One producer and one consumer; the fastest.
    Spsc,
    /// Any number of producers and consumers.
    #[default]
    Mpmc,
}

impl From<QueueKind> for Kind {
    fn from(k: QueueKind) -> Kind {
        match k {
            QueueKind::Spsc => Kind::Spsc,
            QueueKind::Mpmc => Kind::Mpmc,
        }
    }
}

/// How to create or open a queue. Like `std::fs::OpenOptions`: set what you need, then call
/// [`create`](Self::create), [`open`](Self::open) or [`open_or_create`](Self::open_or_create).
///
/// Settings given explicitly are checked when opening an existing queue: a mismatch is
/// [`Error::Incompatible`].
#[derive(Clone, Debug, Default)]
pub struct QueueOptions {
    common: Common,
    kind: Option<QueueKind>,
}

impl QueueOptions {
    /// Defaults: MPMC, 1024 slots, 256-byte messages, mode 0600, [`WaitStrategy::Block`].
    pub fn new() -> Self {
        Self::default()
    }
    common_setters!();

    /// SPSC or MPMC.
    pub fn kind(mut self, kind: QueueKind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// Shorthand for `kind(QueueKind::Spsc)`.
    pub fn spsc(self) -> Self {
        self.kind(QueueKind::Spsc)
    }
    fn config(&self) -> Result<Config> {
        Ok(Config {
            kind: self.kind.unwrap_or_default().into(),
            capacity: self.common.capacity.unwrap_or(DEFAULT_CAPACITY),
            max_msg: self.common.max_msg_u32()?,
            max_participants: DEFAULT_PARTICIPANTS,
            max_subscribers: 0,
        })
    }

    fn expect(&self) -> Expect {
        const SPSC: &[Kind] = &[Kind::Spsc];
        const MPMC: &[Kind] = &[Kind::Mpmc];
        const ANY: &[Kind] = &[Kind::Spsc, Kind::Mpmc];
        Expect {
            kinds: match self.kind {
                Some(QueueKind::Spsc) => SPSC,
                Some(QueueKind::Mpmc) => MPMC,
                None => ANY,
            },
            capacity: self.common.capacity,
            max_msg: self.common.max_msg.map(|m| m.min(u32::MAX as usize) as u32),
            max_subscribers: None,
        }
    }

    /// Creates queue `name`; [`Error::AlreadyExists`] if it exists.
    pub fn create(&self, name: &str) -> Result<Queue> {
        let config = self.config()?;
        match Segment::create(&self.common.dir_path(), name, config, self.common.mode, |seg| {
            if config.kind == Kind::Mpmc {
                mpmc::init(&seg.ring());
            }
        })? {
            Some(seg) => Queue::attach(seg, self.common.wait),
            None => Err(Error::AlreadyExists { name: name.into() }),
        }
    }

    /// Opens existing queue `name`; [`Error::NotFound`] if there is none.
    pub fn open(&self, name: &str) -> Result<Queue> {
        let seg = Segment::open(&self.common.dir_path(), name, &self.expect(), self.common.ready_timeout)?;
        Queue::attach(seg, self.common.wait)
    }

    /// Opens queue `name`, creating it if it does not exist. A segment left half-initialised
    /// by a dead creator ([`Error::Stale`]) is removed and created anew.
    pub fn open_or_create(&self, name: &str) -> Result<Queue> {
        for _ in 0..16 {
            match self.create(name) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match self.open(name) {
                Err(Error::NotFound { .. }) => continue, // removed meanwhile: create again
                Err(Error::Stale { .. }) => {
                    segment::remove(&self.common.dir_path(), name)?;
                    continue;
                }
                other => return other,
            }
        }
        Err(Error::Timeout)
    }
}

/// Removes queue or topic `name` from the default segment directory. `Ok(false)` if absent.
pub fn remove(name: &str) -> Result<bool> {
    segment::remove(&crate::os::default_dir(), name)
}

/// What [`Consumer::recv_into`] received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Payload length (the first `len` bytes of the buffer).
    pub len: usize,
    /// The sender's kind tag (0 for plain `send`).
    pub kind: u32,
}

/// A process's attachment to a queue. Cheap to share: producers and consumers made from it keep
/// the mapping alive.
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{Queue, QueueOptions};
/// let q = QueueOptions::new().dir(dir.path()).capacity(8).create("doc-queue")?;
/// let mut tx = q.producer()?;
/// let mut rx = q.consumer()?;
/// tx.send(b"hello")?;
/// let mut buf = [0u8; 256];
/// let got = rx.recv_into(&mut buf)?;
/// assert_eq!(&buf[..got.len], b"hello");
/// q.unlink()?;
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    shared: Arc<Attachment>,
}

impl Queue {
    /// Creates queue `name` with default options (see [`QueueOptions`]).
    pub fn create(name: &str) -> Result<Queue> {
        QueueOptions::new().create(name)
    }

    /// Opens existing queue `name`.
    pub fn open(name: &str) -> Result<Queue> {
        QueueOptions::new().open(name)
    }

    /// Opens queue `name`, creating it with default options if needed.
    pub fn open_or_create(name: &str) -> Result<Queue> {
        QueueOptions::new().open_or_create(name)
    }

    /// Options for creating or opening a queue.
    pub fn options() -> QueueOptions {
        QueueOptions::new()
    }

    fn attach(seg: Segment, wait: WaitStrategy) -> Result<Queue> {
        let kind = seg.config.kind;
        Ok(Queue { shared: Arc::new(Attachment::new(seg, wait, |ring, dead| scrub(ring, kind, dead))?) })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.shared.seg.name
    }
    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.shared.seg.path
    }
    /// SPSC or MPMC.
    pub fn kind(&self) -> QueueKind {
        match self.shared.seg.config.kind {
            Kind::Spsc => QueueKind::Spsc,
            _ => QueueKind::Mpmc,
        }
    }
    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.seg.config.capacity as usize
    }
    /// Largest message in bytes.
    pub fn max_msg_size(&self) -> usize {
        self.shared.seg.config.max_msg as usize
    }
    /// Messages waiting (a snapshot; clamped to the capacity). On an MPMC queue this counts
    /// slots of dropped loans until a consumer skips them.
    pub fn len(&self) -> usize {
        let c = self.shared.ring.control();
        let tail = c.tail.0.load(Relaxed);
        let head = c.head.0.load(Relaxed);
        tail.saturating_sub(head).min(self.shared.seg.config.capacity) as usize
    }
    /// Whether no message is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the queue's segment file. Attached processes keep working on their mapping;
    /// new opens fail with [`Error::NotFound`].
    pub fn unlink(&self) -> Result<bool> {
        self.shared.seg.unlink()
    }

    /// A producer. For SPSC, takes the exclusive producer role.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] if another live producer holds an SPSC queue;
    /// [`Error::Corrupted`] if the shared indices are invalid.
    pub fn producer(&self) -> Result<Producer> {
        let s = &self.shared;
        let side = match s.seg.config.kind {
            Kind::Spsc => {
                take_role(s, &s.seg.header().producer_holder, "producer")?;
                match spsc::SpscProducer::attach(&s.ring) {
                    Ok(p) => ProducerSide::Spsc(p),
                    Err(e) => {
                        give_role(s, &s.seg.header().producer_holder);
                        return Err(e);
                    }
                }
            }
            _ => ProducerSide::Mpmc,
        };
        s.parts.add_roles(s.id, ROLE_PRODUCER);
        Ok(Producer { shared: s.clone(), side, _not_sync: PhantomData })
    }

    /// A consumer. For SPSC, takes the exclusive consumer role.
    ///
    /// # Errors
    /// As for [`producer`](Self::producer).
    pub fn consumer(&self) -> Result<Consumer> {
        let s = &self.shared;
        let side = match s.seg.config.kind {
            Kind::Spsc => {
                take_role(s, &s.seg.header().consumer_holder, "consumer")?;
                match spsc::SpscConsumer::attach(&s.ring) {
                    Ok(c) => ConsumerSide::Spsc(c),
                    Err(e) => {
                        give_role(s, &s.seg.header().consumer_holder);
                        return Err(e);
                    }
                }
            }
            _ => ConsumerSide::Mpmc,
        };
        s.parts.add_roles(s.id, ROLE_CONSUMER);
        Ok(Consumer { shared: s.clone(), side, _not_sync: PhantomData })
    }
}

/// Frees MPMC slots still claimed by a dead participant whose id is being reused.
fn scrub(ring: &MappedRing, kind: Kind, dead: u16) {
    if kind != Kind::Mpmc {
        return;
    }
    for i in 0..ring.capacity() {
        let w = ring.slot(i).state.load(Acquire);
        if slot::claimer(w) == dead && matches!(slot::tag(w), slot::WRITING | slot::READING) {
            mpmc::recover(ring, i, w);
        }
    }
}

fn take_role(s: &Attachment, holder: &AtomicU32, role: &'static str) -> Result<()> {
    let me = s.id as u32;
    loop {
        let cur = holder.load(Acquire);
        if cur == me || (cur != 0 && cur <= u16::MAX as u32 && !s.parts.is_dead(cur as u16)) {
            return Err(Error::RoleTaken { role, pid: s.parts.pid(cur as u16) });
        }
        // Free, or held by a dead (or impossible) participant: take it.
        if holder.compare_exchange(cur, me, Acquire, Relaxed).is_ok() {
            return Ok(());
        }
    }
}

fn give_role(s: &Attachment, holder: &AtomicU32) {
    let _ = holder.compare_exchange(s.id as u32, 0, Release, Relaxed);
}

#[derive(Debug)]
enum ProducerSide {
    Spsc(spsc::SpscProducer),
    Mpmc,
}

#[derive(Debug)]
enum ConsumerSide {
    Spsc(spsc::SpscConsumer),
    Mpmc,
}

/// Sends messages into a queue. `Send`, not `Sync`: one thread at a time.
#[derive(Debug)]
pub struct Producer {
    shared: Arc<Attachment>,
    side: ProducerSide,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let ProducerSide::Spsc(_) = self.side {
            give_role(&self.shared, &self.shared.seg.header().producer_holder);
        }
    }
}

impl Producer {
    /// Sends `payload` (kind 0), waiting for space per the wait strategy.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if `payload` exceeds the maximum message size.
    pub fn send(&mut self, payload: &[u8]) -> Result<()> {
        self.send_with(0, payload, Deadline::Forever)
    }
    /// Sends `payload` tagged with `kind`.
    pub fn send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<()> {
        self.send_with(kind, payload, Deadline::Forever)
    }
    /// Sends without waiting: [`Error::Full`] if there is no space.
    pub fn try_send(&mut self, payload: &[u8]) -> Result<()> {
        self.send_with(0, payload, Deadline::Now)
    }
    /// [`try_send`](Self::try_send) with a kind tag.
    pub fn try_send_kind(&mut self, kind: u32, payload: &[u8]) -> Result<()> {
        self.send_with(kind, payload, Deadline::Now)
    }
    /// Sends, waiting at most `timeout` for space: [`Error::Timeout`] after that.
    pub fn send_timeout(&mut self, payload: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(0, payload, Deadline::after(timeout))
    }
    /// [`send_timeout`](Self::send_timeout) with a kind tag.
    pub fn send_kind_timeout(&mut self, kind: u32, payload: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(kind, payload, Deadline::after(timeout))
    }
    /// Sends the bytes of a plain-old-data value.
    pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Sends as many of `msgs` as fit now, without waiting; returns how many were sent. An SPSC
    /// queue publishes them with one store.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if any message is too large (then none is sent).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        let max = self.shared.seg.config.max_msg as usize;
        if let Some(m) = msgs.iter().find(|m| m.len() > max) {
            return Err(Error::MessageTooLarge { len: m.len(), max });
        }
        let ring = &self.shared.ring;
        let n = match &mut self.side {
            ProducerSide::Spsc(p) => {
                let n = (p.free_for(ring, msgs.len() as u64)? as usize).min(msgs.len());
                for (i, m) in msgs[..n].iter().enumerate() {
                    p.write(ring, i as u64, 0, m);
                }
                p.publish(ring, n as u64);
                n
            }
            ProducerSide::Mpmc => {
                let mut n = 0;
                for m in msgs {
                    match mpmc::claim_write(ring, self.shared.id)? {
                        Poll::Ready(pos) => {
                            copy_in(ring, pos, m);
                            mpmc::commit(ring, pos, m.len(), 0);
                            n += 1;
                        }
                        _ => break,
                    }
                }
                n
            }
        };
        if n > 0 {
            self.shared.notify_data();
        }
        Ok(n)
    }

    fn send_with(&mut self, kind: u32, payload: &[u8], deadline: Deadline) -> Result<()> {
        let max = self.shared.seg.config.max_msg as usize;
        if payload.len() > max {
            return Err(Error::MessageTooLarge { len: payload.len(), max });
        }
        let pos = self.reserve(deadline)?;
        let ring = &self.shared.ring;
        copy_in(ring, pos, payload);
        self.publish(pos, payload.len(), kind);
        Ok(())
    }

    /// Waits for a free slot; returns its position (claimed for MPMC).
    fn reserve(&mut self, deadline: Deadline) -> Result<u64> {
        let s = &*self.shared;
        let ring = &s.ring;
        match &mut self.side {
            ProducerSide::Spsc(p) => s.run_producer(deadline, |_| {
                Ok(if p.free(ring)? > 0 { Step::Ready(p.position(0)) } else { Step::Wait })
            }),
            ProducerSide::Mpmc => s.run_producer(deadline, |check| {
                Ok(match mpmc::claim_write(ring, s.id)? {
                    Poll::Ready(pos) => Step::Ready(pos),
                    Poll::NotReady => Step::Wait,
                    Poll::Held { pos, word } => {
                        if check && s.parts.is_dead(slot::claimer(word)) && mpmc::recover(ring, pos, word) {
                            s.notify_space();
                        }
                        Step::Held
                    }
                })
            }),
        }
    }

    /// Publishes the reserved slot `pos` and wakes sleeping consumers.
    fn publish(&mut self, pos: u64, len: usize, kind: u32) {
        let ring = &self.shared.ring;
        match &mut self.side {
            ProducerSide::Spsc(p) => {
                let slot = ring.slot(pos);
                slot.len.store(len as u32, Relaxed);
                slot.kind.store(kind, Relaxed);
                p.publish(ring, 1);
            }
            ProducerSide::Mpmc => mpmc::commit(ring, pos, len, kind),
        }
        self.shared.notify_data();
    }

    /// Borrows the next free slot to write a message in place (zero-copy), waiting for space per
    /// the wait strategy. [`Loan::commit`] publishes it; dropping the loan aborts it.
    pub fn loan(&mut self) -> Result<Loan<'_>> {
        let pos = self.reserve(Deadline::Forever)?;
        Ok(Loan { producer: self, pos, kind: 0, done: false })
    }

    /// [`loan`](Self::loan) without waiting: [`Error::Full`] if there is no space.
    pub fn try_loan(&mut self) -> Result<Loan<'_>> {
        let pos = self.reserve(Deadline::Now)?;
        Ok(Loan { producer: self, pos, kind: 0, done: false })
    }
}

fn copy_in(ring: &MappedRing, pos: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= ring.max_msg());
    // SAFETY: the caller reserved slot `pos` (free SPSC slot, or MPMC claim), so no peer that
    // follows the protocol touches its payload; payload.len() <= max_msg, the payload's size.
    unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), ring.payload(pos), payload.len()) };
}

/// A slot borrowed for writing in place. Commit with [`commit`](Self::commit); dropping it
/// without commit gives the slot back (MPMC consumers skip it, counted as aborted).
///
/// The buffer is shared memory: it holds whatever the slot held before.
#[derive(Debug)]
pub struct Loan<'a> {
    producer: &'a mut Producer,
    pos: u64,
    kind: u32,
    done: bool,
}

impl Loan<'_> {
    /// The kind tag to send with the message.
    pub fn set_kind(&mut self, kind: u32) {
        self.kind = kind;
    }

    /// Publishes the first `len` bytes of the buffer.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if `len` exceeds the buffer; the loan is aborted.
    pub fn commit(mut self, len: usize) -> Result<()> {
        let max = self.producer.shared.seg.config.max_msg as usize;
        if len > max {
            return Err(Error::MessageTooLarge { len, max }); // drop aborts
        }
        self.done = true;
        self.producer.publish(self.pos, len, self.kind);
        Ok(())
    }
}

impl std::ops::Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ring = &self.producer.shared.ring;
        // SAFETY: the slot is reserved for this loan; its payload has max_msg bytes.
        unsafe { std::slice::from_raw_parts(ring.payload(self.pos), ring.max_msg()) }
    }
}

impl std::ops::DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let ring = &self.producer.shared.ring;
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the buffer.
        unsafe { std::slice::from_raw_parts_mut(ring.payload(self.pos), ring.max_msg()) }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let ProducerSide::Mpmc = self.producer.side {
            let ring = &self.producer.shared.ring;
            mpmc::abort(ring, self.pos);
            self.producer.shared.notify_data();
        }
        // SPSC: nothing was published; the slot stays free.
    }
}

/// Receives messages from a queue. `Send`, not `Sync`.
#[derive(Debug)]
pub struct Consumer {
    shared: Arc<Attachment>,
    side: ConsumerSide,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let ConsumerSide::Spsc(_) = self.side {
            give_role(&self.shared, &self.shared.seg.header().consumer_holder);
        }
    }
}

impl Consumer {
    /// Receives the next message into `buf`, waiting per the wait strategy.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if the message does not fit (it stays in the queue);
    /// [`Error::Corrupted`] if a peer wrote an invalid slot (that slot is skipped).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<Received> {
        self.recv_with(buf, Deadline::Forever)
    }
    /// Receives without waiting: [`Error::Empty`] if there is no message.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Received> {
        self.recv_with(buf, Deadline::Now)
    }
    /// Receives, waiting at most `timeout`: [`Error::Timeout`] after that.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Received> {
        self.recv_with(buf, Deadline::after(timeout))
    }

    /// Receives a plain-old-data value.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if the message is not exactly `size_of::<T>()` bytes (the
    /// message is consumed: the sender broke the protocol).
    pub fn recv_value<T: bytemuck::Pod>(&mut self) -> Result<T> {
        let m = self.recv_ref()?;
        if m.len() != std::mem::size_of::<T>() {
            return Err(Error::SizeMismatch { expected: std::mem::size_of::<T>(), found: m.len() });
        }
        Ok(bytemuck::pod_read_unaligned(&m))
    }

    /// Borrows the next message in place (zero-copy), waiting per the wait strategy. The slot is
    /// released when the guard drops.
    pub fn recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.recv_ref_with(Deadline::Forever)
    }
    /// [`recv_ref`](Self::recv_ref) without waiting: [`Error::Empty`] if there is no message.
    pub fn try_recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.recv_ref_with(Deadline::Now)
    }
    /// [`recv_ref`](Self::recv_ref) waiting at most `timeout`.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<RecvRef<'_>> {
        self.recv_ref_with(Deadline::after(timeout))
    }

    /// Hands up to `max` waiting messages, in order, to `f(payload, kind)` without waiting;
    /// returns how many. An SPSC queue releases them with one store.
    pub fn try_recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8], u32)) -> Result<usize> {
        let ring = &self.shared.ring;
        let n = match &mut self.side {
            ConsumerSide::Spsc(c) => {
                let n = (c.available_for(ring, max as u64)? as usize).min(max);
                for i in 0..n as u64 {
                    let (len, kind) = match c.peek(ring, i) {
                        Ok(v) => v,
                        Err(e) => {
                            c.release(ring, i + 1); // skip the corrupted slot too
                            return Err(e);
                        }
                    };
                    // SAFETY: message i is ready (i < available) and len <= max_msg (peek).
                    f(unsafe { std::slice::from_raw_parts(ring.payload(c.position(i)), len) }, kind);
                }
                c.release(ring, n as u64);
                n
            }
            ConsumerSide::Mpmc => {
                let mut n = 0;
                while n < max {
                    match mpmc::claim_read(ring, self.shared.id, usize::MAX)? {
                        Poll::Ready(msg) => {
                            // SAFETY: we claimed slot msg.pos; msg.len <= max_msg (validated at
                            // the claim, never re-read).
                            f(unsafe { std::slice::from_raw_parts(ring.payload(msg.pos), msg.len) }, msg.kind);
                            mpmc::release(ring, msg.pos);
                            n += 1;
                        }
                        _ => break,
                    }
                }
                n
            }
        };
        if n > 0 {
            self.shared.notify_space();
        }
        Ok(n)
    }

    fn recv_with(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<Received> {
        let m = self.claim(buf.len(), deadline)?;
        buf[..m.len].copy_from_slice(&m);
        Ok(Received { len: m.len, kind: m.kind })
    }

    fn recv_ref_with(&mut self, deadline: Deadline) -> Result<RecvRef<'_>> {
        self.claim(usize::MAX, deadline)
    }

    /// Waits for the next message of at most `max_len` bytes and claims it.
    fn claim(&mut self, max_len: usize, deadline: Deadline) -> Result<RecvRef<'_>> {
        let s = &*self.shared;
        let ring = &s.ring;
        let (pos, len, kind) = match &mut self.side {
            ConsumerSide::Spsc(c) => s.run_consumer(deadline, |_| {
                if c.available(ring)? == 0 {
                    return Ok(Step::Wait);
                }
                let (len, kind) = c.peek(ring, 0).inspect_err(|_| {
                    c.release(ring, 1); // skip the corrupted slot so the queue goes on
                })?;
                if len > max_len {
                    return Err(Error::BufferTooSmall { len: max_len, needed: len });
                }
                Ok(Step::Ready((c.position(0), len, kind)))
            })?,
            ConsumerSide::Mpmc => s.run_consumer(deadline, |check| {
                Ok(match mpmc::claim_read(ring, s.id, max_len)? {
                    Poll::Ready(msg) => Step::Ready((msg.pos, msg.len, msg.kind)),
                    Poll::NotReady => Step::Wait,
                    Poll::Held { pos, word } => {
                        if check && s.parts.is_dead(slot::claimer(word)) && mpmc::recover(ring, pos, word) {
                            s.notify_data();
                            s.notify_space();
                        }
                        Step::Held
                    }
                })
            })?,
        };
        Ok(RecvRef { consumer: self, pos, len, kind })
    }
}

/// A message borrowed in place; the slot is released when this drops.
#[derive(Debug)]
pub struct RecvRef<'a> {
    consumer: &'a mut Consumer,
    pos: u64,
    len: usize,
    kind: u32,
}

impl RecvRef<'_> {
    /// The sender's kind tag.
    pub fn kind(&self) -> u32 {
        self.kind
    }
}

impl std::ops::Deref for RecvRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ring = &self.consumer.shared.ring;
        // SAFETY: the message at `pos` is claimed by this guard (SPSC: not yet released; MPMC:
        // READING claim) and len <= max_msg was validated when it was claimed.
        unsafe { std::slice::from_raw_parts(ring.payload(self.pos), self.len) }
    }
}

impl Drop for RecvRef<'_> {
    fn drop(&mut self) {
        let ring = &self.consumer.shared.ring;
        match &mut self.consumer.side {
            ConsumerSide::Spsc(c) => c.release(ring, 1),
            ConsumerSide::Mpmc => mpmc::release(ring, self.pos),
        }
        self.consumer.shared.notify_space();
    }
}

/// Counters and indices of a ring (a snapshot, for tools).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    /// Next position to write.
    pub tail: u64,
    /// Next position to read (queues).
    pub head: u64,
    /// Loans dropped without commit.
    pub aborted: u64,
    /// Slots of producers that died mid-write.
    pub abandoned: u64,
    /// Messages lost with a consumer that died holding them.
    pub lost_by_crash: u64,
    /// Times a producer found the ring full and waited or failed.
    pub full_events: u64,
    /// Nanoseconds producers spent waiting for space.
    pub blocked_ns: u64,
    /// Processes sleeping for data / for space.
    pub sleepers: (u32, u32),
}

impl RingCounters {
    /// Reads the counters of a ring.
    pub fn read(ring: &impl RingMem) -> RingCounters {
        let c = ring.control();
        let st = &c.stats.0;
        RingCounters {
            tail: c.tail.0.load(Relaxed),
            head: c.head.0.load(Relaxed),
            aborted: st.aborted.load(Relaxed),
            abandoned: st.abandoned.load(Relaxed),
            lost_by_crash: st.lost_by_crash.load(Relaxed),
            full_events: st.full_events.load(Relaxed),
            blocked_ns: st.blocked_ns.load(Relaxed),
            sleepers: (c.data.0.sleepers.load(Relaxed), c.space.0.sleepers.load(Relaxed)),
        }
    }
}

impl Queue {
    /// Indices and counters (a snapshot).
    pub fn counters(&self) -> RingCounters {
        RingCounters::read(&self.shared.ring)
    }
}
