//! The chaos test's bookkeeping and its checks: the fixed-size log records that survive
//! SIGKILL, and what the logs, the list of runs (which were killed) and the rings' final
//! counters must show (see the module docs of [`super`] for what the checks prove).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::Path;

use shmq::RingCounters;
use shmq_test_support::fds::{EMFILE_END, EMFILE_START};
use shmq_test_support::PIDNS_START;

use super::{kills, Role, Run, PRODUCER_ID_BASE, PUBLISHER_ID_BASE};

/// Size of one log record.
pub const REC: usize = 32;

/// What a log record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// A producer or publisher: `send` of (id, inc, seq) returned Ok.
    Sent = 1,
    /// A consumer or subscriber received (id, inc, seq); for topics `tseq` is the topic sequence.
    Received = 2,
    /// A subscriber joined; `tseq` is the first sequence it will look at.
    Start = 3,
}

/// One log record: 32 bytes, written with one `write(2)` so that a kill loses at most the
/// record in flight (and never leaves half of one: a regular-file write this small is not split).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    /// What happened.
    pub tag: Tag,
    /// Producer or publisher id.
    pub id: u32,
    /// Producer or publisher incarnation.
    pub inc: u32,
    /// The producer's sequence.
    pub seq: u64,
    /// Topic sequence (topics), or 0.
    pub tseq: u64,
}

impl Rec {
    /// The record's bytes.
    pub fn to_bytes(self) -> [u8; REC] {
        let mut b = [0u8; REC];
        b[..4].copy_from_slice(&(self.tag as u32).to_le_bytes());
        b[4..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..12].copy_from_slice(&self.inc.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.tseq.to_le_bytes());
        b
    }

    /// Parses one record.
    pub fn from_bytes(b: &[u8]) -> Result<Rec, String> {
        let word = |r: std::ops::Range<usize>| u32::from_le_bytes(b[r].try_into().expect("4 bytes"));
        let long = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().expect("8 bytes"));
        let tag = match word(0..4) {
            1 => Tag::Sent,
            2 => Tag::Received,
            3 => Tag::Start,
            t => return Err(format!("unknown record tag {t}")),
        };
        Ok(Rec { tag, id: word(4..8), inc: word(8..12), seq: long(16..24), tseq: long(24..32) })
    }
}

/// An append-only log of records; one `write(2)` per record, no buffering.
pub struct Log(File);

impl Log {
    /// Creates the log file (it must not exist yet).
    pub fn create(path: &Path) -> Log {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .unwrap_or_else(|e| panic!("create log {}: {e}", path.display()));
        Log(f)
    }

    /// Appends `rec`.
    pub fn append(&mut self, rec: Rec) {
        self.0.write_all(&rec.to_bytes()).expect("append a log record");
    }
}

/// Every record of a log file. A trailing partial record (which a kill could only leave if the
/// kernel split a 32-byte write) is reported as an error, not dropped silently.
pub fn read_log(path: &Path) -> Result<Vec<Rec>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read log {}: {e}", path.display()))?;
    if bytes.len() % REC != 0 {
        return Err(format!("log {} ends with a partial record ({} bytes)", path.display(), bytes.len()));
    }
    bytes.chunks_exact(REC).map(Rec::from_bytes).collect()
}

type Key = (u32, u32);

/// The first 20 items of a list, for failure messages.
fn first<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(20).map(|i| format!("{i:?}")).collect();
    let more = if items.len() > 20 { format!(", ... ({} in all)", items.len()) } else { String::new() };
    format!("[{}{more}]", shown.join(", "))
}

/// What the producers (or publishers) logged: messages `0..count` of each incarnation.
struct SentLog {
    count: HashMap<Key, u64>,
    killed: HashSet<Key>,
    total: u64,
}

