//! Journals on disk: append and read back across file rolls, from a sequence number or a time,
//! resume after a restart, torn and damaged records, truncated files, retention, and a reader
//! following a writer.

use std::path::Path;
use std::time::Duration;

use shmq::journal::{inspect, Fsync, JournalOptions, JournalReader, JournalWriter, Record, ReplayFrom};

const SMALL: u64 = 64 << 10;

fn payload(seq: u64) -> Vec<u8> {
    // Lengths vary (0 to 300 bytes); the bytes say which message they belong to.
    let len = (seq * 37 % 301) as usize;
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn write(dir: &Path, topic: &str, seqs: impl IntoIterator<Item = u64>, opts: JournalOptions) -> JournalWriter {
    let (mut w, damage) = JournalWriter::open(&opts, topic).unwrap();
    assert!(damage.is_empty(), "{damage:?}");
    for s in seqs {
        assert!(w.append(s, 1_000 + s, (s % 5) as u32, &payload(s)).unwrap());
    }
    let _ = dir;
    w
}

fn read_all(dir: &Path, topic: &str, from: ReplayFrom) -> Vec<Record> {
    JournalReader::open(dir, topic, from).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

fn check(records: &[Record], seqs: impl IntoIterator<Item = u64>) {
    let want: Vec<u64> = seqs.into_iter().collect();
    let got: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(got, want);
    for r in records {
        assert_eq!(
            (r.payload.clone(), r.kind, r.time_ns),
            (payload(r.seq), (r.seq % 5) as u32, 1_000 + r.seq),
            "record {}",
            r.seq
        );
    }
}

#[test]
fn records_come_back_in_order_across_files_from_any_point() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new(dir.path()).file_size(SMALL).fsync(Fsync::Never);
    drop(write(dir.path(), "prices", 1..=2000, opts));
    let report = inspect(dir.path(), "prices").unwrap();
    assert!(report.files.len() > 3, "{} files: the test wants several rolls", report.files.len());
    assert_eq!((report.records(), report.seqs(), report.damage.len()), (2000, Some((1, 2000)), 0));
    check(&read_all(dir.path(), "prices", ReplayFrom::Start), 1..=2000);
    check(&read_all(dir.path(), "prices", ReplayFrom::Seq(777)), 777..=2000);
    check(&read_all(dir.path(), "prices", ReplayFrom::Seq(5000)), []);
    check(&read_all(dir.path(), "prices", ReplayFrom::Time(1_000 + 1500)), 1500..=2000);
    check(&read_all(dir.path(), "nothing-here", ReplayFrom::Start), []);
}

#[test]
fn a_restarted_writer_goes_on_after_its_last_record_and_writes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new(dir.path()).file_size(SMALL).fsync(Fsync::Every);
    let mut w = write(dir.path(), "t", 1..=500, opts.clone());
    // `Every` syncs on `tick` (group commit), before what it syncs is acknowledged (and when a
    // file is finished).
    assert_eq!(w.last_seq(), Some(500));
    assert!(w.durable_seq() < Some(500), "{:?}", w.durable_seq());
    w.tick().unwrap();
    assert_eq!((w.last_seq(), w.durable_seq()), (Some(500), Some(500)));
    drop(w);
    let (mut w, damage) = JournalWriter::open(&opts, "t").unwrap();
    assert!(damage.is_empty());
    assert_eq!(w.last_seq(), Some(500));
    // A recorder that restarts from an older position offers messages again: skipped.
    for s in 400..=700 {
        let appended = w.append(s, 1_000 + s, (s % 5) as u32, &payload(s)).unwrap();
        assert_eq!(appended, s > 500, "seq {s}");
    }
    drop(w);
    check(&read_all(dir.path(), "t", ReplayFrom::Start), 1..=700);
}

use shmq_test_support::flip_byte as flip;

