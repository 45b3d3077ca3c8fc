//! The shmq rows, both sides: queues and topics opened as a user opens them, messages sent
//! and received with the public API.
//!
//! - Round trips (spinning): the parent sends on segment `a` and receives on `b`; the peer
//!   echoes each message back. Both sides busy-poll `try_send`/`try_recv`
//!   ([`WaitStrategy::Spin`]).
//! - Throughput: the peer sends `count` messages on `a`, the parent receives and checks them.
//! - Batches: `try_send_batch` of up to 64 messages, `try_recv_batch` of up to 64.
//! - Block: both sides use the blocking `send`/`recv_into` under [`WaitStrategy::Block`]; the
//!   parent lets the peer fall asleep before each ping ([`asleep_round_trips`]).
//! - Consumer groups ([`group_run`]): here the parent publishes and `k` peers, the members of
//!   one group, receive; each member counts what it got in a shared [`Tally`], which the parent
//!   checks and turns into the group's rate.
//!
//! Every queue and topic has [`CAPACITY`] slots (as the bare ring) and a maximum message size
//! equal to the payload size. The parent creates the segments under unique names and removes
//! the names as soon as the peer has attached (and on every error path).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use shmq::service::ServiceOptions;
use shmq::topic::Start;
use shmq::waitset::WaitSet;
use shmq::{
    Consumer, Producer, QueueOptions, Receiver, Sender, TopicOptions, TryRecvError, TrySendError, WaitStrategy,
};

use crate::payload;
use crate::peer::{Handshake, Peer, PeerArgs};
use crate::rows::{Plan, Rep, Unit};
use crate::shm::{Padded, Shared, ZeroValid};
use crate::stats::{new_hist, GroupFacts, RttRep, TputRep, MAX_MEMBERS};
use crate::watch::{asleep_round_trips, Patience, PeerStat};
use crate::Res;

/// Slots of every queue and topic.
pub const CAPACITY: usize = crate::bare_ring::SLOTS;
/// Messages per batch in the batch row.
pub const BATCH: usize = 64;

fn err(what: &str) -> impl Fn(shmq::OpenError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn queue(spsc: bool, wait: WaitStrategy, size: usize) -> QueueOptions {
    let o = QueueOptions::new().capacity(CAPACITY).max_msg_size(size).wait(wait);
    if spsc {
        o.spsc()
    } else {
        o.kind(shmq::QueueKind::Mpmc)
    }
}

fn service(size: usize) -> ServiceOptions {
    ServiceOptions::new().max_request_size(size).max_response_size(size).wait(WaitStrategy::Spin)
}

fn topic(size: usize) -> TopicOptions {
    TopicOptions::new().capacity(CAPACITY).max_msg_size(size).wait(WaitStrategy::Spin)
}

/// The segments of one repetition; their names are removed when dropped (or earlier).
enum Seg {
    Queue(shmq::Queue),
    Topic(shmq::Topic),
    Service(shmq::service::Service),
}

struct Segs(Vec<Seg>);

impl Segs {
    fn unlink(&self) -> Res<()> {
        for s in &self.0 {
            match s {
                Seg::Queue(q) => q.unlink(),
                Seg::Topic(t) => t.unlink(),
                Seg::Service(sv) => sv.unlink(),
            }
            .map_err(|e| format!("unlink: {e}"))?;
        }
        Ok(())
    }
}

impl Drop for Segs {
    fn drop(&mut self) {
        let _ = self.unlink();
    }
}

// ---------------------------------------------------------------------------------------------
// Sending and receiving, busy-polling

#[inline(always)]
fn send_spin(tx: &mut impl Sender, msg: &[u8], p: &Patience) -> Res<()> {
    let mut spins = 0;
    loop {
        match tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full) => p.spin(&mut spins)?,
            Err(e) => return Err(format!("try_send: {e}")),
        }
    }
}

#[inline(always)]
fn recv_spin(rx: &mut impl Receiver, buf: &mut [u8], p: &Patience) -> Res<usize> {
    let mut spins = 0;
    loop {
        match rx.try_recv(buf) {
            Ok(m) => return Ok(m.len),
            Err(TryRecvError::Empty) => p.spin(&mut spins)?,
            Err(e) => return Err(format!("try_recv: {e}")),
        }
    }
}

