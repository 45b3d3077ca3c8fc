//! What opening costs, against what sending costs: why handles are meant to be kept.
//!
//! Run: `cargo run --release --example open_cost` (segments in `$SHMQ_DIR`, else /dev/shm;
//! removed at the end). Prints percentiles of each step, measured in this run.

use std::time::Instant;

use shmq::QueueOptions;

/// The `p` quantile (0..=1) of `v`, in microseconds.
fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, v: &mut [f64]) {
    println!("{what:<44} p50 {:>8.2} us   p99 {:>8.2} us", quantile(v, 0.5), quantile(v, 0.99));
}

fn main() -> Result<(), shmq::Error> {
    let options = QueueOptions::new().capacity(1024).max_msg_size(256);
    let name = format!("open-cost-{}", std::process::id());
    let queue = options.create(&name)?;
    let (mut open, mut producer, mut create) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..2000 {
        let t = Instant::now();
        let q = options.open(&name)?;
        open.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let p = q.producer()?;
        producer.push(t.elapsed().as_secs_f64() * 1e6);
        drop((p, q));
        if i < 200 {
            let other = format!("{name}-{i}");
            let t = Instant::now();
            let q = options.create(&other)?;
            create.push(t.elapsed().as_secs_f64() * 1e6);
            q.unlink()?;
        }
    }
    let (mut tx, mut rx) = (queue.producer()?, queue.consumer()?);
    let mut buf = [0u8; 256];
    let mut message = Vec::new();
    for _ in 0..100_000 {
        let t = Instant::now();
        tx.send(b"12345678")?;
        rx.recv_into(&mut buf)?;
        message.push(t.elapsed().as_secs_f64() * 1e6);
    }
    queue.unlink()?;
    report("create a queue (1024 slots of 256 B)", &mut create);
    report("open an existing queue (attach included)", &mut open);
    report("producer() on an open queue", &mut producer);
    report("send + recv of 8 B (one thread, no peer)", &mut message);
    Ok(())
}
