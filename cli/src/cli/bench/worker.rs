//! The processes `shmq bench` starts (the hidden `shmq bench-worker`), and what they share with
//! the parent: the message format and the send/receive traits.
//!
//! Protocol on the pipes: a worker prints `ready` once attached; a producer or publisher waits
//! for a `go` line on stdin; every worker prints one `done ...` line when finished. A worker
//! whose stdin reaches end-of-file before it is done (its parent died) exits at once, so a
//! killed bench never leaves a spinning process behind.
//!
//! Message format: `size` (>= 8) bytes whose first 8 bytes, and from 16 bytes on also whose
//! last 8 bytes, hold the tag (`producer << 40 | sequence`, little endian); the bytes between
//! are a fixed filler. A reader
//! checks that both copies agree (the payload was copied whole) and that each producer's
//! sequence numbers arrive in order: exactly 0, 1, 2, ... for a single reader.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use shmq::{QueueKind, QueueOptions, Receiver, Sender, TopicOptions};

use super::super::{report, CliError, CliResult, Ctx, Out, WaitArg};

/// Kind tag of the end-of-stream message a producer sends after its data (one per consumer).
pub const STOP: u32 = 1;
/// Bits of the tag that hold the sequence number; the producer index is above them.
pub const SEQ_BITS: u32 = 40;

/// What the bench measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pattern {
    /// Single-producer single-consumer queues.
    Spsc,
    /// Multi-producer multi-consumer queues.
    Mpmc,
    /// Broadcast topics: every subscriber receives every message.
    Topic,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Spsc => "spsc",
            Pattern::Mpmc => "mpmc",
            Pattern::Topic => "topic",
        }
    }
}

/// What a bench worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Sends every message of `--queue` back on `--reply`, `--count` times.
    Echo,
    /// Sends (publishes, for topics) `--count` messages once told `go`, then the stops.
    Producer,
    /// Receives and checks messages until every producer's stop; prints `done N SUM END_NS`.
    Consumer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Echo => "echo",
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

/// Arguments of the hidden `shmq bench-worker` (one process of `shmq bench`).
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    role: Role,
    #[arg(long, value_enum)]
    pattern: Pattern,
    /// The queue or topic to send to (producer) or receive from (consumer, echo).
    #[arg(long)]
    queue: String,
    /// Echo: the queue or topic to answer on.
    #[arg(long)]
    reply: Option<String>,
    #[arg(long)]
    count: u64,
    #[arg(long)]
    size: usize,
    #[arg(long, value_enum)]
    wait: WaitArg,
    /// Producer: its index (the top bits of its tags).
    #[arg(long, default_value_t = 0)]
    index: u64,
    /// Consumer: how many producers send stops. Producer: how many consumers to send stops to.
    #[arg(long, default_value_t = 1)]
    peers: u64,
    /// Consumer: the only consumer, so each producer's messages arrive exactly in sequence.
    #[arg(long)]
    alone: bool,
    /// Pin this process to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Messages

/// A message buffer of `size` bytes with the filler written.
pub fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
}

/// Writes `tag` at the start of `msg` (`msg.len() >= 8`) and, if the two copies do not
/// overlap, at its end.
#[inline]
pub fn stamp(msg: &mut [u8], tag: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&tag.to_le_bytes());
    if n >= 16 {
        msg[n - 8..].copy_from_slice(&tag.to_le_bytes());
    }
}

/// The tag of `msg`, if its copies agree.
#[inline]
pub fn read_tag(msg: &[u8]) -> Option<u64> {
    let n = msg.len();
    let head = u64::from_le_bytes(msg.get(..8)?.try_into().expect("8 bytes"));
    if n < 16 {
        return Some(head);
    }
    let tail = u64::from_le_bytes(msg[n - 8..].try_into().expect("8 bytes"));
    (head == tail).then_some(head)
}

/// Options of the bench's queues (`kind` from the pattern; topics use [`topic_options`]).
pub fn queue_options(ctx: &Ctx, pattern: Pattern, wait: WaitArg, size: usize) -> QueueOptions {
    let kind = if pattern == Pattern::Spsc { QueueKind::Spsc } else { QueueKind::Mpmc };
    QueueOptions::new().dir(&ctx.dir).wait(wait.into()).kind(kind).max_msg_size(size)
}

/// Options of the bench's topics.
pub fn topic_options(ctx: &Ctx, wait: WaitArg, size: usize) -> TopicOptions {
    TopicOptions::new().dir(&ctx.dir).wait(wait.into()).max_msg_size(size)
}

// ---------------------------------------------------------------------------------------------
// The worker process

/// Set just before a worker prints `done`: from then on, end-of-file on stdin is expected.
static FINISHED: AtomicBool = AtomicBool::new(false);

/// Runs one bench worker process; its errors are prefixed with its role.
pub fn worker(ctx: &Ctx, a: &WorkerArgs, out: &mut Out) -> CliResult {
    let r = run(ctx, a, out);
    r.map_err(|e| match e {
        CliError::Msg(m) => CliError::Msg(format!("bench {} worker: {m}", a.role.name())),
        other => other,
    })
}

