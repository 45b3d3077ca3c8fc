//! Hostile writer: a process writes random bytes at random offsets of a live segment for several
//! seconds while readers and writers run in other processes. Every call must return (within its
//! timeout plus a generous margin), never panic and never crash the process; errors are allowed
//! (and counted by variant), and the corruption must actually produce `Corrupted` errors.
//!
//! Each case (MPMC queue, SPSC queue, topic with a reliable and a lossy subscriber) runs in
//! epochs of [`EPOCH`]: every epoch has its own fresh segment, so that the run does not spend
//! its seconds on a segment already broken beyond use (a corrupted index stops a queue for
//! good, by design: the fix is to remove and recreate it). In each epoch the workers open the
//! epoch's segment and start sending and receiving; [`HOSTILE_DELAY`] later the hostile
//! process starts writing into it (header, control block, participant and subscriber tables,
//! slot states, lengths, kinds, payloads) until the epoch ends.
//!
//! All participants are processes (this test binary again); workers run one or two threads
//! each. The hostile process writes with `shmq_test_support::Corrupter` (the hostile sweeps'
//! too, with other weights). A worker measures every call; a watchdog thread in it ends it with
//! a message if a call runs longer than [`HANG`]. The hostile process's seed is printed;
//! `SHMQ_HOSTILE_SEED` replays its writes (the interleaving with the workers differs from run
//! to run), `SHMQ_HOSTILE_SECS` (default 3) lengthens the run.
//!
//! Out of scope: truncating the file (a peer that truncates a segment makes every other
//! process SIGBUS, as documented); the hostile process writes only inside the file.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shmq::layout::{self, Offsets};
use shmq::status::Status;
use shmq::{Error, QueueKind, QueueOptions, SubscriberMode, TopicOptions};
use shmq_test_support::{env, env_u64, field, report, ChildProc, Corrupter, RawMap, Rng, Role, Scene, Weights};

use crate::{panic_message, touch};

const SEED: &str = "SHMQ_HOSTILE_SEED";
const SECS: &str = "SHMQ_HOSTILE_SECS";
const DIR: &str = "SHMQ_HW_DIR";
const KIND: &str = "SHMQ_HW_KIND";
const T0: &str = "SHMQ_HW_T0";
const EPOCHS: &str = "SHMQ_HW_EPOCHS";
const THREADS: &str = "SHMQ_HW_THREADS";

/// The roles of this module's children: the hostile process, and the workers.
pub const ROLES: &[Role] = &[
    ("writer hostile", hostile),
    ("writer producer", || worker("producer")),
    ("writer consumer", || worker("consumer")),
    ("writer publisher", || worker("publisher")),
    ("writer reliable", || worker("reliable")),
    ("writer lossy", || worker("lossy")),
];

/// Length of one epoch (one fresh segment).
const EPOCH: Duration = Duration::from_millis(500);
/// How long into an epoch the hostile process starts writing.
const HOSTILE_DELAY: Duration = Duration::from_millis(100);
/// Timeout of the timed calls under test.
const OP_TIMEOUT: Duration = Duration::from_millis(50);
/// A call running longer than this is a hang (a check for hangs, not for speed).
const HANG: Duration = Duration::from_secs(5);
/// Time the children get to start before epoch 0.
const STARTUP: Duration = Duration::from_millis(1500);
const CAPACITY: usize = 16;
const MAX_MSG: usize = 48;
const SUBSCRIBERS: u32 = 4;

// ---------------------------------------------------------------------------------------------
// Time shared between processes
// ---------------------------------------------------------------------------------------------

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
}

/// Sleeps until the Unix time `at_ns` (returns at once if it passed).
fn sleep_until(at_ns: u64) {
    let now = unix_ns();
    if at_ns > now {
        std::thread::sleep(Duration::from_nanos(at_ns - now));
    }
}

