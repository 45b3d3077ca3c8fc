//! Model test of a topic in one process: random sequences of publishes (from two publishers),
//! receives, joins (reliable or lossy, latest or earliest, with or without a kind filter) and
//! leaves on one topic of 2 to 8 slots, checked step by step against a simple model:
//!
//! - a reliable subscriber is a `VecDeque` of the messages published since it joined that it
//!   has not read (a kind filter drops the others when it reads past them); `try_publish` is
//!   `Full` exactly when some reliable subscriber has `capacity` of them;
//! - the ring retains the last `capacity` messages published; a lossy subscriber reads them in
//!   order through its own position and, when that position fell out of the ring, gets
//!   `Lagged(n)` with the exact number it missed and moves to the oldest retained message.

use std::collections::VecDeque;

use proptest::prelude::*;
use proptest::sample::Index;
use shmq::{
    AckMode, OpenError, Publisher, Start, Subscriber, SubscriberMode, Topic, TopicOptions, TryRecvError, TrySendError,
};

const MAX_SUBSCRIBERS: u32 = 4;
const MAX_MSG: usize = 16;

#[derive(Clone, Debug)]
enum Op {
    Publish { publisher: usize, kind: u32, len: usize },
    Recv { sub: Index },
    RecvRef { sub: Index },
    Subscribe { lossy: bool, earliest: bool, kind: Option<u32> },
    Unsubscribe { sub: Index },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..3u32, 1..=MAX_MSG).prop_map(|(publisher, kind, len)| Op::Publish { publisher, kind, len }),
        5 => any::<Index>().prop_map(|sub| Op::Recv { sub }),
        1 => any::<Index>().prop_map(|sub| Op::RecvRef { sub }),
        2 => (any::<bool>(), any::<bool>(), proptest::option::weighted(0.25, 0..3u32))
            .prop_map(|(lossy, earliest, kind)| Op::Subscribe { lossy, earliest, kind }),
        1 => any::<Index>().prop_map(|sub| Op::Unsubscribe { sub }),
    ]
}

/// A published message, as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Msg {
    seq: u64,
    kind: u32,
    len: usize,
}

/// The payload of a message: its first `len` bytes depend on its sequence.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let w = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5;
    (0..len).map(|i| (w >> (8 * (i % 8))) as u8 ^ i as u8).collect()
}

/// What a receive gave, compared between the model and the topic.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
    Msg { kind: u32, data: Vec<u8> },
    Empty,
    Lagged(u64),
    Unsupported,
    Other(String),
}

impl Got {
    fn of(m: &Msg) -> Got {
        Got::Msg { kind: m.kind, data: payload(m.seq, m.len) }
    }

    fn from_err(e: TryRecvError) -> Got {
        match e {
            TryRecvError::Empty => Got::Empty,
            TryRecvError::Lagged(n) => Got::Lagged(n),
            TryRecvError::Unsupported(_) => Got::Unsupported,
            e => Got::Other(e.to_string()),
        }
    }
}

#[derive(Debug)]
enum Flow {
    /// Messages not yet read (including ones the kind filter will drop).
    Reliable(VecDeque<Msg>),
    /// Next sequence to read.
    Lossy { next: u64 },
}

#[derive(Debug)]
struct ModelSub {
    flow: Flow,
    kind: Option<u32>,
    delivered: u64,
    lagged: u64,
}

impl ModelSub {
    fn wants(&self, m: &Msg) -> bool {
        self.kind.is_none_or(|k| k == m.kind)
    }
}

#[derive(Debug)]
struct Model {
    cap: u64,
    published: Vec<Msg>,
    subs: Vec<ModelSub>,
}

impl Model {
    fn tail(&self) -> u64 {
        self.published.len() as u64
    }

    /// Oldest message still in the ring.
    fn oldest(&self) -> u64 {
        self.tail().saturating_sub(self.cap)
    }

    /// `None` if the ring is full for some reliable subscriber.
    fn try_publish(&mut self, kind: u32, len: usize) -> Option<Msg> {
        let cap = self.cap as usize;
        if self.subs.iter().any(|s| matches!(&s.flow, Flow::Reliable(q) if q.len() == cap)) {
            return None;
        }
        let m = Msg { seq: self.tail(), kind, len };
        self.published.push(m);
        for s in &mut self.subs {
            if let Flow::Reliable(q) = &mut s.flow {
                q.push_back(m);
            }
        }
        Some(m)
    }

