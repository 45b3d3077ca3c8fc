//! Consumer groups at the command line (`sub --group`, groups in `stat`, `rm --group`), run as
//! a user would. Every test gives its children their own segment directory through
//! `SHMQ_DIR` (a temporary directory), so nothing touches /dev/shm.

mod cli_support;

use std::collections::BTreeSet;

use cli_support::*;
use serde_json::Value;

/// Group `name` of a `stat --json`, if it has one.
fn group<'a>(stat: &'a Value, name: &str) -> Option<&'a Value> {
    stat["groups"].as_array().expect("a topic has a groups array").iter().find(|g| g["name"] == name)
}

/// Live members of group `name` in a `stat --json`.
fn live_members(stat: &Value, name: &str) -> usize {
    group(stat, name).map_or(0, |g| g["members"].as_array().unwrap().iter().filter(|m| m["alive"] == true).count())
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(String::from).collect()
}

#[test]
fn each_line_goes_to_one_member_of_a_group_and_every_group_gets_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    const N: usize = 400;
    const K: &str = "200"; // each of the two members of g prints half
    let member = |group: &str, count: &str| {
        Background::spawn(
            d,
            &[
                "sub",
                "jobs",
                "--group",
                group,
                "--count",
                count,
                "--capacity",
                "64",
                "--timeout",
                "60000",
                "--wait-for-publisher",
            ],
        )
    };
    let g1 = member("g", K);
    let g2 = member("g", K);
    let other = member("other", &N.to_string());
    wait_for_stat(d, "jobs", "two members of g and one of other", |v| {
        live_members(v, "g") == 2 && live_members(v, "other") == 1
    });
    let input: Vec<String> = (0..N).map(|i| format!("job {i}")).collect();
    ok(shmq_in(d, &["pub", "jobs", "--capacity", "64"], format!("{}\n", input.join("\n")).as_bytes()));
    let (a, b) = (lines(&ok(g1.finish())), lines(&ok(g2.finish())));
    assert_eq!(a.len() + b.len(), N, "the members printed {} + {} lines", a.len(), b.len());
    let union: BTreeSet<&String> = a.iter().chain(&b).collect();
    assert_eq!(union.len(), N, "a line was printed by both members");
    assert_eq!(union, input.iter().collect(), "every line exactly once across the group");
    // Within one member, one publisher's lines keep their order.
    for got in [&a, &b] {
        let nums: Vec<usize> = got.iter().map(|l| l["job ".len()..].parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "a member's lines are out of order: {nums:?}");
    }
    assert_eq!(lines(&ok(other.finish())), input, "the other group gets every line, in order");
    let v = json(shmq(d, &["stat", "jobs", "--json"]));
    for name in ["g", "other"] {
        let g = group(&v, name).unwrap_or_else(|| panic!("no group {name}: {v}"));
        assert_eq!(g["position"], N, "{name}: everything acknowledged: {v}");
        assert_eq!(g["lag"], 0, "{v}");
        assert_eq!(g["delivered"], N, "{v}");
        assert_eq!(g["members"], serde_json::json!([]), "the members left: {v}");
    }
}

#[test]
fn a_group_run_member_after_member_continues_where_the_last_one_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq_in(d, &["pub", "ledger"], b"m0\nm1\nm2\nm3\nm4\nm5\n"));
    let first = ok(shmq(d, &["sub", "ledger", "--group", "billing", "--from", "earliest", "--count", "2"]));
    assert_eq!(first, "m0\nm1\n");
    // The group exists: --from no longer matters (said on stderr), it goes on at its position.
    let o = shmq(d, &["sub", "ledger", "--group", "billing", "--from", "latest", "--timeout", "200"]);
    assert_eq!(ok(o.clone()), "m2\nm3\nm4\nm5\n", "nothing repeated, nothing lost");
    assert!(stderr(&o).contains("joining it at its position (message 2)"), "{}", stderr(&o));
    // A new group from the earliest has the whole history; from the latest, nothing yet.
    let audit = ok(shmq(d, &["sub", "ledger", "--group", "audit", "--from", "earliest", "--timeout", "200"]));
    assert_eq!(audit, "m0\nm1\nm2\nm3\nm4\nm5\n");
    assert_eq!(ok(shmq(d, &["sub", "ledger", "--group", "late", "--timeout", "100"])), "");
    ok(shmq_in(d, &["pub", "ledger"], b"m6\n"));
    assert_eq!(ok(shmq(d, &["sub", "ledger", "--group", "late", "--timeout", "100"])), "m6\n");
    assert_eq!(ok(shmq(d, &["sub", "ledger", "--group", "billing", "--timeout", "100"])), "m6\n");
}

