//! The worker processes of `shmq demo` (the hidden `shmq demo-worker`): producer, consumer and
//! echo for the queue part, publisher and subscriber for the topic part. Each prints `ready`
//! once attached and `done ...` when finished; errors go to stderr with a non-zero exit.

use std::io::Write;
use std::time::Instant;

use shmq::{QueueOptions, SubscriberMode, TopicOptions, WaitStrategy};

use super::{check, fill, peer_gone, Role, WorkerArgs, LOSSY_PAUSE, PEER_TIMEOUT};
use crate::cli::{CliError, CliResult, Ctx, Out};

/// Runs one demo worker process; its errors are prefixed with its role.
pub fn worker(ctx: &Ctx, a: &WorkerArgs, out: &mut Out) -> CliResult {
    if a.size < 16 {
        return Err(CliError::msg("demo messages need at least 16 bytes"));
    }
    let opts = QueueOptions::new().dir(&ctx.dir).wait(a.wait.into());
    let topic_opts = TopicOptions::new().dir(&ctx.dir).wait(WaitStrategy::from(a.wait));
    let r = match a.role {
        Role::Producer => produce(&opts, a, out),
        Role::Consumer => consume(&opts, a, out),
        Role::Echo => echo(&opts, a, out),
        Role::Publisher => publish(&topic_opts, a, out),
        Role::Subscriber => subscribe(&topic_opts, a, out),
    };
    r.map_err(|e| match e {
        CliError::Msg(m) => CliError::Msg(format!("demo {}: {m}", a.role.name())),
        other => other,
    })
}

fn ready(out: &mut Out) -> CliResult {
    writeln!(out, "ready")?;
    out.flush()?;
    Ok(())
}

fn produce(opts: &QueueOptions, a: &WorkerArgs, out: &mut Out) -> CliResult {
    let q = opts.open(&a.queue)?;
    let mut tx = q.producer()?;
    ready(out)?;
    let mut go = String::new();
    if std::io::stdin().read_line(&mut go).map_err(|e| CliError::msg(e.to_string()))? == 0 {
        return Err(CliError::msg("the demo ended before the start signal"));
    }
    let size = a.size;
    if a.batch <= 1 {
        let mut msg = vec![0u8; size];
        for seq in 0..a.count {
            fill(&mut msg, seq);
            tx.send_timeout(&msg, PEER_TIMEOUT).map_err(|e| peer_gone(e, "consumer"))?;
        }
    } else {
        let mut block = vec![0u8; a.batch * size];
        let mut seq = 0;
        while seq < a.count {
            let k = (a.count - seq).min(a.batch as u64) as usize;
            for (i, m) in block.chunks_mut(size).take(k).enumerate() {
                fill(m, seq + i as u64);
            }
            let msgs: Vec<&[u8]> = block.chunks(size).take(k).collect();
            let mut done = 0;
            while done < k {
                match tx.try_send_batch(&msgs[done..])? {
                    0 => {
                        tx.send_timeout(msgs[done], PEER_TIMEOUT).map_err(|e| peer_gone(e, "consumer"))?;
                        done += 1;
                    }
                    n => done += n,
                }
            }
            seq += k as u64;
        }
    }
    writeln!(out, "done {}", a.count)?;
    Ok(())
}

fn consume(opts: &QueueOptions, a: &WorkerArgs, out: &mut Out) -> CliResult {
    let q = opts.open(&a.queue)?;
    let mut rx = q.consumer()?;
    ready(out)?;
    let size = a.size;
    let mut buf = vec![0u8; q.max_msg_size()];
    let mut next: u64 = 0;
    let mut start: Option<Instant> = None;
    while next < a.count {
        if a.batch > 1 && start.is_some() {
            let max = (a.count - next).min(a.batch as u64) as usize;
            let mut bad = None;
            let n = rx.try_recv_batch(max, |m, _| {
                if bad.is_none() {
                    bad = check(m, next, size).err();
                }
                next += 1;
            })?;
            if let Some(e) = bad {
                return Err(e);
            }
            if n > 0 {
                continue;
            }
        }
        let m = rx.recv_timeout(&mut buf, PEER_TIMEOUT).map_err(|e| peer_gone(e, "producer"))?;
        start.get_or_insert_with(Instant::now);
        check(&buf[..m.len], next, size)?;
        next += 1;
    }
    let ns = start.map_or(0, |s| s.elapsed().as_nanos() as u64);
    writeln!(out, "done {} {ns}", a.count)?;
    Ok(())
}