    fn subscribe(&mut self, lossy: bool, earliest: bool, kind: Option<u32>) {
        let from = if earliest { self.oldest() } else { self.tail() };
        let flow = if lossy {
            Flow::Lossy { next: from }
        } else {
            Flow::Reliable(self.published[from as usize..].iter().copied().collect())
        };
        self.subs.push(ModelSub { flow, kind, delivered: 0, lagged: 0 });
    }

    fn recv(&mut self, i: usize) -> Result<Msg, Got> {
        let (tail, oldest) = (self.tail(), self.oldest());
        let s = &mut self.subs[i];
        loop {
            let m = match &mut s.flow {
                Flow::Reliable(q) => q.pop_front().ok_or(Got::Empty)?,
                Flow::Lossy { next } => {
                    if *next == tail {
                        return Err(Got::Empty);
                    }
                    if *next < oldest {
                        let missed = oldest - *next;
                        *next = oldest;
                        s.lagged += missed;
                        return Err(Got::Lagged(missed));
                    }
                    *next += 1;
                    self.published[*next as usize - 1]
                }
            };
            if s.wants(&m) {
                s.delivered += 1;
                return Ok(m);
            }
        }
    }

    fn position(&self, i: usize) -> u64 {
        match &self.subs[i].flow {
            Flow::Reliable(q) => self.tail() - q.len() as u64,
            Flow::Lossy { next } => *next,
        }
    }
}

fn real_recv(sub: &mut Subscriber) -> Got {
    let mut buf = [0u8; MAX_MSG];
    match sub.try_recv(&mut buf) {
        Ok(r) => Got::Msg { kind: r.kind, data: buf[..r.len].to_vec() },
        Err(e) => Got::from_err(e),
    }
}

/// `try_recv_ref`: what it gave, and the sequence of the message.
fn real_recv_ref(sub: &mut Subscriber) -> (Got, Option<u64>) {
    match sub.try_recv_ref() {
        Ok(r) => (Got::Msg { kind: r.kind(), data: r.to_vec() }, Some(r.sequence())),
        Err(e) => (Got::from_err(e), None),
    }
}

