//! The `shmq` binary, run as a user would: every test gives the child its own segment
//! directory through `SHMQ_DIR` (a temporary directory), so nothing touches /dev/shm.

mod cli_support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::*;
use serde_json::Value;

#[test]
fn lines_sent_from_stdin_are_received_one_per_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "orders"], b"buy 100 XYZ\nsell 5\n\nlast line without newline"));
    let got = ok(shmq(dir.path(), &["recv", "orders", "--count", "4", "--timeout", "10000"]));
    assert_eq!(got, "buy 100 XYZ\nsell 5\n\nlast line without newline\n");
    ok(shmq(dir.path(), &["rm", "orders"]));
}

#[test]
fn recv_show_kind_prints_the_kind_sent_with_each_message() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "tagged", "--kind", "7"], b"x\n"));
    let got = ok(shmq(dir.path(), &["recv", "tagged", "--count", "1", "--show-kind", "--timeout", "10000"]));
    assert_eq!(got, "7\tx\n");
}

#[test]
fn generated_messages_start_with_their_sequence_number_and_have_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq(dir.path(), &["send", "gen", "--count", "120", "--size", "40", "--spsc", "--capacity", "128"]));
    let got = ok(shmq(dir.path(), &["recv", "gen", "--count", "120", "--timeout", "10000"]));
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 120);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.len(), 40, "message {i}: {line:?}");
        let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
        assert_eq!(digits, i.to_string(), "message {i} does not start with its number: {line:?}");
    }
}

#[test]
fn a_size_too_small_for_the_sequence_number_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let line = one_line_error(&shmq(dir.path(), &["send", "tiny", "--count", "11", "--size", "1"]));
    assert!(line.contains("--size 1 is too small"), "{line}");
}

#[test]
fn recv_timeout_with_count_exits_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "slow"], b"only one\n"));
    // A producer is attached but sends nothing more: recv times out.
    let q = shmq::QueueOptions::new().dir(dir.path()).open("slow").unwrap();
    let _quiet = q.producer().unwrap();
    let o = shmq(dir.path(), &["recv", "slow", "--count", "2", "--timeout", "100"]);
    let line = one_line_error(&o);
    assert!(line.contains("timed out") && line.contains("1 of 2"), "{line}");
    assert_eq!(stdout(&o), "only one\n", "the message received before the timeout is printed");
}

#[test]
fn recv_exits_when_every_producer_has_left_and_everything_was_received() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "gone"], b"a\nb\n"));
    // No --count: exit 0 after the last message, saying why on stderr.
    let o = shmq(dir.path(), &["recv", "gone"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "a\nb\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("every producer") && err.contains("has left") && err.contains("2 messages"), "{err}");
    // With a --count not reached: exit 1.
    ok(shmq_in(dir.path(), &["send", "gone"], b"c\n"));
    let line = one_line_error(&shmq(dir.path(), &["recv", "gone", "--count", "3"]));
    assert!(line.contains("1 of the 3"), "{line}");
    // --wait-for-producer keeps waiting (here until its timeout).
    let o = shmq(dir.path(), &["recv", "gone", "--wait-for-producer", "--timeout", "300"]);
    assert!(o.status.success() && o.stdout.is_empty(), "{o:?}");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("has left"), "{o:?}");
}

#[test]
fn recv_started_before_any_producer_waits_for_one_and_exits_after_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let recv = std::process::Command::new(env!("CARGO_BIN_EXE_shmq"))
        .arg("--dir")
        .arg(dir.path())
        .args(["recv", "later"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300)); // recv is waiting, no producer yet
    ok(shmq_in(dir.path(), &["send", "later"], b"x\n"));
    let mut recv = recv;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while recv.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > end {
            let _ = recv.kill();
            panic!("recv kept waiting after the only producer left");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let o = recv.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "x\n");
}

#[test]
fn recv_without_count_drains_the_queue_and_exits_zero_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "drain"], b"a\nb\n"));
    assert_eq!(ok(shmq(dir.path(), &["recv", "drain", "--timeout", "100"])), "a\nb\n");
    assert_eq!(ok(shmq(dir.path(), &["recv", "drain", "--timeout", "50"])), "");
}

