//! shmq's ends: an SPSC queue pair (the closest to a 1:1 iceoryx2 publish-subscribe) and a
//! topic pair with one reliable subscriber each (broadcast, like iceoryx2's pub-sub).
//!
//! Both use `WaitStrategy::Spin`, so `send`/`publish` spin while the ring is full and
//! `recv_ref` busy-polls: no syscall on either side.

use shmq::{
    Consumer, Producer, Publisher, Queue, QueueOptions, Subscriber, Topic, TopicOptions, TryRecvError, TrySendError,
    WaitStrategy,
};

use crate::proto::{check_seq, seq_of, stamp, ChildEnd, ParentEnd};
use crate::CAPACITY;

fn queue_options(size: usize) -> QueueOptions {
    QueueOptions::new().spsc().capacity(CAPACITY).max_msg_size(size).wait(WaitStrategy::Spin)
}

fn topic_options(size: usize) -> TopicOptions {
    TopicOptions::new().capacity(CAPACITY).max_msg_size(size).max_subscribers(1).wait(WaitStrategy::Spin)
}

fn names(prefix: &str) -> (String, String) {
    (format!("{prefix}-ping"), format!("{prefix}-pong"))
}

/// Process A over two SPSC queues.
pub struct QueueParent<const N: usize> {
    tx: Producer,
    rx: Consumer,
    buf: [u8; N],
    /// The two queues, whose names are removed on drop.
    segs: [Queue; 2],
}

impl<const N: usize> QueueParent<N> {
    /// Creates the "ping" and "pong" queues of `prefix`.
    pub fn create(prefix: &str) -> Self {
        let (ping, pong) = names(prefix);
        let ping = queue_options(N).create(&ping).expect("creating the shmq ping queue");
        let pong = queue_options(N).create(&pong).expect("creating the shmq pong queue");
        QueueParent {
            tx: ping.producer().expect("ping producer"),
            rx: pong.consumer().expect("pong consumer"),
            buf: [0; N],
            segs: [ping, pong],
        }
    }
}

impl<const N: usize> Drop for QueueParent<N> {
    /// Removes the queues' names (both processes keep their mappings until they exit).
    fn drop(&mut self) {
        for q in &self.segs {
            let _ = q.unlink();
        }
    }
}

impl<const N: usize> ParentEnd for QueueParent<N> {
    #[inline]
    fn send(&mut self, seq: u64) {
        stamp(&mut self.buf, seq);
        self.tx.send(&self.buf).expect("shmq send");
    }
    #[inline]
    fn recv(&mut self) -> u64 {
        let m = self.rx.recv_ref().expect("shmq recv");
        seq_of(&m)
    }
}

/// Process B over two SPSC queues.
pub struct QueueChild {
    rx: Consumer,
    tx: Producer,
}

impl QueueChild {
    /// Opens the queues the parent created.
    pub fn open(prefix: &str, size: usize) -> Self {
        let (ping, pong) = names(prefix);
        let ping = queue_options(size).open(&ping).expect("opening the shmq ping queue");
        let pong = queue_options(size).open(&pong).expect("opening the shmq pong queue");
        QueueChild { rx: ping.consumer().expect("ping consumer"), tx: pong.producer().expect("pong producer") }
    }
}

impl ChildEnd for QueueChild {
    #[inline]
    fn echo(&mut self) -> u64 {
        let m = self.rx.recv_ref().expect("shmq recv");
        let seq = seq_of(&m);
        self.tx.send(&m).expect("shmq send");
        seq
    }
    #[inline]
    fn drain(&mut self) -> u64 {
        let m = self.rx.recv_ref().expect("shmq recv");
        seq_of(&m)
    }
}

/// Process A over two topics.
pub struct TopicParent<const N: usize> {
    tx: Publisher,
    rx: Subscriber,
    buf: [u8; N],
    /// The two topics, whose names are removed on drop.
    segs: [Topic; 2],
}

impl<const N: usize> TopicParent<N> {
    /// Creates the "ping" and "pong" topics of `prefix` and subscribes to "pong" (before the
    /// child exists, so no pong can be published before the subscriber is there).
    pub fn create(prefix: &str) -> Self {
        let (ping, pong) = names(prefix);
        let ping = topic_options(N).create(&ping).expect("creating the shmq ping topic");
        let pong = topic_options(N).create(&pong).expect("creating the shmq pong topic");
        TopicParent {
            tx: ping.publisher().expect("ping publisher"),
            rx: pong.subscriber().build().expect("pong subscriber"),
            buf: [0; N],
            segs: [ping, pong],
        }
    }
}

impl<const N: usize> Drop for TopicParent<N> {
    /// Removes the topics' names (both processes keep their mappings until they exit).
    fn drop(&mut self) {
        for t in &self.segs {
            let _ = t.unlink();
        }
    }
}

impl<const N: usize> ParentEnd for TopicParent<N> {
    #[inline]
    fn send(&mut self, seq: u64) {
        stamp(&mut self.buf, seq);
        self.tx.send(&self.buf).expect("shmq publish");
    }
    #[inline]
    fn recv(&mut self) -> u64 {
        let m = self.rx.recv_ref().expect("shmq topic recv");
        seq_of(&m)
    }
}

/// Process B over two topics.
pub struct TopicChild {
    rx: Subscriber,
    tx: Publisher,
}