/// `warmup + rounds` round trips of stamped `size`-byte messages; the last `rounds` recorded.
fn requester(
    tx: &mut impl Sender,
    rx: &mut impl Receiver,
    size: usize,
    warmup: u64,
    rounds: u64,
    p: &Patience,
) -> Res<RttRep> {
    let mut hist = new_hist();
    let mut out = payload::message(size);
    let mut back = vec![0u8; size];
    for i in 0..warmup + rounds {
        payload::stamp(&mut out, i);
        let t = Instant::now();
        send_spin(tx, &out, p)?;
        let len = recv_spin(rx, &mut back, p)?;
        let ns = t.elapsed().as_nanos() as u64;
        if !payload::is(&back[..len], size, i) {
            return Err(payload::wrong("pong", &back[..len], size, i));
        }
        if i >= warmup {
            hist.saturating_record(ns);
        }
    }
    Ok(RttRep::of(&hist))
}

/// Checks and echoes `total` messages.
fn responder(rx: &mut impl Receiver, tx: &mut impl Sender, size: usize, total: u64, p: &Patience) -> Res<()> {
    let mut buf = vec![0u8; size];
    for i in 0..total {
        let len = recv_spin(rx, &mut buf, p)?;
        if !payload::is(&buf[..len], size, i) {
            return Err(payload::wrong("ping", &buf[..len], size, i));
        }
        send_spin(tx, &buf[..len], p)?;
    }
    Ok(())
}

/// Sends `count` stamped messages.
fn produce(tx: &mut impl Sender, size: usize, count: u64, p: &Patience) -> Res<()> {
    let mut msg = payload::message(size);
    for seq in 0..count {
        payload::stamp(&mut msg, seq);
        send_spin(tx, &msg, p)?;
    }
    Ok(())
}

/// Receives and checks `count` messages; timed from the first to the last.
fn consume(rx: &mut impl Receiver, size: usize, count: u64, p: &Patience) -> Res<TputRep> {
    let mut buf = vec![0u8; size];
    let mut t0 = Instant::now();
    for seq in 0..count {
        let len = recv_spin(rx, &mut buf, p)?;
        if seq == 0 {
            t0 = Instant::now();
        }
        if !payload::is(&buf[..len], size, seq) {
            return Err(payload::wrong("queue", &buf[..len], size, seq));
        }
    }
    Ok(TputRep::new(count, t0.elapsed()))
}

/// Sends `count` stamped messages in batches of up to [`BATCH`] (`try_send_batch`).
fn produce_batches(tx: &mut Producer, size: usize, count: u64, p: &Patience) -> Res<()> {
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| payload::message(size)).collect();
    let mut seq = 0;
    while seq < count {
        let k = (count - seq).min(BATCH as u64) as usize;
        for (j, b) in bufs[..k].iter_mut().enumerate() {
            payload::stamp(b, seq + j as u64);
        }
        let refs: [&[u8]; BATCH] = std::array::from_fn(|j| &bufs[j][..]);
        let (mut sent, mut spins) = (0, 0);
        while sent < k {
            match tx.try_send_batch(&refs[sent..k]) {
                Ok(0) | Err(TrySendError::Full) => p.spin(&mut spins)?,
                Ok(n) => sent += n,
                Err(e) => return Err(format!("try_send_batch: {e}")),
            }
        }
        seq += k as u64;
    }
    Ok(())
}