#[test]
fn send_to_a_full_queue_with_timeout_fails_and_says_how_many_were_sent() {
    let dir = tempfile::tempdir().unwrap();
    let line =
        one_line_error(&shmq(dir.path(), &["send", "full", "--capacity", "4", "--count", "10", "--timeout", "50"]));
    assert!(line.contains("timed out") && line.contains("4 messages sent"), "{line}");
}

#[test]
fn a_line_longer_than_the_maximum_message_is_an_error_naming_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let input = format!("ok\n{}\n", "x".repeat(100));
    let line = one_line_error(&shmq_in(dir.path(), &["send", "narrow", "--max-msg", "16"], input.as_bytes()));
    assert!(line.contains("line 2 is 100 bytes, over the queue's maximum of 16 bytes; sent 1 line"), "{line}");
}

#[test]
fn opening_with_other_settings_than_the_queue_has_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "mp"], b"x\n"));
    let line = one_line_error(&shmq(dir.path(), &["recv", "mp", "--spsc", "--count", "1", "--timeout", "100"]));
    assert!(line.contains("incompatible") && line.contains("spsc"), "{line}");
}

#[test]
fn list_shows_every_queue_with_kind_capacity_and_depth() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "alpha", "--capacity", "8", "--max-msg", "64"], b"1\n2\n3\n"));
    ok(shmq(dir.path(), &["send", "beta", "--spsc", "--count", "2"]));
    let text = ok(shmq(dir.path(), &["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME") && lines[0].contains("DEPTH"), "{text}");
    let alpha: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&alpha[..5], ["alpha", "mpmc", "8", "64", "3"], "{text}");
    let beta: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&beta[..5], ["beta", "spsc", "1024", "256", "2"], "{text}");

    let v = json(shmq(dir.path(), &["list", "--json"]));
    let rows = v.as_array().expect("an array");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "alpha");
    assert_eq!(rows[0]["kind"], "mpmc");
    assert_eq!(rows[0]["capacity"], 8);
    assert_eq!(rows[0]["max_msg"], 64);
    assert_eq!(rows[0]["depth"], 3);
    assert!(rows[0]["memory_bytes"].as_u64().unwrap() > 8 * 64);
    assert_eq!(rows[0]["attached"], 0, "send has exited: nobody is attached");
    assert_eq!(rows[1]["name"], "beta");
    assert_eq!(rows[1]["kind"], "spsc");
    assert_eq!(rows[1]["depth"], 2);
}

#[test]
fn list_of_an_empty_directory_says_so_and_json_is_an_empty_array() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ok(shmq(dir.path(), &["list"])).starts_with("no segments in"));
    assert_eq!(json(shmq(dir.path(), &["list", "--json"])), Value::Array(vec![]));
}