/// Reads the logs of the senders of `role`.
fn read_sent(runs: &[Run], role: Role, base: u32, failures: &mut Vec<String>) -> SentLog {
    let mut s = SentLog { count: HashMap::new(), killed: HashSet::new(), total: 0 };
    for run in runs.iter().filter(|r| r.role == role) {
        let key = (base + run.index as u32, run.inc);
        if run.killed {
            s.killed.insert(key);
        }
        let recs = if run.log.exists() { read_log(&run.log) } else { Ok(Vec::new()) };
        let recs = recs.unwrap_or_else(|e| {
            failures.push(e);
            Vec::new()
        });
        for (i, r) in recs.iter().enumerate() {
            if (r.tag, r.id, r.inc, r.seq) != (Tag::Sent, key.0, key.1, i as u64) {
                failures.push(format!("{} log {}: record {i} is {r:?}", role.name(), run.log.display()));
                break;
            }
        }
        s.count.insert(key, recs.len() as u64);
        s.total += recs.len() as u64;
    }
    s
}

/// Whether a received message is accounted for: logged as sent, or the send of a killed
/// incarnation that returned Ok just before the kill (the one after its last logged message).
fn classify(sent: &SentLog, id: u32, inc: u32, seq: u64) -> Result<bool, String> {
    let Some(&n) = sent.count.get(&(id, inc)) else {
        return Err(format!("message of unknown sender {id} incarnation {inc} seq {seq}"));
    };
    if seq < n {
        Ok(true)
    } else if seq == n && sent.killed.contains(&(id, inc)) {
        Ok(false)
    } else {
        Err(format!("phantom message {id}/{inc}/{seq}: that sender logged {n} messages and was not killed after"))
    }
}

#[derive(Default, Debug)]
pub struct QueueReport {
    /// Messages the producers logged as sent.
    pub sent: u64,
    /// Messages the consumers logged as received.
    pub received: u64,
    /// Received messages whose send was not logged (producer killed right after `send`).
    pub unlogged_sends: u64,
    /// Logged messages nobody logged as received.
    pub missing: u64,
}

