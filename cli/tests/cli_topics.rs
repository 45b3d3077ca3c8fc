//! The topic commands of the `shmq` binary (`pub`, `sub`, topics in `list`/`stat`/`rm`, `gc`,
//! the topic part of `demo`), run as a user would. Every test gives its children their own
//! segment directory through `SHMQ_DIR` (a temporary directory), so nothing touches /dev/shm.

mod cli_support;

use std::path::Path;

use cli_support::*;
use serde_json::Value;

/// Waits until topic `name` has `n` live subscribers.
fn wait_for_live_subscribers(dir: &Path, name: &str, n: usize) -> Value {
    wait_for_stat(dir, name, &format!("{n} live subscribers on {name}"), |v| {
        v["subscribers"].as_array().is_some_and(|s| s.iter().filter(|s| s["alive"] == true).count() == n)
    })
}

fn subscriber<'a>(stat: &'a Value, name: Option<&str>) -> &'a Value {
    stat["subscribers"]
        .as_array()
        .expect("a topic has a subscribers array")
        .iter()
        .find(|s| s["name"].as_str() == name)
        .unwrap_or_else(|| panic!("no subscriber {name:?}: {stat}"))
}

#[test]
fn lines_published_from_stdin_reach_a_listening_subscriber_one_per_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Background::spawn(dir.path(), &["sub", "orders", "--count", "4", "--timeout", "60000"]);
    wait_for_live_subscribers(dir.path(), "orders", 1);
    ok(shmq_in(dir.path(), &["pub", "orders"], b"buy 100 XYZ\nsell 5\n\nlast line without newline"));
    assert_eq!(ok(sub.finish()), "buy 100 XYZ\nsell 5\n\nlast line without newline\n");
    ok(shmq(dir.path(), &["rm", "orders"]));
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn generated_messages_start_with_their_sequence_number_and_have_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq(dir.path(), &["pub", "gen", "--count", "120", "--size", "40", "--capacity", "128", "--rate", "100000"]));
    let got = ok(shmq(dir.path(), &["sub", "gen", "--from", "earliest", "--count", "120", "--timeout", "10000"]));
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 120);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.len(), 40, "message {i}: {line:?}");
        let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
        assert_eq!(digits, i.to_string(), "message {i} does not start with its number: {line:?}");
        assert!(line[digits.len()..].bytes().all(|b| b == b'.'), "message {i} is not padded with '.': {line:?}");
    }
    let line = one_line_error(&shmq(dir.path(), &["pub", "gen", "--count", "11", "--size", "1"]));
    assert!(line.contains("--size 1 is too small"), "{line}");
    let o = shmq(dir.path(), &["pub", "gen", "--count", "1", "--rate", "0"]);
    assert_eq!(o.status.code(), Some(2), "a rate of 0 is a usage error: {}", stderr(&o));
}

#[test]
fn sub_from_earliest_prints_the_history_count_stops_it_and_timeout_ends_it_like_recv() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["pub", "hist"], b"a\nb\nc\nd\ne\n"));
    let got = ok(shmq(dir.path(), &["sub", "hist", "--from", "earliest", "--count", "3", "--timeout", "10000"]));
    assert_eq!(got, "a\nb\nc\n");
    // Without --count: everything retained, then exit 0 once nothing arrives for --timeout.
    let got = ok(shmq(dir.path(), &["sub", "hist", "--from", "earliest", "--timeout", "100"]));
    assert_eq!(got, "a\nb\nc\nd\ne\n");
    // From the latest message (the default) nothing is new, and the publisher has left: with
    // --count that is an error, at once.
    let o = shmq(dir.path(), &["sub", "hist", "--count", "1", "--timeout", "10000"]);
    let line = one_line_error(&o);
    assert!(line.contains("has left") && line.contains("0 of the 1") && line.contains("\"hist\""), "{line}");
    assert_eq!(stdout(&o), "");
    // With a publisher attached that sends nothing, --timeout ends it as for recv.
    let t = shmq::TopicOptions::new().dir(dir.path()).open("hist").unwrap();
    let _quiet = t.publisher().unwrap();
    let o = shmq(dir.path(), &["sub", "hist", "--count", "1", "--timeout", "100"]);
    let line = one_line_error(&o);
    assert!(line.contains("timed out") && line.contains("0 of 1") && line.contains("\"hist\""), "{line}");
    assert_eq!(stdout(&o), "");
}