fn run(ctx: &Ctx, a: &WorkerArgs, out: &mut Out) -> CliResult {
    if a.size < 8 {
        return Err(CliError::msg("bench messages need at least 8 bytes"));
    }
    if let Some(cpu) = a.cpu {
        shmq_cli::baseline::pin_thread_forever(cpu).map_err(|e| CliError::msg(e.to_string()))?;
    }
    let go = watch_stdin();
    let qo = queue_options(ctx, a.pattern, a.wait, a.size);
    let to = topic_options(ctx, a.wait, a.size);
    let topic = a.pattern == Pattern::Topic;
    match a.role {
        Role::Echo => {
            let reply = a.reply.as_deref().ok_or_else(|| CliError::msg("echo needs --reply"))?;
            if topic {
                let (ping, pong) = (to.open(&a.queue)?, to.open(reply)?);
                echo(ping.subscriber().build()?, pong.publisher()?, a, out)
            } else {
                let (ping, pong) = (qo.open(&a.queue)?, qo.open(reply)?);
                echo(ping.consumer()?, pong.producer()?, a, out)
            }
        }
        Role::Producer if topic => produce(to.open(&a.queue)?.publisher()?, a, &go, out),
        Role::Producer => produce(qo.open(&a.queue)?.producer()?, a, &go, out),
        Role::Consumer if topic => consume(to.open(&a.queue)?.subscriber().build()?, a, out),
        Role::Consumer => consume(qo.open(&a.queue)?.consumer()?, a, out),
    }
}

/// Reads stdin on a thread: each `go` line is passed on; end-of-file before [`FINISHED`] means
/// the parent is gone, and the process exits.
fn watch_stdin() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == "go" => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if !FINISHED.load(Ordering::SeqCst) {
            report("bench worker: the bench process went away; stopping");
            std::process::exit(1);
        }
    });
    rx
}

fn say(out: &mut Out, line: &str) -> CliResult {
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn done(out: &mut Out, line: &str) -> CliResult {
    FINISHED.store(true, Ordering::SeqCst);
    say(out, line)
}

fn echo(mut rx: impl Receiver, mut tx: impl Sender, a: &WorkerArgs, out: &mut Out) -> CliResult {
    say(out, "ready")?;
    let mut buf = vec![0u8; a.size];
    for _ in 0..a.count {
        let m = rx.recv_into(&mut buf)?;
        tx.send_kind(m.kind, &buf[..m.len])?;
    }
    done(out, &format!("done {}", a.count))
}

fn produce(mut tx: impl Sender, a: &WorkerArgs, go: &mpsc::Receiver<()>, out: &mut Out) -> CliResult {
    say(out, "ready")?;
    go.recv().map_err(|_| CliError::msg("the bench ended before the start signal"))?;
    let start = crate::cli::now_unix_ns();
    let mut msg = message(a.size);
    let base = a.index << SEQ_BITS;
    for seq in 0..a.count {
        stamp(&mut msg, base | seq);
        tx.send_kind(0, &msg)?;
    }
    for _ in 0..a.peers {
        tx.send_kind(STOP, &msg)?;
    }
    done(out, &format!("done {} {start}", a.count))
}

/// Receives until `--peers` stops; checks every message (see the module docs). Prints
/// `done <messages> <sum of tags> <unix ns of the last message>`.
fn consume(mut rx: impl Receiver, a: &WorkerArgs, out: &mut Out) -> CliResult {
    say(out, "ready")?;
    let producers = a.peers.max(1) as usize;
    // A single consumer (every subscriber of a topic is one) sees each producer's exact sequence.
    let exact = a.alone;
    let mut next = vec![0u64; producers];
    let mut buf = vec![0u8; a.size];
    let (mut n, mut sum, mut stops) = (0u64, 0u64, 0usize);
    let mut last = 0;
    while stops < producers {
        let m = rx.recv_into(&mut buf)?;
        if m.kind == STOP {
            stops += 1;
            continue;
        }
        last = crate::cli::now_unix_ns();
        let msg = &buf[..m.len];
        if m.len != a.size {
            return Err(CliError::msg(format!("received {} bytes, sent {}", m.len, a.size)));
        }
        let tag = read_tag(msg).ok_or_else(|| CliError::msg("a message's two tags differ (torn payload)"))?;
        let (p, seq) = ((tag >> SEQ_BITS) as usize, tag & ((1 << SEQ_BITS) - 1));
        let expected = *next.get(p).ok_or_else(|| CliError::msg(format!("message from unknown producer {p}")))?;
        if seq < expected || (exact && seq != expected) {
            let what = if seq < expected { "duplicate or out of order" } else { "messages lost" };
            return Err(CliError::msg(format!("producer {p}: expected message {expected}, got {seq} ({what})")));
        }
        next[p] = seq + 1;
        n += 1;
        sum = sum.wrapping_add(tag);
    }
    done(out, &format!("done {n} {sum} {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_message_reads_back_and_a_torn_one_does_not() {
        for size in [8, 9, 16, 64, 1000] {
            let mut m = message(size);
            stamp(&mut m, 0x0123_4567_89ab);
            assert_eq!(read_tag(&m), Some(0x0123_4567_89ab), "size {size}");
            if size >= 16 {
                m[0] ^= 1;
                assert_eq!(read_tag(&m), None, "size {size}");
            }
        }
        assert_eq!(read_tag(&[0u8; 7]), None);
    }
}