#[test]
fn list_reports_an_unreadable_segment_with_an_error_instead_of_aborting() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "good"], b"x\n"));
    std::fs::write(dir.path().join("shmq.bad"), vec![0xA5u8; 8192]).unwrap();
    let text = ok(shmq(dir.path(), &["list"]));
    assert!(text.lines().any(|l| l.starts_with("good ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("bad: error: incompatible segment: magic")), "{text}");

    let v = json(shmq(dir.path(), &["list", "--json"]));
    let rows = v.as_array().unwrap();
    let bad = rows.iter().find(|r| r["name"] == "bad").expect("bad is listed");
    assert!(bad["error"].as_str().unwrap().contains("magic"), "{bad}");
    let good = rows.iter().find(|r| r["name"] == "good").expect("good is listed");
    assert_eq!(good["depth"], 1);
    assert!(good.get("error").is_none());
}

#[test]
fn stat_shows_indices_counters_and_the_live_consumer_holding_the_role() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq(dir.path(), &["send", "watched", "--spsc", "--count", "5"]));
    ok(shmq(dir.path(), &["recv", "watched", "--count", "2", "--timeout", "10000"]));
    // A consumer that waits for the 4th message (for a producer to come back: the only one
    // left) stays attached while we look.
    let waiting =
        command(dir.path(), &["recv", "watched", "--count", "4", "--timeout", "60000", "--wait-for-producer"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let pid = waiting.id() as u64;
    let deadline = Instant::now() + WATCHDOG;
    let v = loop {
        let v = json(shmq(dir.path(), &["stat", "watched", "--json"]));
        if v["consumer_holder"].is_object() && v["head"] == 5 {
            break v;
        }
        assert!(Instant::now() < deadline, "watchdog: the waiting consumer never showed up: {v}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(v["name"], "watched");
    assert_eq!(v["kind"], "spsc");
    assert_eq!(v["capacity"], 1024);
    assert_eq!(v["max_msg"], 256);
    assert_eq!(v["tail"], 5);
    assert_eq!(v["depth"], 0);
    assert!(v["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["consumer_holder"]["pid"], pid);
    assert_eq!(v["consumer_holder"]["alive"], true);
    assert!(v["producer_holder"].is_null());
    let parts = v["participants"].as_array().unwrap();
    let me = parts.iter().find(|p| p["pid"] == pid).expect("the waiting consumer is a participant");
    assert_eq!(me["alive"], true);
    assert_eq!(me["roles"], serde_json::json!(["consumer"]));
    assert!(me["id"].as_u64().unwrap() >= 1);
    for key in ["aborted", "abandoned", "lost_by_crash", "full_events", "blocked_ns"] {
        assert!(v["counters"][key].is_u64(), "counter {key} missing: {v}");
    }
    assert!(v["counters"]["sleepers"]["data"].is_u64());

    let listed = json(shmq(dir.path(), &["list", "--json"]));
    assert_eq!(listed[0]["attached"], 1, "the waiting consumer is attached: {listed}");

    let text = ok(shmq(dir.path(), &["stat", "watched"]));
    assert!(text.contains("head / tail   5 / 5"), "{text}");
    assert!(text.contains(&format!("consumer      participant {}, pid {pid}, alive", me["id"])), "{text}");
    assert!(text.contains("producer      free"), "{text}");
    assert!(text.contains("lost_by_crash"), "{text}");
    assert!(
        text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()[..]
            == [&me["id"].to_string(), &pid.to_string(), "consumer", "yes"]),
        "{text}"
    );

    ok(shmq_in(dir.path(), &["send", "watched"], b"last\n"));
    let out = finish(waiting, "recv watched (waiting)");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2\n3\n4\nlast\n");
}

#[test]
fn stat_of_a_missing_queue_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let line = one_line_error(&shmq(dir.path(), &["stat", "ghost"]));
    assert!(line.contains("no queue or topic named \"ghost\""), "{line}");
}

#[test]
fn rm_removes_every_name_and_a_missing_one_fails_without_stopping_the_others() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["send", "one"], b"x\n"));
    ok(shmq_in(dir.path(), &["send", "two"], b"x\n"));
    let o = shmq(dir.path(), &["rm", "one", "missing", "two"]);
    let line = one_line_error(&o);
    assert!(line.contains("\"missing\"") && line.contains("no queue"), "{line}");
    assert!(segment_files(dir.path()).is_empty(), "left: {:?}", segment_files(dir.path()));
    ok(shmq_in(dir.path(), &["send", "three"], b"x\n"));
    ok(shmq(dir.path(), &["rm", "three"]));
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn an_invalid_name_is_a_one_line_error_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["stat", "a/b"][..],
        &["send", "../x", "--count", "1"],
        &["recv", ".hidden", "--count", "1"],
        &["rm", "bad name"],
    ] {
        let line = one_line_error(&shmq(dir.path(), args));
        assert!(line.contains("invalid name"), "{args:?}: {line}");
    }
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn dir_option_overrides_shmq_dir() {
    let env_dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_path = other.path().to_str().unwrap();
    ok(shmq_in(env_dir.path(), &["--dir", other_path, "send", "elsewhere"], b"x\n"));
    assert!(segment_files(env_dir.path()).is_empty());
    assert_eq!(segment_files(other.path()), ["shmq.elsewhere"]);
    ok(shmq(env_dir.path(), &["rm", "--dir", other_path, "elsewhere"]));
}

/// `shmq recv q | head -1`: once the reader is gone, `recv` takes no further message off the
/// queue, exits 1, and says how many messages it wrote; every message it did not write is
/// still in the queue (or, if the reader left in the instant between the check and the write,
/// the one message that was taken is reported lost).
#[test]
fn recv_into_a_closed_pipe_fails_naming_what_it_wrote_and_leaves_the_rest_queued() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq(
        dir.path(),
        &["send", "flood", "--count", "4000", "--size", "200", "--capacity", "4096", "--max-msg", "200"],
    ));
    let mut child = command(dir.path(), &["recv", "flood", "--count", "4000", "--timeout", "10000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close our end, like `shmq recv flood | head -1`.
    let mut first = [0u8; 4];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"0...");
    drop(child.stdout.take());
    child.stdout = Some(empty_pipe());
    let o = finish(child, "recv flood");
    assert_eq!(o.status.code(), Some(1), "status {}: {}", o.status, stderr(&o));
    let err = stderr(&o);
    let written: u64 = err
        .strip_prefix("shmq: stdout was closed after ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of written messages in {err:?}"));
    let lost = u64::from(err.contains("could not be written and is lost"));
    assert!((1..4000).contains(&written), "{err}");
    let v = json(shmq(dir.path(), &["stat", "flood", "--json"]));
    assert_eq!(v["depth"], 4000 - written - lost, "every message not written is still queued: {err}");
}