#[test]
fn a_durable_subscriber_run_twice_continues_exactly_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["pub", "ledger"], b"m0\nm1\nm2\nm3\nm4\n"));
    let first = ok(shmq(
        dir.path(),
        &["sub", "ledger", "--name", "billing", "--from", "earliest", "--count", "2", "--timeout", "10000"],
    ));
    assert_eq!(first, "m0\nm1\n");
    // Published while billing is away: kept for it.
    ok(shmq_in(dir.path(), &["pub", "ledger"], b"m5\nm6\nm7\n"));
    let v = json(shmq(dir.path(), &["stat", "ledger", "--json"]));
    let billing = subscriber(&v, Some("billing"));
    assert_eq!(billing["alive"], false);
    assert_eq!(billing["cursor"], 2, "the first run acknowledged exactly what it printed: {v}");
    assert_eq!(billing["lag"], 6, "{v}");
    // --from is ignored by a returning subscriber: it resumes.
    let second = ok(shmq(dir.path(), &["sub", "ledger", "--name", "billing", "--from", "latest", "--timeout", "200"]));
    assert_eq!(second, "m2\nm3\nm4\nm5\nm6\nm7\n", "nothing repeated, nothing lost");
    let third = ok(shmq(dir.path(), &["sub", "ledger", "--name", "billing", "--timeout", "50"]));
    assert_eq!(third, "");
    let v = json(shmq(dir.path(), &["stat", "ledger", "--json"]));
    let billing = subscriber(&v, Some("billing"));
    assert_eq!(billing["cursor"], 8);
    assert_eq!(billing["delivered"], 8, "delivered counts across runs: {v}");
}

#[test]
fn kind_filters_keep_only_the_chosen_kinds_and_show_kind_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["pub", "mixed", "--kind", "1"], b"a\nb\n"));
    ok(shmq_in(dir.path(), &["pub", "mixed", "--kind", "2"], b"c\n"));
    ok(shmq_in(dir.path(), &["pub", "mixed"], b"d\n"));
    let got = ok(shmq(
        dir.path(),
        &["sub", "mixed", "--from", "earliest", "--kind", "2", "--kind", "0", "--show-kind", "--timeout", "100"],
    ));
    assert_eq!(got, "2\tc\n0\td\n");
    let got = ok(shmq(
        dir.path(),
        &["sub", "mixed", "--from", "earliest", "--kind", "1", "--count", "2", "--timeout", "5000"],
    ));
    assert_eq!(got, "a\nb\n");
}

#[test]
fn a_lapped_lossy_subscriber_reports_the_missed_messages_on_stderr_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A durable lossy subscriber joins at message 0 and leaves; lossy, it does not hold
    // publishers back, so 10 messages through 4 slots lap it: m0..m5 are overwritten.
    ok(shmq(dir.path(), &["sub", "ticks", "--capacity", "4", "--lossy", "--name", "ticker", "--timeout", "10"]));
    let input: String = (0..10).map(|i| format!("m{i}\n")).collect();
    ok(shmq_in(dir.path(), &["pub", "ticks", "--timeout", "10000"], input.as_bytes()));
    let o = shmq(dir.path(), &["sub", "ticks", "--lossy", "--name", "ticker", "--timeout", "100"]);
    assert!(o.status.success(), "status {}: {}", o.status, stderr(&o));
    let err = stderr(&o);
    let mut lines = err.lines();
    assert_eq!(lines.next(), Some("shmq: missed 6 messages"), "{err}");
    assert!(lines.next().is_some_and(|l| l.contains("every publisher") && l.contains("has left")), "{err}");
    assert_eq!(lines.next(), None, "{err}");
    assert_eq!(stdout(&o), "m6\nm7\nm8\nm9\n");
    let v = json(shmq(dir.path(), &["stat", "ticks", "--json"]));
    let ticker = subscriber(&v, Some("ticker"));
    assert_eq!(ticker["mode"], "lossy");
    assert_eq!(ticker["lagged"], 6);
    assert_eq!(ticker["delivered"], 4);
}

