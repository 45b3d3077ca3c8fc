//! Consumer groups in the order flow: two `inventory` processes share the `orders` topic as one
//! group (each order to one of them), while a `notifications` group of one process receives
//! every order too. Kafka's `group.id` with `auto.offset.reset = earliest`, on one topic ring.
//!
//! ```text
//!                       +--> inventory-1 \   group "inventory": each order once, to one of them
//!  orders --[orders]--> +--> inventory-2 /
//!                       +--> notifications   group "notifications": every order
//! ```
//!
//! Run: `cargo run --release --example order_groups -- --orders 100000`
//!
//! The example re-executes itself once per process. The groups are created (from the earliest
//! message) before the publisher starts; each member ends when the publisher has left and its
//! group has handed out everything. The orchestrator checks that the two inventory members
//! together received every order exactly once and that notifications received every order, in
//! order.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use shmq::bytemuck::{Pod, Zeroable};
use shmq::topic::Start;
use shmq::{RecvError, Topic, TopicOptions, WaitStrategy};

/// One order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmq::bytemuck")]
struct Order {
    id: u64,
    sku: u32,
    qty: u32,
}

fn topic() -> Result<Topic, shmq::OpenError> {
    TopicOptions::new()
        .capacity(4096)
        .max_msg_size(std::mem::size_of::<Order>())
        .wait(WaitStrategy::Block)
        .open_or_create("orders")
}

/// A member of `group`: counts what it receives; prints `done COUNT SUM_OF_IDS IN_ORDER`.
fn member(group: &str) -> shmq::Result<()> {
    let mut sub = topic()?.subscriber().group(group).start(Start::Earliest).build()?;
    println!("ready");
    let (mut count, mut sum, mut in_order, mut last) = (0u64, 0u64, true, None);
    loop {
        match sub.recv_value::<Order>() {
            Ok(o) => {
                count += 1;
                sum += o.id;
                in_order &= last.is_none_or(|l| l < o.id);
                last = Some(o.id);
            }
            // The publisher left and the group handed out everything.
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("done {count} {sum} {in_order}");
    Ok(())
}

fn publish(orders: u64) -> shmq::Result<()> {
    let mut out = topic()?.publisher()?;
    for id in 0..orders {
        out.send_value(&Order { id, sku: (id % 50) as u32, qty: 1 + (id % 7) as u32 })?;
    }
    Ok(())
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let orders: u64 = arg("--orders").map(|n| n.parse()).transpose()?.unwrap_or(100_000);
    match arg("--role").as_deref() {
        Some("publisher") => return Ok(publish(orders)?),
        Some(group) => return Ok(member(group)?),
        None => {}
    }
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let spawn = |role: &str| {
        Command::new(&exe)
            .args(["--role", role, "--orders", &orders.to_string()])
            .env("SHMQ_DIR", dir.path())
            .stdout(Stdio::piped())
            .spawn()
    };
    let mut children = Children(Vec::new());
    let mut outputs = Vec::new();
    let started = Instant::now();
    for (name, group) in
        [("inventory-1", "inventory"), ("inventory-2", "inventory"), ("notifications", "notifications")]
    {
        let mut child = spawn(group)?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = lines.next().transpose()?;
        if first.as_deref() != Some("ready") {
            return Err(format!("{name} did not start: {first:?}").into());
        }
        children.0.push(child);
        outputs.push((name, lines));
    }
    let mut publisher = spawn("publisher")?;
    if !publisher.wait()?.success() {
        return Err("the publisher failed".into());
    }
    println!("{:<14} {:>10} {:>8}", "member", "orders", "in order");
    let mut results = Vec::new();
    for (name, mut lines) in outputs {
        let line = lines.next().transpose()?.ok_or_else(|| format!("{name} ended without a result"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 || f[0] != "done" {
            return Err(format!("{name} failed: {line}").into());
        }
        println!("{name:<14} {:>10} {:>8}", f[1], f[3]);
        results.push((f[1].parse::<u64>()?, f[2].parse::<u64>()?, f[3] == "true"));
    }
    for c in &mut children.0 {
        if !c.wait()?.success() {
            return Err("a member failed".into());
        }
    }
    children.0.clear();
    let all_ids = orders * orders.saturating_sub(1) / 2;
    let (i1, i2, n) = (results[0], results[1], results[2]);
    assert_eq!(i1.0 + i2.0, orders, "the inventory group received every order once");
    assert_eq!(i1.1 + i2.1, all_ids, "and each order exactly once (the ids add up)");
    assert!(i1.2 && i2.2, "each inventory member received its orders in order");
    assert_eq!((n.0, n.1, n.2), (orders, all_ids, true), "notifications received every order, in order");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{orders} orders: inventory shared them {} / {}, notifications got all; {secs:.2} s ({:.0} orders/s)",
        i1.0,
        i2.0,
        orders as f64 / secs
    );
    Ok(())
}