fn echo(opts: &QueueOptions, a: &WorkerArgs, out: &mut Out) -> CliResult {
    let reply = a.reply.as_deref().ok_or_else(|| CliError::msg("echo needs --reply"))?;
    let ping = opts.open(&a.queue)?;
    let pong = opts.open(reply)?;
    let mut rx = ping.consumer()?;
    let mut tx = pong.producer()?;
    ready(out)?;
    let mut buf = vec![0u8; ping.max_msg_size()];
    for _ in 0..a.count {
        let m = rx.recv_timeout(&mut buf, PEER_TIMEOUT).map_err(|e| peer_gone(e, "parent"))?;
        tx.send_timeout(&buf[..m.len], PEER_TIMEOUT).map_err(|e| peer_gone(e, "parent"))?;
    }
    writeln!(out, "done {}", a.count)?;
    Ok(())
}

fn publish(opts: &TopicOptions, a: &WorkerArgs, out: &mut Out) -> CliResult {
    let topic = opts.open(&a.queue)?;
    let mut publisher = topic.publisher()?;
    ready(out)?;
    let mut go = String::new();
    if std::io::stdin().read_line(&mut go).map_err(|e| CliError::msg(e.to_string()))? == 0 {
        return Err(CliError::msg("the demo ended before the start signal"));
    }
    let mut msg = vec![0u8; a.size];
    for seq in 0..a.count {
        fill(&mut msg, seq);
        publisher.send_timeout(&msg, PEER_TIMEOUT).map_err(|e| peer_gone(e, "subscriber"))?;
    }
    writeln!(out, "done {}", a.count)?;
    Ok(())
}

/// Receives until every one of `count` messages was received or reported missed. Every message
/// received must be the next one expected: after `Lagged(k)`, the one `k` after the last.
fn subscribe(opts: &TopicOptions, a: &WorkerArgs, out: &mut Out) -> CliResult {
    let topic = opts.open(&a.queue)?;
    let mode = if a.lossy { SubscriberMode::Lossy } else { SubscriberMode::Reliable };
    let mut sub = topic.subscriber().mode(mode).build()?;
    ready(out)?;
    let mut buf = vec![0u8; topic.max_msg_size()];
    let (mut expected, mut received, mut missed) = (0u64, 0u64, 0u64);
    let mut start: Option<Instant> = None;
    while expected < a.count {
        match sub.recv_timeout(&mut buf, PEER_TIMEOUT) {
            Ok(m) => {
                start.get_or_insert_with(Instant::now);
                check(&buf[..m.len], expected, a.size)?;
                expected += 1;
                received += 1;
                if a.pause_every > 0 && received % a.pause_every == 0 {
                    std::thread::sleep(LOSSY_PAUSE);
                }
            }
            Err(shmq::RecvTimeoutError::Lagged(k)) if a.lossy => {
                start.get_or_insert_with(Instant::now);
                expected += k;
                missed += k;
                if expected > a.count {
                    return Err(CliError::msg(format!(
                        "told it missed {k} messages, more than were published (at message {})",
                        expected - k
                    )));
                }
            }
            Err(e) => return Err(peer_gone(e, "publisher")),
        }
    }
    let ns = start.map_or(0, |s| s.elapsed().as_nanos() as u64);
    writeln!(out, "done {received} {missed} {ns}")?;
    Ok(())
}
