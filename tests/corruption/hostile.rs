//! Hostile segments: random bytes written into the header, the control block, the participant
//! table and the slots of a live segment (through the file, as another process could) must give
//! `Ok` or errors from every call — never a panic, a hang or a read outside the segment.
//!
//! The sweeps run in a child process (this test binary again), so that a crash (SIGSEGV,
//! SIGBUS) is reported with the corruption of the round that caused it. The corruption comes
//! from `shmq_test_support::Corrupter` (the hostile writer's too, with other weights). Inside
//! the child each round's operations run on a worker thread under a per-operation watchdog, and
//! each operation under `catch_unwind`. Every round prints its seed and corruption; a failing
//! round can be replayed with `SHMQ_HOSTILE_SEED`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use shmq::status::Status;
use shmq::{Error, OpenError, Queue, QueueKind, QueueOptions, WaitStrategy};
use shmq_test_support::corrupt::{field, SLOT_LEN};

use crate::{panic_message, touch};
use shmq_test_support::{env, env_u64, report, ChildProc, Corrupter, Geometry, Hit, RawMap, Rng, Role, Scene, Weights};

const SEED: &str = "SHMQ_HOSTILE_SEED";
const ROUNDS: &str = "SHMQ_HOSTILE_ROUNDS";
const DIR: &str = "SHMQ_HOSTILE_DIR";
/// Rounds per sweep.
const SWEEP_ROUNDS: u64 = 500;
/// One operation may take this long before the round counts as hung (all are bounded by
/// short timeouts; this is generous for debug builds on a busy machine).
const OP_LIMIT: Duration = Duration::from_secs(20);
/// Deadline of a whole sweep.
const SWEEP_LIMIT: Duration = Duration::from_secs(240);
/// Timeout of the timed operations under test.
const SHORT: Duration = Duration::from_millis(2);

/// The roles of this module's children: one sweep each.
pub const ROLES: &[Role] = &[
    ("hostile spsc", || sweep_from_env(QueueKind::Spsc, false)),
    ("hostile mpmc", || sweep_from_env(QueueKind::Mpmc, false)),
    ("hostile spsc-concurrent", || sweep_from_env(QueueKind::Spsc, true)),
    ("hostile mpmc-concurrent", || sweep_from_env(QueueKind::Mpmc, true)),
];

// ---------------------------------------------------------------------------------------------
// Running operations under a watchdog
// ---------------------------------------------------------------------------------------------