#[test]
fn list_and_stat_show_a_topics_subscribers_with_mode_cursor_lag_and_liveness() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq_in(dir.path(), &["sub", "prices", "--name", "billing", "--count", "0"], b""));
    ok(shmq_in(dir.path(), &["pub", "prices"], b"1.08\n1.09\n1.10\n"));
    ok(shmq(dir.path(), &["sub", "prices", "--name", "billing", "--count", "1", "--timeout", "10000"]));
    let live =
        Background::spawn(dir.path(), &["sub", "prices", "--lossy", "--timeout", "60000", "--wait-for-publisher"]);
    let v = wait_for_live_subscribers(dir.path(), "prices", 1);
    assert_eq!(v["kind"], "topic");
    assert_eq!(v["published"], 3);
    assert_eq!(v["subscribers"].as_array().unwrap().len(), 2, "{v}");
    let billing = subscriber(&v, Some("billing"));
    assert_eq!(billing["mode"], "reliable");
    assert_eq!(billing["cursor"], 1);
    assert_eq!(billing["lag"], 2);
    assert_eq!(billing["alive"], false);
    assert_eq!(billing["delivered"], 1);
    assert_eq!(billing["lagged"], 0);
    assert_eq!(billing["pid"], 0, "a durable subscriber that is away has no process");
    let anon = subscriber(&v, None);
    assert_eq!(anon["name"], Value::Null);
    assert_eq!(anon["mode"], "lossy");
    assert_eq!(anon["alive"], true);
    assert_eq!(anon["pid"], live.pid());
    assert_eq!(anon["cursor"], 3, "it joined after the 3 messages");
    assert_eq!(anon["lag"], 0);

    let text = ok(shmq(dir.path(), &["stat", "prices"]));
    assert!(text.contains("published     3"), "{text}");
    let row = |first: &str| {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&first))
            .unwrap_or_else(|| panic!("no row for {first}: {text}"))
    };
    assert_eq!(row("billing")[..9], ["billing", "durable", "reliable", "1", "2", "1", "0", "-", "no"], "{text}");
    let pid = live.pid().to_string();
    assert_eq!(row("-")[..], ["-", "anonymous", "lossy", "3", "0", "0", "0", pid.as_str(), "yes"], "{text}");

    ok(shmq_in(dir.path(), &["send", "orders"], b"x\n"));
    let listed = ok(shmq(dir.path(), &["list"]));
    let lines: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0].last(), Some(&"SUBSCRIBERS"), "{listed}");
    let prices = lines.iter().find(|w| w[0] == "prices").expect("prices is listed");
    assert_eq!(prices[1], "topic");
    assert_eq!(prices.last(), Some(&"2"), "{listed}");
    let orders = lines.iter().find(|w| w[0] == "orders").expect("orders is listed");
    assert_eq!(orders.last(), Some(&"-"), "a queue has no subscribers: {listed}");
    let rows = json(shmq(dir.path(), &["list", "--json"]));
    let by_name = |n: &str| rows.as_array().unwrap().iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by_name("prices")["kind"], "topic");
    assert_eq!(by_name("prices")["subscribers"], 2);
    assert_eq!(by_name("prices")["attached"], 1);
    assert_eq!(by_name("orders")["subscribers"], Value::Null);
    live.kill();
}

#[test]
fn rm_subscriber_removes_a_durable_subscriber_so_publishers_stop_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    ok(shmq(dir.path(), &["sub", "jobs", "--capacity", "4", "--name", "billing", "--timeout", "10"]));
    ok(shmq(dir.path(), &["pub", "jobs", "--count", "4"]));
    // The topic is full for billing, which is away: publishing waits for it.
    let o = shmq(dir.path(), &["pub", "jobs", "--count", "1", "--timeout", "100"]);
    let line = one_line_error(&o);
    assert!(line.contains("timed out") && line.contains("0 messages published"), "{line}");

    ok(shmq(dir.path(), &["rm", "jobs", "--subscriber", "billing"]));
    let v = json(shmq(dir.path(), &["stat", "jobs", "--json"]));
    assert_eq!(v["subscribers"], serde_json::json!([]), "{v}");
    ok(shmq(dir.path(), &["pub", "jobs", "--count", "1", "--timeout", "10000"]));
    let line = one_line_error(&shmq(dir.path(), &["rm", "jobs", "--subscriber", "billing"]));
    assert!(line.contains("\"billing\"") && line.contains("no durable subscriber"), "{line}");
    assert!(segment_files(dir.path()).contains(&"shmq.jobs".to_string()), "the topic itself stays");

    // A durable subscriber held by a live process cannot be removed; once it is dead, it can.
    let live =
        Background::spawn(dir.path(), &["sub", "jobs", "--name", "live", "--timeout", "60000", "--wait-for-publisher"]);
    wait_for_live_subscribers(dir.path(), "jobs", 1);
    let line = one_line_error(&shmq(dir.path(), &["rm", "jobs", "--subscriber", "live"]));
    assert!(line.contains("held by live process") && line.contains(&live.pid().to_string()), "{line}");
    live.kill();
    ok(shmq(dir.path(), &["rm", "jobs", "--subscriber", "live"]));

    let line = one_line_error(&shmq(dir.path(), &["rm", "jobs", "--subscriber", "bad name"]));
    assert!(line.contains("invalid name"), "{line}");
    ok(shmq(dir.path(), &["send", "queue"]));
    let line = one_line_error(&shmq(dir.path(), &["rm", "queue", "--subscriber", "x"]));
    assert!(line.contains("is a queue (mpmc), not a topic"), "a queue has no subscribers: {line}");
    ok(shmq(dir.path(), &["rm", "jobs", "queue"]));
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn gc_removes_segments_of_dead_processes_and_keeps_live_or_waiting_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Each created by a `shmq` process that has exited: its creator is dead.
    ok(shmq(d, &["send", "dead-empty", "--count", "0"]));
    ok(shmq(d, &["send", "dead-full", "--count", "1"]));
    ok(shmq(d, &["sub", "dead-durable", "--name", "billing", "--timeout", "10"]));
    ok(shmq(d, &["sub", "dead-topic", "--timeout", "10"]));
    // A consumer waiting on this queue is alive and attached.
    let live = Background::spawn(d, &["recv", "live", "--timeout", "60000"]);
    let pid = live.pid();
    wait_for_stat(d, "live", "the waiting consumer attaching", |v| {
        v["participants"].as_array().is_some_and(|p| p.iter().any(|p| p["pid"] == pid && p["alive"] == true))
    });
    let all = ["shmq.dead-durable", "shmq.dead-empty", "shmq.dead-full", "shmq.dead-topic", "shmq.live"];

    let text = ok(shmq(d, &["gc", "--dry-run"]));
    let line = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().any(|w| w.trim_end_matches(':') == name))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"))
            .to_string()
    };
    assert!(line(&text, "dead-empty").starts_with("would remove dead-empty: "), "{text}");
    assert!(line(&text, "dead-topic").starts_with("would remove dead-topic: "), "{text}");
    assert!(line(&text, "dead-full").starts_with("kept dead-full: 1 message is waiting"), "{text}");
    assert!(line(&text, "dead-durable").starts_with("kept dead-durable: it has durable subscribers"), "{text}");
    assert_eq!(line(&text, "live"), format!("kept live: process {pid} is attached"), "{text}");
    assert!(text.contains("2 would be removed, 3 kept"), "{text}");
    assert_eq!(segment_files(d), all, "a dry run removes nothing");

    let text = ok(shmq(d, &["gc"]));
    assert!(line(&text, "dead-empty").starts_with("removed dead-empty: "), "{text}");
    assert!(line(&text, "dead-topic").starts_with("removed dead-topic: "), "{text}");
    assert!(text.contains("2 removed, 3 kept"), "{text}");
    assert_eq!(segment_files(d), ["shmq.dead-durable", "shmq.dead-full", "shmq.live"]);

    let text = ok(shmq(d, &["gc", "--force"]));
    assert!(line(&text, "dead-full").starts_with("removed dead-full: "), "{text}");
    assert!(line(&text, "dead-durable").starts_with("removed dead-durable: "), "{text}");
    assert!(line(&text, "live").starts_with("kept live: "), "--force keeps what a live process uses: {text}");
    assert_eq!(segment_files(d), ["shmq.live"]);

    live.kill();
    let text = ok(shmq(d, &["gc"]));
    assert_eq!(line(&text, "live"), "removed live: every attached process is dead", "{text}");
    assert!(segment_files(d).is_empty());
    assert!(ok(shmq(d, &["gc"])).starts_with("no segments in"));
}

