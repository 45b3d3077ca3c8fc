//! Async with tokio: one task per topic, ten topics, each fed by a producer process of its own.
//! The tasks await `Stream::next` on their subscribers; one background thread (shmq's reactor)
//! sleeps on all ten topics at once and wakes the task whose topic got a message.
//!
//! `cargo run --release --example async_topics [-- --messages N]` (default 100,000 per topic).
//! Segments go to `$SHMQ_DIR`, else /dev/shm, and are removed at the end.

use std::process::Command;
use std::time::Instant;

use futures_util::StreamExt;
use shmq::{Start, TopicOptions};

const TOPICS: usize = 10;

fn topic_name(i: usize) -> String {
    format!("example-async-{}-{i}", std::process::id())
}

/// A producer process: publishes `n` messages (their sequence numbers) on `name`.
fn produce(name: &str, n: u64) -> Result<(), shmq::Error> {
    let t = TopicOptions::new().open(name)?;
    let mut p = t.publisher()?;
    for i in 0..n {
        p.send(&i.to_le_bytes())?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("produce") {
        return Ok(produce(&args[2], args[3].parse()?)?);
    }
    let per: u64 = match args.iter().position(|a| a == "--messages") {
        Some(i) => args.get(i + 1).ok_or("--messages needs a number")?.parse()?,
        None => 100_000,
    };
    // The topics and their subscribers first, so that no message is published before its
    // subscriber joined.
    let mut topics = Vec::new();
    let mut streams = Vec::new();
    for i in 0..TOPICS {
        let t = TopicOptions::new().capacity(1024).max_msg_size(8).create(&topic_name(i))?;
        streams.push(t.subscriber().start(Start::Earliest).build()?.into_stream());
        topics.push(t);
    }
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let producers: Vec<_> = (0..TOPICS)
        .map(|i| Command::new(&exe).args(["produce", &topic_name(i), &per.to_string()]).spawn())
        .collect::<Result<_, _>>()?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let counts: Vec<u64> = rt.block_on(async {
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    // The stream ends when the topic's producer has left and everything was read.
                    let mut next = 0u64;
                    while let Some(m) = s.next().await {
                        let m = m.expect("receive");
                        assert_eq!(m.data, next.to_le_bytes(), "in order, none lost");
                        next += 1;
                    }
                    next
                })
            })
            .collect();
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.expect("task"));
        }
        counts
    });
    for mut p in producers {
        let status = p.wait()?;
        if !status.success() {
            return Err(format!("a producer failed: {status}").into());
        }
    }
    let total: u64 = counts.iter().sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{TOPICS} tasks received {total} messages ({per} per topic, in order) in {secs:.2} s: {:.0} msg/s",
        total as f64 / secs
    );
    for t in &topics {
        t.unlink()?;
    }
    if counts.iter().any(|&c| c != per) {
        return Err(format!("expected {per} per topic, got {counts:?}").into());
    }
    Ok(())
}