#[test]
fn sub_group_on_several_topics_joins_the_group_of_that_name_on_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq_in(d, &["pub", "a"], b"a0\na1\n"));
    ok(shmq_in(d, &["pub", "b"], b"b0\n"));
    let got =
        ok(shmq(d, &["sub", "a", "b", "--group", "g", "--from", "earliest", "--count", "3", "--timeout", "10000"]));
    let mut got = lines(&got);
    got.sort();
    assert_eq!(got, ["a\ta0", "a\ta1", "b\tb0"]);
    for t in ["a", "b"] {
        let v = json(shmq(d, &["stat", t, "--json"]));
        let g = group(&v, "g").unwrap_or_else(|| panic!("no group g on {t}: {v}"));
        assert_eq!(g["lag"], 0, "every line printed was acknowledged on {t}: {v}");
    }
}

#[test]
fn stat_shows_groups_with_their_members_position_and_lag_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input: String = (0..10).map(|i| format!("m{i}\n")).collect();
    ok(shmq_in(d, &["pub", "t"], input.as_bytes()));
    assert_eq!(ok(shmq(d, &["sub", "t", "--group", "g", "--from", "earliest", "--count", "4"])), "m0\nm1\nm2\nm3\n");
    assert_eq!(ok(shmq(d, &["sub", "t", "--group", "fast", "--lossy", "--timeout", "50"])), "");
    let live = Background::spawn(d, &["sub", "t", "--group", "busy", "--from", "earliest", "--wait-for-publisher"]);
    let v = wait_for_stat(d, "t", "busy took every message", |v| {
        group(v, "busy").is_some_and(|g| g["position"] == 10) && live_members(v, "busy") == 1
    });

    let g = group(&v, "g").expect("group g");
    assert_eq!(g["mode"], "reliable");
    assert_eq!(g["position"], 4, "{v}");
    assert_eq!(g["next"], 4, "{v}");
    assert_eq!(g["lag"], 6, "{v}");
    assert_eq!(g["delivered"], 4, "{v}");
    assert_eq!(g["redelivered"], 0, "{v}");
    assert_eq!(g["lagged"], 0, "{v}");
    assert_eq!(g["members"], serde_json::json!([]), "{v}");
    assert_eq!(group(&v, "fast").expect("group fast")["mode"], "lossy");
    let busy = group(&v, "busy").expect("group busy");
    assert_eq!(busy["lag"], 0, "{v}");
    let members = busy["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{v}");
    assert_eq!(members[0]["pid"], live.pid(), "{v}");
    assert_eq!(members[0]["alive"], true, "{v}");
    assert_eq!(members[0]["in_flight"], 0, "{v}");
    assert!(members[0]["id"].as_u64().is_some_and(|id| id > 0), "{v}");
    // The subscriber table marks the groups' entries as groups.
    let subs = v["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 3, "{v}");
    assert!(subs.iter().all(|s| s["kind"] == "group" && s["group"] == true), "{v}");

    let text = ok(shmq(d, &["stat", "t"]));
    let row = |first: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|w| w.first().map(String::as_str) == Some(first) && w.get(1).map(String::as_str) != Some("group"))
            .unwrap_or_else(|| panic!("no row {first} in:\n{text}"))
    };
    assert!(text.contains("\ngroups "), "{text}");
    let header = text.lines().find(|l| l.contains("CURSOR")).expect("a subscriber table");
    assert_eq!(header.split_whitespace().take(3).collect::<Vec<_>>(), ["NAME", "KIND", "MODE"], "{text}");
    // NAME MODE POSITION NEXT LAG DELIVERED REDELIVERED LAGGED MEMBERS...
    assert_eq!(row("g")[..8], ["g", "reliable", "4", "4", "6", "4", "0", "0"], "{text}");
    assert_eq!(row("fast")[1], "lossy", "{text}");
    assert_eq!(row("busy")[..5], ["busy", "reliable", "10", "10", "0"], "{text}");
    assert!(text.contains("members of busy"), "{text}");
    assert!(text.contains("members of g: none"), "{text}");
    let (_, members_of_busy) = text.split_once("members of busy").unwrap();
    let member_row = members_of_busy
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() == 4 && w[1] == live.pid().to_string())
        .unwrap_or_else(|| panic!("no member row with pid {} in:\n{text}", live.pid()));
    assert_eq!(member_row[2..], ["yes", "0"], "{text}");
    let entry = text.lines().find(|l| l.trim_start().starts_with("busy ") && l.contains(" group ")).expect("entry");
    assert!(entry.contains("1 live member"), "{entry}");
    live.kill();
}