/// Receives and checks `count` messages in batches of up to [`BATCH`] (`try_recv_batch`).
fn consume_batches(rx: &mut Consumer, size: usize, count: u64, p: &Patience) -> Res<TputRep> {
    let (mut next, mut bad) = (0u64, None);
    let mut t0 = Instant::now();
    let mut spins = 0;
    while next < count {
        let first = next == 0;
        let check = |msg: &[u8], _kind: u32| {
            if bad.is_none() && !payload::is(msg, size, next) {
                bad = Some(payload::wrong("batch", msg, size, next));
            }
            next += 1;
        };
        match rx.try_recv_batch(BATCH, check) {
            Ok(0) | Err(TryRecvError::Empty) => p.spin(&mut spins)?,
            Ok(_) if first => t0 = Instant::now(),
            Ok(_) => {}
            Err(e) => return Err(format!("try_recv_batch: {e}")),
        }
        if let Some(b) = bad.take() {
            return Err(b);
        }
    }
    if next != count {
        return Err(format!("batch: received {next} messages, expected {count}"));
    }
    Ok(TputRep::new(count, t0.elapsed()))
}

// ---------------------------------------------------------------------------------------------
// The parent's side of a repetition

/// Creates the segments, starts the peer, removes the names once it has attached, tells it to
/// go and runs `run`; then waits for the peer to finish.
fn with_peer(plan: &Plan, unit: Unit, n_peer: u64, segs: Segs, run: impl FnOnce(&Peer) -> Res<Rep>) -> Res<Rep> {
    let names = segs
        .0
        .iter()
        .map(|s| match s {
            Seg::Queue(q) => q.name().to_string(),
            Seg::Topic(t) => t.name().to_string(),
            Seg::Service(sv) => sv.name().to_string(),
        })
        .collect();
    let mut peer = Peer::spawn(&plan.peer_args(unit, n_peer, None, names))?;
    peer.ready()?;
    segs.unlink()?;
    peer.go()?;
    let r = run(&peer)?;
    peer.finish()?;
    drop(segs);
    Ok(r)
}