/// The schedule every process follows: epoch `k` runs from `t0 + k * EPOCH` on segment `e<k>`.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    t0: u64,
    epochs: u64,
}

impl Schedule {
    fn from_env() -> Schedule {
        Schedule { t0: env_u64(T0), epochs: env_u64(EPOCHS) }
    }
    fn start(&self, k: u64) -> u64 {
        self.t0 + k * EPOCH.as_nanos() as u64
    }
    fn end(&self, k: u64) -> u64 {
        self.start(k + 1)
    }
    fn hostile_from(&self, k: u64) -> u64 {
        self.start(k) + HOSTILE_DELAY.as_nanos() as u64
    }
}

fn segment_name(k: u64) -> String {
    format!("e{k}")
}

/// Where everything is in the segments of a case.
fn offsets(kind: &str) -> Offsets {
    let (subscribers, groups) =
        if kind == "topic" { (SUBSCRIBERS, layout::DEFAULT_MAX_GROUPS.min(SUBSCRIBERS)) } else { (0, 0) };
    Offsets::compute_with(
        CAPACITY as u64,
        MAX_MSG as u32,
        layout::DEFAULT_PARTICIPANTS,
        subscribers,
        0,
        layout::DeadLetterParts::None,
        groups,
    )
    .expect("layout")
}

// ---------------------------------------------------------------------------------------------
// The hostile process
// ---------------------------------------------------------------------------------------------

/// Writes into each epoch's segment from [`HOSTILE_DELAY`] into the epoch until its end: a
/// burst of one to four writes, then a pause of 0.5 ms to 3.5, 15 or 60 ms (the epochs take
/// turns: a fast writer breaks a segment within milliseconds, a slow one lets the workers run
/// on a damaged segment for longer).
fn hostile() {
    let (kind, dir, sched, seed) = (env(KIND), PathBuf::from(env(DIR)), Schedule::from_env(), env_u64(SEED));
    let mut rng = Rng::new(seed);
    let o = offsets(&kind);
    let mut hits: BTreeMap<&'static str, u64> = BTreeMap::new();
    for k in 0..sched.epochs {
        let corrupter = Corrupter::new(RawMap::open(&dir.join(format!("shmq.{}", segment_name(k)))), Weights::LIVE);
        let g = corrupter.geometry();
        assert_eq!((g.size, g.slots, g.stride), (o.total, o.slots, o.stride), "segment layout");
        let pause_us = [3000, 15_000, 60_000][k as usize % 3];
        sleep_until(sched.hostile_from(k));
        while unix_ns() < sched.end(k) {
            for _ in 0..=rng.below(4) {
                *hits.entry(corrupter.hit(&mut rng).region).or_default() += 1;
            }
            std::thread::sleep(Duration::from_micros(500 + rng.below(pause_us)));
        }
    }
    let hits: Vec<String> = hits.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    report(&format!("hits {}", hits.join(",")));
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

/// Errors that corruption cannot explain: a worker that gets one reports it, and the test fails.
/// (`MessageTooLarge` can be explained: a header whose `max_msg` was lowered to a value with the
/// same slot stride passes validation, and a handle opened on it then has a smaller maximum.
/// No value passes that would make a buffer of `MAX_MSG` bytes too small.)
fn unexpected(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidName { .. }
            | Error::InvalidConfig(_)
            | Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::BufferTooSmall { .. }
            | Error::SizeMismatch { .. }
            | Error::NoSpace { .. }
            | Error::PermissionDenied { .. }
            | Error::Io { .. }
    )
}

/// The name of an error's variant.
fn variant(e: &Error) -> String {
    let d = format!("{e:?}");
    d.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("?").to_string()
}

/// Nanoseconds since this process's first call (0 is never a call's start).
fn mono_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// What each worker thread is doing, for the hang watchdog: start of the current call (0 when
/// between calls) and its index in [`OPS`].
struct Busy {
    since: AtomicU64,
    op: AtomicUsize,
}

