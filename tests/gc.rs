//! What `shmq gc` removes: segments nobody alive uses and nothing in them is waiting for.

use std::path::Path;
use std::time::{Duration, Instant};

use shmq::status::{gc_verdict, GcVerdict};
use shmq::{QueueOptions, TopicOptions};
use shmq_test_support::{env, ChildProc, Role};

shmq_test_support::children!(ROLES);

/// The child: creates a segment and exits (so its creator is dead).
const ROLES: &[Role] = &[("gc creates-and-exits", creates_and_exits)];

/// Environment of the child: the directory, what to create, its name.
const DIR_ENV: &str = "SHMQ_GC_DIR";
const WHAT_ENV: &str = "SHMQ_GC_WHAT";
const NAME_ENV: &str = "SHMQ_GC_NAME";

/// Child: creates the segment described in the environment and exits.
fn creates_and_exits() {
    let (dir, what, name) = (env(DIR_ENV), env(WHAT_ENV), env(NAME_ENV));
    let name = name.as_str();
    match what.as_str() {
        "empty" => drop(QueueOptions::new().dir(&dir).create(name).unwrap()),
        "full" => {
            let q = QueueOptions::new().dir(&dir).create(name).unwrap();
            q.producer().unwrap().send(b"waiting").unwrap();
        }
        "durable" => {
            let t = TopicOptions::new().dir(&dir).create(name).unwrap();
            drop(t.subscriber().name("billing").build().unwrap());
        }
        "anon" => {
            let t = TopicOptions::new().dir(&dir).create(name).unwrap();
            let sub = t.subscriber().build().unwrap();
            std::mem::forget(sub); // dies without leaving: its entry stays, owned by a dead pid
        }
        "attached" => {
            let q = QueueOptions::new().dir(&dir).create(name).unwrap();
            std::mem::forget(q); // exits without detaching: a dead participant stays
        }
        other => panic!("unknown segment to create: {other:?}"),
    }
}

fn create_in_child(dir: &Path, what: &str, name: &str) {
    let envs = [(DIR_ENV, dir.display().to_string()), (WHAT_ENV, what.to_string()), (NAME_ENV, name.to_string())];
    let mut child = ChildProc::spawn("gc creates-and-exits", &envs);
    child.expect_success(Instant::now() + Duration::from_secs(60));
}

fn removes(v: &GcVerdict) -> bool {
    matches!(v, GcVerdict::Remove(_))
}

#[test]
fn gc_removes_only_what_nobody_needs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (what, name) in
        [("empty", "q-empty"), ("full", "q-full"), ("durable", "t-durable"), ("anon", "t-anon"), ("attached", "q-dead")]
    {
        create_in_child(d, what, name);
    }
    let held = QueueOptions::new().dir(d).create("q-held").unwrap();

    assert!(removes(&gc_verdict(d, "q-empty", false)));
    assert!(removes(&gc_verdict(d, "q-dead", false)), "a dead participant does not keep a segment");
    assert!(removes(&gc_verdict(d, "t-anon", false)), "a dead anonymous subscriber does not keep a topic");
    let keep = gc_verdict(d, "q-full", false);
    assert!(matches!(&keep, GcVerdict::KeepUnlessForced(why) if why == "1 message is waiting"), "{keep:?}");
    assert!(removes(&gc_verdict(d, "q-full", true)));
    assert!(!removes(&gc_verdict(d, "t-durable", false)));
    assert!(removes(&gc_verdict(d, "t-durable", true)));
    assert!(!removes(&gc_verdict(d, "q-held", false)), "this live process created it and is attached");
    drop(held);
}

#[test]
fn gc_removes_a_segment_left_half_initialised_by_a_dead_creator() {
    let dir = tempfile::tempdir().unwrap();
    // A file that never grew past a header: what a creator killed right after creating it leaves.
    std::fs::write(dir.path().join("shmq.half"), [0u8; 64]).unwrap();
    assert!(removes(&gc_verdict(dir.path(), "half", false)));
}
