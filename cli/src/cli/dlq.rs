//! Dead letters at the command line: `shmq recv NAME --exec CMD` (each message handed to a
//! command, acknowledged when it succeeds, rejected when it fails) and `shmq dlq NAME` (the
//! letters waiting in a queue's dead-letter queue, listed or sent back).
//!
//! A queue has dead letters when it was created with `--max-deliveries N` (see
//! [`shmq::deadletter`]): a message rejected, or whose consumer died, N times moves to the
//! queue's dead-letter queue (`NAME.dlq` unless `--dlq`) with the reason and its delivery count.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmq::deadletter::{RejectError, Rejected};
use shmq::{Error, QueueOptions};

use super::door::{count, plural, Target, Want};
use super::journal::utc;
use super::{report, CliError, CliResult, Ctx, Out};

/// Arguments of `shmq dlq`.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    /// The queue whose dead letters to show (the queue created with --max-deliveries, not its
    /// dead-letter queue).
    name: String,
    /// Print the letters as one JSON object instead of a table.
    #[arg(long, conflicts_with = "requeue")]
    json: bool,
    /// Send the dead letters back into the queue (oldest first, each with its original kind; its
    /// delivery count starts over) instead of listing them.
    #[arg(long)]
    requeue: bool,
    /// With --requeue: send back at most N letters [default: all].
    #[arg(long, value_name = "N", requires = "requeue")]
    count: Option<usize>,
}

/// How many characters of a payload the table shows.
const PAYLOAD_CHARS: usize = 40;

