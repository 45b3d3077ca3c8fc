//! The command line at the door: what a new user meets first. Options refused before anything
//! is created, a missing or read-only segment directory, readers on a name nobody created,
//! error lines that say what to do at the command line, counts in words, oversized lines, raw
//! and hex payloads, batched `missed` lines, `pub` without subscribers, and the field names of
//! `stat --json`. Every test has its own segment directory (`SHMQ_DIR` or `--dir`, a temporary
//! directory), so nothing touches /dev/shm.

mod cli_support;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_support::*;
use shmq::{QueueOptions, TopicOptions};

/// Runs `shmq args...` with the file at `input` as stdin (a regular file, not a pipe).
fn shmq_from_file(dir: &Path, args: &[&str], input: &Path) -> Output {
    let child = command(dir, args)
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmq");
    finish(child, &args.join(" "))
}

/// Asserts a usage error (clap, exit 2).
fn usage_error(o: &Output, args: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "{args:?} is a usage error; stderr: {}", stderr(o));
}

// 1. Options are checked before anything is created -------------------------------------------

#[test]
fn options_that_cannot_shape_a_segment_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &["send", "q", "--max-msg", "0", "--count", "1"][..],
        &["send", "q", "--max-msg", "67108865", "--count", "1"],
        &["send", "q", "--capacity", "0", "--count", "1"],
        &["recv", "q", "--capacity", "2147483648", "--timeout", "10"],
        &["recv", "q", "--max-msg", "0", "--timeout", "10"],
        &["pub", "t", "--max-subscribers", "0", "--count", "1"],
        &["pub", "t", "--max-subscribers", "1025", "--count", "1"],
        &["sub", "t", "--max-msg", "0", "--timeout", "10"],
        &["sub", "t", "--capacity", "1073741825", "--timeout", "10"],
        &["send", "q", "--mode", "0400", "--count", "1"],
        &["send", "q", "--mode", "0640", "--count", "1"],
        &["send", "q", "--mode", "0700", "--count", "1"],
        &["pub", "t", "--mode", "9", "--count", "1"],
    ] {
        usage_error(&shmq(d, args), args);
        assert!(segment_files(d).is_empty(), "{args:?} left {:?}", segment_files(d));
    }
    // Refused after parsing, still before anything is created: exit 1, one line.
    for (args, says) in [
        (
            &["sub", "t", "--name", "bad name", "--timeout", "10"][..],
            "invalid name \"bad name\" for a durable subscriber",
        ),
        (&["send", "q", "--count", "11", "--size", "1"], "--size 1 is too small"),
        (&["pub", "t", "--count", "11", "--size", "1"], "--size 1 is too small"),
        (&["send", "q", "--count", "1", "--size", "300"], "--size 300 is over the largest message"),
        (&["send", "q", "--count", "1", "--size", "20", "--max-msg", "10"], "add --max-msg 20"),
    ] {
        let line = one_line_error(&shmq(d, args));
        assert!(line.contains(says), "{args:?}: {line}");
        assert!(segment_files(d).is_empty(), "{args:?} left {:?}", segment_files(d));
    }
    // Accepted values still work.
    ok(shmq(d, &["send", "q", "--max-msg", "1", "--capacity", "2", "--mode", "0660", "--count", "1"]));
    assert_eq!(segment_files(d), ["shmq.q"]);
}

// 2. Readers on a name nobody created -----------------------------------------------------------

