//! Request-response in the order flow: the order service asks an inventory service to reserve
//! stock for each order, and publishes only the orders it got stock for:
//!
//! ```text
//!  orders --call inventory.reserve--> inventory
//!     |
//!     +--[orders.accepted]--> notifications
//! ```
//!
//! Run: `cargo run --release --example order_service -- --orders 100000`
//!
//! Three processes (the example re-executes itself per stage). The inventory process serves
//! `inventory.reserve`: it keeps the stock of 50 SKUs (enough for about three quarters of the
//! orders) and answers each
//! reservation with whether it was granted and what is left. The orders process calls it for
//! each order (`Client::call`: the answer comes back to this caller, and to no one else) and
//! publishes granted orders on the topic `orders.accepted`, which the notifications process
//! reads. At the end every order is accounted for: accepted or rejected, the stock taken equals
//! the units accepted, and notifications saw every accepted order in order. Segments live in a
//! private directory that is removed at the end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use shmq::bytemuck::{self, Pod, Zeroable};
use shmq::service::{ServeError, ServiceOptions};
use shmq::{RecvError, TopicOptions, WaitStrategy};

/// An order, as published on `orders.accepted`; also the reservation request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmq::bytemuck")]
struct Order {
    id: u64,
    sku: u32,
    qty: u32,
}

/// The inventory's answer to a reservation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmq::bytemuck")]
struct Reservation {
    order_id: u64,
    granted: u32,
    left: u32,
}

const SKUS: usize = 50;

/// Units in stock per SKU at the start: enough for about three quarters of the orders (an
/// order asks for 1 to 7 units, 4 on average).
fn stock_per_sku(orders: u64) -> u32 {
    (orders * 3 / SKUS as u64).clamp(10, u32::MAX as u64) as u32
}
const SERVICE: &str = "inventory.reserve";

fn service() -> ServiceOptions {
    let size = std::mem::size_of::<Order>().max(std::mem::size_of::<Reservation>());
    ServiceOptions::new()
        .max_request_size(size)
        .max_response_size(size)
        .version(1)
        .description("reserves stock for an order: Order -> Reservation")
        .wait(WaitStrategy::Block)
}

fn accepted() -> Result<shmq::Topic, shmq::OpenError> {
    TopicOptions::new()
        .capacity(4096)
        .max_msg_size(std::mem::size_of::<Order>())
        .wait(WaitStrategy::Block)
        .open_or_create("orders.accepted")
}

fn run_stage(stage: &str, orders: u64) -> Result<String, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let line = match stage {
        "inventory" => {
            let svc = service().open_or_create(SERVICE)?;
            let mut server = svc.server()?;
            println!("ready");
            let start = stock_per_sku(orders);
            let mut stock = [start; SKUS];
            let (mut granted, mut refused) = (0u64, 0u64);
            while granted + refused < orders {
                let req = match server.recv_timeout(std::time::Duration::from_secs(30)) {
                    Ok(r) => r,
                    Err(ServeError::Timeout) => return Err("no reservation for 30 s".into()),
                    Err(e) => return Err(e.into()),
                };
                let o: Order = bytemuck::pod_read_unaligned(&req[..std::mem::size_of::<Order>()]);
                let left = &mut stock[o.sku as usize % SKUS];
                let ok = *left >= o.qty;
                if ok {
                    *left -= o.qty;
                    granted += 1;
                } else {
                    refused += 1;
                }
                let answer = Reservation { order_id: o.id, granted: ok as u32, left: *left };
                req.respond(bytemuck::bytes_of(&answer))?;
            }
            let taken: u64 = stock.iter().map(|&s| (start - s) as u64).sum();
            format!("inventory {granted} {refused} {taken}")
        }
        "orders" => {
            let svc = service().open(SERVICE)?;
            let mut client = svc.client()?;
            let mut out = accepted()?.publisher()?;
            let (mut ok, mut rejected, mut units) = (0u64, 0u64, 0u64);
            for id in 0..orders {
                let order = Order { id, sku: (id % SKUS as u64) as u32, qty: 1 + (id % 7) as u32 };
                let r = client.call(bytemuck::bytes_of(&order))?;
                let res: Reservation = bytemuck::pod_read_unaligned(&r[..std::mem::size_of::<Reservation>()]);
                assert_eq!(res.order_id, id, "the answer to another order");
                drop(r);
                if res.granted == 1 {
                    out.send_value(&order)?;
                    ok += 1;
                    units += order.qty as u64;
                } else {
                    rejected += 1;
                }
            }
            format!("orders {ok} {rejected} {units}")
        }
        "notifications" => {
            let mut sub = accepted()?.subscriber().build()?;
            println!("ready");
            let (mut n, mut last) = (0u64, None);
            loop {
                match sub.recv_value::<Order>() {
                    Ok(o) => {
                        assert!(last.is_none_or(|l| l < o.id), "order {} after {last:?}", o.id);
                        last = Some(o.id);
                        n += 1;
                    }
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            format!("notifications {n} 0 0")
        }
        other => return Err(format!("unknown stage {other}").into()),
    };
    Ok(format!("done {line} {:.3}", started.elapsed().as_secs_f64()))
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
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let orders: u64 = arg("--orders").map(|n| n.parse()).transpose()?.unwrap_or(100_000);
    if let Some(stage) = arg("--stage") {
        println!("{}", run_stage(stage, orders)?);
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut stages = Stages(Vec::new());
    let mut outputs = Vec::new();
    let started = Instant::now();
    // The inventory and the notifications first: the service exists and the topic has its
    // subscriber before the first order.
    for stage in ["inventory", "notifications", "orders"] {
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
    let mut results = std::collections::HashMap::new();
    for (stage, mut lines) in outputs {
        let line = lines.next().transpose()?.ok_or_else(|| format!("stage {stage} ended without a result"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 6 || f[0] != "done" {
            return Err(format!("stage {stage} failed: {line}").into());
        }
        let nums: Vec<u64> = f[2..5].iter().map(|n| n.parse()).collect::<Result<_, _>>()?;
        results.insert(f[1].to_string(), (nums, f[5].to_string()));
    }
    for c in &mut stages.0 {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("a stage exited with {status}").into());
        }
    }
    stages.0.clear();
    let (inv, ord, note) = (&results["inventory"].0, &results["orders"].0, &results["notifications"].0);
    println!("{:<14} {:>10} {:>10} {:>10} {:>9}", "process", "accepted", "rejected", "units", "seconds");
    println!("{:<14} {:>10} {:>10} {:>10} {:>9}", "inventory", inv[0], inv[1], inv[2], results["inventory"].1);
    println!("{:<14} {:>10} {:>10} {:>10} {:>9}", "orders", ord[0], ord[1], ord[2], results["orders"].1);
    println!("{:<14} {:>10} {:>10} {:>10} {:>9}", "notifications", note[0], "-", "-", results["notifications"].1);
    assert_eq!(ord[0] + ord[1], orders, "every order was accepted or rejected");
    assert_eq!((inv[0], inv[1]), (ord[0], ord[1]), "the inventory granted what the orders service accepted");
    assert_eq!(inv[2], ord[2], "the stock taken is the units accepted");
    assert_eq!(note[0], ord[0], "every accepted order was notified");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{orders} orders, each reserved by a call to {SERVICE}, in {secs:.2} s ({:.1} us per order end to end); all accounted for",
        secs * 1e6 / orders as f64
    );
    Ok(())
}