enum Event {
    Start(&'static str),
    Done(&'static str, Outcome),
    Panicked(&'static str, String),
    Finished,
}

/// What one operation did: `None` if it could not be tried (no producer or consumer handle),
/// else whether it returned `Ok`.
type Outcome = Option<bool>;

/// The outcome of a call, whatever its operation's error type.
fn outcome<T, E>(r: &Result<T, E>) -> Outcome {
    Some(r.is_ok())
}

/// Per operation: how many calls returned `Ok` and how many an error, over a sweep.
type Tally = std::collections::BTreeMap<&'static str, (u64, u64)>;

/// Runs `ops` on a worker thread, each under `catch_unwind`, and counts their outcomes into
/// `tally`; fails with `context()` if one panics or takes longer than [`OP_LIMIT`].
fn guarded(
    context: &dyn Fn() -> String,
    tally: &mut Tally,
    ops: impl FnOnce(&mut dyn FnMut(&'static str, &mut dyn FnMut() -> Outcome)) + Send + 'static,
) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut run = |name: &'static str, op: &mut dyn FnMut() -> Outcome| {
            let _ = tx.send(Event::Start(name));
            match catch_unwind(AssertUnwindSafe(op)) {
                Ok(o) => {
                    let _ = tx.send(Event::Done(name, o));
                }
                Err(p) => {
                    let _ = tx.send(Event::Panicked(name, panic_message(&*p)));
                }
            }
        };
        ops(&mut run);
        let _ = tx.send(Event::Finished);
    });
    let mut current = "setup";
    loop {
        match rx.recv_timeout(OP_LIMIT) {
            Ok(Event::Start(name)) => current = name,
            Ok(Event::Done(name, o)) => {
                current = "between operations";
                let t = tally.entry(name).or_default();
                match o {
                    Some(true) => t.0 += 1,
                    Some(false) => t.1 += 1,
                    None => {}
                }
            }
            Ok(Event::Panicked(name, msg)) => panic!("{name} panicked: {msg}\n{}", context()),
            Ok(Event::Finished) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{current} hung for {OP_LIMIT:?}\n{}", context()),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("worker died in {current}\n{}", context()),
        }
    }
}

/// Every operation of the API on a (corrupted) queue; results may be anything but a panic or a
/// hang. Received data is read in full, so a bad length or pointer would fault.
fn exercise(
    q: Queue,
    dir: &Path,
    name: &str,
    rng: &mut Rng,
    run: &mut dyn FnMut(&'static str, &mut dyn FnMut() -> Outcome),
) {
    let max = q.max_msg_size();
    let msg: Vec<u8> = (0..rng.below(max as u64 + 1)).map(|i| i as u8).collect();
    let mut tx = None;
    let mut rx = None;
    run("producer", &mut || {
        let r = q.producer();
        let o = outcome(&r);
        tx = r.ok();
        o
    });
    run("consumer", &mut || {
        let r = q.consumer();
        let o = outcome(&r);
        rx = r.ok();
        o
    });
    run("try_recv", &mut || {
        let mut buf = vec![0u8; max];
        let r = rx.as_mut()?.try_recv(&mut buf);
        if let Ok(m) = &r {
            assert!(m.len <= max, "received {} bytes, more than the maximum {max}", m.len);
        }
        outcome(&r)
    });
    run("try_recv into a small buffer", &mut || {
        let mut buf = [0u8; 3];
        let r = rx.as_mut()?.try_recv(&mut buf);
        if let Ok(m) = &r {
            assert!(m.len <= 3, "received {} bytes into a 3-byte buffer", m.len);
        }
        outcome(&r)
    });
    run("recv_timeout", &mut || {
        let mut buf = vec![0u8; max];
        outcome(&rx.as_mut()?.recv_timeout(&mut buf, SHORT))
    });
    run("try_recv_ref", &mut || {
        let r = rx.as_mut()?.try_recv_ref();
        if let Ok(m) = &r {
            assert!(m.len() <= max, "message of {} bytes, more than the maximum {max}", m.len());
            touch(m);
        }
        outcome(&r)
    });
    run("recv_ref_timeout", &mut || {
        let r = rx.as_mut()?.recv_ref_timeout(SHORT);
        if let Ok(m) = &r {
            touch(m);
        }
        outcome(&r)
    });
    run("try_recv_batch", &mut || {
        outcome(&rx.as_mut()?.try_recv_batch(8, |p, _| {
            assert!(p.len() <= max, "batch message of {} bytes, more than the maximum {max}", p.len());
            touch(p);
        }))
    });
    run("try_send", &mut || outcome(&tx.as_mut()?.try_send(&msg)));
    run("send_timeout", &mut || outcome(&tx.as_mut()?.send_kind_timeout(3, &msg, SHORT)));
    run("try_send_batch", &mut || outcome(&tx.as_mut()?.try_send_batch(&[&msg, &msg[..msg.len() / 2]])));
    run("try_loan", &mut || {
        let r = tx.as_mut()?.try_loan().map_err(Error::from).and_then(|mut loan| {
            loan.fill(0xA5);
            loan.commit(msg.len()).map_err(Error::from)
        });
        outcome(&r)
    });
    run("snapshots", &mut || {
        let _ = (q.len(), q.is_empty(), q.counters());
        None
    });
    run("Status::read", &mut || outcome(&Status::read(dir, name)));
    run("producer and consumer again", &mut || {
        drop(tx.take());
        drop(rx.take());
        let (p, c) = (q.producer(), q.consumer());
        Some(p.is_ok() && c.is_ok())
    });
    run("open", &mut || {
        let opts = QueueOptions::new().dir(dir).ready_timeout(Duration::from_millis(20));
        let r = opts.open(name);
        if let Ok(q2) = &r {
            let mut buf = vec![0u8; q2.max_msg_size()];
            if let Ok(mut rx2) = q2.consumer() {
                let _ = rx2.try_recv(&mut buf);
            }
            if let Ok(mut tx2) = q2.producer() {
                let _ = tx2.try_send(&buf[..buf.len().min(msg.len())]);
            }
        }
        outcome(&r)
    });
    run("open with expectations", &mut || {
        let opts = QueueOptions::new().dir(dir).ready_timeout(Duration::from_millis(20));
        outcome(&opts.kind(q.kind()).capacity(q.capacity()).max_msg_size(max).open(name))
    });
}

/// Creates a queue of a random shape and moves it a random way into its life.
fn fresh_queue(rng: &mut Rng, dir: &Path, name: &str, kind: QueueKind) -> Queue {
    let capacity = *rng.pick(&[2usize, 4, 8, 16]);
    // 1, not 0: a maximum message size of 0 is refused now.
    let max_msg = *rng.pick(&[1usize, 8, 24, 100]);
    let wait = *rng.pick(&[WaitStrategy::Spin, WaitStrategy::Yield, WaitStrategy::Block]);
    let q = QueueOptions::new()
        .dir(dir)
        .kind(kind)
        .capacity(capacity)
        .max_msg_size(max_msg)
        .wait(wait)
        .create(name)
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    let mut buf = vec![0u8; max_msg];
    let laps = rng.below(3) * capacity as u64 + rng.below(capacity as u64);
    for i in 0..laps {
        let len = (i as usize) % (max_msg + 1);
        tx.try_send_kind(i as u32, &buf[..len]).expect("send while warming up");
        rx.try_recv(&mut buf).expect("receive while warming up");
    }
    for i in 0..rng.below(capacity as u64 + 1) {
        let len = (i as usize * 7) % (max_msg + 1);
        tx.try_send_kind(i as u32, &vec![i as u8; len]).expect("fill");
    }
    q
}

/// `rounds` rounds: a fresh queue, one to four corruptions (or, if `concurrent`, a thread that
/// keeps corrupting while the operations run), then every operation.
fn sweep(kind: QueueKind, concurrent: bool, rounds: u64, seed: u64, dir: &Path) {
    let mut tally = Tally::new();
    for round in 0..rounds {
        let round_seed = seed ^ round.wrapping_mul(0xA24B_AED4_963E_E407);
        let mut rng = Rng::new(round_seed);
        let name = format!("r{round}");
        let q = fresh_queue(&mut rng, dir, &name, kind);
        let corrupter = Corrupter::new(RawMap::open(q.path()), Weights::SWEEP);
        let g = *corrupter.geometry();
        let stop = Arc::new(AtomicBool::new(false));
        let mut racer = None;
        let hits: Vec<Hit> = if concurrent {
            let (stop, mut crng) = (stop.clone(), rng.clone());
            racer = Some(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    corrupter.hit(&mut crng);
                    std::thread::yield_now();
                }
            }));
            Vec::new()
        } else {
            (0..1 + rng.below(4)).map(|_| corrupter.hit(&mut rng)).collect()
        };
        let what = if concurrent {
            "concurrent random writes".to_string()
        } else {
            hits.iter().map(Hit::to_string).collect::<Vec<_>>().join("; ")
        };
        let context = format!("round {round} of {kind:?} (replay: {SEED}={seed}), {g:?}, corruption: {what}");
        report(&context);
        let (dir2, name2) = (dir.to_path_buf(), name.clone());
        let q2 = q.clone();
        guarded(&|| context.clone(), &mut tally, move |run| exercise(q2, &dir2, &name2, &mut rng, run));
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = racer {
            t.join().expect("corrupter thread");
        }
        q.unlink().expect("unlink");
    }
    let tally: Vec<String> = tally.iter().map(|(op, (ok, err))| format!("{op}={ok}/{err}")).collect();
    report(&format!("tally (ok/err) {}", tally.join(",")));
    report(&format!("done {rounds}"));
}