#[test]
fn recv_and_sub_say_on_stderr_when_they_create_what_they_wait_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = shmq(d, &["recv", "typo", "--timeout", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected =
        format!("shmq: created queue \"typo\" in {} (nothing was there yet); waiting for messages\n", d.display());
    assert_eq!(stderr(&o), expected);
    let o = shmq(d, &["recv", "typo", "--timeout", "10"]);
    assert_eq!(stderr(&o), "", "the queue exists now: nothing to say");

    let o = shmq(d, &["sub", "typo-topic", "--timeout", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("shmq: created topic \"typo-topic\" in "), "{}", stderr(&o));
    assert!(stderr(&o).ends_with("(nothing was there yet); waiting for messages\n"), "{}", stderr(&o));
    assert_eq!(stderr(&shmq(d, &["sub", "typo-topic", "--timeout", "10"])), "");

    // A file a creator that died left half-initialised is replaced, and said to be.
    std::fs::write(d.join("shmq.half"), b"bad").unwrap();
    let o = shmq(d, &["recv", "half", "--timeout", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("(in place of a half-initialised file a dead creator left)"), "{}", stderr(&o));

    for cmd in ["recv", "sub"] {
        let help = ok(shmq(d, &[cmd, "--help"]));
        assert!(help.contains("creates it and says so on stderr"), "{cmd} --help: {help}");
    }
}

// 3. A segment directory that is not there ------------------------------------------------------

#[test]
fn a_missing_segment_directory_is_a_one_line_error_naming_it_for_every_command() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("no-such-dir");
    let m = missing.to_str().unwrap();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["gc"],
        &["gc", "--dry-run"],
        &["stat", "q"],
        &["rm", "q"],
        &["rm", "t", "--subscriber", "s"],
        &["send", "q", "--count", "1"],
        &["recv", "q", "--count", "1", "--timeout", "10"],
        &["pub", "t", "--count", "1"],
        &["sub", "t", "--count", "1", "--timeout", "10"],
    ] {
        let o = shmq(&missing, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let line = one_line_error(&o);
        assert!(line.contains(&format!("segment directory {m} (from SHMQ_DIR) does not exist")), "{args:?}: {line}");
        assert!(line.contains("mkdir -p"), "{args:?}: {line}");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
    let line = one_line_error(&shmq(parent.path(), &["--dir", m, "list"]));
    assert!(line.contains(&format!("{m} (from --dir) does not exist")), "{line}");
    assert!(!missing.exists(), "no command created the directory");
}

// 4. Errors that say what to do at the command line ---------------------------------------------

#[test]
fn a_directory_that_refuses_new_files_is_named_as_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Root writes anywhere: run the commands as nobody then, from a copy of the binary that
    // nobody can reach (the build directory may be private to its owner).
    let as_root = std::fs::metadata(d).unwrap().uid() == 0;
    let exe_dir = tempfile::tempdir().unwrap();
    let exe = exe_dir.path().join("shmq");
    if as_root {
        std::fs::set_permissions(exe_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_shmq"), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |args: &[&str]| {
        let mut c = command(d, args);
        if as_root {
            use std::os::unix::process::CommandExt;
            c = Command::new(&exe);
            c.args(args).env("SHMQ_DIR", d).uid(65534).gid(65534);
        }
        let child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        finish(child, &args.join(" "))
    };
    let set_mode = |m: u32| std::fs::set_permissions(d, std::fs::Permissions::from_mode(m)).unwrap();
    set_mode(0o777);
    ok(run(&["send", "mine", "--count", "1"]));
    set_mode(0o555);
    let created = run(&["send", "q", "--count", "1"]);
    let removed = run(&["rm", "mine"]);
    set_mode(0o755);
    let line = one_line_error(&created);
    assert!(
        line.contains(&format!("cannot create a segment in {}: permission denied by the directory", d.display())),
        "{line}"
    );
    assert!(line.contains("--dir or SHMQ_DIR"), "{line}");
    assert!(!line.contains("belongs to another user"), "{line}");
    let line = one_line_error(&removed);
    assert!(line.contains(&format!("takes write permission on its directory ({})", d.display())), "{line}");
    assert_eq!(segment_files(d), ["shmq.mine"]);
}

#[test]
fn mode_sets_the_permissions_of_a_new_segment_and_is_checked_against_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq(d, &["send", "shared", "--mode", "0660", "--count", "1"]));
    let mode = |name: &str| std::fs::metadata(d.join(format!("shmq.{name}"))).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("shared"), 0o660);
    ok(shmq(d, &["pub", "everyone", "--mode", "666", "--count", "1"]));
    assert_eq!(mode("everyone"), 0o666);
    ok(shmq(d, &["send", "private", "--count", "1"]));
    assert_eq!(mode("private"), 0o600, "the default is the owner only");
    // Opening with the mode it has is fine; another mode is not ignored silently.
    assert_eq!(ok(shmq(d, &["recv", "shared", "--mode", "0660", "--count", "1", "--timeout", "10000"])), "0\n");
    let line = one_line_error(&shmq(d, &["send", "private", "--mode", "0660", "--count", "1"]));
    assert!(line.contains("\"private\" exists already with mode 0600, not 0660"), "{line}");
    assert!(line.contains("chmod 0660"), "{line}");
    let line = one_line_error(&shmq(d, &["sub", "everyone", "--mode", "0600", "--timeout", "10"]));
    assert!(line.contains("topic \"everyone\" exists already with mode 0666, not 0600"), "{line}");
    assert!(ok(shmq(d, &["send", "--help"])).contains("--mode <MODE>"));
}