/// A pipe whose write end is already closed: `finish` reads it to EOF at once.
fn empty_pipe() -> std::process::ChildStdout {
    let mut c = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
    c.wait().unwrap();
    c.stdout.take().unwrap()
}

#[test]
fn demo_checks_delivery_prints_percentiles_beside_a_socket_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(shmq(dir.path(), &["demo", "--count", "10000"]));
    assert!(text.contains("all 10000 messages arrived exactly once, in order"), "{text}");
    assert!(text.contains("unix socket") && text.contains("msg/s"), "{text}");
    assert!(text.contains("MB/s"), "{text}");
    // Each measured row ends with a ratio to the socket (which way it goes is not asserted:
    // this is a check of the report, not of speed).
    for label in ["throughput", "round trip p50", "round trip p99 ", "round trip p99.9"] {
        let row = text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label}: {text}"));
        let words: Vec<&str> = row.split_whitespace().collect();
        let (num, dir) = (words[words.len() - 2], words[words.len() - 1]);
        assert!(num.ends_with('x') && num.trim_end_matches('x').parse::<f64>().is_ok(), "no ratio in {row:?}");
        assert!(dir == "higher" || dir == "lower", "no ratio in {row:?}");
    }
    assert!(segment_files(dir.path()).is_empty(), "left behind: {:?}", segment_files(dir.path()));
}

#[test]
fn demo_with_an_invalid_capacity_fails_with_one_line_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let o = shmq(dir.path(), &["demo", "--count", "100", "--capacity", "0"]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--capacity") && err.contains("from 1 to"), "{err}");
    assert!(segment_files(dir.path()).is_empty(), "left behind: {:?}", segment_files(dir.path()));
}

#[test]
fn demo_with_mpmc_batches_and_block_wait_also_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(shmq(
        dir.path(),
        &["demo", "--count", "5000", "--mpmc", "--batch", "16", "--wait", "block", "--capacity", "64"],
    ));
    assert!(text.contains("all 5000 messages arrived exactly once, in order"), "{text}");
    assert!(segment_files(dir.path()).is_empty(), "left behind: {:?}", segment_files(dir.path()));
}

#[test]
fn help_documents_every_command_and_hides_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(shmq(dir.path(), &["--help"]));
    for cmd in ["demo", "send", "recv", "list", "stat", "rm"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(&format!("{cmd} "))), "{cmd} missing: {text}");
    }
    assert!(!text.contains("demo-worker"), "{text}");
}