const OPS: &[&str] = &[
    "open",
    "producer",
    "consumer",
    "publisher",
    "subscriber",
    "send_timeout",
    "try_send",
    "try_send_batch",
    "try_loan+commit",
    "recv_timeout",
    "recv_ref_timeout",
    "try_recv",
    "try_recv_batch",
    "Status::read",
    "send_timeout(topic)",
    "try_send(topic)",
    "try_loan(topic)+commit",
    "try_recv_ref",
];

/// Ends this process with a message if any thread spends more than [`HANG`] in one call.
fn start_hang_watchdog(role: String, busy: Arc<Vec<Busy>>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = mono_ns();
        for (t, b) in busy.iter().enumerate() {
            let since = b.since.load(Relaxed);
            if since != 0 && now.saturating_sub(since) > HANG.as_nanos() as u64 {
                let op = OPS[b.op.load(Relaxed)];
                let msg = format!("hang: {role} thread {t} spent more than {HANG:?} in {op}");
                report(&msg);
                eprintln!("{msg}");
                std::process::exit(3);
            }
        }
    });
}

/// A worker thread's counts.
#[derive(Default)]
struct Tally {
    ok: u64,
    /// Calls that returned `Ok` after the hostile process started on the epoch's segment.
    ok_under: u64,
    errors: BTreeMap<String, u64>,
    max_call: Duration,
    problems: Vec<String>,
}

/// Runs worker calls: timed, counted, under `catch_unwind`.
struct Caller<'a> {
    role: &'a str,
    busy: &'a Busy,
    tally: Tally,
    /// Unix ns from which `Ok`s count as under corruption.
    hostile_from: u64,
    consecutive_errors: u32,
}

impl Caller<'_> {
    /// Calls `f`; its operation's error is counted as the [`Error`] it converts into.
    fn call<T, E: Into<Error>>(&mut self, op: &'static str, f: impl FnOnce() -> Result<T, E>) -> Option<T> {
        let index = OPS.iter().position(|&o| o == op).expect("op listed in OPS");
        self.busy.op.store(index, Relaxed);
        self.busy.since.store(mono_ns(), Relaxed);
        let started = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(f));
        let took = started.elapsed();
        self.busy.since.store(0, Relaxed);
        self.tally.max_call = self.tally.max_call.max(took);
        if took > HANG {
            self.tally.problems.push(format!("{op} took {took:?}"));
        }
        match r {
            Err(p) => {
                let line = format!("panic: {} in {op}: {}", self.role, panic_message(&*p));
                report(&line);
                eprintln!("{line}");
                std::process::exit(4);
            }
            Ok(Ok(v)) => {
                self.tally.ok += 1;
                if unix_ns() >= self.hostile_from {
                    self.tally.ok_under += 1;
                }
                self.consecutive_errors = 0;
                Some(v)
            }
            Ok(Err(e)) => {
                let e: Error = e.into();
                *self.tally.errors.entry(variant(&e)).or_default() += 1;
                if unexpected(&e) && self.tally.problems.len() < 10 {
                    self.tally.problems.push(format!("{op} returned an unexpected error: {e}"));
                }
                if !matches!(e, Error::Timeout | Error::Empty | Error::Full | Error::Lagged(_)) {
                    self.consecutive_errors += 1;
                    // A broken segment answers at once: do not spin on it.
                    std::thread::sleep(Duration::from_millis(1));
                }
                None
            }
        }
    }
}

/// The handles of one worker thread on one epoch's segment.
enum Session {
    Producer(shmq::Producer),
    Consumer(shmq::Consumer),
    Publisher(shmq::Publisher),
    Subscriber(shmq::Subscriber),
}

