//! Zero-copy: the producer writes each message in place in shared memory (a loan), and the
//! consumer reads it in place (a borrowed reference). Nothing is copied in between.
//!
//! Two terminals: `cargo run --example zero_copy -- consumer`, then
//! `cargo run --example zero_copy -- producer`. Or both at once:
//! `cargo run --example zero_copy`.

mod two_terminals;

use shmq::{QueueOptions, RecvError};

const NAME: &str = "example-zero-copy";
const FRAME: usize = 4096;

fn run(role: &str) -> Result<(), shmq::Error> {
    let queue = QueueOptions::new().capacity(8).max_msg_size(FRAME).open_or_create(NAME)?;
    if role == "producer" {
        let mut tx = queue.producer()?;
        for frame in 0..4u8 {
            let mut loan = tx.loan()?; // a free slot, borrowed: its bytes are shared memory
            loan[..FRAME].fill(frame);
            loan.set_kind(frame as u32);
            loan.commit(FRAME)?; // dropping the loan instead would send nothing
        }
        return Ok(());
    }
    let mut rx = queue.consumer()?;
    loop {
        match rx.recv_ref() {
            Ok(frame) => {
                let sum: u64 = frame.iter().map(|&b| b as u64).sum();
                println!("consumer: frame {} of {} bytes, sum {sum}", frame.kind(), frame.len());
            } // the slot goes back to the producer here, when the reference drops
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