#[test]
fn a_subscriber_name_over_the_limit_states_the_limit_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = "a".repeat(65);
    for args in [&["sub", "t", "--name", &long, "--timeout", "10"][..], &["rm", "t", "--subscriber", &long]] {
        let line = one_line_error(&shmq(d, args));
        assert!(line.contains("it has 65 bytes; use 1 to 64 bytes of [A-Za-z0-9._-]"), "{line}");
        assert_eq!(line.matches("64").count(), 1, "the limit once: {line}");
        assert!(!line.contains("200"), "the limit of queue names is not the subscribers': {line}");
    }
    assert!(segment_files(d).is_empty(), "sub refused the name before creating the topic");
    ok(shmq(d, &["sub", "t", "--name", &"a".repeat(64), "--timeout", "10"]));
}

#[test]
fn stat_of_a_missing_name_says_what_to_do_at_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = one_line_error(&shmq(dir.path(), &["stat", "nosuch"]));
    assert!(line.contains("no queue or topic named \"nosuch\""), "{line}");
    assert!(line.contains("see `shmq list`"), "{line}");
    assert!(!line.contains("open_or_create"), "a library call is no advice at a shell: {line}");
}

#[test]
fn a_full_subscriber_table_points_at_max_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq(d, &["sub", "small", "--max-subscribers", "1", "--name", "away", "--timeout", "10"]));
    let line = one_line_error(&shmq(d, &["sub", "small", "--timeout", "10"]));
    assert!(line.contains("the one subscriber slot of topic \"small\" is in use"), "{line}");
    assert!(line.contains("shmq rm small --subscriber SUB"), "{line}");
    assert!(line.contains("--max-subscribers"), "{line}");
}

#[test]
fn a_topic_used_as_a_queue_is_called_a_topic_and_not_offered_for_removal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq(d, &["pub", "news", "--count", "1"]));
    ok(shmq(d, &["send", "jobs", "--count", "1"]));
    for args in [&["recv", "news", "--count", "1", "--timeout", "10"][..], &["send", "news", "--count", "1"]] {
        let line = one_line_error(&shmq(d, args));
        assert!(line.contains("\"news\" is a topic, not a queue"), "{args:?}: {line}");
        assert!(line.contains("`shmq sub news`") && line.contains("`shmq pub news`"), "{args:?}: {line}");
        assert!(!line.contains("rm"), "removing it would drop its messages: {line}");
    }
    for args in [&["sub", "jobs", "--count", "1", "--timeout", "10"][..], &["pub", "jobs", "--count", "1"]] {
        let line = one_line_error(&shmq(d, args));
        assert!(line.contains("\"jobs\" is a queue (mpmc), not a topic"), "{args:?}: {line}");
        assert!(line.contains("`shmq recv jobs`") && !line.contains("rm"), "{args:?}: {line}");
    }
    let line = one_line_error(&shmq(d, &["recv", "jobs", "--spsc", "--count", "1", "--timeout", "10"]));
    assert!(line.contains("leave out --spsc"), "{line}");
    let line = one_line_error(&shmq(d, &["recv", "jobs", "--capacity", "8", "--count", "1", "--timeout", "10"]));
    assert!(line.contains("capacity is 1024, expected 8") && line.contains("leave out --capacity"), "{line}");
    assert_eq!(segment_files(d), ["shmq.jobs", "shmq.news"], "nothing was removed");
}