fn open_session(c: &mut Caller, role: &str, dir: &Path, name: &str) -> Option<Session> {
    if matches!(role, "producer" | "consumer") {
        let q = c.call("open", || QueueOptions::new().dir(dir).ready_timeout(OP_TIMEOUT).open(name))?;
        return if role == "producer" {
            c.call("producer", || q.producer()).map(Session::Producer)
        } else {
            c.call("consumer", || q.consumer()).map(Session::Consumer)
        };
    }
    let t = c.call("open", || TopicOptions::new().dir(dir).ready_timeout(OP_TIMEOUT).open(name))?;
    match role {
        "publisher" => c.call("publisher", || t.publisher()).map(Session::Publisher),
        "reliable" => c.call("subscriber", || t.subscriber().build()).map(Session::Subscriber),
        "lossy" => c.call("subscriber", || t.subscriber().mode(SubscriberMode::Lossy).build()).map(Session::Subscriber),
        other => panic!("unknown role {other:?}"),
    }
}

/// One call of the session's side, chosen at random.
fn step(c: &mut Caller, s: &mut Session, rng: &mut Rng, dir: &Path, name: &str, lossy: bool) {
    let len = rng.below(MAX_MSG as u64 + 1) as usize;
    let kind = len as u32;
    let msg = vec![len as u8; len];
    let mut buf = [0u8; MAX_MSG];
    let roll = rng.below(100);
    let check_len = |n: usize| assert!(n <= MAX_MSG, "received {n} bytes, more than the maximum {MAX_MSG}");
    match s {
        Session::Producer(p) => match roll {
            0..=69 => {
                c.call("send_timeout", || p.send_kind_timeout(kind, &msg, OP_TIMEOUT));
            }
            70..=79 => {
                c.call("try_send", || p.try_send(&msg));
            }
            80..=89 => {
                c.call("try_send_batch", || p.try_send_batch(&[&msg, &msg[..len / 2]]));
            }
            _ => {
                c.call("try_loan+commit", || {
                    let mut loan = p.try_loan().map_err(Error::from)?;
                    loan[..len].copy_from_slice(&msg);
                    loan.set_kind(kind);
                    loan.commit(len).map_err(Error::from)
                });
            }
        },
        Session::Consumer(r) => match roll {
            0..=59 => {
                if let Some(m) = c.call("recv_timeout", || r.recv_timeout(&mut buf, OP_TIMEOUT)) {
                    check_len(m.len);
                }
            }
            60..=74 => {
                c.call("recv_ref_timeout", || {
                    let m = r.recv_ref_timeout(OP_TIMEOUT)?;
                    check_len(m.len());
                    touch(&m);
                    Ok::<(), shmq::RecvTimeoutError>(())
                });
            }
            75..=84 => {
                c.call("try_recv", || r.try_recv(&mut buf));
            }
            85..=96 => {
                c.call("try_recv_batch", || {
                    r.try_recv_batch(8, |p, _| {
                        check_len(p.len());
                        touch(p);
                    })
                });
            }
            _ => {
                c.call("Status::read", || Status::read(dir, name));
            }
        },
        Session::Publisher(p) => match roll {
            0..=69 => {
                c.call("send_timeout(topic)", || p.send_kind_timeout(kind, &msg, OP_TIMEOUT));
            }
            70..=84 => {
                c.call("try_send(topic)", || p.try_send(&msg));
            }
            _ => {
                c.call("try_loan(topic)+commit", || {
                    let mut loan = p.try_loan().map_err(Error::from)?;
                    loan[..len].copy_from_slice(&msg);
                    loan.set_kind(kind);
                    loan.commit(len).map_err(Error::from)
                });
            }
        },
        Session::Subscriber(s) => match roll {
            0..=59 => {
                if let Some(m) = c.call("recv_timeout", || s.recv_timeout(&mut buf, OP_TIMEOUT)) {
                    check_len(m.len);
                }
            }
            60..=79 if !lossy => {
                c.call("recv_ref_timeout", || {
                    let m = s.recv_ref_timeout(OP_TIMEOUT)?;
                    check_len(m.len());
                    touch(&m);
                    Ok::<(), shmq::RecvTimeoutError>(())
                });
            }
            60..=94 => {
                c.call("try_recv", || s.try_recv(&mut buf));
            }
            _ => {
                c.call("Status::read", || Status::read(dir, name));
            }
        },
    }
}