/// One repetition of a shmq measurement (the parent's side).
pub fn run(plan: &Plan, unit: Unit, rep: usize) -> Res<Rep> {
    let name = |end: &str| format!("perf-{}-{rep}-{}-{end}", std::process::id(), unit.name());
    let (warm, rounds, count) = (plan.warmup(unit), plan.rounds(unit), plan.count);
    let total = warm + rounds;
    match unit {
        Unit::SpscRtt8 | Unit::SpscRtt64 | Unit::BlockRtt8 => {
            let size = unit.size();
            let wait = if unit == Unit::BlockRtt8 { WaitStrategy::Block } else { WaitStrategy::Spin };
            let a = queue(true, wait, size).create(&name("a")).map_err(err("create"))?;
            let b = queue(true, wait, size).create(&name("b")).map_err(err("create"))?;
            let (mut tx, mut rx) = (a.producer().map_err(err("producer"))?, b.consumer().map_err(err("consumer"))?);
            let segs = Segs(vec![Seg::Queue(a), Seg::Queue(b)]);
            with_peer(plan, unit, total, segs, |peer| {
                let p = Patience::new(Some(peer.pid()));
                if unit != Unit::BlockRtt8 {
                    return requester(&mut tx, &mut rx, size, warm, rounds, &p).map(Rep::Rtt);
                }
                let stat = PeerStat::open(peer.pid())?;
                let (mut out, mut back) = (payload::message(size), vec![0u8; size]);
                asleep_round_trips(&stat, plan.gap, warm, rounds, &p, |i| {
                    payload::stamp(&mut out, i);
                    tx.send(&out).map_err(|e| format!("send: {e}"))?;
                    let m = rx.recv_into(&mut back).map_err(|e| format!("recv: {e}"))?;
                    match payload::is(&back[..m.len], size, i) {
                        true => Ok(()),
                        false => Err(payload::wrong("pong", &back[..m.len], size, i)),
                    }
                })
                .map(Rep::Rtt)
            })
        }
        Unit::TopicRtt8 | Unit::TopicRtt64 => {
            let size = unit.size();
            let a = topic(size).create(&name("a")).map_err(err("create"))?;
            let b = topic(size).create(&name("b")).map_err(err("create"))?;
            let mut tx = a.publisher().map_err(err("publisher"))?;
            let mut rx = b.subscriber().build().map_err(err("subscriber"))?;
            let segs = Segs(vec![Seg::Topic(a), Seg::Topic(b)]);
            with_peer(plan, unit, total, segs, |peer| {
                requester(&mut tx, &mut rx, size, warm, rounds, &Patience::new(Some(peer.pid()))).map(Rep::Rtt)
            })
        }
        Unit::SpscTput8 | Unit::SpscTput64 | Unit::MpmcTput64 | Unit::BatchTput64 => {
            let size = unit.size();
            let a =
                queue(unit != Unit::MpmcTput64, WaitStrategy::Spin, size).create(&name("a")).map_err(err("create"))?;
            let mut rx = a.consumer().map_err(err("consumer"))?;
            with_peer(plan, unit, count, Segs(vec![Seg::Queue(a)]), |peer| {
                let p = Patience::new(Some(peer.pid()));
                match unit {
                    Unit::BatchTput64 => consume_batches(&mut rx, size, count, &p),
                    _ => consume(&mut rx, size, count, &p),
                }
                .map(Rep::Tput)
            })
        }
        Unit::TopicTput64 => {
            let size = unit.size();
            let a = topic(size).create(&name("a")).map_err(err("create"))?;
            let mut rx = a.subscriber().build().map_err(err("subscriber"))?;
            with_peer(plan, unit, count, Segs(vec![Seg::Topic(a)]), |peer| {
                consume(&mut rx, size, count, &Patience::new(Some(peer.pid()))).map(Rep::Tput)
            })
        }
        Unit::WaitRtt1 | Unit::WaitRtt8 | Unit::WaitRtt64 => {
            // Ping i goes to queue i % n of the n the peer's WaitSet waits on; one pong queue.
            let (n, size) = (unit.streams().unwrap_or(1), unit.size());
            let mut pings = Vec::new();
            let mut segs = Vec::new();
            for j in 0..n {
                let q =
                    queue(true, WaitStrategy::Block, size).create(&name(&format!("p{j}"))).map_err(err("create"))?;
                pings.push(q.producer().map_err(err("producer"))?);
                segs.push(Seg::Queue(q));
            }
            let b = queue(true, WaitStrategy::Block, size).create(&name("b")).map_err(err("create"))?;
            let mut rx = b.consumer().map_err(err("consumer"))?;
            segs.push(Seg::Queue(b));
            with_peer(plan, unit, total, Segs(segs), |peer| {
                let p = Patience::new(Some(peer.pid()));
                let stat = PeerStat::open(peer.pid())?;
                let (mut out, mut back) = (payload::message(size), vec![0u8; size]);
                asleep_round_trips(&stat, plan.gap, warm, rounds, &p, |i| {
                    payload::stamp(&mut out, i);
                    pings[i as usize % n].send(&out).map_err(|e| format!("send: {e}"))?;
                    let m = rx.recv_into(&mut back).map_err(|e| format!("recv: {e}"))?;
                    match payload::is(&back[..m.len], size, i) {
                        true => Ok(()),
                        false => Err(payload::wrong("pong", &back[..m.len], size, i)),
                    }
                })
                .map(Rep::Rtt)
            })
        }
        Unit::CallRtt8 | Unit::CallRtt64 => {
            // Client::call with the stamped payload; the peer's server answers with the request.
            let size = unit.size();
            let sv = service(size).create(&name("svc")).map_err(err("create"))?;
            let mut client = sv.client().map_err(err("client"))?;
            with_peer(plan, unit, total, Segs(vec![Seg::Service(sv)]), |_| {
                let mut hist = new_hist();
                let mut out = payload::message(size);
                for i in 0..total {
                    payload::stamp(&mut out, i);
                    let t = Instant::now();
                    let r = client.call(&out).map_err(|e| format!("call: {e}"))?;
                    let ns = t.elapsed().as_nanos() as u64;
                    if !payload::is(&r, size, i) {
                        return Err(payload::wrong("response", &r, size, i));
                    }
                    if i >= warm {
                        hist.saturating_record(ns);
                    }
                }
                Ok(Rep::Rtt(RttRep::of(&hist)))
            })
        }
        Unit::GroupTput1 | Unit::GroupTput2 | Unit::GroupTput4 => {
            let t = topic(unit.size()).create(&name("a")).map_err(err("create"))?;
            let tx = t.publisher().map_err(err("publisher"))?;
            group_run(plan, unit, tx, Segs(vec![Seg::Topic(t)]))
        }
        Unit::FloorRtt | Unit::BareTput64 | Unit::FutexRtt => Err(format!("{} is not a shmq row", unit.name())),
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer groups

/// The group's name in the group rows.
const GROUP: &str = "perf";
/// The sequence number of the stop messages the publisher sends after the data, one per member.
const STOP: u64 = u64::MAX;

/// What one member received, written once at its end.
pub struct MemberTally {
    /// Data messages received.
    count: AtomicU64,
    /// Their sequence numbers: sum (wrapping) and xor.
    sum: AtomicU64,
    xor: AtomicU64,
    /// `CLOCK_MONOTONIC` (ns) when it received its first data message (0: none).
    first_ns: AtomicU64,
    /// `CLOCK_MONOTONIC` (ns) when it received its stop message.
    stop_ns: AtomicU64,
    /// 1 once the member has written the fields above.
    done: AtomicU64,
}

/// The members' tallies, each on its own 128-byte line, in a memfd the members inherit.
pub struct Tally([Padded<MemberTally>; MAX_MEMBERS]);

// SAFETY: only atomics (zero is a valid atomic holding 0), padded; no drop glue.
unsafe impl ZeroValid for Tally {}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the machine.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// XOR of `0..n`.
fn xor_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let m = n - 1; // xor of 0..=m
    [m, 1, m + 1, 0][(m % 4) as usize]
}

/// One repetition of a group row (the parent's side): starts the `k` members (one peer process
/// each, on [`Plan::member_cpu`]), publishes `count` stamped messages and then `k` stop
/// messages, waits for the members, and checks their tallies: together they received every
/// message exactly once. The rate counts the messages after the first, from the first
/// received by any member to the last stop received (a member has received all its data before
/// its stop: each member's messages come in the publisher's order).
fn group_run(plan: &Plan, unit: Unit, mut tx: shmq::Publisher, segs: Segs) -> Res<Rep> {
    let (k, size, count) = (unit.members().unwrap_or(1), unit.size(), plan.count);
    let mut tally = Shared::<Tally>::create().map_err(|e| format!("shared memory: {e}"))?;
    let names: Vec<String> =
        segs.0.iter().filter_map(|s| if let Seg::Topic(t) = s { Some(t.name().to_string()) } else { None }).collect();
    let mut members = Vec::with_capacity(k);
    for j in 0..k {
        let args = PeerArgs {
            cpu: plan.member_cpu(j),
            member: Some(j),
            ..plan.peer_args(unit, count, tally.fd(), names.clone())
        };
        members.push(Peer::spawn(&args)?);
    }
    tally.close_fd();
    for m in &mut members {
        m.ready()?;
    }
    segs.unlink()?;
    for m in &mut members {
        m.go()?;
    }
    let p = Patience::watching(members.iter().map(Peer::pid).collect());
    produce(&mut tx, size, count, &p)?;
    let mut stop = payload::message(size);
    payload::stamp(&mut stop, STOP);
    for _ in 0..k {
        send_spin(&mut tx, &stop, &p)?;
    }
    for m in members {
        m.finish()?;
    }
    drop(segs);

    let (mut n, mut sum, mut xor, mut first, mut last) = (0u64, 0u64, 0u64, u64::MAX, 0u64);
    let mut received = [0; MAX_MEMBERS];
    for (j, t) in tally.0.iter().take(k).enumerate() {
        let t = &t.0;
        if t.done.load(Acquire) != 1 {
            return Err(format!("group member {j} left no tally"));
        }
        let c = t.count.load(Acquire);
        received[j] = c;
        n += c;
        sum = sum.wrapping_add(t.sum.load(Acquire));
        xor ^= t.xor.load(Acquire);
        if c > 0 {
            first = first.min(t.first_ns.load(Acquire));
        }
        last = last.max(t.stop_ns.load(Acquire));
    }
    let want_sum = if count % 2 == 0 {
        (count / 2).wrapping_mul(count.wrapping_sub(1))
    } else {
        count.wrapping_mul((count - 1) / 2)
    };
    if (n, sum, xor) != (count, want_sum, xor_below(count)) {
        return Err(format!(
            "group of {k}: the members received {n} messages (sum {sum}, xor {xor}), expected each of 0..{count} once \
             (sum {want_sum}, xor {}); per member {:?}",
            xor_below(count),
            &received[..k]
        ));
    }
    let elapsed = Duration::from_nanos(last.saturating_sub(first));
    let facts = GroupFacts { members: k, received };
    Ok(Rep::Tput(TputRep { group: Some(facts), ..TputRep::new(count, elapsed) }))
}

/// A member's side: receives and checks data messages until its stop message (a member that has
/// its stop takes nothing more, so each of the `k` stops goes to a different member), then
/// writes its tally. Every message is whole and stamped with a sequence number below `count`,
/// and each member's sequence numbers increase.
fn group_member(rx: &mut shmq::Subscriber, size: usize, count: u64, out: &MemberTally, p: &Patience) -> Res<()> {
    let mut buf = vec![0u8; size];
    let (mut n, mut sum, mut xor, mut next, mut first) = (0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        let len = recv_spin(rx, &mut buf, p)?;
        let msg = &buf[..len];
        let seq = match msg.get(..8) {
            Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            None => return Err(payload::wrong("group", msg, size, next)),
        };
        if seq == STOP && payload::is(msg, size, STOP) {
            break;
        }
        if n == 0 {
            first = monotonic_ns();
        }
        if seq < next || seq >= count || !payload::is(msg, size, seq) {
            return Err(payload::wrong("group member (at least)", msg, size, next));
        }
        next = seq + 1;
        n += 1;
        sum = sum.wrapping_add(seq);
        xor ^= seq;
    }
    let stop = monotonic_ns();
    out.count.store(n, Release);
    out.sum.store(sum, Release);
    out.xor.store(xor, Release);
    out.first_ns.store(first, Release);
    out.stop_ns.store(stop, Release);
    out.done.store(1, Release);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The peer's side

/// The peer's side of a shmq measurement: attach, `ready`, then echo, send or answer.
pub fn peer(unit: Unit, a: &PeerArgs, hs: &mut Handshake) -> Res<()> {
    let p = Patience::new(None);
    let size = unit.size();
    let names = &a.name;
    let need = |i: usize| names.get(i).map(String::as_str).ok_or_else(|| "missing --name".to_string());
    match unit {
        Unit::SpscRtt8 | Unit::SpscRtt64 | Unit::BlockRtt8 => {
            let block = unit == Unit::BlockRtt8;
            let wait = if block { WaitStrategy::Block } else { WaitStrategy::Spin };
            let qa = queue(true, wait, size).open(need(0)?).map_err(err("open"))?;
            let qb = queue(true, wait, size).open(need(1)?).map_err(err("open"))?;
            let (mut rx, mut tx) = (qa.consumer().map_err(err("consumer"))?, qb.producer().map_err(err("producer"))?);
            hs.ready()?;
            if !block {
                return responder(&mut rx, &mut tx, size, a.n, &p);
            }
            let mut buf = vec![0u8; size];
            for i in 0..a.n {
                let m = rx.recv_into(&mut buf).map_err(|e| format!("recv: {e}"))?;
                if !payload::is(&buf[..m.len], size, i) {
                    return Err(payload::wrong("ping", &buf[..m.len], size, i));
                }
                tx.send(&buf[..m.len]).map_err(|e| format!("send: {e}"))?;
            }
            Ok(())
        }
        Unit::TopicRtt8 | Unit::TopicRtt64 => {
            let ta = topic(size).open(need(0)?).map_err(err("open"))?;
            let tb = topic(size).open(need(1)?).map_err(err("open"))?;
            let mut rx = ta.subscriber().build().map_err(err("subscriber"))?;
            let mut tx = tb.publisher().map_err(err("publisher"))?;
            hs.ready()?;
            responder(&mut rx, &mut tx, size, a.n, &p)
        }
        Unit::SpscTput8 | Unit::SpscTput64 | Unit::MpmcTput64 | Unit::BatchTput64 => {
            let q = queue(unit != Unit::MpmcTput64, WaitStrategy::Spin, size).open(need(0)?).map_err(err("open"))?;
            let mut tx = q.producer().map_err(err("producer"))?;
            hs.ready()?;
            match unit {
                Unit::BatchTput64 => produce_batches(&mut tx, size, a.n, &p),
                _ => produce(&mut tx, size, a.n, &p),
            }
        }
        Unit::TopicTput64 => {
            let t = topic(size).open(need(0)?).map_err(err("open"))?;
            let mut tx = t.publisher().map_err(err("publisher"))?;
            hs.ready()?;
            produce(&mut tx, size, a.n, &p)
        }
        Unit::WaitRtt1 | Unit::WaitRtt8 | Unit::WaitRtt64 => {
            // One WaitSet over the n ping queues: take ping i wherever it is, answer on pong.
            let n = unit.streams().unwrap_or(1);
            let mut ws = WaitSet::new();
            let mut keys = Vec::new();
            for j in 0..n {
                let q = queue(true, WaitStrategy::Block, size).open(need(j)?).map_err(err("open"))?;
                keys.push(ws.add(q.consumer().map_err(err("consumer"))?));
            }
            let qb = queue(true, WaitStrategy::Block, size).open(need(n)?).map_err(err("open"))?;
            let mut tx = qb.producer().map_err(err("producer"))?;
            hs.ready()?;
            let (mut ready, mut buf) = (Vec::with_capacity(n), vec![0u8; size]);
            for i in 0..a.n {
                let key = keys[i as usize % n];
                let m = loop {
                    ws.wait(&mut ready).map_err(|e| format!("wait: {e}"))?;
                    if ready.contains(&key.token()) {
                        if let Ok(m) = ws[key].try_recv(&mut buf) {
                            break m;
                        }
                    }
                };
                if !payload::is(&buf[..m.len], size, i) {
                    return Err(payload::wrong("ping", &buf[..m.len], size, i));
                }
                tx.send(&buf[..m.len]).map_err(|e| format!("send: {e}"))?;
            }
            Ok(())
        }
        Unit::CallRtt8 | Unit::CallRtt64 => {
            let sv = service(size).open(need(0)?).map_err(err("open"))?;
            let mut server = sv.server().map_err(err("server"))?;
            hs.ready()?;
            for i in 0..a.n {
                let req = server.recv().map_err(|e| format!("recv: {e}"))?;
                if !payload::is(&req, size, i) {
                    return Err(payload::wrong("request", &req, size, i));
                }
                req.respond_with(|req, out| {
                    out[..req.len()].copy_from_slice(req);
                    req.len()
                })
                .map_err(|e| format!("respond: {e}"))?;
            }
            Ok(())
        }
        Unit::GroupTput1 | Unit::GroupTput2 | Unit::GroupTput4 => {
            let j = a.member.filter(|&j| j < MAX_MEMBERS).ok_or_else(|| "missing or bad --member".to_string())?;
            let tally = Shared::<Tally>::inherit(a.fd.ok_or_else(|| "missing --fd".to_string())?)
                .map_err(|e| format!("shared memory: {e}"))?;
            let t = topic(size).open(need(0)?).map_err(err("open"))?;
            let mut rx = t.subscriber().group(GROUP).start(Start::Earliest).build().map_err(err("group member"))?;
            hs.ready()?;
            group_member(&mut rx, size, a.n, &tally.0[j].0, &p)
        }
        Unit::FloorRtt | Unit::BareTput64 | Unit::FutexRtt => Err(format!("{} is not a shmq row", unit.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::xor_below;

    #[test]
    fn xor_below_matches_a_fold() {
        for n in 0..100u64 {
            assert_eq!(xor_below(n), (0..n).fold(0, |a, s| a ^ s), "n = {n}");
        }
    }
}
