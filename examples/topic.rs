//! Publisher and subscriber: every subscriber sees every message.
//!
//! Two terminals: `cargo run --example topic -- subscriber`, then
//! `cargo run --example topic -- publisher` (more subscribers in more terminals each get every
//! message). Or both at once: `cargo run --example topic`.

mod two_terminals;

use std::time::Duration;

use shmq::{Start, TopicOptions};

const NAME: &str = "example-topic";

fn run(role: &str) -> Result<(), shmq::Error> {
    let topic = TopicOptions::new().capacity(64).max_msg_size(128).open_or_create(NAME)?;
    if role == "publisher" {
        // A subscriber gets what is published after it joined (or, with Start::Earliest, what
        // the ring still holds): wait for one, for the demonstration.
        while !topic.has_subscribers() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut publisher = topic.publisher()?;
        for i in 0..10u32 {
            publisher.send_kind(i % 2, format!("tick {i}").as_bytes())?;
        }
        println!("publisher: sent 10 messages");
        return Ok(());
    }
    // Reliable (the default): publishers wait for it rather than overwrite what it has not read.
    let mut sub = topic.subscriber().start(Start::Earliest).build()?;
    // The iterator ends when every publisher left and everything was received.
    for m in sub.iter() {
        let m = m?;
        println!("subscriber: kind {} {}", m.kind, String::from_utf8_lossy(&m.data));
    }
    drop(sub);
    topic.unlink()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    two_terminals::main(["subscriber", "publisher"], run)
}