/// `shmq dlq NAME`: lists the dead letters of queue NAME (without consuming them), or with
/// `--requeue` sends them back.
pub fn dlq(ctx: &Ctx, a: &DlqArgs, out: &mut Out) -> CliResult {
    let name = a.name.as_str();
    let t = Target { cmd: "dlq", name, dir: &ctx.dir, want: Want::Queue };
    let q = QueueOptions::new().dir(&ctx.dir).open(name).map_err(|e| t.error(e))?;
    if q.is_dead_letter_queue() {
        let origin = q.dead_letter_link().unwrap_or_else(|| "its queue".into());
        return Err(CliError::msg(format!(
            "{name:?} is the dead-letter queue of {origin:?}: use `shmq dlq {origin}` (or `shmq recv {name}` to take \
             the letters off)"
        )));
    }
    if q.max_deliveries().is_none() {
        return Err(CliError::msg(format!(
            "{name} has no dead-letter queue: create it with --max-deliveries N (`shmq rm {name}`, then `shmq send \
             {name} --max-deliveries N` or `shmq recv {name} --max-deliveries N`)"
        )));
    }
    let dlq_name = q.dead_letter_link().unwrap_or_else(|| format!("{name}.dlq"));
    if a.requeue {
        let n = q.requeue_dead_letters(a.count.unwrap_or(usize::MAX)).map_err(|e| t.error(e))?;
        report(&format!("requeued {} from {dlq_name} to {name}", count(n as u64, "dead letter")));
        return Ok(());
    }
    let letters = q.dead_letters().map_err(|e| t.error(e))?;
    if a.json {
        let v = serde_json::json!({
            "queue": name,
            "dead_letter_queue": dlq_name,
            "max_deliveries": q.max_deliveries(),
            "letters": letters.iter().map(letter_json).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("JSON of plain values"))?;
    } else if !letters.is_empty() {
        let rows: Vec<[String; 5]> = letters
            .iter()
            .map(|l| {
                [
                    l.position.to_string(),
                    l.deliveries.to_string(),
                    utc(l.first_failed_ns),
                    one_line(&l.reason),
                    payload_preview(&l.payload),
                ]
            })
            .collect();
        let header = ["POSITION", "DELIVERIES", "FIRST_FAILED", "REASON", "PAYLOAD"];
        let mut width = header.map(|h| h.chars().count());
        for r in &rows {
            for (w, cell) in width.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for r in std::iter::once(header.map(String::from)).chain(rows) {
            let [pos, del, first, reason, payload] = &r;
            let [wp, wd, wf, wr, _] = width;
            writeln!(out, "{pos:<wp$}  {del:<wd$}  {first:<wf$}  {reason:<wr$}  {payload}")?;
        }
    }
    out.flush()?;
    report(&format!("{} in {dlq_name}", count(letters.len() as u64, "dead letter")));
    Ok(())
}

/// One letter for `--json`.
fn letter_json(l: &shmq::deadletter::Letter) -> serde_json::Value {
    let (payload, encoding) = match std::str::from_utf8(&l.payload) {
        Ok(s) => (s.to_string(), "utf-8"),
        Err(_) => (hex(&l.payload), "hex"),
    };
    serde_json::json!({
        "position": l.position,
        "reason": l.reason,
        "deliveries": l.deliveries,
        "first_failed": utc(l.first_failed_ns),
        "first_failed_ns": l.first_failed_ns,
        "dead_lettered": utc(l.dead_lettered_ns),
        "dead_lettered_ns": l.dead_lettered_ns,
        "origin_position": l.origin_position,
        "kind": l.kind,
        "len": l.payload.len(),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `s` on one line: control characters escaped (`\n`, `\t`, `\u{1b}`).
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// The first [`PAYLOAD_CHARS`] characters of a payload (UTF-8, invalid bytes replaced), on one
/// line, with `...` when there is more.
fn payload_preview(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let mut s = one_line(&text.chars().take(PAYLOAD_CHARS).collect::<String>());
    if text.chars().nth(PAYLOAD_CHARS).is_some() {
        s.push_str("...");
    }
    s
}

/// With `--dlq` given, checks that queue `q`, which existed already, has that dead-letter queue
/// (`--dlq` is for queues the command creates, and must not pass silently otherwise).
pub fn check_link(t: &Target<'_>, q: &shmq::Queue, want: Option<&str>) -> CliResult {
    let Some(want) = want else { return Ok(()) };
    match q.dead_letter_link() {
        Some(have) if have == want => Ok(()),
        have => Err(CliError::msg(format!(
            "incompatible segment: queue {:?} has dead-letter queue {}, expected {want:?}; leave out --dlq to use the \
             queue as it is (see `shmq stat {}`)",
            t.name,
            have.map_or("none".into(), |h| format!("{h:?}")),
            t.name
        ))),
    }
}

// --- recv --exec -----------------------------------------------------------------------------

/// What `recv --exec` does and when it stops.
pub(super) struct Exec<'a> {
    /// The command, run with `sh -c`.
    pub cmd: &'a str,
    /// Stop after this many runs of the command (deliveries handled).
    pub count: Option<u64>,
    /// Longest wait for one message.
    pub timeout_ms: Option<u64>,
    /// Keep waiting when every producer has left.
    pub keep_waiting: bool,
    /// The queue's `max_deliveries`, for the messages said on stderr.
    pub max_deliveries: Option<u32>,
}

/// How the command ended with one message.
enum Outcome {
    /// Exit status 0: acknowledge.
    Done,
    /// Anything else: reject, with this reason.
    Failed(String),
    /// The command could not be run at all: reject (it is delivered again) and stop.
    CannotRun(String),
}

/// What `recv --exec` did, for its last line.
#[derive(Default)]
struct Tally {
    acknowledged: u64,
    rejected: u64,
    dead_lettered: u64,
}

impl Tally {
    fn report(&self) {
        report(&format!(
            "{} acknowledged, {} rejected ({} dead-lettered)",
            count(self.acknowledged, "message"),
            self.rejected,
            self.dead_lettered
        ));
    }
}

/// The loop of `recv NAME --exec CMD`: each message is piped to `sh -c CMD` (the payload and a
/// newline); exit status 0 acknowledges it, anything else rejects it with the status and the
/// last line CMD wrote to stderr as the reason.
pub(super) fn exec_loop(t: &Target<'_>, rx: &mut shmq::Consumer, e: &Exec<'_>, out: &mut Out) -> CliResult {
    out.flush()?;
    let timeout = e.timeout_ms.map(Duration::from_millis);
    let mut tally = Tally::default();
    let mut runs: u64 = 0;
    let name = t.name;
    while e.count.is_none_or(|n| runs < n) {
        match wait(rx, timeout, e.keep_waiting) {
            Ok(()) => {}
            Err(Error::Timeout) => match e.count {
                None => break,
                Some(n) => {
                    return Err(CliError::msg(format!(
                        "timed out after {} ms waiting for a message on queue {name:?} ({runs} of {n} handled); is \
                         anyone sending? (see `shmq stat {name}`)",
                        e.timeout_ms.unwrap_or(0)
                    )))
                }
            },
            Err(Error::Disconnected) => return gone(name, e.count, runs, &tally),
            Err(err) => return Err(t.error(err)),
        }
        let m = match rx.try_recv_ref() {
            Ok(m) => m,
            Err(shmq::TryRecvError::Empty) => continue, // another consumer was faster
            Err(shmq::TryRecvError::Disconnected) if !e.keep_waiting => return gone(name, e.count, runs, &tally),
            Err(shmq::TryRecvError::Disconnected) => continue,
            Err(err) => return Err(t.error(err)),
        };
        runs += 1;
        let delivery = m.delivery();
        let outcome = run(e.cmd, &m, m.kind(), delivery, name);
        let (reason, stop) = match outcome {
            Outcome::Done => {
                drop(m); // acknowledged
                tally.acknowledged += 1;
                continue;
            }
            Outcome::Failed(reason) => (reason, false),
            Outcome::CannotRun(reason) => (reason, true),
        };
        tally.rejected += 1;
        match m.reject(&reason) {
            Ok(Rejected::Redelivered { failed }) => {
                let of = match e.max_deliveries {
                    Some(max) => format!(" (delivery {failed} of {max})"),
                    None => String::new(),
                };
                report(&format!("rejected a message{of}, it will be delivered again: {reason}"));
            }
            Ok(Rejected::DeadLettered { position }) => {
                tally.dead_lettered += 1;
                let after = delivery
                    .map_or(String::new(), |d| format!(" after {}", plural(d.into(), "delivery", "deliveries")));
                report(&format!(
                    "rejected a message{after}: moved to the dead-letter queue (position {position}): {reason}"
                ));
            }
            Err(err @ (RejectError::DeadLetterQueueFull { .. } | RejectError::LockBusy { .. })) => {
                report(&format!("rejected a message ({reason}), but {err}"));
            }
            Err(RejectError::ClaimRevoked) => {
                report(&format!("rejected a message ({reason}), but {}", Error::ClaimRevoked));
            }
            Err(err) => return Err(t.error(Error::from(err))),
        }
        if stop {
            return Err(CliError::msg(format!("{reason}; the message was put back")));
        }
    }
    tally.report();
    Ok(())
}

/// Every producer left and everything was received: as `recv` says it.
fn gone(name: &str, want: Option<u64>, runs: u64, tally: &Tally) -> CliResult {
    let left = format!(
        "every producer of queue {name:?} has left and all its messages were received ({} handled)",
        count(runs, "message")
    );
    match want {
        None => {
            tally.report();
            report(&format!("{left}; exiting (--wait-for-producer keeps waiting)"));
            Ok(())
        }
        Some(n) => Err(CliError::msg(format!(
            "{left}, {runs} of the {n} asked for; start a producer or use --wait-for-producer to keep waiting"
        ))),
    }
}

/// How long a waiting `recv --exec --wait-for-producer` sleeps between looks while no
/// producer is attached.
const SENDER_POLL: Duration = Duration::from_millis(50);

/// Waits until a message is probably ready, at most `timeout`; with `keep_waiting`, a queue
/// whose producers have all left is waited on too.
fn wait(rx: &mut shmq::Consumer, timeout: Option<Duration>, keep_waiting: bool) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        match rx.wait_ready(left).map_err(Error::from) {
            Err(Error::Disconnected) if keep_waiting => {
                if left.is_some_and(|l| l <= SENDER_POLL) {
                    return Err(Error::Timeout);
                }
                std::thread::sleep(SENDER_POLL);
            }
            other => return other,
        }
    }
}

/// Most bytes of CMD's stderr kept to find its last line.
const STDERR_TAIL: usize = 4096;

/// Runs `sh -c cmd` with `payload` and a newline on its stdin, its stdout ours, its stderr
/// copied to ours (and its last non-empty line kept for the reason).
fn run(cmd: &str, payload: &[u8], kind: u32, delivery: Option<u32>, queue: &str) -> Outcome {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).env("SHMQ_QUEUE", queue).env("SHMQ_KIND", kind.to_string());
    if let Some(d) = delivery {
        c.env("SHMQ_DELIVERY", d.to_string());
    }
    let mut child = match c.stdin(Stdio::piped()).stdout(Stdio::inherit()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::CannotRun(format!("cannot run the command (sh -c): {e}")),
    };
    let writer = super::exec::feed_line(&mut child, payload);
    let mut stderr = child.stderr.take().expect("stderr piped");
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = std::io::stderr().lock().write_all(&buf[..n]);
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let status = child.wait();
    let _ = writer.join();
    let status = match status {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("waiting for the command: {e}")),
    };
    if status.success() {
        return Outcome::Done;
    }
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("failed ({status})"),
    };
    let text = String::from_utf8_lossy(&tail);
    match text.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        Some(line) => Outcome::Failed(format!("{how}: {}", one_line(line))),
        None => Outcome::Failed(how),
    }
}