#[test]
fn counts_in_messages_agree_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq(d, &["send", "pair", "--capacity", "2", "--count", "1"]));
    let line = one_line_error(&shmq(d, &["send", "pair", "--count", "2", "--timeout", "20"]));
    assert!(line.contains("(1 message sent)"), "{line}");
    let line = one_line_error(&shmq_in(d, &["send", "one-byte", "--max-msg", "1"], b"ab\n"));
    assert!(line.contains("line 1 is 2 bytes, over the queue's maximum of 1 byte; sent 0 lines"), "{line}");
    let text = ok(shmq(d, &["stat", "one-byte"]));
    assert!(text.contains("max_msg       1 byte (slot stride 32 bytes)"), "{text}");
    // 64-byte messages: split slots, 16 header bytes + 64 payload bytes per message.
    ok(shmq(d, &["send", "wide", "--max-msg", "64", "--count", "0"]));
    let text = ok(shmq(d, &["stat", "wide"]));
    assert!(
        text.contains("max_msg       64 bytes (slot stride 80 bytes, header and payload in separate arrays)"),
        "{text}"
    );
    let json = ok(shmq(d, &["stat", "wide", "--json"]));
    assert!(json.contains("\"split_slots\":true") && json.contains("\"slot_stride\":80"), "{json}");
}

// 5. send and pub stopped by a line that does not fit -------------------------------------------

#[test]
fn an_oversized_line_stops_send_and_pub_saying_how_many_lines_were_and_were_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut input = String::new();
    for i in 1..=8 {
        if i == 4 {
            input.push_str(&"x".repeat(300));
        } else {
            input.push_str(&format!("line {i}"));
        }
        input.push('\n');
    }
    let file = d.join("input.txt");
    std::fs::write(&file, &input).unwrap();

    // From a file: read to its end to count the lines not sent.
    let line = one_line_error(&shmq_from_file(d, &["send", "q"], &file));
    assert_eq!(
        line,
        "shmq: line 4 is 300 bytes, over the queue's maximum of 256 bytes; sent 3 lines, 5 not sent; split it, \
         or use a queue created with a larger --max-msg"
    );
    assert_eq!(ok(shmq(d, &["recv", "q", "--timeout", "10"])), "line 1\nline 2\nline 3\n");

    // From a pipe, which may never end: not read further.
    let line = one_line_error(&shmq_in(d, &["send", "q"], input.as_bytes()));
    assert!(line.contains("sent 3 lines; line 4 and the rest of stdin were not sent"), "{line}");

    // pub says the same (after its line about subscribers: there are none).
    let o = shmq_from_file(d, &["pub", "t"], &file);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "shmq: line 4 is 300 bytes, over the topic's maximum of 256 bytes; published 3 lines, 5 not published"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");

    // Raw frames are counted as frames.
    let mut frames = Vec::new();
    for len in [3usize, 400, 5] {
        frames.extend_from_slice(&(len as u32).to_le_bytes());
        frames.extend(std::iter::repeat_n(b'z', len));
    }
    let raw = d.join("frames.bin");
    std::fs::write(&raw, &frames).unwrap();
    let line = one_line_error(&shmq_from_file(d, &["send", "r", "--raw"], &raw));
    assert!(
        line.contains("frame 2 is 400 bytes, over the queue's maximum of 256 bytes; sent 1 frame, 2 not sent"),
        "{line}"
    );
}

// 6. Binary payloads ----------------------------------------------------------------------------

/// Payloads that are not text: invalid UTF-8, NUL, newlines, empty, every byte value.
fn binary_payloads() -> Vec<Vec<u8>> {
    vec![
        b"plain".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"two\nlines\n".to_vec(),
        Vec::new(),
        b"\n".to_vec(),
        (0..=255u8).collect(),
    ]
}

fn frames_of(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in payloads {
        v.extend_from_slice(&(p.len() as u32).to_le_bytes());
        v.extend_from_slice(p);
    }
    v
}