fn run(cap: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let topic: Topic = TopicOptions::new()
        .dir(dir.path())
        .capacity(cap as usize)
        .max_msg_size(MAX_MSG)
        .max_subscribers(MAX_SUBSCRIBERS)
        .create("model")
        .expect("create topic");
    let mut publishers: Vec<Publisher> = (0..2).map(|_| topic.publisher().expect("publisher")).collect();
    let mut subs: Vec<Subscriber> = Vec::new();
    let mut model = Model { cap, published: Vec::new(), subs: Vec::new() };
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Publish { publisher, kind, len } => {
                let data = payload(model.tail(), *len);
                let expected = model.try_publish(*kind, *len);
                let real = publishers[*publisher].try_send_kind(*kind, &data);
                match (&expected, real) {
                    (Some(_), Ok(())) | (None, Err(TrySendError::Full)) => {}
                    (e, r) => prop_assert!(false, "step {step} {op:?}: model {e:?}, topic {r:?}"),
                }
            }
            Op::Recv { sub } | Op::RecvRef { sub } if !subs.is_empty() => {
                let i = sub.index(subs.len());
                let lossy = matches!(model.subs[i].flow, Flow::Lossy { .. });
                if matches!(op, Op::RecvRef { .. }) && lossy {
                    let (got, _) = real_recv_ref(&mut subs[i]);
                    prop_assert_eq!(got, Got::Unsupported, "step {}: recv_ref of a lossy subscriber", step);
                    continue;
                }
                let expected = model.recv(i);
                let expected_got = expected.as_ref().map_or_else(Clone::clone, Got::of);
                let got = if matches!(op, Op::RecvRef { .. }) {
                    let (got, seq) = real_recv_ref(&mut subs[i]);
                    if let (Ok(m), Some(seq)) = (&expected, seq) {
                        prop_assert_eq!(seq, m.seq, "step {}: sequence of the borrowed message", step);
                    }
                    got
                } else {
                    real_recv(&mut subs[i])
                };
                prop_assert_eq!(got, expected_got, "step {}: {:?} of subscriber {}", step, op, i);
            }
            Op::Recv { .. } | Op::RecvRef { .. } => {}
            Op::Subscribe { lossy, earliest, kind } => {
                let mut b = topic.subscriber();
                if *lossy {
                    b = b.mode(SubscriberMode::Lossy);
                }
                if *earliest {
                    b = b.start(Start::Earliest);
                }
                if let Some(k) = kind {
                    b = b.kinds(&[*k]);
                }
                let r = b.build();
                if subs.len() == MAX_SUBSCRIBERS as usize {
                    prop_assert!(
                        matches!(r, Err(OpenError::TooManySubscribers { max }) if max == MAX_SUBSCRIBERS as usize),
                        "step {step}: a subscriber beyond the table must be refused, got {r:?}"
                    );
                } else {
                    subs.push(r.map_err(|e| TestCaseError::fail(format!("step {step}: subscribe: {e}")))?);
                    model.subscribe(*lossy, *earliest, *kind);
                }
            }
            Op::Unsubscribe { sub } if !subs.is_empty() => {
                let i = sub.index(subs.len());
                drop(subs.remove(i));
                model.subs.remove(i);
            }
            Op::Unsubscribe { .. } => {}
        }
        // After every step: the shared counts and every subscriber's position agree.
        prop_assert_eq!(topic.published(), model.tail(), "step {}: messages published", step);
        prop_assert_eq!(topic.subscriber_count(), subs.len(), "step {}: subscribers", step);
        for (i, s) in subs.iter().enumerate() {
            prop_assert_eq!(s.position(), model.position(i), "step {}: position of subscriber {}", step, i);
            prop_assert_eq!(s.lag(), model.tail() - model.position(i), "step {}: lag of subscriber {}", step, i);
        }
        let info = topic.subscribers();
        let (delivered, lagged) = info.iter().fold((0, 0), |(d, l), s| (d + s.delivered, l + s.lagged));
        let m_delivered: u64 = model.subs.iter().map(|s| s.delivered).sum();
        let m_lagged: u64 = model.subs.iter().map(|s| s.lagged).sum();
        prop_assert_eq!(
            (delivered, lagged),
            (m_delivered, m_lagged),
            "step {}: delivered and lagged in the table",
            step
        );
        prop_assert_eq!(
            info.iter().filter(|s| s.lossy).count(),
            model.subs.iter().filter(|s| matches!(s.flow, Flow::Lossy { .. })).count()
        );
    }
    drop(subs);
    drop(publishers);
    topic.unlink().expect("unlink");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn topic_operations_match_a_model_of_reliable_queues_and_a_ring_of_recent_messages(
        cap_log2 in 1u32..=3,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(1u64 << cap_log2, &ops)?;
    }
}

/// A fixed sequence the model must get right, so that the model itself is checked against
/// numbers worked out by hand: 10 messages into 4 slots lap a lossy subscriber by 6.
#[test]
fn model_agrees_with_hand_worked_lag_counts() {
    let mut m = Model { cap: 4, published: Vec::new(), subs: Vec::new() };
    m.subscribe(true, false, None);
    m.subscribe(false, false, Some(1));
    for i in 0..4 {
        assert!(m.try_publish(i % 2, 1).is_some());
    }
    assert_eq!(m.try_publish(0, 1), None, "the reliable subscriber has 4 unread of 4 slots");
    assert_eq!(m.recv(1).unwrap().seq, 1);
    assert_eq!(m.recv(1).unwrap().seq, 3);
    assert_eq!(m.recv(1), Err(Got::Empty));
    for i in 4..10u64 {
        assert!(m.try_publish((i % 2) as u32, 1).is_some(), "publish {i}");
        match m.recv(1) {
            Ok(msg) => assert_eq!((msg.seq, i % 2), (i, 1)),
            Err(e) => assert_eq!((e, i % 2), (Got::Empty, 0)),
        }
    }
    assert_eq!(m.recv(0), Err(Got::Lagged(6)));
    assert_eq!(m.recv(0).unwrap().seq, 6);
    assert_eq!(m.position(0), 7);
}

