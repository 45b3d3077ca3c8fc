//! Producer and consumer: each message goes to exactly one consumer, in order.
//!
//! Two terminals: `cargo run --example queue -- consumer`, then
//! `cargo run --example queue -- producer` (either may start first: messages wait in the
//! queue). Or both at once: `cargo run --example queue`.

mod two_terminals;

use shmq::{QueueOptions, RecvError};

const NAME: &str = "example-queue";

fn run(role: &str) -> Result<(), shmq::Error> {
    let queue = QueueOptions::new().capacity(64).max_msg_size(128).open_or_create(NAME)?;
    if role == "producer" {
        let mut tx = queue.producer()?;
        for i in 0..10 {
            tx.send(format!("order {i}").as_bytes())?; // waits while the queue is full
        }
        println!("producer: sent 10 messages");
        return Ok(()); // dropping the producer tells the consumer that nothing more comes
    }
    let mut rx = queue.consumer()?;
    let mut buf = [0u8; 128];
    let mut n = 0;
    loop {
        match rx.recv_into(&mut buf) {
            Ok(m) => {
                println!("consumer: {}", String::from_utf8_lossy(&buf[..m.len]));
                n += 1;
            }
            // Every producer left and everything they sent was received.
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("consumer: {n} messages; the producer is gone");
    queue.unlink()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    two_terminals::main(["consumer", "producer"], run)
}
