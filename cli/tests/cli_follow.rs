//! `shmq recv Q1 Q2 ...` and `shmq sub T1 T2 ...`: several streams followed by one process, each
//! line prefixed with its stream's name.

mod cli_support;

use std::process::Stdio;
use std::time::Duration;

use cli_support::*;

/// The lines of `out` that start with `name<TAB>`, without the prefix.
fn lines_of<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(&format!("{name}\t"))).collect()
}

#[test]
fn recv_of_two_queues_prefixes_each_line_keeps_each_queues_order_and_ends_when_the_producers_have_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq_in(d, &["send", "a"], b"a1\na2\na3\n"));
    ok(shmq_in(d, &["send", "b"], b"b1\nb2\n"));
    let o = shmq(d, &["recv", "a", "b", "--timeout", "10000"]);
    let out = ok(o.clone());
    assert_eq!(lines_of(&out, "a"), ["a1", "a2", "a3"], "{out}");
    assert_eq!(lines_of(&out, "b"), ["b1", "b2"], "{out}");
    assert_eq!(out.lines().count(), 5, "{out}");
    let err = stderr(&o);
    // The mechanism is this kernel's, in the follower's report and in `stat`.
    let (name, short) = match shmq::waitset::futex_waitv_supported() {
        true => ("futex_waitv", "futex_waitv"),
        false => ("fallback (1 ms slices)", "fallback"),
    };
    assert!(err.contains(&format!("following 2 queues (a, b), waiting with {name}\n")), "{err}");
    let text = ok(shmq(d, &["stat", "a"]));
    assert!(text.contains(&format!("\nwaitset       {short} (how a WaitSet")), "{text}");
    let json = ok(shmq(d, &["stat", "a", "--json"]));
    assert!(json.contains(&format!("\"waitset_mechanism\":\"{short}\"")), "{json}");
    assert!(
        err.contains("every producer of queues a, b has left and all its messages were received (5 messages written)"),
        "{err}"
    );
}

#[test]
fn sub_of_two_topics_follows_both_and_waits_for_their_publishers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Create both topics first, so that the subscriber joins before anything is published.
    ok(shmq_in(d, &["pub", "t1"], b""));
    ok(shmq_in(d, &["pub", "t2"], b""));
    // The publishers that created the topics have left: --wait-for-publisher keeps waiting.
    let child = command(d, &["sub", "t1", "t2", "--count", "4", "--show-kind", "--wait-for-publisher"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both subscribers have joined.
    let joined = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        ["t1", "t2"]
            .iter()
            .all(|t| json(shmq(d, &["stat", t, "--json"]))["subscribers"].as_array().is_some_and(|s| s.len() == 1))
    });
    assert!(joined, "the subscriber never joined both topics: {}", stdout(&shmq(d, &["stat", "t1"])));
    ok(shmq_in(d, &["pub", "t2", "--kind", "7"], b"x\n"));
    ok(shmq_in(d, &["pub", "t1"], b"p\nq\n"));
    ok(shmq_in(d, &["pub", "t2", "--kind", "7"], b"y\n"));
    let o = finish_within(child, "sub t1 t2", Duration::from_secs(20));
    let out = ok(o);
    assert_eq!(lines_of(&out, "t1"), ["0\tp", "0\tq"], "{out}");
    assert_eq!(lines_of(&out, "t2"), ["7\tx", "7\ty"], "{out}");
}

#[test]
fn following_several_streams_refuses_raw_frames_and_a_name_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = one_line_error(&shmq(d, &["recv", "a", "b", "--raw", "--timeout", "10"]));
    assert!(line.contains("--raw frames carry no queue name"), "{line}");
    let line = one_line_error(&shmq(d, &["sub", "t", "t", "--timeout", "10"]));
    assert!(line.contains("topic \"t\" is named twice"), "{line}");
    assert!(segment_files(d).is_empty(), "{:?}", segment_files(d));
}