// ---------------------------------------------------------------------------------------------
// Durable subscribers at the edges the model leaves out. These pin down cases found while
// writing the model (each fails against src/topic/subscriber.rs as of this writing):
// a durable subscriber's shared cursor only moves on delivery or `ack`, so messages it reads
// past without delivering (filtered out, aborted) keep gating publishers, and a lap moves a
// durable lossy subscriber's cursor to a message it already counted as missed.
// ---------------------------------------------------------------------------------------------

fn small_topic(dir: &tempfile::TempDir) -> Topic {
    TopicOptions::new().dir(dir.path()).capacity(4).max_msg_size(MAX_MSG).create("edges").expect("create topic")
}

#[test]
fn durable_subscriber_does_not_gate_publishers_on_messages_its_kind_filter_skipped() {
    for ack in [AckMode::Explicit, AckMode::OnNextReceive] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let topic = small_topic(&dir);
        let mut sub = topic.subscriber().name("billing").kinds(&[1]).ack(ack).build().expect("subscribe");
        let mut p = topic.publisher().expect("publisher");
        let mut buf = [0u8; MAX_MSG];
        p.try_send_kind(1, b"wanted").expect("publish");
        assert_eq!(sub.try_recv(&mut buf).expect("receive").kind, 1);
        if ack == AckMode::Explicit {
            sub.ack(); // nothing delivered is left unacknowledged
        }
        // Messages of another kind: the subscriber reads past each one in a later receive
        // (which acknowledges the message before in OnNextReceive mode), so they must not
        // fill the ring for it. Otherwise a blocking `recv` waiting for kind 1 and a blocking
        // `publish` wait for each other forever.
        for i in 0..16 {
            if let Err(e) = p.try_send_kind(2, b"other") {
                panic!(
                    "{ack:?}: publish {i} of another kind failed ({e}) although the subscriber read past \
                     every earlier message: {:?}",
                    topic.subscribers()
                );
            }
            assert!(matches!(sub.try_recv(&mut buf), Err(TryRecvError::Empty)), "{ack:?}: kind 2 is filtered out");
        }
        p.try_send_kind(1, b"wanted").expect("publish");
        assert_eq!(sub.try_recv(&mut buf).expect("receive").kind, 1);
    }
}

#[test]
fn durable_subscriber_does_not_gate_publishers_on_aborted_messages_it_skipped() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let topic = small_topic(&dir);
    let mut sub = topic.subscriber().name("billing").build().expect("subscribe");
    let mut p = topic.publisher().expect("publisher");
    let mut buf = [0u8; MAX_MSG];
    p.try_send(b"first").expect("publish");
    assert_eq!(sub.try_recv(&mut buf).expect("receive").len, 5);
    sub.ack();
    for i in 0..16 {
        match p.try_loan() {
            Ok(loan) => drop(loan), // aborted: subscribers skip it
            Err(e) => panic!(
                "loan {i} failed ({e}) although the subscriber read past every earlier message: {:?}",
                topic.subscribers()
            ),
        }
        assert!(matches!(sub.try_recv(&mut buf), Err(TryRecvError::Empty)), "aborted messages are skipped");
    }
}

#[test]
fn durable_lossy_subscriber_counts_each_missed_message_once_across_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let topic = small_topic(&dir);
    let mut p = topic.publisher().expect("publisher");
    let mut buf = [0u8; MAX_MSG];
    let lossy = || topic.subscriber().name("audit").mode(SubscriberMode::Lossy).build().expect("subscribe");
    {
        let mut sub = lossy();
        for i in 0..10u8 {
            p.try_send(&[i]).expect("publish");
        }
        // 10 published, 4 retained (6..=9): 6 missed.
        assert!(matches!(sub.try_recv(&mut buf), Err(TryRecvError::Lagged(6))));
    }
    // Restarted, it goes on with the oldest retained message; nothing is missed twice.
    let mut sub = lossy();
    let mut got = Vec::new();
    loop {
        match sub.try_recv(&mut buf) {
            Ok(_) => got.push(buf[0]),
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("after a restart with nothing new missed, received {got:?} then {e}"),
        }
    }
    assert_eq!(got, [6, 7, 8, 9]);
    assert_eq!(topic.subscribers()[0].lagged, 6, "messages missed, each counted once");
}
