//! The journal commands of the `shmq` binary (`record`, `replay`, `journal`), run as a user
//! would. Every test has its own segment directory (`SHMQ_DIR`, a temporary directory: nothing
//! touches /dev/shm) and its own temporary journal directory.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cli_support::*;
use serde_json::Value;

/// A segment directory and a journal directory, both temporary.
struct Dirs {
    seg: tempfile::TempDir,
    journal: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs { seg: tempfile::tempdir().unwrap(), journal: tempfile::tempdir().unwrap() }
    }
    fn seg(&self) -> &Path {
        self.seg.path()
    }
    fn j(&self) -> &str {
        self.journal.path().to_str().unwrap()
    }
    /// `shmq ARGS...` in the segment directory.
    fn run(&self, args: &[&str]) -> Output {
        shmq(self.seg(), args)
    }
    /// `shmq journal DIR --json`, whatever its exit status.
    fn report(&self) -> Value {
        let o = self.run(&["journal", self.j(), "--json"]);
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("journal --json: {e}: {}", stdout(&o)))
    }
}

/// Polls `shmq stat NAME --json` until `ready` accepts it.
fn wait_for_stat(dir: &Path, name: &str, what: &str, ready: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let o = shmq(dir, &["stat", name, "--json"]);
        if o.status.success() && ready(&serde_json::from_slice(&o.stdout).expect("stat --json prints JSON")) {
            return;
        }
        assert!(Instant::now() < deadline, "watchdog: {what} never happened; last stat: {}", stdout(&o));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until topic `name` has a live subscriber named `sub`.
fn wait_for_recorder(dir: &Path, name: &str, sub: &str) {
    wait_for_stat(dir, name, &format!("a live subscriber {sub:?} on {name}"), |v| {
        v["subscribers"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == sub && s["alive"] == true))
    });
}

/// The lines `pub --count N --size S` publishes: message i is the number i padded with '.'.
fn generated(n: usize, size: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:.<size$}")).collect()
}

/// Every line of `text` (each ends with a newline).
fn lines(text: &str) -> Vec<String> {
    assert!(text.is_empty() || text.ends_with('\n'), "a line without its newline: {text:?}");
    text.lines().map(String::from).collect()
}

/// Lines on stderr.
fn err_lines(o: &Output) -> Vec<String> {
    stderr(o).lines().map(String::from).collect()
}

/// RFC 3339 UTC of a time, by `date` (an implementation other than the one under test).
fn rfc3339_by_date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    let o = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}.{:09}", d.as_secs(), d.subsec_nanos()), "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .expect("run date");
    assert!(o.status.success(), "date: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

// 1. record while pub publishes; replay prints what sub prints ----------------------------------

#[test]
fn record_while_pub_publishes_then_replay_prints_exactly_what_sub_prints() {
    let d = Dirs::new();
    let rec =
        Background::spawn(d.seg(), &["record", "orders", "--journal", d.j(), "--count", "200", "--timeout", "60000"]);
    wait_for_recorder(d.seg(), "orders", "journal");
    ok(d.run(&["pub", "orders", "--count", "200", "--size", "24", "--kind", "7"]));
    let o = rec.finish();
    assert!(o.status.success(), "record: {}", stderr(&o));
    // It created the topic and said so; nothing else (stderr is not a terminal: no progress).
    let err = err_lines(&o);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].starts_with("shmq: created topic \"orders\""), "{err:?}");

    let published = generated(200, 24);
    let replayed = ok(d.run(&["replay", "orders", "--journal", d.j()]));
    assert_eq!(lines(&replayed), published);
    for opts in [&[][..], &["--show-kind"], &["--hex"], &["--hex", "--show-kind"], &["--raw"]] {
        let mut sub = vec!["sub", "orders", "--from", "earliest", "--count", "200", "--timeout", "10000"];
        sub.extend_from_slice(opts);
        let mut replay = vec!["replay", "orders", "--journal", d.j()];
        replay.extend_from_slice(opts);
        let (s, r) = (d.run(&sub), d.run(&replay));
        assert!(s.status.success() && r.status.success(), "{opts:?}: {} / {}", stderr(&s), stderr(&r));
        assert_eq!(r.stdout, s.stdout, "replay {opts:?} differs from sub {opts:?}");
        assert_eq!(stderr(&r), "", "{opts:?}");
    }
    let kinds = ok(d.run(&["replay", "orders", "--journal", d.j(), "--show-kind", "--count", "2"]));
    assert_eq!(kinds, format!("7\t{}\n7\t{}\n", published[0], published[1]));
    assert_eq!(segment_files(d.seg()), ["shmq.orders"], "the topic is in the test's own segment directory");
}

