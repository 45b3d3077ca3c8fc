//! The trust issue's reproducers that go through the `shmq` command line: `shmq gc` racing a
//! live creator, and `shmq recv` whose reader went away. (The library's own reproducers are in
//! the root package's `tests/trust.rs`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmq::QueueOptions;
use shmq_test_support::Watchdog;

/// Watchdog of every test.
const WATCHDOG: Duration = Duration::from_secs(120);

/// The tests run one at a time: the gc test forks `shmq gc` in a loop, and a child between its
/// fork and its exec holds a copy of every descriptor of this process, the read end of the
/// closed-pipe test's pipe from `shmq recv` included, so that recv's stdout would still count
/// as open after that test closed its end.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A private segment directory and a watchdog.
struct Scene {
    // Field order is drop order: stop the watchdog, then remove the directory.
    _dog: Watchdog,
    dir: tempfile::TempDir,
}

impl Scene {
    fn new(name: &str) -> Scene {
        Self::with_dir(name, tempfile::tempdir().expect("temporary directory"))
    }

    /// The directory is on tmpfs (/dev/shm), where file pages are memory.
    fn on_tmpfs(name: &str) -> Scene {
        Self::with_dir(name, tempfile::tempdir_in("/dev/shm").expect("temporary directory in /dev/shm"))
    }

    fn with_dir(name: &str, dir: tempfile::TempDir) -> Scene {
        let dog = Watchdog::start(name, WATCHDOG, Some(dir.path()));
        Scene { _dog: dog, dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Polls `cond` every millisecond until it holds; panics with `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `shmq gc` does not remove a segment whose creator is alive and still initialising it (a
/// large segment takes a while to reserve and map): the creator ends with a queue that others
/// can open by name.
#[test]
fn gc_does_not_remove_a_segment_its_live_creator_is_still_initialising() {
    let _alone = one_at_a_time();
    let scene = Scene::on_tmpfs("gc-vs-create");
    let dir = scene.path().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let gc_runs = Arc::new(AtomicU64::new(0));
    let gc = {
        let (dir, stop, gc_runs) = (dir.clone(), stop.clone(), gc_runs.clone());
        std::thread::spawn(move || {
            let mut removed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
                    .arg("--dir")
                    .arg(&dir)
                    .arg("gc")
                    .stdin(Stdio::null())
                    .output()
                    .expect("run shmq gc");
                gc_runs.fetch_add(1, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&out.stdout);
                removed.extend(text.lines().filter(|l| l.starts_with("removed ")).map(str::to_string));
            }
            removed
        })
    };
    // Let gc run at least once on the empty directory first.
    wait_for("a first gc run", Duration::from_secs(10), || gc_runs.load(Ordering::Relaxed) > 0);
    let t0 = Instant::now();
    // 2^22 slots of 320 bytes: 1.3 GB to reserve (the file reads as empty meanwhile) and
    // pre-fault, which takes longer than the 200 ms that gc waits for a segment's header.
    let q = match QueueOptions::new().dir(&dir).capacity(1 << 22).max_msg_size(256).create("big") {
        Ok(q) => q,
        Err(e @ shmq::OpenError::NoSpace { .. }) => {
            stop.store(true, Ordering::Relaxed);
            let _ = gc.join();
            eprintln!("skipped: /dev/shm has no room for a 1.3 GB segment: {e}");
            return;
        }
        Err(e) => panic!("create the large queue: {e}"),
    };
    let took = t0.elapsed();
    q.producer().expect("producer").send(b"still here").expect("send");
    // Give gc time to look at the finished segment too.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let removed = gc.join().expect("gc thread");

    let reopened = QueueOptions::new().dir(&dir).open("big");
    let found = match &reopened {
        Ok(q2) => {
            let mut rx = q2.consumer().expect("consumer");
            let mut buf = [0u8; 256];
            match rx.try_recv(&mut buf) {
                Ok(m) => format!("message {:?}", String::from_utf8_lossy(&buf[..m.len])),
                Err(e) => format!("no message ({e})"),
            }
        }
        Err(e) => format!("open failed: {e}"),
    };
    let _ = q.unlink();
    eprintln!("gc-vs-create: create took {took:?}, {} gc runs", gc_runs.load(Ordering::Relaxed));
    assert!(
        found == "message \"still here\"",
        "shmq gc removed a segment while its live creator was initialising it (create took \
         {took:?}); gc said {removed:?}; re-opening by name: {found}"
    );
}

// =============================================================================================
// 11. shmq recv into a closed pipe
// =============================================================================================

/// `shmq recv` whose reader went away (`shmq recv q | head -2`) does not take messages it cannot
/// deliver: it exits with a non-zero status and says on stderr how many it delivered, and a
/// message sent after the reader left stays in the queue. (`--wait-for-producer`: the first
/// producer has left before recv starts, and recv must stop for its closed stdout, not for
/// that.)
#[test]
fn shmq_recv_into_a_closed_pipe_fails_and_leaves_later_messages_queued() {
    let _alone = one_at_a_time();
    let scene = Scene::new("recv-head");
    let shmq = env!("CARGO_BIN_EXE_shmq");
    let dir = scene.path();
    let sent = Command::new(shmq).arg("--dir").arg(dir).args(["send", "q", "--count", "10"]).output().expect("send");
    assert!(sent.status.success(), "shmq send: {}", String::from_utf8_lossy(&sent.stderr));

    let mut recv = Command::new(shmq)
        .arg("--dir")
        .arg(dir)
        .args(["recv", "q", "--wait-for-producer"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmq recv");
    let mut lines = BufReader::new(recv.stdout.take().expect("stdout"));
    let mut first = String::new();
    for _ in 0..2 {
        lines.read_line(&mut first).expect("read a line from recv");
    }
    drop(lines); // like `head -2`: the reader goes away

    let mut send = Command::new(shmq)
        .arg("--dir")
        .arg(dir)
        .args(["send", "q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmq send");
    send.stdin.take().expect("stdin").write_all(b"eleventh\n").expect("write the message");
    let out = send.wait_with_output().expect("shmq send");
    assert!(out.status.success(), "shmq send of the 11th: {}", String::from_utf8_lossy(&out.stderr));

    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = recv.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() >= end {
            let _ = recv.kill();
            let _ = recv.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    recv.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");

    let q = QueueOptions::new().dir(dir).open("q").expect("open the queue");
    let mut rx = q.consumer().expect("consumer");
    let mut left = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(m) = rx.try_recv(&mut buf) {
        left.push(String::from_utf8_lossy(&buf[..m.len]).into_owned());
    }
    assert_eq!(first, "0\n1\n", "test setup: the first two lines");
    assert!(
        status.is_some_and(|st| !st.success())
            && stderr.bytes().any(|b| b.is_ascii_digit())
            && left.iter().any(|m| m == "eleventh"),
        "after its reader left, shmq recv exited with {status:?} (expected a failure) and stderr \
         {stderr:?} (expected how many messages it delivered); the queue still holds {left:?} \
         (expected the 11th message, \"eleventh\")"
    );
}