/// One worker thread: in each epoch, opens the epoch's segment, then calls until the epoch
/// ends; after 20 errors in a row (other than timeouts) it opens the segment again.
fn worker_thread(role: &str, dir: &Path, sched: Schedule, seed: u64, busy: &Busy) -> Tally {
    let mut rng = Rng::new(seed);
    let mut c = Caller { role, busy, tally: Tally::default(), hostile_from: 0, consecutive_errors: 0 };
    let margin = 20_000_000; // leave the epoch 20 ms early, so that handles close before the next
    for k in 0..sched.epochs {
        let name = segment_name(k);
        sleep_until(sched.start(k));
        c.hostile_from = sched.hostile_from(k);
        c.consecutive_errors = 0;
        let mut session = None;
        while unix_ns() + margin < sched.end(k) {
            if c.consecutive_errors >= 20 {
                session = None;
                c.consecutive_errors = 0;
            }
            if session.is_none() {
                session = open_session(&mut c, role, dir, &name);
                if session.is_none() {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
            step(&mut c, session.as_mut().expect("session"), &mut rng, dir, &name, role == "lossy");
        }
    }
    c.tally
}

/// A worker process: `THREADS` threads playing `role` in every epoch.
fn worker(role: &str) {
    let (dir, sched, seed) = (PathBuf::from(env(DIR)), Schedule::from_env(), env_u64(SEED));
    let (dir, threads) = (dir.as_path(), env_u64(THREADS) as usize);
    let busy: Arc<Vec<Busy>> =
        Arc::new((0..threads).map(|_| Busy { since: AtomicU64::new(0), op: AtomicUsize::new(0) }).collect());
    start_hang_watchdog(role.to_string(), busy.clone());
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let busy = &busy[t];
                let seed = seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                s.spawn(move || worker_thread(role, dir, sched, seed, busy))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker thread")).collect()
    });
    let mut total = Tally::default();
    for t in tallies {
        total.ok += t.ok;
        total.ok_under += t.ok_under;
        total.max_call = total.max_call.max(t.max_call);
        for (k, v) in t.errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.problems.extend(t.problems);
    }
    for p in &total.problems {
        report(&format!("problem {role}: {p}"));
    }
    let errors: Vec<String> = total.errors.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    report(&format!(
        "tally ok={} ok_under={} max_call_ms={} errors={}",
        total.ok,
        total.ok_under,
        total.max_call.as_millis(),
        errors.join(",")
    ));
}

// ---------------------------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------------------------