// 2. replay --from SEQ and --since TIME -----------------------------------------------------------

#[test]
fn replay_starts_at_a_sequence_number_or_at_a_time_in_both_forms() {
    let d = Dirs::new();
    let first: Vec<String> = (0..10).map(|i| format!("first {i}")).collect();
    let second: Vec<String> = (0..5).map(|i| format!("second {i}")).collect();
    ok(shmq_in(d.seg(), &["pub", "ticks"], (first.join("\n") + "\n").as_bytes()));
    // Every publisher has left: record takes what the topic holds, says so, exits 0.
    let o = d.run(&["record", "ticks", "--journal", d.j(), "--until-publishers-leave"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("every publisher of topic \"ticks\" has left"), "{}", stderr(&o));
    assert!(stderr(&o).contains("10 messages into"), "{}", stderr(&o));
    let between = SystemTime::now();
    ok(shmq_in(d.seg(), &["pub", "ticks"], (second.join("\n") + "\n").as_bytes()));
    // The same durable recorder comes back and records only what is new.
    let o = d.run(&["record", "ticks", "--journal", d.j(), "--until-publishers-leave"]);
    assert!(o.status.success() && stderr(&o).contains("5 messages into"), "{}", stderr(&o));
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(lines(&ok(d.run(&["replay", "ticks", "--journal", d.j()]))), all);

    let report = d.report();
    let files = report["topics"][0]["files"].as_array().unwrap();
    let first_seq = u(&files[0]["first_seq"]);
    assert_eq!(u(&report["topics"][0]["records"]), 15);
    let from = |seq: u64| ok(d.run(&["replay", "ticks", "--journal", d.j(), "--from", &seq.to_string()]));
    assert_eq!(lines(&from(first_seq + 3)), all[3..]);
    assert_eq!(lines(&from(first_seq + 14)), all[14..]);
    assert_eq!(from(first_seq + 15), "");
    assert_eq!(lines(&from(0)), all);
    let counted =
        ok(d.run(&["replay", "ticks", "--journal", d.j(), "--from", &(first_seq + 3).to_string(), "--count", "2"]));
    assert_eq!(lines(&counted), all[3..5]);

    let since = |t: &str| ok(d.run(&["replay", "ticks", "--journal", d.j(), "--since", t]));
    let rfc = rfc3339_by_date(between);
    let unix = {
        let t = between.duration_since(UNIX_EPOCH).unwrap();
        format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
    };
    assert_eq!(lines(&since(&rfc)), second, "--since {rfc}");
    assert_eq!(lines(&since(&unix)), second, "--since {unix}");
    assert_eq!(lines(&since("1970-01-01T00:00:00Z")), all);
    assert_eq!(lines(&since("0")), all);
    assert_eq!(since("4102444800"), "", "2100-01-01: nothing yet");
    // The first time `shmq journal` shows is accepted back, and starts at that record.
    let text = ok(d.run(&["journal", d.j()]));
    let shown = text.split_whitespace().find(|w| w.ends_with('Z') && w.contains('T')).expect("a time in the report");
    assert_eq!(lines(&since(shown)), all, "--since {shown}");

    for bad in [
        &["--since", "yesterday"][..],
        &["--since", "2026-13-01T00:00:00Z"],
        &["--from", "x"],
        &["--from", "3", "--since", "0"],
    ] {
        let mut args = vec!["replay", "ticks", "--journal", d.j()];
        args.extend_from_slice(bad);
        let o = d.run(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?} is a usage error: {}", stderr(&o));
    }
}

// 3. journal DIR, text and JSON -------------------------------------------------------------------

/// Publishes 300 messages of 1000 bytes and records them in files of 64 KiB (several files).
fn record_300(d: &Dirs) -> Vec<String> {
    ok(d.run(&["pub", "big", "--count", "300", "--size", "1000", "--max-msg", "1024", "--capacity", "512"]));
    let o =
        d.run(&["record", "big", "--journal", d.j(), "--file-size", "65536", "--count", "300", "--timeout", "10000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "nothing to say: the topic existed, and stderr is not a terminal");
    generated(300, 1000)
}

#[test]
fn journal_shows_each_topic_and_file_as_text_and_json() {
    let d = Dirs::new();
    let empty = ok(d.run(&["journal", d.j()]));
    assert_eq!(empty, format!("no journals in {}\n", d.j()));
    assert_eq!(d.report()["topics"], serde_json::json!([]));

    record_300(&d);
    let report = d.report();
    assert_eq!(report["dir"], d.j());
    let topics = report["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 1);
    let t = &topics[0];
    assert_eq!(t["topic"], "big");
    assert_eq!(u(&t["records"]), 300);
    assert_eq!(t["damage"], serde_json::json!([]));
    let files = t["files"].as_array().unwrap();
    assert!(files.len() >= 4, "several files of 64 KiB: {files:?}");
    let mut next_seq = u(&files[0]["first_seq"]);
    let mut records = 0;
    let mut last_time = 0;
    for f in files {
        for key in ["path", "size", "used", "records", "first_seq", "last_seq", "first_time_ns", "last_time_ns"] {
            assert!(f.get(key).is_some(), "{key} missing: {f}");
        }
        let path = PathBuf::from(f["path"].as_str().unwrap());
        assert_eq!(path.parent().unwrap(), d.journal.path().join("big"));
        assert!(path.exists());
        assert_eq!(u(&f["size"]), 65536);
        assert!(u(&f["used"]) <= 65536 && u(&f["used"]) > 256);
        assert_eq!(u(&f["first_seq"]), next_seq, "files follow each other");
        assert_eq!(u(&f["last_seq"]) - u(&f["first_seq"]) + 1, u(&f["records"]));
        assert!(u(&f["first_time_ns"]) >= last_time && u(&f["last_time_ns"]) >= u(&f["first_time_ns"]));
        next_seq = u(&f["last_seq"]) + 1;
        last_time = u(&f["last_time_ns"]);
        records += u(&f["records"]);
    }
    assert_eq!(records, 300);

    let text = ok(d.run(&["journal", d.j()]));
    let (first, last) = (u(&files[0]["first_seq"]), next_seq - 1);
    let head = text.lines().next().unwrap();
    assert!(head.starts_with(&format!("topic \"big\" in {}/big: {} files, 300 records", d.j(), files.len())), "{head}");
    assert!(head.contains(&format!("sequences {first} to {last}")), "{head}");
    let first_time = u(&files[0]["first_time_ns"]);
    let secs = SystemTime::UNIX_EPOCH + Duration::from_secs(first_time / 1_000_000_000);
    let by_date = rfc3339_by_date(secs);
    assert!(head.contains(&format!("recorded {}.", &by_date[..19])), "{head} (date says {by_date})");
    assert!(text.contains("FIRST_SEQ") && text.contains("USED / SIZE"), "{text}");
    for f in files {
        let name = Path::new(f["path"].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string();
        let row = text.lines().find(|l| l.trim_start().starts_with(&name)).unwrap_or_else(|| panic!("{name}: {text}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1..4], [f["records"].to_string(), f["first_seq"].to_string(), f["last_seq"].to_string()]);
        assert!(row.ends_with("/ 64.0 KiB"), "{row}");
    }
    assert!(text.contains("no corruption found"), "{text}");
    // A topic's own directory is shown alone.
    let own = ok(d.run(&["journal", &format!("{}/big", d.j())]));
    assert_eq!(own, text);
}

// 4. Damage: a flipped byte, a truncated file ---------------------------------------------------

use shmq_test_support::flip_byte as flip;

#[test]
fn damage_is_reported_on_stderr_never_replayed_and_exits_1_after_everything_readable() {
    let d = Dirs::new();
    let published = record_300(&d);
    let before = d.report();
    let files = before["topics"][0]["files"].as_array().unwrap().clone();
    let base = u(&files[0]["first_seq"]);
    assert_eq!(lines(&ok(d.run(&["replay", "big", "--journal", d.j()]))), published);
    // A flipped byte in the middle of the second file; the last file cut short mid-record.
    let (middle, last) = (&files[1], files.last().unwrap());
    let middle_path = PathBuf::from(middle["path"].as_str().unwrap());
    let last_path = PathBuf::from(last["path"].as_str().unwrap());
    flip(&middle_path, u(&middle["used"]) / 2);
    let f = std::fs::OpenOptions::new().write(true).open(&last_path).unwrap();
    f.set_len(u(&last["used"]) - 5).unwrap();
    drop(f);

    let o = d.run(&["journal", d.j()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    let found: Vec<&str> = text.lines().filter(|l| l.contains("corruption found:")).collect();
    assert_eq!(found.len(), 2, "{text}");
    assert!(found[0].contains(middle_path.to_str().unwrap()) && found[0].contains("checksum"), "{}", found[0]);
    assert!(
        found[1].contains(last_path.to_str().unwrap()) && found[1].contains("past the end of the file"),
        "{}",
        found[1]
    );
    assert!(!text.contains("no corruption found"), "{text}");
    let line = one_line_error(&o);
    assert!(line.contains("corruption found: 2 damaged places") && line.contains("\"big\""), "{line}");

    let o = d.run(&["journal", d.j(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let after: Value = serde_json::from_slice(&o.stdout).expect("JSON even with damage");
    let damage = after["topics"][0]["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 2, "{damage:?}");
    assert_eq!(damage[0]["file"], middle_path.to_str().unwrap());
    assert_eq!(damage[1]["file"], last_path.to_str().unwrap());
    for dmg in damage {
        assert!(dmg["offset"].as_u64().is_some() && dmg["what"].as_str().is_some_and(|w| !w.is_empty()), "{dmg}");
    }

    // What replay can read: each file's records up to its damage (what `journal` counts).
    let mut want = Vec::new();
    for f in after["topics"][0]["files"].as_array().unwrap() {
        if let (Some(a), Some(b)) = (f["first_seq"].as_u64(), f["last_seq"].as_u64()) {
            want.extend(published[(a - base) as usize..=(b - base) as usize].iter().cloned());
        }
    }
    assert!(want.len() < 300 && want.len() > 200, "{} readable", want.len());
    let o = d.run(&["replay", "big", "--journal", d.j()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(lines(&stdout(&o)), want, "every valid message, nothing damaged");
    let err = err_lines(&o);
    assert_eq!(err.len(), 2, "one line per damaged place: {err:?}");
    assert!(
        err[0].starts_with("shmq: damage in the journal of topic \"big\"")
            && err[0].contains(middle_path.to_str().unwrap())
    );
    assert!(
        err[1].starts_with("shmq: damage in the journal of topic \"big\"")
            && err[1].contains(last_path.to_str().unwrap())
    );
    // From a sequence past the flipped byte's file, only the damage at the end is met.
    let third = u(&files[2]["first_seq"]);
    let o = d.run(&["replay", "big", "--journal", d.j(), "--from", &third.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(lines(&stdout(&o)), want[want.iter().position(|l| *l == published[(third - base) as usize]).unwrap()..]);
    assert_eq!(err_lines(&o).len(), 1, "{}", stderr(&o));
    // A count reached before any damage: no damage met.
    let o = d.run(&["replay", "big", "--journal", d.j(), "--count", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&stdout(&o)), published[..5]);

    // A recorder opening the journal reports what it found at its end, one line.
    let o = d.run(&["record", "big", "--journal", d.j(), "--timeout", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = err_lines(&o);
    let damage: Vec<&String> = err.iter().filter(|l| l.contains("found on opening it")).collect();
    assert_eq!(damage.len(), 1, "{err:?}");
    assert!(damage[0].contains(last_path.to_str().unwrap()) && damage[0].contains("cut short"), "{}", damage[0]);
}

// 5. A journal that is not there ------------------------------------------------------------------

#[test]
fn a_missing_journal_is_an_error_naming_where_it_looked() {
    let d = Dirs::new();
    let missing = d.journal.path().join("no-such-dir");
    let m = missing.to_str().unwrap();
    let line = one_line_error(&d.run(&["replay", "t", "--journal", m]));
    assert!(line.contains(&format!("no journal directory {m}")), "{line}");
    let line = one_line_error(&d.run(&["journal", m]));
    assert!(line.contains(&format!("no journal directory {m}")), "{line}");
    assert!(!missing.exists(), "nothing was created");
    // The directory is there, this topic's journal is not.
    let line = one_line_error(&d.run(&["replay", "t", "--journal", d.j()]));
    assert!(line.contains(&format!("no journal of topic \"t\" in {}", d.j())), "{line}");
    assert!(line.contains(&format!("{}/t", d.j())) && line.contains("shmq journal"), "{line}");
    let line = one_line_error(&d.run(&["replay", "../etc", "--journal", d.j()]));
    assert!(line.contains("invalid name"), "{line}");
    // No segment directory is needed to read journals.
    let o = shmq(&missing, &["journal", d.j()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

// 6. Signals, one writer per journal ------------------------------------------------------------

#[test]
fn record_stops_on_sigterm_or_sigint_after_syncing_and_one_recorder_writes_a_journal() {
    let d = Dirs::new();
    let mut want = Vec::new();
    for (round, sig) in [(0, libc::SIGTERM), (1, libc::SIGINT)] {
        // A publisher that stays while record runs.
        let topic = shmq::TopicOptions::new().dir(d.seg()).open_or_create("live").unwrap();
        let mut p = topic.publisher().unwrap();
        let rec = Background::spawn(d.seg(), &["record", "live", "--journal", d.j(), "--fsync", "every"]);
        wait_for_recorder(d.seg(), "live", "journal");
        for i in 0..5 {
            let line = format!("round {round} message {i}");
            p.send(line.as_bytes()).unwrap();
            want.push(line);
        }
        let deadline = Instant::now() + WATCHDOG;
        while d.report()["topics"][0]["records"].as_u64() != Some(want.len() as u64) {
            assert!(Instant::now() < deadline, "watchdog: the messages never reached the journal: {}", d.report());
            std::thread::sleep(Duration::from_millis(10));
        }
        if round == 0 {
            // A second recorder of the same journal, even under another name, is refused.
            let line =
                one_line_error(&d.run(&["record", "live", "--journal", d.j(), "--name", "other", "--timeout", "100"]));
            assert!(line.contains("another `shmq record` is writing the journal"), "{line}");
        }
        rec.signal(sig);
        let o = rec.finish();
        assert!(o.status.success(), "exit 0 on a signal: {} {}", o.status, stderr(&o));
        assert!(stderr(&o).contains("stopped by a signal: recorded 5 messages into"), "{}", stderr(&o));
        drop(p);
    }
    assert_eq!(lines(&ok(d.run(&["replay", "live", "--journal", d.j()]))), want);
}

#[test]
fn record_outlives_its_publishers_and_records_the_next_one() {
    // `record` runs until stopped: a publisher that leaves and comes back (a restart) is recorded
    // on, by the same process, with nothing missed between the two.
    let d = Dirs::new();
    let rec = Background::spawn(d.seg(), &["record", "restarts", "--journal", d.j()]);
    wait_for_recorder(d.seg(), "restarts", "journal");
    let mut want = Vec::new();
    for run in 0..2 {
        let batch: Vec<String> = (0..4).map(|i| format!("publisher run {run} message {i}")).collect();
        ok(shmq_in(d.seg(), &["pub", "restarts"], (batch.join("\n") + "\n").as_bytes()));
        want.extend(batch);
        let deadline = Instant::now() + WATCHDOG;
        while d.report()["topics"][0]["records"].as_u64() != Some(want.len() as u64) {
            assert!(Instant::now() < deadline, "watchdog: run {run} never reached the journal: {}", d.report());
            std::thread::sleep(Duration::from_millis(10));
        }
        // The publisher has left; the recorder is still there.
        std::thread::sleep(Duration::from_millis(300));
        // Alive: not exited (an exited child not yet waited for is a zombie, state Z).
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", rec.pid())).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        assert!(matches!(state, Some(s) if s != "Z"), "record exited after publisher run {run} left: {stat:?}");
    }
    rec.signal(libc::SIGTERM);
    let o = rec.finish();
    assert!(o.status.success(), "exit 0 on a signal: {} {}", o.status, stderr(&o));
    assert!(stderr(&o).contains("stopped by a signal: recorded 8 messages into"), "{}", stderr(&o));
    assert_eq!(lines(&ok(d.run(&["replay", "restarts", "--journal", d.j()]))), want);
}

// 7. Options and help ---------------------------------------------------------------------------

#[test]
fn record_options_are_checked_and_the_commands_are_documented() {
    let d = Dirs::new();
    for bad in
        [&["--fsync", "sometimes"][..], &["--fsync", "interval:0"], &["--file-size", "1000"], &["--retain-age", "0"]]
    {
        let mut args = vec!["record", "t", "--journal", d.j()];
        args.extend_from_slice(bad);
        let o = d.run(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
    }
    assert!(d.seg().read_dir().unwrap().next().is_none(), "a refused option leaves nothing behind");
    // A file must hold the topic's largest message.
    ok(d.run(&["pub", "wide", "--count", "1", "--max-msg", "70000"]));
    let line =
        one_line_error(&d.run(&["record", "wide", "--journal", d.j(), "--file-size", "65536", "--timeout", "10"]));
    assert!(line.contains("--file-size 70288 or more"), "{line}");
    // Another name, retention, another sync policy: recorded as asked.
    let o = d.run(&[
        "record",
        "wide",
        "--journal",
        d.j(),
        "--name",
        "archive",
        "--fsync",
        "never",
        "--retain-bytes",
        "1000000",
        "--retain-age",
        "3600",
        "--file-size",
        "131072",
        "--until-publishers-leave",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&ok(d.run(&["replay", "wide", "--journal", d.j()]))), generated(1, 0));

    let text = ok(d.run(&["--help"]));
    for cmd in ["record", "replay", "journal"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(&format!("{cmd} "))), "{cmd} missing: {text}");
    }
    let help = ok(d.run(&["record", "--help"]));
    for opt in [
        "--journal",
        "--fsync",
        "interval:MS",
        "--file-size",
        "--retain-bytes",
        "--retain-age",
        "--name",
        "--lossy",
        "--count",
        "--timeout",
        "--until-publishers-leave",
        "SIGTERM",
    ] {
        assert!(help.contains(opt), "{opt} missing: {help}");
    }
    let help = ok(d.run(&["replay", "--help"]));
    for opt in
        ["--journal", "--from", "--since", "RFC 3339", "Unix timestamp", "--count", "--hex", "--raw", "--show-kind"]
    {
        assert!(help.contains(opt), "{opt} missing: {help}");
    }
    assert!(ok(d.run(&["journal", "--help"])).contains("--json"));
}

#[test]
fn a_lossy_recorder_records_what_the_topic_holds() {
    let d = Dirs::new();
    ok(d.run(&["pub", "fast", "--count", "10"]));
    let o = d.run(&["record", "fast", "--journal", d.j(), "--lossy", "--until-publishers-leave"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("10 messages into"), "{}", stderr(&o));
    assert_eq!(lines(&ok(d.run(&["replay", "fast", "--journal", d.j()]))), generated(10, 0));
    let stat = ok(d.run(&["stat", "fast", "--json"]));
    assert!(stat.contains("\"lossy\""), "the recorder is a lossy subscriber: {stat}");
}
