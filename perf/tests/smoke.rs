//! `shmq-perf --smoke` as CI runs it: every row, a few thousand messages, every payload
//! checked, exit 0, and no segment file left in its (private) `SHMQ_DIR`.
//!
//! Under `cargo test` the binary is a debug build, where only `--smoke` runs (a real run is
//! refused); under `cargo test --release` both would run, and only the smoke run is made here.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One run at a time: two runs at once would make four processes spin on two CPUs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `shmq-perf ARGS` with `SHMQ_DIR=dir`; kills it after `limit`.
fn perf(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmq-perf"))
        .args(args)
        .env("SHMQ_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmq-perf");
    let t = Instant::now();
    while child.try_wait().expect("wait for shmq-perf").is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap shmq-perf");
            panic!(
                "shmq-perf {args:?} ran over {limit:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("shmq-perf output")
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "files left in SHMQ_DIR: {left:?}");
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}); stdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn smoke_checks_every_row_and_leaves_no_segment_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = perf(dir.path(), &["--smoke"], Duration::from_secs(120));
    assert_success(&out, "--smoke");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("smoke: every payload arrived intact and in order"), "{text}");
    for label in ["floor: two atomics", "shmq SPSC, 8 B", "bare shared-memory SPSC ring", "futex ping-pong"] {
        assert!(text.contains(label), "no row {label:?} in:\n{text}");
    }
    assert_empty(dir.path());
}

#[test]
fn smoke_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = perf(dir.path(), &["--smoke", "--json", "--only", "floor,spsc8,bare,spsc64"], Duration::from_secs(120));
    assert_success(&out, "--smoke --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(v["tool"], "shmq-perf");
    assert_eq!(v["config"]["smoke"], true);
    assert_eq!(v["build"]["debug_assertions"], cfg!(debug_assertions));
    assert!(v["machine"]["cpu_model"].is_string() && v["date_utc"].is_string());
    let m = &v["measurements"];
    assert!(m["floor_rtt"]["p50_ns"].as_f64().unwrap() > 0.0);
    assert_eq!(m["spsc_rtt_8"]["reps"].as_array().unwrap().len(), 1);
    assert!(m["spsc_tput_64"]["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(m["bare_ring_tput_64"]["reps"][0]["messages"].as_u64().unwrap() >= 1000);
    assert!(v["ratios"]["spsc_rtt_8_p50_vs_floor"].as_f64().unwrap() > 0.0);
    assert!(v["ratios"]["spsc_tput_64_vs_bare_ring"].as_f64().unwrap() > 0.0);
    assert!(v["targets"].as_array().unwrap().iter().all(|t| t["met"].is_boolean()));
    assert!(m.get("futex_rtt").is_none(), "--only ran only the rows asked for");
    assert_empty(dir.path());
}

#[test]
fn smoke_group_rows_deliver_every_message_to_one_member() {
    let dir = tempfile::tempdir().unwrap();
    let out = perf(dir.path(), &["--smoke", "--json", "--only", "topic,group"], Duration::from_secs(120));
    assert_success(&out, "--smoke --json --only topic,group");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let m = &v["measurements"];
    for (name, k) in [("group1_tput_64", 1), ("group2_tput_64", 2), ("group4_tput_64", 4)] {
        assert_eq!(m[name]["row"], "group");
        assert_eq!(m[name]["kind"], "throughput");
        let rep = &m[name]["reps"][0];
        let per_member: Vec<u64> = rep["per_member"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        assert_eq!(per_member.len(), k, "{name}: {rep}");
        assert_eq!(per_member.iter().sum::<u64>(), rep["messages"].as_u64().unwrap(), "{name}: {rep}");
        assert!(m[name]["msgs_per_sec"].as_f64().unwrap() > 0.0);
        assert!(v["ratios"][format!("{name}_vs_topic_tput_64")].as_f64().unwrap() > 0.0);
    }
    assert!(m.get("topic_tput_64").is_some() && m.get("spsc_rtt_8").is_none());
    assert_empty(dir.path());
}

#[test]
fn a_debug_build_refuses_to_measure() {
    if !cfg!(debug_assertions) {
        return; // this test binary, and so shmq-perf, is a release build
    }
    let dir = tempfile::tempdir().unwrap();
    let out = perf(dir.path(), &["--reps", "1"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("debug build"));
    assert_empty(dir.path());
}