/// Runs one case: fresh segments of `kind`, the hostile process and `workers` (role, threads).
fn run_case(kind: &str, workers: &[(&str, u64)]) {
    let seed = std::env::var(SEED)
        .ok()
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{SEED}={s:?} is not a number")))
        .unwrap_or_else(|| unix_ns() ^ (std::process::id() as u64) << 32);
    let secs: u64 = std::env::var(SECS).ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let epochs = (secs * 1000).div_ceil(EPOCH.as_millis() as u64).max(1);
    eprintln!("hostile writer on {kind}: seed {seed} (replay with {SEED}={seed}), {epochs} epochs of {EPOCH:?}");
    let run_time = EPOCH * epochs as u32 + STARTUP;
    let limit = run_time + Duration::from_secs(60);
    let scene = Scene::new(&format!("hostile writer on {kind}"), limit, run_time + Duration::from_secs(120));
    let dir = scene.path();
    for k in 0..epochs {
        let name = segment_name(k);
        let opts = |q: QueueOptions| q.dir(dir).capacity(CAPACITY).max_msg_size(MAX_MSG);
        match kind {
            "mpmc" => drop(opts(QueueOptions::new()).kind(QueueKind::Mpmc).create(&name).expect("create")),
            "spsc" => drop(opts(QueueOptions::new()).kind(QueueKind::Spsc).create(&name).expect("create")),
            _ => drop(
                TopicOptions::new()
                    .dir(dir)
                    .capacity(CAPACITY)
                    .max_msg_size(MAX_MSG)
                    .max_subscribers(SUBSCRIBERS)
                    .create(&name)
                    .expect("create"),
            ),
        }
    }
    let t0 = unix_ns() + STARTUP.as_nanos() as u64;
    let common_env = |threads: u64, seed: u64| {
        vec![
            (KIND, kind.to_string()),
            (DIR, dir.display().to_string()),
            (T0, t0.to_string()),
            (EPOCHS, epochs.to_string()),
            (THREADS, threads.to_string()),
            (SEED, seed.to_string()),
        ]
    };
    let mut hostile = ChildProc::spawn("writer hostile", &common_env(1, seed));
    let mut children: Vec<ChildProc> = workers
        .iter()
        .enumerate()
        .map(|(i, &(role, threads))| {
            let s = seed.rotate_left(17) ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
            ChildProc::spawn(&format!("writer {role}"), &common_env(threads, s))
        })
        .collect();
    let deadline = scene.deadline();
    let mut lines = Vec::new();
    for child in std::iter::once(&mut hostile).chain(children.iter_mut()) {
        let status = child.wait(deadline);
        if !status.success() {
            let how = match status.signal() {
                Some(sig) => format!("was killed by signal {sig} (SIGSEGV=11, SIGBUS=7, SIGABRT=6)"),
                None => format!("failed with {status}"),
            };
            let t = child.transcript();
            panic!("{} {how} (replay with {SEED}={seed}){t}", child.what());
        }
        lines.push((child.what().to_string(), child.marked()));
    }
    let hits = lines[0].1.iter().find_map(|l| l.strip_prefix("hits ")).expect("hits line").to_string();
    eprintln!("{kind}: hostile writes by region: {hits}");
    let (mut ok, mut ok_under, mut corrupted, mut problems) = (0u64, 0u64, 0u64, Vec::new());
    for (what, marked) in &lines[1..] {
        let tally =
            marked.iter().find_map(|l| l.strip_prefix("tally ")).unwrap_or_else(|| panic!("no tally from {what}"));
        eprintln!("{kind}: {what}: {tally}");
        ok += field(tally, "ok").parse::<u64>().expect("ok count");
        ok_under += field(tally, "ok_under").parse::<u64>().expect("ok_under count");
        corrupted += field(tally, "errors")
            .split(',')
            .find_map(|kv| kv.strip_prefix("Corrupted:"))
            .map_or(0, |n| n.parse().expect("Corrupted count"));
        problems.extend(marked.iter().filter(|l| l.starts_with("problem ")).map(|l| format!("{what}: {l}")));
    }
    assert!(problems.is_empty(), "{kind} (seed {seed}):\n{}", problems.join("\n"));
    assert!(corrupted > 0, "{kind} (seed {seed}): the hostile writes produced no Corrupted error ({hits})");
    assert!(ok > 0 && ok_under > 0, "{kind} (seed {seed}): no call succeeded under corruption ({ok} in all)");
}

#[test]
fn hostile_writes_to_a_live_mpmc_queue_give_errors_never_panics_crashes_or_hangs() {
    run_case("mpmc", &[("producer", 2), ("consumer", 2)]);
}

#[test]
fn hostile_writes_to_a_live_spsc_queue_give_errors_never_panics_crashes_or_hangs() {
    run_case("spsc", &[("producer", 1), ("consumer", 1)]);
}

#[test]
fn hostile_writes_to_a_live_topic_give_errors_never_panics_crashes_or_hangs() {
    run_case("topic", &[("publisher", 2), ("reliable", 1), ("lossy", 1)]);
}