impl TopicChild {
    /// Opens the topics and subscribes to "ping"; the parent publishes only after `ready`.
    pub fn open(prefix: &str, size: usize) -> Self {
        let (ping, pong) = names(prefix);
        let ping = topic_options(size).open(&ping).expect("opening the shmq ping topic");
        let pong = topic_options(size).open(&pong).expect("opening the shmq pong topic");
        TopicChild {
            rx: ping.subscriber().build().expect("ping subscriber"),
            tx: pong.publisher().expect("pong publisher"),
        }
    }
}

impl ChildEnd for TopicChild {
    #[inline]
    fn echo(&mut self) -> u64 {
        let m = self.rx.recv_ref().expect("shmq topic recv");
        let seq = seq_of(&m);
        self.tx.send(&m).expect("shmq publish");
        seq
    }
    #[inline]
    fn drain(&mut self) -> u64 {
        let m = self.rx.recv_ref().expect("shmq topic recv");
        seq_of(&m)
    }
}

/// Messages per batch call.
const BATCH: usize = 64;

/// Process A over two SPSC queues, sending with `try_send_batch` (throughput only: shmq's
/// batch API, which iceoryx2 has no counterpart of).
pub struct BatchParent<const N: usize> {
    inner: QueueParent<N>,
    bufs: Box<[[u8; N]; BATCH]>,
}

impl<const N: usize> BatchParent<N> {
    /// As [`QueueParent::create`].
    pub fn create(prefix: &str) -> Self {
        BatchParent { inner: QueueParent::create(prefix), bufs: Box::new([[0; N]; BATCH]) }
    }
}

impl<const N: usize> ParentEnd for BatchParent<N> {
    fn send(&mut self, seq: u64) {
        self.inner.send(seq);
    }
    fn recv(&mut self) -> u64 {
        self.inner.recv()
    }
    fn send_all(&mut self, first: u64, n: u64) {
        let end = first + n;
        let mut seq = first;
        while seq < end {
            let k = (end - seq).min(BATCH as u64) as usize;
            for (i, buf) in self.bufs[..k].iter_mut().enumerate() {
                stamp(buf, seq + i as u64);
            }
            let refs: [&[u8]; BATCH] = std::array::from_fn(|i| &self.bufs[i][..]);
            let mut done = 0;
            while done < k {
                match self.inner.tx.try_send_batch(&refs[done..k]).expect("shmq try_send_batch") {
                    0 => std::hint::spin_loop(),
                    sent => done += sent,
                }
            }
            seq += k as u64;
        }
    }
}

/// Process B over two SPSC queues, receiving with `try_recv_batch`.
pub struct BatchChild(pub QueueChild);

impl ChildEnd for BatchChild {
    fn echo(&mut self) -> u64 {
        self.0.echo()
    }
    fn drain(&mut self) -> u64 {
        self.0.drain()
    }
    fn drain_all(&mut self, first: u64, n: u64) {
        let mut next = first;
        let end = first + n;
        while next < end {
            let max = (end - next).min(BATCH as u64) as usize;
            let got = self.0.rx.try_recv_batch(max, |payload, _| {
                check_seq(seq_of(payload), next);
                next += 1;
            });
            match got {
                Ok(0) | Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Ok(_) => {}
                Err(e) => panic!("shmq try_recv_batch: {e}"),
            }
        }
    }
}

/// Process A over two SPSC queues, polling with `try_send` / `try_recv_ref` in our own spin loop
/// instead of `send` / `recv_ref` with `WaitStrategy::Spin`: the same rings without shmq's wait
/// path (which reads the clock when it starts waiting). A diagnostic row, not an API users need.
pub struct TryParent<const N: usize>(pub QueueParent<N>);

impl<const N: usize> ParentEnd for TryParent<N> {
    #[inline]
    fn send(&mut self, seq: u64) {
        let q = &mut self.0;
        stamp(&mut q.buf, seq);
        try_send(&mut q.tx, &q.buf);
    }
    #[inline]
    fn recv(&mut self) -> u64 {
        loop {
            match self.0.rx.try_recv_ref() {
                Ok(m) => return seq_of(&m),
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("shmq try_recv_ref: {e}"),
            }
        }
    }
}

#[inline(always)]
fn try_send(tx: &mut Producer, payload: &[u8]) {
    loop {
        match tx.try_send(payload) {
            Ok(()) => return,
            Err(TrySendError::Full) => std::hint::spin_loop(),
            Err(e) => panic!("shmq try_send: {e}"),
        }
    }
}

/// Process B of [`TryParent`].
pub struct TryChild(pub QueueChild);

impl TryChild {
    #[inline(always)]
    fn poll(&mut self, echo: bool) -> u64 {
        let c = &mut self.0;
        loop {
            match c.rx.try_recv_ref() {
                Ok(m) => {
                    let seq = seq_of(&m);
                    if echo {
                        try_send(&mut c.tx, &m);
                    }
                    return seq;
                }
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("shmq try_recv_ref: {e}"),
            }
        }
    }
}

impl ChildEnd for TryChild {
    #[inline]
    fn echo(&mut self) -> u64 {
        self.poll(true)
    }
    #[inline]
    fn drain(&mut self) -> u64 {
        self.poll(false)
    }
}
