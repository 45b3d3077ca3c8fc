//! Journal throughput: how fast a recorder writes a topic to disk, and how fast a journal is
//! replayed.
//!
//! Run: `cargo run --release --example journal_throughput -- --journal DIR [--fsync never|interval:MS|every] [--messages N] [--size B]`
//!
//! One process: a publisher thread publishes N messages of B bytes (every one stamped with its
//! number) on a topic of 4096 slots; a recorder thread records them into a journal under DIR
//! with the given durability policy (the publisher waits for the recorder, whose acknowledged
//! position gates it, as in production). Timed from the first publish to the last record made
//! durable. Then the journal is replayed with `JournalReader` from the start, every record
//! checked. The topic lives in a private temporary directory; the journal is removed at the end.

use std::time::{Duration, Instant};

use shmq::journal::{Fsync, JournalOptions, JournalReader, Recorder, ReplayFrom};
use shmq::TopicOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let journal = arg("--journal").ok_or("--journal DIR is required")?;
    let fsync: Fsync = arg("--fsync").unwrap_or_else(|| "interval:100".into()).parse()?;
    let n: u64 = arg("--messages").map(|v| v.parse()).transpose()?.unwrap_or(1_000_000);
    let size: usize = arg("--size").map(|v| v.parse()).transpose()?.unwrap_or(64);
    let seg_dir = tempfile::tempdir()?;
    let jdir = std::path::Path::new(&journal).join(format!("throughput-{}", std::process::id()));
    let topic = TopicOptions::new().dir(seg_dir.path()).capacity(4096).max_msg_size(size.max(8)).create("bench")?;
    let opts = JournalOptions::new(&jdir).fsync(fsync);
    let (mut recorder, _) = Recorder::new(&topic, &opts)?;
    let started = Instant::now();
    let publisher = {
        let topic = topic.clone();
        std::thread::spawn(move || -> Result<(), shmq::SendError> {
            let mut p = topic.publisher().expect("publisher");
            let mut msg = vec![0u8; size.max(8)];
            for s in 0..n {
                msg[..8].copy_from_slice(&s.to_le_bytes());
                p.send(&msg)?;
            }
            Ok(())
        })
    };
    loop {
        match recorder.record_for(Duration::from_millis(10)) {
            Ok(_) => {}
            Err(shmq::Error::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
        if recorder.writer().last_seq() == Some(n - 1) {
            break;
        }
    }
    recorder.flush()?;
    let recorded = started.elapsed();
    publisher.join().expect("publisher thread")?;
    drop(recorder);
    let t = Instant::now();
    let mut next = 0u64;
    for r in JournalReader::open(&jdir, "bench", ReplayFrom::Start)? {
        let r = r?;
        assert_eq!(u64::from_le_bytes(r.payload[..8].try_into()?), next, "record {next}");
        next += 1;
    }
    let replayed = t.elapsed();
    assert_eq!(next, n);
    let bytes = shmq::journal::inspect(&jdir, "bench")?.files.iter().map(|f| f.used).sum::<u64>();
    println!(
        "fsync {fsync:?}, {n} messages of {size} B into {journal}: recorded in {:.2} s ({:.0} msg/s, {:.1} MB/s of journal); replayed in {:.2} s ({:.0} msg/s)",
        recorded.as_secs_f64(),
        n as f64 / recorded.as_secs_f64(),
        bytes as f64 / 1e6 / recorded.as_secs_f64(),
        replayed.as_secs_f64(),
        n as f64 / replayed.as_secs_f64()
    );
    std::fs::remove_dir_all(&jdir)?;
    Ok(())
}