/// A sweep in a child, as the parent set it up (see [`run_sweep`]).
fn sweep_from_env(kind: QueueKind, concurrent: bool) {
    let (seed, rounds, dir) = (env_u64(SEED), env_u64(ROUNDS), env(DIR));
    sweep(kind, concurrent, rounds, seed, Path::new(&dir));
}

/// Runs sweep `role` in a child process and fails with its last rounds if it does not finish.
fn run_sweep(role: &str, default_seed: u64) {
    let seed = std::env::var(SEED).ok().and_then(|s| s.parse().ok()).unwrap_or(default_seed);
    let scene = Scene::new(role, SWEEP_LIMIT, SWEEP_LIMIT + Duration::from_secs(60));
    let envs =
        [(SEED, seed.to_string()), (ROUNDS, SWEEP_ROUNDS.to_string()), (DIR, scene.path().display().to_string())];
    let mut child = ChildProc::spawn(role, &envs);
    let lines = child.expect_success(scene.deadline());
    assert_eq!(lines.last().map(String::as_str), Some(format!("done {SWEEP_ROUNDS}").as_str()), "sweep ended early");
    // The sweep is only worth something if corruption both broke and spared operations: these
    // must have returned Ok in some rounds and an error in others, and sends must have worked.
    let tally = lines.iter().find_map(|l| l.strip_prefix("tally (ok/err) ")).expect("tally line");
    eprintln!("{role}: {tally}");
    let count = |op: &str| {
        tally
            .split(',')
            .find_map(|kv| kv.strip_prefix(op).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.split_once('/'))
            .map(|(ok, err)| (ok.parse::<u64>().unwrap(), err.parse::<u64>().unwrap()))
            .unwrap_or_else(|| panic!("no tally for {op} in {tally}"))
    };
    for op in ["try_recv", "recv_timeout", "open", "Status::read"] {
        let (ok, err) = count(op);
        assert!(ok > 0 && err > 0, "{op} should have both succeeded and failed over the sweep: {ok}/{err}");
    }
    for op in ["try_send", "try_loan"] {
        assert!(count(op).0 > 0, "{op} never succeeded over the sweep");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn random_corruption_of_a_live_spsc_segment_gives_errors_never_panics_or_hangs() {
    run_sweep("hostile spsc", 0x5350_5343);
}

#[test]
fn random_corruption_of_a_live_mpmc_segment_gives_errors_never_panics_or_hangs() {
    run_sweep("hostile mpmc", 0x4D50_4D43);
}

#[test]
fn corruption_racing_with_spsc_operations_never_panics_or_hangs() {
    run_sweep("hostile spsc-concurrent", 0xC5C5);
}

#[test]
fn corruption_racing_with_mpmc_operations_never_panics_or_hangs() {
    run_sweep("hostile mpmc-concurrent", 0xC4C4);
}

/// Each validated header field, set to a wrong value, makes `open` fail with the matching error.
#[test]
fn open_rejects_a_segment_whose_header_was_overwritten() {
    let limit = Duration::from_secs(60);
    let scene = Scene::new("header", limit, limit);
    let cases: &[(&str, &[u8], &str)] = &[
        ("magic", b"NOTSHMQ!", "Incompatible"),
        ("version", &99u32.to_le_bytes(), "Incompatible"),
        ("kind", &7u32.to_le_bytes(), "Incompatible"),
        ("init", &0x1234u32.to_le_bytes(), "Corrupted"),
        ("line", &64u32.to_le_bytes(), "Incompatible"),
        ("max_msg", &(u32::MAX).to_le_bytes(), "Corrupted"),
        ("capacity", &3u64.to_le_bytes(), "Corrupted"),
        ("capacity", &(1u64 << 40).to_le_bytes(), "Corrupted"),
        ("capacity", &(1u64 << 20).to_le_bytes(), "Incompatible"),
        ("slot_stride", &8u64.to_le_bytes(), "Incompatible"),
        ("max_participants", &0u32.to_le_bytes(), "Corrupted"),
        ("max_participants", &4000u32.to_le_bytes(), "Incompatible"),
        ("max_subscribers", &5u32.to_le_bytes(), "Corrupted"),
        ("participants_offset", &0u64.to_le_bytes(), "Incompatible"),
        ("subscribers_offset", &u64::MAX.to_le_bytes(), "Incompatible"),
        ("slots_offset", &128u64.to_le_bytes(), "Incompatible"),
        ("total_size", &(1u64 << 30).to_le_bytes(), "Incompatible"),
    ];
    for (i, &(what, bytes, want)) in cases.iter().enumerate() {
        let f = field(&format!("header.{what}"));
        assert_eq!(f.width, bytes.len(), "test setup: the width of {what}");
        for kind in [QueueKind::Spsc, QueueKind::Mpmc] {
            let name = format!("h{i}-{kind:?}");
            let q =
                QueueOptions::new().dir(scene.path()).kind(kind).capacity(8).max_msg_size(32).create(&name).unwrap();
            RawMap::open(q.path()).write_bytes(f.offset, bytes);
            let opts = QueueOptions::new().dir(scene.path()).ready_timeout(Duration::from_millis(20));
            let got = catch_unwind(AssertUnwindSafe(|| opts.open(&name)))
                .unwrap_or_else(|_| panic!("open panicked after {what} was overwritten"));
            let ok = matches!(
                (&got, want),
                (Err(OpenError::Incompatible { .. }), "Incompatible") | (Err(OpenError::Corrupted(_)), "Corrupted")
            );
            assert!(ok, "{kind:?} with {what} overwritten by {bytes:02x?}: want {want}, got {got:?}");
            let status = Status::read(scene.path(), &name);
            assert!(status.is_err(), "Status::read must reject it too ({what}), got {status:?}");
            q.unlink().expect("unlink");
        }
    }
}

/// A peer that rewrites a message's length after a consumer checked it against its buffer (but
/// before it copies) must not make the consumer overrun the buffer.
#[test]
fn mpmc_length_rewritten_during_a_receive_never_overruns_the_buffer() {
    const ATTEMPTS: u32 = 1_000_000;
    let limit = Duration::from_secs(120);
    let scene = Scene::new("length race", limit, limit);
    let q = QueueOptions::new().dir(scene.path()).capacity(4).max_msg_size(64).create("race").expect("create");
    let map = RawMap::open(q.path());
    let g = Geometry::read(&map);
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let lens: Vec<&AtomicU32> = (0..g.capacity).map(|i| map.u32_at(g.slot(i) + SLOT_LEN.offset)).collect();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let len: u32 = if n % 2 == 0 { 4 } else { 64 };
                lens.iter().for_each(|w| w.store(len, Ordering::Relaxed));
                n = n.wrapping_add(1);
            }
        })
    };
    let (mut tx, mut rx) = (q.producer().expect("producer"), q.consumer().expect("consumer"));
    let mut panicked = None;
    for attempt in 0..ATTEMPTS {
        let _ = tx.try_send(&[1, 2, 3, 4]);
        let mut buf = [0u8; 8];
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| rx.try_recv(&mut buf).map(|m| m.len))) {
            panicked = Some(format!("attempt {attempt}: {}", panic_message(&*p)));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().expect("flipper thread");
    q.unlink().expect("unlink");
    if let Some(p) = panicked {
        panic!("try_recv into an 8-byte buffer panicked while a peer rewrote lengths (4 <-> 64): {p}");
    }
}