#[test]
fn rm_group_removes_a_group_without_live_members_and_refuses_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq_in(d, &["pub", "t"], b"x\ny\n"));
    assert_eq!(ok(shmq(d, &["sub", "t", "--group", "g", "--from", "earliest", "--count", "1"])), "x\n");
    assert_eq!(ok(shmq(d, &["sub", "t", "--name", "durable", "--timeout", "50"])), "");
    let live = Background::spawn(d, &["sub", "t", "--group", "held", "--wait-for-publisher"]);
    wait_for_stat(d, "t", "a live member of held", |v| live_members(v, "held") == 1);

    // A live member keeps its group.
    let o = shmq(d, &["rm", "t", "--group", "held"]);
    let line = one_line_error(&o);
    assert!(line.contains("\"held\"") && line.contains("live member"), "{line}");
    assert!(line.contains(&format!("pid {}", live.pid())), "{line}");
    // No such group; a durable subscriber is not a group.
    let line = one_line_error(&shmq(d, &["rm", "t", "--group", "nope"]));
    assert!(line.contains("\"nope\"") && line.contains("no consumer group"), "{line}");
    let line = one_line_error(&shmq(d, &["rm", "t", "--group", "durable"]));
    assert!(line.contains("durable subscriber") && line.contains("--subscriber durable"), "{line}");
    let line = one_line_error(&shmq(d, &["rm", "t", "--group", "bad name"]));
    assert!(line.contains("invalid name"), "{line}");
    let v = json(shmq(d, &["stat", "t", "--json"]));
    assert!(group(&v, "held").is_some() && group(&v, "g").is_some(), "{v}");
    assert!(v["subscribers"].as_array().unwrap().iter().any(|s| s["name"] == "durable"), "{v}");

    // Without members it goes, and stat no longer shows it.
    ok(shmq(d, &["rm", "t", "--group", "g"]));
    let v = json(shmq(d, &["stat", "t", "--json"]));
    assert!(group(&v, "g").is_none(), "{v}");
    assert!(!v["subscribers"].as_array().unwrap().iter().any(|s| s["name"] == "g"), "{v}");
    assert!(!ok(shmq(d, &["stat", "t"])).lines().any(|l| l.split_whitespace().next() == Some("g")));
    let line = one_line_error(&shmq(d, &["rm", "t", "--group", "g"]));
    assert!(line.contains("no consumer group"), "{line}");
    // Once its member is gone, held goes too.
    live.kill();
    ok(shmq(d, &["rm", "t", "--group", "held"]));
    let v = json(shmq(d, &["stat", "t", "--json"]));
    assert_eq!(v["groups"], serde_json::json!([]), "{v}");
    // Not a topic.
    ok(shmq_in(d, &["send", "q"], b"1\n"));
    let line = one_line_error(&shmq(d, &["rm", "q", "--group", "g"]));
    assert!(line.contains("not a topic"), "{line}");
}

