//! A recorder process SIGKILLed every ~200 ms and restarted while a publisher process publishes:
//! the journal ends up holding every published message exactly once, in order.

use std::time::{Duration, Instant};

use shmq::journal::{Fsync, JournalOptions, JournalReader, Recorder, ReplayFrom};
use shmq::TopicOptions;
use shmq_test_support::{report, sleep_until_killed, ChildProc, Role, Scene};

use crate::{DIR_ENV, NAME_ENV};

/// The roles of this module's children.
pub const ROLES: &[Role] = &[("journal publisher", publisher), ("journal recorder", recorder)];

const LIMIT: Duration = Duration::from_secs(240);
const WATCHDOG: Duration = Duration::from_secs(300);
const JOURNAL_ENV: &str = "SHMQ_TEST_JOURNAL";
const COUNT_ENV: &str = "SHMQ_TEST_COUNT";
/// Messages published.
const N: u64 = 200_000;

fn payload(seq: u64) -> Vec<u8> {
    let len = 8 + (seq % 57) as usize;
    let mut b = vec![(seq % 251) as u8; len];
    b[..8].copy_from_slice(&seq.to_le_bytes());
    b
}

fn topic() -> shmq::Topic {
    let dir = shmq_test_support::env(DIR_ENV);
    TopicOptions::new().dir(dir).open(&shmq_test_support::env(NAME_ENV)).expect("open the topic")
}

/// Publishes `COUNT` messages (their sequence numbers in their first 8 bytes), pausing 1 ms
/// every 70, and leaves.
fn publisher() {
    let t = topic();
    let mut p = t.publisher().expect("publisher");
    report("ready");
    let n = shmq_test_support::env_u64(COUNT_ENV);
    for s in 0..n {
        p.send_timeout(&payload(s), LIMIT).expect("publish");
        // About 3 s in all, so that the recorder is killed a dozen times meanwhile.
        if s % 70 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    report("done");
}

/// Records the topic into the journal until killed, or until every publisher left (then it
/// says so and exits).
fn recorder() {
    let t = topic();
    let opts = JournalOptions::new(shmq_test_support::env(JOURNAL_ENV))
        .file_size(1 << 20)
        .fsync(Fsync::Interval(Duration::from_millis(2)));
    let (mut r, damage) = Recorder::new(&t, &opts).expect("recorder");
    report(&format!("ready {}", damage.len()));
    loop {
        match r.record_for(Duration::from_millis(20)) {
            Ok(_) => {}
            Err(shmq::Error::Disconnected) => {
                r.flush().expect("flush");
                report(&format!("finished {}", r.writer().last_seq().map_or(-1, |s| s as i64)));
                sleep_until_killed(LIMIT);
            }
            Err(e) => panic!("record: {e}"),
        }
    }
}

#[test]
fn a_recorder_killed_every_200_ms_loses_nothing_and_writes_nothing_twice() {
    let _heavy = shmq_test_support::heavy();
    let scene = Scene::new("journal-kill", LIMIT, WATCHDOG);
    let jdir = scene.join("journal");
    // Room for what is published between two syncs (the recorder gates the publisher).
    TopicOptions::new().dir(scene.path()).capacity(4096).max_msg_size(64).create(scene.name()).unwrap();
    let envs = |extra: Vec<(&'static str, String)>| {
        let mut e = vec![
            (DIR_ENV, scene.path().display().to_string()),
            (NAME_ENV, scene.name().to_string()),
            (JOURNAL_ENV, jdir.display().to_string()),
        ];
        e.extend(extra);
        e
    };
    // The first recorder subscribes before anything is published.
    let mut rec = ChildProc::spawn("journal recorder", &envs(vec![]));
    rec.wait_line("ready", scene.deadline());
    let mut publisher = ChildProc::spawn("journal publisher", &envs(vec![(COUNT_ENV, N.to_string())]));
    publisher.wait_line("ready", scene.deadline());
    let (mut kills, mut cut) = (0u32, 0u64);
    let started = Instant::now();
    let published = || shmq::status::Status::read(scene.path(), scene.name()).map_or(0, |s| s.counters.tail);
    // Kill and restart the recorder every 150 to 250 ms while the publisher runs.
    let mut rng = shmq_test_support::Rng::new(7);
    while published() < N {
        std::thread::sleep(Duration::from_millis(150 + rng.below(100)));
        rec.kill(); // SIGKILL
        kills += 1;
        rec = ChildProc::spawn("journal recorder", &envs(vec![]));
        let ready = rec.wait_line("ready", scene.deadline());
        cut += ready.parse::<u64>().unwrap();
        assert!(Instant::now() < scene.deadline(), "the publisher did not finish");
    }
    publisher.expect_success(scene.deadline());
    // The last recorder records the rest and sees the publisher gone.
    let last: i64 = rec.wait_line("finished", scene.deadline()).parse().unwrap();
    rec.kill();
    assert_eq!(last, N as i64 - 1);
    // Every message once, in order, intact.
    let mut next = 0u64;
    let mut reader = JournalReader::open(&jdir, scene.name(), ReplayFrom::Start).unwrap();
    for r in reader.by_ref() {
        let r = r.unwrap();
        assert_eq!(r.seq, next, "a message missing or twice in the journal");
        assert_eq!(r.payload, payload(r.seq), "message {} damaged", r.seq);
        next += 1;
    }
    assert_eq!(next, N);
    assert!(reader.damage().is_empty(), "{:?}", reader.damage());
    assert!(kills >= 5, "only {kills} kills: the publisher was too fast for the test to mean much");
    eprintln!(
        "journal-kill: {N} messages published while the recorder was SIGKILLed {kills} times in {:?}; the journal holds each once ({cut} torn tails cut off)",
        started.elapsed()
    );
}