pub fn check_queue(runs: &[Run], counters: &RingCounters, len: usize, failures: &mut Vec<String>) -> QueueReport {
    let sent = read_sent(runs, Role::Producer, PRODUCER_ID_BASE, failures);
    let mut got: HashMap<Key, Vec<u8>> = sent.count.iter().map(|(&k, &n)| (k, vec![0u8; n as usize + 1])).collect();
    let mut rep = QueueReport { sent: sent.total, ..QueueReport::default() };
    let mut dups = Vec::new();
    let mut disorder = Vec::new();
    for run in runs.iter().filter(|r| r.role == Role::Consumer) {
        let recs = match read_log(&run.log) {
            Ok(r) => r,
            Err(_) if !run.log.exists() => Vec::new(),
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let mut last: HashMap<Key, u64> = HashMap::new();
        for r in recs {
            rep.received += 1;
            match classify(&sent, r.id, r.inc, r.seq) {
                Ok(logged) => rep.unlogged_sends += u64::from(!logged),
                Err(e) => {
                    failures.push(format!("queue: consumer {} incarnation {}: {e}", run.index, run.inc));
                    continue;
                }
            }
            let c = &mut got.get_mut(&(r.id, r.inc)).expect("classified")[r.seq as usize];
            *c += 1;
            if *c > 1 {
                dups.push(format!("{}/{}/{}", r.id, r.inc, r.seq));
            }
            if let Some(prev) = last.insert((r.id, r.inc), r.seq) {
                if prev >= r.seq {
                    disorder.push(format!(
                        "consumer {} incarnation {} received {}/{}/{} after seq {prev}",
                        run.index, run.inc, r.id, r.inc, r.seq
                    ));
                }
            }
        }
    }
    let mut missing = Vec::new();
    for (&(id, inc), counts) in &got {
        for (seq, &c) in counts[..counts.len() - 1].iter().enumerate() {
            if c == 0 {
                missing.push(format!("{id}/{inc}/{seq}"));
            }
        }
    }
    missing.sort();
    rep.missing = missing.len() as u64;
    let consumer_kills = kills(runs, Role::Consumer) as u64;
    let producer_kills = kills(runs, Role::Producer) as u64;
    if !dups.is_empty() {
        failures.push(format!(
            "queue: {} messages received twice (at most once is the contract): {}",
            dups.len(),
            first(&dups)
        ));
    }
    if !disorder.is_empty() {
        failures.push(format!("queue: producer order broken {} times: {}", disorder.len(), first(&disorder)));
    }
    if rep.missing > consumer_kills {
        failures.push(format!(
            "queue: {} logged messages never received, but only {consumer_kills} consumers were killed \
             (lost_by_crash {}): {}",
            rep.missing,
            counters.lost_by_crash,
            first(&missing)
        ));
    }
    if counters.lost_by_crash > consumer_kills {
        failures.push(format!("queue: lost_by_crash {} > consumer kills {consumer_kills}", counters.lost_by_crash));
    }
    if counters.abandoned > producer_kills {
        failures.push(format!("queue: abandoned {} > producer kills {producer_kills}", counters.abandoned));
    }
    if counters.aborted != 0 {
        failures.push(format!("queue: {} aborted slots, but nobody aborts", counters.aborted));
    }
    if len != 0 {
        failures.push(format!("queue: {len} messages left after the consumers drained it ({counters:?})"));
    }
    rep
}

#[derive(Default, Debug)]
pub struct TopicReport {
    /// Messages the publishers logged as published.
    pub published: u64,
    /// The topic's final tail (sequences claimed).
    pub tail: u64,
    /// Receipts logged by anonymous subscribers.
    pub received_anon: u64,
    /// Receipts logged by the durable subscriber.
    pub received_durable: u64,
    /// Messages the durable subscriber logged twice.
    pub durable_duplicates: u64,
    /// Topic sequences that subscribers skipped and nobody received (abandoned slots).
    pub holes: u64,
    /// Received messages whose publish was not logged (publisher killed right after `send`).
    pub unlogged_publishes: u64,
}

pub fn check_topic(runs: &[Run], counters: &RingCounters, tail: u64, failures: &mut Vec<String>) -> TopicReport {
    let sent = read_sent(runs, Role::Publisher, PUBLISHER_ID_BASE, failures);
    let mut rep = TopicReport { published: sent.total, tail, ..TopicReport::default() };
    let n = tail as usize;
    // Which message each topic sequence holds, as every subscriber saw it: (id, inc, seq + 1).
    let mut at: Vec<(u32, u32, u64)> = vec![(0, 0, 0); n];
    // Topic sequences some subscriber incarnation skipped inside its range.
    let mut hole = vec![false; n];
    // How often the durable subscriber received each topic sequence.
    let mut durable_count = vec![0u8; n];
    // Which logged messages the durable subscriber received.
    let mut durable_got: HashMap<Key, Vec<bool>> =
        sent.count.iter().map(|(&k, &c)| (k, vec![false; c as usize + 1])).collect();
    let mut errors = Vec::new();
    // (start, last received) of each durable incarnation, in order.
    let mut durable_runs: Vec<(u64, Option<u64>, bool)> = Vec::new();
    for run in runs.iter().filter(|r| matches!(r.role, Role::Subscriber | Role::Durable)) {
        let what = format!("{} {} incarnation {}", run.role.name(), run.index, run.inc);
        let recs = match read_log(&run.log) {
            Ok(r) => r,
            Err(_) if !run.log.exists() => Vec::new(),
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let Some((first, rest)) = recs.split_first() else {
            if run.role == Role::Durable {
                durable_runs.push((u64::MAX, None, run.killed));
            }
            continue; // killed before it joined
        };
        if first.tag != Tag::Start {
            errors.push(format!("{what}: log does not begin with its start position"));
            continue;
        }
        let start = first.tseq;
        let mut next = start;
        let mut per_pub: HashMap<Key, u64> = HashMap::new();
        for r in rest {
            if r.tag != Tag::Received || r.tseq >= tail || r.tseq < next {
                errors.push(format!(
                    "{what}: received topic sequence {} after {} (start {start}, tail {tail}): {r:?}",
                    r.tseq,
                    next.wrapping_sub(1)
                ));
                break;
            }
            for h in &mut hole[next as usize..r.tseq as usize] {
                *h = true;
            }
            next = r.tseq + 1;
            let logged = match classify(&sent, r.id, r.inc, r.seq) {
                Ok(l) => l,
                Err(e) => {
                    errors.push(format!("{what}: {e}"));
                    continue;
                }
            };
            rep.unlogged_publishes += u64::from(!logged);
            let slot = &mut at[r.tseq as usize];
            if slot.2 == 0 {
                *slot = (r.id, r.inc, r.seq + 1);
            } else if *slot != (r.id, r.inc, r.seq + 1) {
                errors.push(format!(
                    "{what}: topic sequence {} holds {}/{}/{}, another subscriber saw {}/{}/{} there",
                    r.tseq,
                    r.id,
                    r.inc,
                    r.seq,
                    slot.0,
                    slot.1,
                    slot.2 - 1
                ));
            }
            if let Some(prev) = per_pub.insert((r.id, r.inc), r.seq) {
                if r.seq != prev + 1 {
                    errors.push(format!(
                        "{what}: publisher {}/{} went from seq {prev} to {} (reliable: no gap, no repeat)",
                        r.id, r.inc, r.seq
                    ));
                }
            }
            if run.role == Role::Durable {
                rep.received_durable += 1;
                durable_count[r.tseq as usize] = durable_count[r.tseq as usize].saturating_add(1);
                durable_got.get_mut(&(r.id, r.inc)).expect("classified")[r.seq as usize] = true;
            } else {
                rep.received_anon += 1;
            }
        }
        // An incarnation that ran to the end drained the topic: it saw everything up to the tail.
        if !run.killed {
            for h in &mut hole[next.min(tail) as usize..n] {
                *h = true;
            }
        }
        if run.role == Role::Durable {
            durable_runs.push((start, rest.last().map(|r| r.tseq), run.killed));
        }
    }
    // Durable resumption: from its first start at 0, each incarnation starts at the last message
    // the previous one logged (logged, killed before ack) or the one after (acked, or killed
    // before logging), or past holes after that; never earlier (more re-delivery) or later (a
    // logged message skipped).
    let mut prev: Option<(u64, Option<u64>)> = None;
    let mut boundary_dups = 0u64;
    for (k, &(start, last, _)) in durable_runs.iter().enumerate() {
        if start == u64::MAX {
            continue;
        }
        match prev {
            None if start != 0 => errors.push(format!("durable incarnation {k} (the first) started at {start}, not 0")),
            Some((pstart, None))
                if start != pstart && !(pstart..start).all(|t| at.get(t as usize).is_some_and(|s| s.2 == 0)) =>
            {
                errors.push(format!(
                    "durable incarnation {k} resumed at {start}; the previous one received nothing since {pstart}"
                ))
            }
            // Past plast + 1 only over holes: slots whose publisher died writing them, which no
            // subscriber ever received (an explicit-ack subscriber that has acknowledged
            // everything moves its cursor past a hole). A real message skipped there would also
            // be missing from what the durable subscriber received, which is checked below.
            Some((_, Some(plast)))
                if start != plast
                    && start != plast + 1
                    && !(plast + 1..start).all(|t| at.get(t as usize).is_some_and(|s| s.2 == 0)) =>
            {
                errors.push(format!(
                    "durable incarnation {k} resumed at {start}; the previous one logged up to {plast} and acknowledged \
                     up to {plast} or {} (and no hole lies between)",
                    plast + 1
                ))
            }
            Some((_, Some(plast))) if start == plast => boundary_dups += 1,
            _ => {}
        }
        prev = Some((start, last));
    }
    let durable_kills = kills(runs, Role::Durable) as u64;
    rep.durable_duplicates = durable_count.iter().map(|&c| u64::from(c.saturating_sub(1))).sum();
    if rep.durable_duplicates != boundary_dups || rep.durable_duplicates > durable_kills {
        errors.push(format!(
            "durable subscriber: {} duplicates; {boundary_dups} of them at kill boundaries, {durable_kills} kills",
            rep.durable_duplicates
        ));
    }
    for (&(id, inc), got) in &durable_got {
        let missed: Vec<usize> = got[..got.len() - 1].iter().enumerate().filter(|(_, &g)| !g).map(|(s, _)| s).collect();
        if !missed.is_empty() {
            errors.push(format!(
                "durable subscriber never received {} logged messages of publisher {id}/{inc}: seqs {}",
                missed.len(),
                first(&missed)
            ));
        }
    }
    // A topic sequence some reliable subscriber skipped must be one that nobody received: a slot
    // of a killed publisher, marked abandoned. There are at most `abandoned` of those.
    let lost: Vec<usize> = (0..n).filter(|&s| hole[s] && at[s].2 != 0).collect();
    if !lost.is_empty() {
        errors.push(format!(
            "reliable subscribers skipped {} messages that others received, e.g. topic sequences {}",
            lost.len(),
            first(&lost)
        ));
    }
    rep.holes = (0..n).filter(|&s| hole[s] && at[s].2 == 0).count() as u64;
    if rep.holes > counters.abandoned {
        errors.push(format!(
            "{} topic sequences were received by no subscriber that should have, but only {} slots were abandoned",
            rep.holes, counters.abandoned
        ));
    }
    let publisher_kills = kills(runs, Role::Publisher) as u64;
    if counters.abandoned > publisher_kills {
        errors.push(format!("topic: abandoned {} > publisher kills {publisher_kills}", counters.abandoned));
    }
    if counters.aborted != 0 || counters.lost_by_crash != 0 {
        errors.push(format!("topic: unexpected counters {counters:?}"));
    }
    let count = errors.len();
    failures.extend(errors.into_iter().take(20).map(|e| format!("topic: {e}")));
    if count > 20 {
        failures.push(format!("topic: ... and {} more", count - 20));
    }
    rep
}

/// What the adversarial children did, as their output shows.
#[derive(Default, Debug)]
pub struct AdversaryReport {
    /// Incarnations told to take every free descriptor.
    pub emfile: usize,
    /// ... of which confirmed, before their role began, that none was left.
    pub emfile_confirmed: usize,
    /// ... of which ran to the end and confirmed it again there.
    pub emfile_to_the_end: usize,
    /// Incarnations started in a pid namespace of their own.
    pub pidns: usize,
    /// ... of which confirmed that they were pid 1 there.
    pub pidns_confirmed: usize,
    /// ... of which ran to the end.
    pub pidns_to_the_end: usize,
}

/// Checks the adversarial children's own confirmations: every one that ran to the end (was not
/// killed) must have printed them (a killed one may have died before it did).
pub fn check_adversaries(runs: &[Run], failures: &mut Vec<String>) -> AdversaryReport {
    let mut rep = AdversaryReport::default();
    for run in runs.iter().filter(|r| r.emfile || r.pidns) {
        let what = format!("{} {} incarnation {}", run.role.name(), run.index, run.inc);
        let out = std::fs::read_to_string(&run.out).unwrap_or_default();
        if run.emfile {
            rep.emfile += 1;
            let (start, end) = (out.contains(EMFILE_START), out.contains(EMFILE_END));
            let both = start && end;
            rep.emfile_confirmed += usize::from(start);
            rep.emfile_to_the_end += usize::from(!run.killed && both);
            if !run.killed && !both {
                failures.push(format!(
                    "{what} was to run out of file descriptors but did not confirm it (before its role: {start}, \
                     at the end: {end})"
                ));
            }
        }
        if run.pidns {
            rep.pidns += 1;
            let start = out.contains(PIDNS_START);
            rep.pidns_confirmed += usize::from(start);
            rep.pidns_to_the_end += usize::from(!run.killed && start);
            if !run.killed && !start {
                failures.push(format!("{what} was to run as pid 1 of its own pid namespace but did not confirm it"));
            }
        }
    }
    rep
}