#[test]
fn raw_frames_round_trip_bytes_that_are_not_text_through_queues_and_topics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let payloads = binary_payloads();
    let frames = frames_of(&payloads);
    let n = payloads.len().to_string();

    ok(shmq_in(d, &["send", "bin", "--raw"], &frames));
    let o = shmq(d, &["recv", "bin", "--raw", "--count", &n, "--timeout", "10000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, frames, "recv --raw writes back exactly the frames send --raw read");

    // The same through a topic (a subscriber from the earliest sees the history).
    ok(shmq_in(d, &["pub", "bin-topic", "--raw"], &frames));
    let o = shmq(d, &["sub", "bin-topic", "--from", "earliest", "--raw", "--count", &n, "--timeout", "10000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, frames);

    // --hex: one line of lowercase hex per message.
    ok(shmq_in(d, &["send", "hex", "--raw"], &frames));
    let text = ok(shmq(d, &["recv", "hex", "--hex", "--count", &n, "--timeout", "10000"]));
    let expected: String =
        payloads.iter().map(|p| p.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n").collect();
    assert_eq!(text, expected);
    assert!(text.starts_with("706c61696e\nfffe0080\n74776f0a6c696e65730a\n\n0a\n000102"), "{text}");
    ok(shmq_in(d, &["pub", "hex-topic", "--raw", "--kind", "7"], &frames));
    let text = ok(shmq(
        d,
        &["sub", "hex-topic", "--from", "earliest", "--hex", "--show-kind", "--count", "2", "--timeout", "10000"],
    ));
    assert_eq!(text, "7\t706c61696e\n7\tfffe0080\n");

    // A frame cut short is an error naming it; the frames before it were sent.
    let line = one_line_error(&shmq_in(d, &["send", "cut", "--raw"], &frames[..frames.len() - 1]));
    assert!(line.contains("stdin ended inside frame 6 (255 of its 256 bytes came)"), "{line}");
    assert_eq!(json(shmq(d, &["stat", "cut", "--json"]))["depth"], 5);

    // The formats exclude each other, and --raw excludes what it cannot carry.
    for args in [
        &["recv", "bin", "--raw", "--hex"][..],
        &["recv", "bin", "--raw", "--show-kind"],
        &["sub", "bin-topic", "--raw", "--hex"],
        &["send", "bin", "--raw", "--count", "1"],
        &["pub", "bin-topic", "--raw", "--count", "1"],
    ] {
        usage_error(&shmq(d, args), args);
    }
    let help = ok(shmq(d, &["recv", "--help"]));
    assert!(help.contains("u32, little-endian"), "{help}");
}

// 7. sub --lossy batches the gaps it reports ----------------------------------------------------

/// Two gaps with no message between them make one `missed` line. To make the second gap come
/// right after the first, stderr is a socket whose buffer is full: the subscriber's first
/// report (or, once reports wait for the next message, the write before that message) blocks
/// until the test has lapped it again.
#[test]
fn sub_lossy_reports_consecutive_gaps_as_one_missed_line_with_their_sum() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A durable lossy subscriber that joins at message 0 and goes away.
    ok(shmq(d, &["sub", "ticks", "--capacity", "2", "--lossy", "--name", "ticker", "--timeout", "10"]));
    let topic = TopicOptions::new().dir(d).open("ticks").unwrap();
    let mut publisher = topic.publisher().unwrap();
    for i in 0..5u32 {
        publisher.send(i.to_string().as_bytes()).unwrap(); // m0..m2 are overwritten
    }

    let (ours, theirs) = UnixStream::pair().unwrap();
    theirs.set_nonblocking(true).unwrap();
    let mut filled = 0usize;
    for chunk in [4096usize, 1] {
        loop {
            match (&theirs).write(&vec![b'#'; chunk]) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("fill the stderr socket: {e}"),
            }
        }
    }
    theirs.set_nonblocking(false).unwrap();
    let mut child = {
        let mut c = command(d, &["sub", "ticks", "--lossy", "--name", "ticker", "--timeout", "300"]);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(std::os::fd::OwnedFd::from(theirs));
        c.spawn().unwrap()
    };
    let mut stdout_pipe = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut v);
        v
    });

    // The subscriber has met the first gap (3 messages) ...
    let deadline = Instant::now() + WATCHDOG;
    while !topic.subscribers().iter().any(|s| s.name.as_deref() == Some("ticker") && s.lagged >= 3) {
        assert!(Instant::now() < deadline, "watchdog: the subscriber never met the first gap");
        std::thread::sleep(Duration::from_millis(5));
    }
    // ... and is held by its stderr; lap it again.
    for i in 5..10u32 {
        publisher.send(i.to_string().as_bytes()).unwrap();
    }
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = (&ours).read_to_end(&mut v);
        v
    });
    let status = {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("watchdog: sub still running");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let err = err_reader.join().unwrap();
    let out = String::from_utf8(out_reader.join().unwrap()).unwrap();
    let err = String::from_utf8_lossy(&err[filled..]).into_owned();
    assert!(status.success(), "sub failed: {err}");

    let printed: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    let missed: Vec<u64> = err
        .lines()
        .map(|l| {
            let n = l.strip_prefix("shmq: missed ").and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok());
            n.unwrap_or_else(|| panic!("not a missed line: {l:?} in {err:?}"))
        })
        .collect();
    // Each run of messages not printed is one line with its length.
    let mut gaps = Vec::new();
    let mut next = 0;
    for &m in &printed {
        if m > next {
            gaps.push(m - next);
        }
        next = m + 1;
    }
    assert_eq!(printed.last(), Some(&9), "the last message is never overwritten: {out}");
    assert_eq!(missed, gaps, "printed {printed:?}; stderr {err:?}");
    for l in err.lines() {
        let n: u64 = l.split(' ').nth(2).unwrap().parse().unwrap();
        let expected = if n == 1 { "shmq: missed 1 message".to_string() } else { format!("shmq: missed {n} messages") };
        assert_eq!(l, expected);
    }
}

