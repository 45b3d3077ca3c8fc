//! Dead letters at the command line: `shmq recv NAME --exec CMD` (acknowledge or reject each
//! message by CMD's exit status) and `shmq dlq NAME` (list, `--json`, `--requeue`), run as a
//! user would. Every test has its own segment directory (`SHMQ_DIR`, a temporary directory:
//! nothing touches /dev/shm).

mod cli_support;

use cli_support::*;
use serde_json::Value;

/// Fails with "cannot LINE" on stderr and status 3 for the line "bad"; prints "did LINE" for
/// any other.
const WORKER: &str = r#"read x; test "$x" != bad || { echo "cannot $x" >&2; exit 3; }; echo "did $x""#;

/// Queue `name` with dead letters after 2 deliveries, holding "ok1", "bad", "ok2".
fn jobs(dir: &std::path::Path, name: &str) {
    ok(shmq_in(dir, &["send", name, "--max-deliveries", "2"], b"ok1\nbad\nok2\n"));
}

#[test]
fn exec_acknowledges_rejects_and_dead_letters() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    jobs(dir, "jobs");
    // ok1, bad (delivery 1, rejected), bad (delivery 2, dead-lettered), ok2: four runs.
    let o = shmq(dir, &["recv", "jobs", "--exec", WORKER, "--count", "4"]);
    let err = stderr(&o);
    assert_eq!(ok(o), "did ok1\ndid ok2\n");
    assert_eq!(err.matches("cannot bad\n").count(), 4, "CMD's stderr passes through, and is quoted: {err}");
    assert!(err.contains("delivered again: exit status 3: cannot bad"), "{err}");
    assert!(err.contains("moved to the dead-letter queue"), "{err}");
    assert!(err.contains("2 messages acknowledged, 2 rejected (1 dead-lettered)"), "{err}");
    // Everything was handled: nothing is left in the queue.
    let o = shmq(dir, &["recv", "jobs", "--timeout", "200"]);
    assert_eq!(ok(o), "");
    // `shmq stat` tells the dead-letter settings and counts, in text and JSON.
    let text = ok(shmq(dir, &["stat", "jobs"]));
    assert!(text.contains("dead letters  after 2 deliveries, to jobs.dlq"), "{text}");
    assert!(text.contains("rejected") && text.contains("dead_lettered"), "{text}");
    let v = json(shmq(dir, &["stat", "jobs", "--json"]));
    assert_eq!((v["max_deliveries"].as_u64(), v["dead_letter_link"].as_str()), (Some(2), Some("jobs.dlq")), "{v}");
    assert_eq!(
        (v["counters"]["rejected"].as_u64(), v["counters"]["dead_lettered"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    let v = json(shmq(dir, &["stat", "jobs.dlq", "--json"]));
    assert_eq!((v["dead_letter_queue"].as_bool(), v["dead_letter_link"].as_str()), (Some(true), Some("jobs")), "{v}");

    // The table: a header and one letter; the letter stays where it is.
    for _ in 0..2 {
        let o = shmq(dir, &["dlq", "jobs"]);
        assert_eq!(stderr(&o), "shmq: 1 dead letter in jobs.dlq\n");
        let text = ok(o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("POSITION  DELIVERIES  FIRST_FAILED"), "{text}");
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cols[0], "0", "{text}");
        assert_eq!(cols[1], "2", "{text}");
        assert!(cols[2].ends_with('Z') && cols[2].contains('T'), "RFC 3339 UTC: {text}");
        assert!(lines[1].contains("exit status 3: cannot bad"), "{text}");
        assert!(lines[1].ends_with("bad"), "{text}");
    }

    let v = json(shmq(dir, &["dlq", "jobs", "--json"]));
    assert_eq!(v["queue"], "jobs");
    assert_eq!(v["dead_letter_queue"], "jobs.dlq");
    assert_eq!(v["max_deliveries"], 2);
    let letters = v["letters"].as_array().expect("letters");
    assert_eq!(letters.len(), 1, "{v}");
    let l = &letters[0];
    assert_eq!(l["deliveries"], 2);
    assert_eq!(l["payload"], "bad");
    assert_eq!(l["payload_encoding"], "utf-8");
    assert_eq!(l["len"], 3);
    assert_eq!(l["kind"], 0);
    assert_eq!(l["origin_position"], 1);
    let reason = l["reason"].as_str().expect("reason");
    assert!(reason.contains("exit status 3") && reason.contains("cannot bad"), "{reason}");
    for f in ["first_failed", "dead_lettered"] {
        let t = l[f].as_str().expect("a time");
        assert!(t.len() == 24 && t.ends_with('Z'), "{f}: {t}");
    }
    assert!(l["dead_lettered_ns"].as_u64() >= l["first_failed_ns"].as_u64(), "{l}");

    // Requeue: the letter goes back to jobs, and the dead-letter queue is empty.
    let o = shmq(dir, &["dlq", "jobs", "--requeue"]);
    assert_eq!(stderr(&o), "shmq: requeued 1 dead letter from jobs.dlq to jobs\n");
    assert_eq!(ok(o), "");
    assert_eq!(ok(shmq(dir, &["recv", "jobs", "--count", "1"])), "bad\n");
    let o = shmq(dir, &["dlq", "jobs"]);
    assert_eq!(stderr(&o), "shmq: 0 dead letters in jobs.dlq\n");
    assert_eq!(ok(o), "", "no header for no letters");
    let v = json(shmq(dir, &["dlq", "jobs", "--json"]));
    assert_eq!(v["letters"], Value::Array(vec![]));
}

#[test]
fn requeue_count_and_binary_payloads() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Three messages, one of them not UTF-8, all failing once: --max-deliveries 1.
    ok(shmq_in(
        dir,
        &["send", "bin", "--raw", "--max-deliveries", "1", "--dlq", "bin-dead"],
        &[&2u32.to_le_bytes()[..], &[0xff, 0x00], &1u32.to_le_bytes(), b"a", &1u32.to_le_bytes(), b"b"].concat(),
    ));
    let o = shmq(dir, &["recv", "bin", "--exec", "cat >/dev/null; exit 1", "--timeout", "300"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("0 messages acknowledged, 3 rejected (3 dead-lettered)"), "{err}");
    let v = json(shmq(dir, &["dlq", "bin", "--json"]));
    assert_eq!(v["dead_letter_queue"], "bin-dead");
    let letters = v["letters"].as_array().expect("letters");
    assert_eq!(letters.len(), 3, "{v}");
    assert_eq!(letters[0]["payload"], "ff00");
    assert_eq!(letters[0]["payload_encoding"], "hex");
    assert_eq!(letters[0]["reason"], "exit status 1");
    assert_eq!(letters[1]["payload"], "a");

    let o = shmq(dir, &["dlq", "bin", "--requeue", "--count", "2"]);
    assert_eq!(stderr(&o), "shmq: requeued 2 dead letters from bin-dead to bin\n");
    assert!(o.status.success());
    let v = json(shmq(dir, &["dlq", "bin", "--json"]));
    assert_eq!(v["letters"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["letters"][0]["payload"], "b");
    assert_eq!(ok(shmq(dir, &["recv", "bin", "--hex", "--count", "2"])), "ff00\n61\n");
}

#[test]
fn exec_sees_the_delivery_and_acknowledges_in_a_plain_queue() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ok(shmq_in(dir, &["send", "plain"], b"x\ny\n"));
    let o = shmq(
        dir,
        &["recv", "plain", "--exec", r#"read x; echo "$SHMQ_QUEUE $x ${SHMQ_DELIVERY:-none}""#, "--count", "2"],
    );
    assert_eq!(ok(o), "plain x none\nplain y none\n");
    jobs(dir, "counted");
    let o = shmq(dir, &["recv", "counted", "--exec", r#"read x; echo "$x $SHMQ_DELIVERY""#, "--count", "3"]);
    assert_eq!(ok(o), "ok1 1\nbad 1\nok2 1\n");
}

#[test]
fn errors() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let e = one_line_error(&shmq(dir, &["dlq", "missing"]));
    assert!(e.contains("no queue or topic named \"missing\""), "{e}");

    ok(shmq_in(dir, &["send", "plain"], b"x\n"));
    let e = one_line_error(&shmq(dir, &["dlq", "plain"]));
    assert!(e.contains("plain has no dead-letter queue: create it with --max-deliveries N"), "{e}");
    let e = one_line_error(&shmq(dir, &["dlq", "plain", "--requeue"]));
    assert!(e.contains("plain has no dead-letter queue"), "{e}");

    jobs(dir, "jobs");
    ok(shmq(dir, &["recv", "jobs", "--exec", "exit 1", "--count", "2"]));
    let e = one_line_error(&shmq(dir, &["dlq", "jobs.dlq"]));
    assert!(e.contains("is the dead-letter queue of \"jobs\": use `shmq dlq jobs`"), "{e}");
    let e = one_line_error(&shmq_in(dir, &["send", "jobs.dlq"], b"x\n"));
    assert!(!e.is_empty());

    // Options checked against an existing queue.
    let e = one_line_error(&shmq(dir, &["recv", "jobs", "--max-deliveries", "3", "--count", "1"]));
    assert!(e.contains("max deliveries is 2, expected 3") && e.contains("--max-deliveries"), "{e}");
    let e = one_line_error(&shmq(dir, &["recv", "jobs", "--max-deliveries", "2", "--dlq", "other", "--count", "1"]));
    assert!(e.contains("dead-letter queue \"jobs.dlq\", expected \"other\""), "{e}");

    // --exec takes one queue.
    let e = one_line_error(&shmq(dir, &["recv", "jobs", "plain", "--exec", "true"]));
    assert!(e.contains("--exec takes one queue"), "{e}");
    // Usage errors: status 2.
    for args in [
        &["dlq", "jobs", "--count", "1"][..],
        &["dlq", "jobs", "--json", "--requeue"],
        &["recv", "jobs", "--exec", "true", "--raw"],
        &["send", "x", "--dlq", "y"],
        &["send", "x", "--spsc", "--max-deliveries", "2"],
    ] {
        assert_eq!(shmq(dir, args).status.code(), Some(2), "{args:?}");
    }
}