#[test]
fn demo_runs_a_topic_with_two_reliable_and_one_lossy_subscriber_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(shmq(dir.path(), &["demo", "--count", "10000"]));
    assert!(text.contains("all 10000 messages arrived exactly once, in order"), "the queue part stays: {text}");
    assert!(text.contains("1 publisher process to 3 subscriber processes"), "{text}");
    assert!(text.contains("both reliable subscribers received all 10000 messages exactly once, in order"), "{text}");
    let row = |label: &str| -> (u64, u64) {
        let l = text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label}: {text}"));
        let w: Vec<&str> = l.split_whitespace().collect();
        (w[w.len() - 2].parse().unwrap(), w[w.len() - 1].parse().unwrap())
    };
    assert_eq!(row("reliable 1"), (10000, 0), "{text}");
    assert_eq!(row("reliable 2"), (10000, 0), "{text}");
    let (received, missed) = row("lossy");
    assert_eq!(received + missed, 10000, "the lossy subscriber accounts for every message: {text}");
    assert!(received >= 1, "the last message is never overwritten: {text}");
    assert!(segment_files(dir.path()).is_empty(), "left behind: {:?}", segment_files(dir.path()));
}

#[test]
fn help_documents_the_topic_and_gc_commands() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(shmq(dir.path(), &["--help"]));
    for cmd in ["pub", "sub", "gc"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(&format!("{cmd} "))), "{cmd} missing: {text}");
    }
    let sub = ok(shmq(dir.path(), &["sub", "--help"]));
    for opt in ["--name", "--lossy", "--from", "--kind", "--count", "--timeout", "--max-subscribers"] {
        assert!(sub.contains(opt), "{opt} missing: {sub}");
    }
    let publ = ok(shmq(dir.path(), &["pub", "--help"]));
    for opt in ["--count", "--size", "--rate", "--kind", "--timeout"] {
        assert!(publ.contains(opt), "{opt} missing: {publ}");
    }
    assert!(ok(shmq(dir.path(), &["rm", "--help"])).contains("--subscriber"));
    assert!(ok(shmq(dir.path(), &["gc", "--help"])).contains("--dry-run"));
}
