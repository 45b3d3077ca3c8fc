//! Typed messages: plain-old-data structs, sent and received as their bytes (no
//! serialisation, no allocation).
//!
//! Two terminals: `cargo run --example typed -- consumer`, then
//! `cargo run --example typed -- producer`. Or both at once: `cargo run --example typed`.

mod two_terminals;

use shmq::bytemuck::{Pod, Zeroable};
use shmq::{QueueOptions, RecvError};

/// A fixed-size record. `bytemuck` (re-exported by shmq, so the versions always match) checks
/// at compile time that any bytes are a valid value: no padding, no pointers.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmq::bytemuck")]
#[repr(C)]
struct Quote {
    instrument: u64,
    bid: f64,
    ask: f64,
}

const NAME: &str = "example-typed";

fn run(role: &str) -> Result<(), shmq::Error> {
    let queue = QueueOptions::new().spsc().max_msg_size(std::mem::size_of::<Quote>()).open_or_create(NAME)?;
    if role == "producer" {
        let mut tx = queue.producer()?;
        for i in 0..5u64 {
            tx.send_value(&Quote { instrument: i, bid: 100.0 + i as f64, ask: 100.5 + i as f64 })?;
        }
        return Ok(());
    }
    let mut rx = queue.consumer()?;
    loop {
        match rx.recv_value::<Quote>() {
            Ok(q) => println!("consumer: {q:?}"),
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    queue.unlink()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    two_terminals::main(["consumer", "producer"], run)
}