#[test]
fn group_usage_errors_and_a_full_group_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = shmq(d, &["sub", "t", "--group", "g", "--name", "n"]);
    assert_eq!(o.status.code(), Some(2), "--group with --name is a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = shmq(d, &["rm", "t", "--group", "g", "--subscriber", "n"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let line = one_line_error(&shmq(d, &["sub", "t", "--group", "no/slash", "--timeout", "50"]));
    assert!(line.contains("invalid name") && line.contains("consumer group"), "{line}");

    ok(shmq(d, &["pub", "small", "--max-groups", "1", "--count", "1"]));
    ok(shmq(d, &["sub", "small", "--group", "a", "--timeout", "50"]));
    let line = one_line_error(&shmq(d, &["sub", "small", "--group", "b", "--timeout", "50"]));
    assert!(line.contains("consumer group entry") && line.contains("--max-groups"), "{line}");
    ok(shmq(d, &["pub", "none", "--max-groups", "0", "--count", "1"]));
    let line = one_line_error(&shmq(d, &["sub", "none", "--group", "a", "--timeout", "50"]));
    assert!(line.contains("no room for consumer groups"), "{line}");
    // A group's name is not a durable subscriber's, and the other way round.
    let line = one_line_error(&shmq(d, &["sub", "small", "--name", "a", "--timeout", "50"]));
    assert!(line.contains("consumer group named \"a\"") && line.contains("--group a"), "{line}");
    ok(shmq(d, &["sub", "none", "--name", "n", "--timeout", "50"]));
    ok(shmq(d, &["pub", "both", "--count", "1"]));
    ok(shmq(d, &["sub", "both", "--name", "n", "--timeout", "50"]));
    let line = one_line_error(&shmq(d, &["sub", "both", "--group", "n", "--timeout", "50"]));
    assert!(line.contains("durable subscriber named \"n\""), "{line}");
}

#[test]
fn a_member_killed_before_its_line_was_taken_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Lines larger than a pipe's buffer: a member whose stdout nobody reads blocks writing the
    // first one, which it received and has not acknowledged.
    ok(shmq(d, &["pub", "big", "--max-msg", "100000", "--count", "3", "--size", "100000"]));
    let stuck = Background::spawn(d, &["sub", "big", "--group", "g", "--from", "earliest", "--wait-for-publisher"]);
    let v = wait_for_stat(d, "big", "a message in flight at the stuck member", |v| {
        group(v, "g").is_some_and(|g| g["members"].as_array().unwrap().iter().any(|m| m["in_flight"] == 1))
    });
    let g = group(&v, "g").unwrap();
    assert_eq!(g["position"], 0, "nothing acknowledged yet: {v}");
    assert_eq!(g["members"][0]["pid"], stuck.pid(), "{v}");
    let text = ok(shmq(d, &["stat", "big"]));
    let (_, members) = text.split_once("members of g").unwrap();
    let row = members
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() == 4 && w[0] != "ID")
        .unwrap();
    assert_eq!(row[1..], [stuck.pid().to_string().as_str(), "yes", "1"], "{text}");
    stuck.kill();
    let got = ok(shmq(d, &["sub", "big", "--group", "g", "--count", "3", "--timeout", "10000"]));
    let mut firsts: Vec<char> = got.lines().map(|l| l.chars().next().unwrap()).collect();
    firsts.sort();
    assert_eq!(firsts, ['0', '1', '2'], "every message once, the killed member's too");
    assert!(got.lines().all(|l| l.len() == 100000));
    let v = json(shmq(d, &["stat", "big", "--json"]));
    let g = group(&v, "g").unwrap();
    assert_eq!(g["position"], 3, "{v}");
    assert!(g["redelivered"].as_u64().unwrap() >= 1, "the killed member's message was put back: {v}");
}
