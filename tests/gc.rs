//! What `shmq gc` removes: segments nobody alive uses and nothing in them is waiting for.

use std::process::Command;

use shmq::status::{gc_verdict, GcVerdict};
use shmq::{QueueOptions, TopicOptions};

const CHILD_ENV: &str = "SHMQ_GC_CHILD";

/// Child: creates the segment described in the env and exits (so its creator is dead).
#[test]
fn child_creates_and_exits() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (dir, what, name) = (parts[0], parts[1], parts[2]);
    match what {
        "empty" => drop(QueueOptions::new().dir(dir).create(name).unwrap()),
        "full" => {
            let q = QueueOptions::new().dir(dir).create(name).unwrap();
            q.producer().unwrap().send(b"waiting").unwrap();
        }
        "durable" => {
            let t = TopicOptions::new().dir(dir).create(name).unwrap();
            drop(t.subscriber().name("billing").build().unwrap());
        }
        "anon" => {
            let t = TopicOptions::new().dir(dir).create(name).unwrap();
            let sub = t.subscriber().build().unwrap();
            std::mem::forget(sub); // dies without leaving: its entry stays, owned by a dead pid
        }
        "attached" => {
            let q = QueueOptions::new().dir(dir).create(name).unwrap();
            std::mem::forget(q); // exits without detaching: a dead participant stays
        }
        _ => unreachable!(),
    }
}

fn create_in_child(dir: &std::path::Path, what: &str, name: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_creates_and_exits", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{what}|{name}", dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "child creating {what} failed: {}", String::from_utf8_lossy(&out.stderr));
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
    assert!(matches!(&keep, GcVerdict::Keep(why) if why.contains("1 messages are waiting")), "{keep:?}");
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