// 8. pub with nobody listening ------------------------------------------------------------------

#[test]
fn pub_to_a_topic_without_subscribers_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = shmq_in(d, &["pub", "quiet", "--capacity", "64"], b"a\nb\nc\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "shmq: topic \"quiet\" has no subscribers; messages are kept only up to its capacity (64) for subscribers \
         that start from the earliest (`shmq sub quiet --from earliest`)\n"
    );
    ok(shmq(d, &["sub", "quiet", "--name", "later", "--timeout", "10"]));
    let o = shmq(d, &["pub", "quiet", "--count", "3"]);
    assert!(o.status.success());
    assert_eq!(stderr(&o), "", "a durable subscriber is registered: nothing to say");
}

// Options accepted and then ignored are said to be ---------------------------------------------

#[test]
fn from_given_to_a_returning_durable_subscriber_is_said_not_to_apply() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq(d, &["sub", "t", "--name", "d", "--timeout", "10"]));
    ok(shmq(d, &["pub", "t", "--count", "3"]));
    let o = shmq(d, &["sub", "t", "--name", "d", "--from", "latest", "--count", "2", "--timeout", "10000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0\n1\n", "it continues where it stopped");
    assert_eq!(
        stderr(&o),
        "shmq: durable subscriber \"d\" continues where it stopped (message 0), not from the latest: --from applies \
         to a new subscriber (`shmq rm t --subscriber d` forgets this one)\n"
    );
    let o = shmq(d, &["sub", "t", "--name", "d", "--count", "1", "--timeout", "10000"]);
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("2\n", ""), "without --from there is nothing to say");
}

// 9. stat --json names fields for what they are -------------------------------------------------

#[test]
fn stat_json_names_the_subscriber_epoch_of_topics_and_the_role_holders_of_spsc_queues() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shmq(d, &["pub", "t", "--count", "2"]));
    ok(shmq(d, &["sub", "t", "--name", "s", "--timeout", "10"]));
    let v = json(shmq(d, &["stat", "t", "--json"]));
    assert!(v.get("head").is_none(), "a topic has no read index: {v}");
    assert!(v["subscriber_epoch"].is_u64(), "{v}");
    assert_eq!(v["tail"], 2);
    assert_eq!(v["published"], 2);
    assert!(v.get("producer").is_none() && v.get("consumer").is_none(), "{v}");

    ok(shmq(d, &["send", "m", "--count", "1"]));
    let v = json(shmq(d, &["stat", "m", "--json"]));
    assert_eq!(v["head"], 0);
    assert!(v.get("producer").is_none() && v.get("consumer").is_none(), "MPMC has no role holders: {v}");

    ok(shmq(d, &["send", "s", "--spsc", "--count", "1"]));
    let v = json(shmq(d, &["stat", "s", "--json"]));
    assert!(v["producer"].is_null() && v["consumer"].is_null(), "free roles are null: {v}");
    assert!(v.as_object().unwrap().contains_key("producer"), "{v}");
    // This process takes the consumer role.
    let q = QueueOptions::new().dir(d).spsc().open("s").unwrap();
    let _rx = q.consumer().unwrap();
    let v = json(shmq(d, &["stat", "s", "--json"]));
    assert_eq!(v["consumer"]["pid"], std::process::id());
    assert_eq!(v["consumer"]["alive"], true);
    assert!(v["consumer"]["id"].as_u64().unwrap() >= 1);
    assert_eq!(v["consumer"], v["consumer_holder"], "the older name stays");
    assert!(v["producer"].is_null());
}