#[test]
fn a_torn_last_record_is_never_read_and_the_next_writer_cuts_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new(dir.path()).file_size(SMALL).fsync(Fsync::Never);
    drop(write(dir.path(), "t", 1..=100, opts.clone()));
    let report = inspect(dir.path(), "t").unwrap();
    let last = report.files.last().unwrap().clone();
    // Tear the last record: a byte of its payload (a crash mid-copy).
    flip(&last.path, last.used - 3);
    let mut reader = JournalReader::open(dir.path(), "t", ReplayFrom::Start).unwrap();
    let r: Vec<Record> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    check(&r, 1..=99);
    let tail = reader.tail().expect("the torn record at the end is pointed out");
    assert!(tail.what.contains("checksum") && tail.file == last.path, "{tail}");
    let report = inspect(dir.path(), "t").unwrap();
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    assert!(report.damage[0].what.contains("checksum"), "{}", report.damage[0]);
    // The writer cuts it off, reports it, and goes on from 99.
    let (mut w, damage) = JournalWriter::open(&opts, "t").unwrap();
    assert_eq!(damage.len(), 1);
    assert!(damage[0].cut);
    assert_eq!(w.last_seq(), Some(99));
    for s in 100..=150 {
        assert!(w.append(s, 1_000 + s, (s % 5) as u32, &payload(s)).unwrap());
    }
    drop(w);
    check(&read_all(dir.path(), "t", ReplayFrom::Start), 1..=150);
    assert!(inspect(dir.path(), "t").unwrap().damage.is_empty());
    // One writer per journal.
    let (_w, _) = JournalWriter::open(&opts, "t").unwrap();
    let e = JournalWriter::open(&opts, "t").unwrap_err();
    assert!(e.to_string().contains("one writer per journal"), "{e}");
}

#[test]
fn damage_inside_the_journal_is_reported_and_skipped_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new(dir.path()).file_size(SMALL).fsync(Fsync::Never);
    drop(write(dir.path(), "t", 1..=2000, opts));
    let report = inspect(dir.path(), "t").unwrap();
    let second = report.files[1].clone();
    let (first_seq, last_seq) = second.seqs.unwrap();
    // A flipped byte in the middle of the second file.
    flip(&second.path, second.used / 2);
    let mut reader = JournalReader::open(dir.path(), "t", ReplayFrom::Start).unwrap();
    let got: Vec<Record> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(reader.damage().len(), 1, "{:?}", reader.damage());
    // Everything before the damage and everything after the damaged file; nothing damaged.
    for r in &got {
        assert_eq!(r.payload, payload(r.seq), "record {}", r.seq);
    }
    let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(seqs.contains(&(first_seq - 1)) && seqs.contains(&(last_seq + 1)) && *seqs.last().unwrap() == 2000);
    assert!(seqs.len() < 2000);
    assert_eq!(inspect(dir.path(), "t").unwrap().damage.len(), 1);
}

#[test]
fn a_file_cut_short_is_reported_and_the_writer_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new(dir.path()).file_size(SMALL).fsync(Fsync::Never);
    drop(write(dir.path(), "t", 1..=100, opts.clone()));
    let report = inspect(dir.path(), "t").unwrap();
    let last = report.files.last().unwrap().clone();
    // Truncate mid-record.
    let f = std::fs::OpenOptions::new().write(true).open(&last.path).unwrap();
    f.set_len(last.used - 5).unwrap();
    drop(f);
    check(&read_all(dir.path(), "t", ReplayFrom::Start), 1..=99);
    let (mut w, damage) = JournalWriter::open(&opts, "t").unwrap();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert!(damage[0].what.contains("cut short"), "{}", damage[0]);
    assert_eq!(w.last_seq(), Some(99));
    for s in 100..=120 {
        assert!(w.append(s, 1_000 + s, (s % 5) as u32, &payload(s)).unwrap());
    }
    drop(w);
    check(&read_all(dir.path(), "t", ReplayFrom::Start), 1..=120);
}

#[test]
fn retention_removes_the_oldest_files_and_never_the_one_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new(dir.path()).file_size(SMALL).fsync(Fsync::Never).retain_bytes(3 * SMALL);
    drop(write(dir.path(), "t", 1..=5000, opts));
    let report = inspect(dir.path(), "t").unwrap();
    assert!(report.files.len() <= 3, "{} files", report.files.len());
    let (first, last) = report.seqs().unwrap();
    assert!(first > 1 && last == 5000);
    check(&read_all(dir.path(), "t", ReplayFrom::Start), first..=5000);
}

