//! The order flow that message-queue texts use as their worked example, as four processes
//! joined by three shmq topics:
//!
//! ```text
//!  orders --[orders]--> inventory --[reserved]--> shipping --[shipped]--> notifications
//! ```
//!
//! Run: `cargo run --release --example order_pipeline -- --orders 100000`
//!
//! The example re-executes itself once per stage. Each stage subscribes (reliably, so nothing
//! is lost and a slow stage slows its upstream instead of dropping orders) before the stage
//! upstream of it starts. A stage ends when its topic is disconnected: the stage upstream has
//! finished and left, and every order it published was received. Each stage prints its counts,
//! and the orchestrator prints them as a table. Segments live in a private directory
//! that is removed at the end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use shmq::bytemuck::{Pod, Zeroable};
use shmq::{RecvError, Subscriber, Topic, TopicOptions, WaitStrategy};

/// One order as it flows through the pipeline (the same fixed-size record on every topic).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmq::bytemuck")]
struct Order {
    id: u64,
    sku: u32,
    qty: u32,
    price_cents: u64,
}

const STAGES: [&str; 4] = ["notifications", "shipping", "inventory", "orders"];

fn topic(name: &str) -> Result<Topic, shmq::OpenError> {
    TopicOptions::new()
        .capacity(4096)
        .max_msg_size(std::mem::size_of::<Order>())
        .wait(WaitStrategy::Block)
        .open_or_create(name)
}

/// The next order, or `None` once the stage upstream has left and everything it sent was
/// received.
fn next(sub: &mut Subscriber) -> Result<Option<Order>, RecvError> {
    match sub.recv_value::<Order>() {
        Ok(order) => Ok(Some(order)),
        Err(RecvError::Disconnected) => Ok(None),
        Err(e) => Err(e),
    }
}

fn run_stage(stage: &str, orders: u64) -> shmq::Result<()> {
    let started = Instant::now();
    let (mut received, mut sent, mut rejected) = (0u64, 0u64, 0u64);
    match stage {
        "orders" => {
            let mut out = topic("orders")?.publisher()?;
            for id in 0..orders {
                let order = Order { id, sku: (id % 50) as u32, qty: 1 + (id % 7) as u32, price_cents: 999 + id % 1000 };
                out.send_value(&order)?;
                sent += 1;
            }
        }
        "inventory" => {
            let mut sub = topic("orders")?.subscriber().build()?;
            let mut out = topic("reserved")?.publisher()?;
            println!("ready");
            // 50 SKUs; each order of more than 5 units of an odd SKU is out of stock.
            while let Some(o) = next(&mut sub)? {
                received += 1;
                if o.qty > 5 && o.sku % 2 == 1 {
                    rejected += 1;
                    continue;
                }
                sent += 1;
                out.send_value(&o)?;
            }
        }
        "shipping" => {
            let mut sub = topic("reserved")?.subscriber().build()?;
            let mut out = topic("shipped")?.publisher()?;
            println!("ready");
            while let Some(o) = next(&mut sub)? {
                received += 1;
                sent += 1;
                out.send_value(&o)?;
            }
        }
        "notifications" => {
            let mut sub = topic("shipped")?.subscriber().build()?;
            println!("ready");
            let mut last = None;
            while let Some(o) = next(&mut sub)? {
                received += 1;
                // Reliable topics keep order: ids only grow.
                assert!(last.is_none_or(|l| l < o.id), "order {} arrived after {last:?}", o.id);
                last = Some(o.id);
                sent += 1; // one notification per shipped order
            }
        }
        other => panic!("unknown stage {other}"),
    }
    println!("done {stage} {received} {sent} {rejected} {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}

struct Stages(Vec<Child>);

impl Drop for Stages {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let orders = args
        .iter()
        .position(|a| a == "--orders")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000u64);
    if let Some(stage) = args.iter().position(|a| a == "--stage").and_then(|i| args.get(i + 1)) {
        return Ok(run_stage(stage, orders)?);
    }

    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut stages = Stages(Vec::new());
    let mut outputs = Vec::new();
    let started = Instant::now();
    // Downstream first: each stage is subscribed before anything is published to it.
    for stage in STAGES {
        let mut child = Command::new(&exe)
            .args(["--stage", stage, "--orders", &orders.to_string()])
            .env("SHMQ_DIR", dir.path())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        if stage != "orders" {
            let first = lines.next().transpose()?;
            if first.as_deref() != Some("ready") {
                return Err(format!("stage {stage} did not start: {first:?}").into());
            }
        }
        stages.0.push(child);
        outputs.push((stage, lines));
    }
    println!("{:<14} {:>10} {:>10} {:>10} {:>9}", "stage", "received", "sent", "rejected", "seconds");
    let mut results = Vec::new();
    for (stage, mut lines) in outputs.into_iter().rev() {
        let line = lines.next().transpose()?.ok_or_else(|| format!("stage {stage} ended without a result"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 6 || f[0] != "done" {
            return Err(format!("stage {stage} failed: {line}").into());
        }
        println!("{:<14} {:>10} {:>10} {:>10} {:>9}", f[1], f[2], f[3], f[4], f[5]);
        results.push((f[1].to_string(), f[2].parse::<u64>()?, f[3].parse::<u64>()?, f[4].parse::<u64>()?));
    }
    for c in &mut stages.0 {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("a stage exited with {status}").into());
        }
    }
    stages.0.clear();
    // Every accepted order was shipped and notified; rejected ones stopped at inventory.
    let get = |n: &str| results.iter().find(|r| r.0 == n).cloned().expect("stage result");
    let (inv, ship, note) = (get("inventory"), get("shipping"), get("notifications"));
    assert_eq!(inv.1, orders, "inventory received every order");
    assert_eq!(inv.2 + inv.3, orders, "every order was reserved or rejected");
    assert_eq!((ship.1, note.1), (inv.2, inv.2), "every reserved order was shipped and notified");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{orders} orders through 4 processes in {secs:.2} s ({:.0} orders/s end to end); all accounted for",
        orders as f64 / secs
    );
    Ok(())
}