#[test]
fn a_reader_follows_a_writer_and_gets_every_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new(dir.path()).file_size(SMALL).fsync(Fsync::Never);
    const N: u64 = 20_000;
    let writer = {
        let opts = opts.clone();
        std::thread::spawn(move || {
            let (mut w, _) = JournalWriter::open(&opts, "live").unwrap();
            for s in 1..=N {
                w.append(s, 1_000 + s, (s % 5) as u32, &payload(s)).unwrap();
                if s % 1000 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let mut reader = JournalReader::open(dir.path(), "live", ReplayFrom::Start).unwrap();
    let mut next = 1;
    let t = std::time::Instant::now();
    while next <= N {
        match reader.next_record().unwrap() {
            Some(r) => {
                assert_eq!(r.seq, next);
                assert_eq!(r.payload, payload(r.seq));
                next += 1;
            }
            None => std::thread::sleep(Duration::from_micros(100)),
        }
        assert!(t.elapsed() < Duration::from_secs(60), "stuck at {next}");
    }
    writer.join().unwrap();
    assert!(reader.damage().is_empty(), "{:?}", reader.damage());
}

#[test]
fn a_recorder_journals_every_message_once_across_restarts() {
    use shmq::journal::Recorder;
    use shmq::TopicOptions;
    let seg_dir = tempfile::tempdir().unwrap();
    let jdir = tempfile::tempdir().unwrap();
    let topic = TopicOptions::new().dir(seg_dir.path()).capacity(256).create("events").unwrap();
    let opts = JournalOptions::new(jdir.path()).file_size(SMALL).fsync(Fsync::Interval(Duration::from_millis(5)));
    const N: u64 = 30_000;
    // The recorder joins first (it gates the publisher from then on), then restarts 5 times.
    let (recorder, damage) = Recorder::new(&topic, &opts).unwrap();
    assert!(damage.is_empty());
    let publisher = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            let mut p = topic.publisher().unwrap();
            for s in 0..N {
                p.send_kind((s % 5) as u32, &s.to_le_bytes()).unwrap();
            }
        })
    };
    let mut recorder = Some(recorder);
    let mut restarts = 0;
    loop {
        let r = recorder.as_mut().unwrap();
        match r.record_for(Duration::from_millis(50)) {
            Ok(_) => {}
            Err(shmq::Error::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
        if r.writer().last_seq().is_some_and(|l| l > (restarts + 1) * N / 6) && restarts < 5 {
            // A restart: the old recorder goes (unflushed work is acknowledged only if durable).
            drop(recorder.take());
            recorder = Some(Recorder::new(&topic, &opts).unwrap().0);
            restarts += 1;
        }
        if publisher.is_finished() && recorder.as_ref().unwrap().writer().last_seq() == Some(N - 1) {
            break;
        }
    }
    publisher.join().unwrap();
    drop(recorder);
    assert_eq!(restarts, 5);
    let records = read_all(jdir.path(), "events", ReplayFrom::Start);
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "every message once, in order");
    for r in &records {
        assert_eq!((r.payload.as_slice(), r.kind), (&r.seq.to_le_bytes()[..], (r.seq % 5) as u32));
    }
}

#[test]
fn replay_then_live_under_a_running_publisher_has_no_gap_and_no_duplicate() {
    use shmq::journal::{Recorder, ReplayThenLive};
    use shmq::TopicOptions;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    let seg_dir = tempfile::tempdir().unwrap();
    let jdir = tempfile::tempdir().unwrap();
    let topic =
        TopicOptions::new().dir(seg_dir.path()).capacity(512).max_msg_size(512).create("accounts.events").unwrap();
    let opts = JournalOptions::new(jdir.path()).file_size(SMALL).fsync(Fsync::Interval(Duration::from_millis(2)));
    const N: u64 = 50_000;
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let (mut recorder, _) = Recorder::new(&topic, &opts).unwrap();
    let recording = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                match recorder.record_for(Duration::from_millis(5)) {
                    Ok(_) | Err(shmq::Error::Disconnected) => {}
                    Err(e) => panic!("recorder: {e}"),
                }
            }
        })
    };
    let publishing = {
        let (topic, published) = (topic.clone(), published.clone());
        std::thread::spawn(move || {
            let mut p = topic.publisher().unwrap();
            for s in 0..N {
                p.send_kind((s % 5) as u32, &payload(s)).unwrap();
                published.store(s + 1, Relaxed);
                if s % 2000 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    // Join a third of the way in: the first messages are only in the journal by then.
    while published.load(Relaxed) < N / 3 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut rtl = ReplayThenLive::new(&topic, jdir.path(), ReplayFrom::Start).unwrap();
    let mut buf = vec![0u8; 512];
    let (mut from_journal, mut live) = (0u64, 0u64);
    for want in 0..N {
        let m = rtl.recv_into(&mut buf).unwrap();
        assert_eq!(m.seq, want, "a gap or a duplicate");
        assert_eq!((&buf[..m.len], m.kind), (&payload(want)[..], (want % 5) as u32));
        if m.from_journal {
            from_journal += 1;
        } else {
            live += 1;
        }
    }
    publishing.join().unwrap();
    stop.store(true, Relaxed);
    recording.join().unwrap();
    eprintln!("replay-then-live: {from_journal} from the journal, then {live} live");
    assert!(from_journal >= N / 3 - 512 && live > 0, "{from_journal} / {live}");
    assert!(rtl.journal_damage().is_empty());
}

#[test]
fn replay_then_live_reports_what_neither_the_journal_nor_the_topic_holds() {
    use shmq::journal::ReplayThenLive;
    use shmq::{TopicOptions, TryRecvError};
    let seg_dir = tempfile::tempdir().unwrap();
    let jdir = tempfile::tempdir().unwrap();
    // No recorder: the topic keeps only its last 8 messages, the journal has the first 10.
    let topic = TopicOptions::new().dir(seg_dir.path()).capacity(8).max_msg_size(512).create("t").unwrap();
    let opts = JournalOptions::new(jdir.path()).file_size(SMALL).fsync(Fsync::Never);
    drop(write(jdir.path(), "t", 0..10, opts));
    let mut p = topic.publisher().unwrap();
    for s in 0..100u64 {
        p.send_kind((s % 5) as u32, &payload(s)).unwrap();
    }
    let mut rtl = ReplayThenLive::new(&topic, jdir.path(), ReplayFrom::Start).unwrap();
    let mut buf = vec![0u8; 512];
    for want in 0..10 {
        assert_eq!(rtl.try_recv(&mut buf).unwrap().seq, want);
    }
    assert_eq!(rtl.try_recv(&mut buf), Err(TryRecvError::Lagged(82)), "10..92 are nowhere");
    for want in 92..100 {
        let m = rtl.try_recv(&mut buf).unwrap();
        assert_eq!((m.seq, m.from_journal), (want, false));
    }
    assert_eq!(rtl.try_recv(&mut buf), Err(TryRecvError::Empty));
}

/// The volume test: N messages (200,000 in a debug build, 10,000,000 in a release one,
/// `SHMQ_JOURNAL_MESSAGES` to choose) published on a topic, recorded by a recorder into a
/// journal of 16 MiB files, and replayed: every message exactly once, in order, every byte and
/// checksum right, no damage.
#[test]
fn millions_of_messages_are_recorded_and_replayed_exactly() {
    use shmq::journal::Recorder;
    use shmq::TopicOptions;
    let n: u64 = std::env::var("SHMQ_JOURNAL_MESSAGES")
        .ok()
        .map(|v| v.parse().expect("SHMQ_JOURNAL_MESSAGES: a number"))
        .unwrap_or(if cfg!(debug_assertions) { 200_000 } else { 10_000_000 });
    let seg_dir = tempfile::tempdir().unwrap();
    let jdir = tempfile::tempdir().unwrap();
    let topic = TopicOptions::new().dir(seg_dir.path()).capacity(4096).max_msg_size(64).create("volume").unwrap();
    let opts = JournalOptions::new(jdir.path()).file_size(16 << 20).fsync(Fsync::Never);
    let (mut recorder, damage) = Recorder::new(&topic, &opts).unwrap();
    assert!(damage.is_empty());
    // 8 to 64 bytes: the sequence number, then bytes that depend on it.
    let body = |s: u64| -> Vec<u8> {
        let mut b = s.to_le_bytes().to_vec();
        b.extend((0..(s % 57) as u8).map(|i| i ^ s as u8));
        b
    };
    let started = std::time::Instant::now();
    let publisher = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            let mut p = topic.publisher().unwrap();
            for s in 0..n {
                p.send_kind((s % 7) as u32, &body(s)).unwrap();
            }
        })
    };
    loop {
        match recorder.record_for(Duration::from_millis(100)) {
            Ok(_) => {}
            Err(shmq::Error::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
        if publisher.is_finished() && recorder.writer().last_seq() == Some(n - 1) {
            break;
        }
    }
    publisher.join().unwrap();
    recorder.flush().unwrap();
    drop(recorder);
    let recorded = started.elapsed();
    let mut reader = JournalReader::open(jdir.path(), "volume", ReplayFrom::Start).unwrap();
    let mut next = 0u64;
    for r in reader.by_ref() {
        let r = r.unwrap();
        assert_eq!(r.seq, next, "a message missing or twice");
        assert_eq!((r.kind, r.payload.as_slice()), ((next % 7) as u32, body(next).as_slice()), "message {next}");
        next += 1;
    }
    assert_eq!(next, n, "every message replayed");
    assert!(reader.damage().is_empty(), "{:?}", reader.damage());
    let report = inspect(jdir.path(), "volume").unwrap();
    assert_eq!((report.records(), report.damage.len()), (n, 0));
    eprintln!(
        "{n} messages recorded in {recorded:?} and replayed in {:?} ({} files)",
        started.elapsed() - recorded,
        report.files.len()
    );
}
