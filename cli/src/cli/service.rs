//! `shmq serve` and `shmq call`: request-response between processes through a service.
//!
//! `serve` opens the service (creating it if needed), becomes one of its servers and answers
//! each request: with its own bytes (`--echo`), or with the standard output of a shell command
//! run once per request (`--exec CMD`: the request and a newline on its stdin; its stdout, one
//! trailing newline removed, is the response). A command that fails, or says too much for the
//! service's largest response, drops its request (the client is told) and `serve` goes on.
//!
//! `call` opens an existing service and sends each line of stdin as a request, printing each
//! response as a line, in the order of the requests; with `--pipeline N`, up to N calls are in
//! flight at once (answers that come early wait for those before them). The first call that
//! fails stops `call` (exit 1), after the responses of the calls before it were printed.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmq::service::{CallError, RequestId, ServeError, Service, ServiceOptions};

use super::door::{self, count, Target, Want};
use super::payload::{each_message, Sink, Source};
use super::{report, CliError, CliResult, Ctx, Out, WaitArg};

/// Options for opening or creating a service, for `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceOpenArgs {
    /// Largest request in bytes of a new service, 1 to 64 MiB [default: 256]; checked against
    /// an existing service.
    #[arg(long, value_name = "BYTES", value_parser = door::parse_max_payload)]
    max_request: Option<usize>,
    /// Largest response in bytes of a new service, 1 to 64 MiB [default: 256]; checked against
    /// an existing service.
    #[arg(long, value_name = "BYTES", value_parser = door::parse_max_payload)]
    max_response: Option<usize>,
    /// Calls one process may have in flight at once on a new service, 1 to 64, rounded up to a
    /// power of two [default: 16]; checked against an existing service.
    #[arg(long, value_name = "N", value_parser = door::parse_max_in_flight)]
    max_in_flight: Option<usize>,
    /// What a new service does, shown by `shmq list` and `shmq stat` (up to 256 bytes).
    #[arg(long, value_name = "TEXT", value_parser = door::parse_description)]
    description: Option<String>,
    /// Version of a new service [default: 0]; an existing service must have exactly this one.
    #[arg(long, value_name = "N")]
    version: Option<u32>,
    /// Permission bits of a new service, in octal [default: 0600, the owner only]: 0660 lets the
    /// file's group call and serve it, 0666 everyone. Checked against an existing service.
    #[arg(long, value_name = "MODE", value_parser = door::parse_mode)]
    mode: Option<u32>,
    /// How to wait for requests.
    #[arg(long, value_enum, default_value_t = WaitArg::Block)]
    wait: WaitArg,
}

impl ServiceOpenArgs {
    /// Opens the service of `t`, creating it if needed; returns it and what was done.
    fn open(&self, ctx: &Ctx, t: &Target<'_>) -> CliResult<(Service, door::Made)> {
        let mut o = ServiceOptions::new().dir(&ctx.dir).wait(self.wait.into());
        if let Some(m) = self.max_request {
            o = o.max_request_size(m);
        }
        if let Some(m) = self.max_response {
            o = o.max_response_size(m);
        }
        if let Some(n) = self.max_in_flight {
            o = o.max_in_flight(n);
        }
        if let Some(d) = &self.description {
            o = o.description(d.as_str());
        }
        if let Some(v) = self.version {
            o = o.version(v);
        }
        if let Some(m) = self.mode {
            o = o.mode(m);
        }
        let name = t.name;
        let (svc, made) =
            door::open_or_create(t, || o.open(name), || Ok(()), || o.create(name), || o.open_or_create(name))?;
        if made == door::Made::Opened {
            door::check_mode(t, "service", svc.path(), self.mode)?;
        }
        Ok((svc, made))
    }
}

/// Arguments of `shmq serve`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("handler").required(true).args(["exec", "echo"]))]
pub struct ServeArgs {
    /// Service name.
    name: String,
    /// Answer each request with the standard output of `sh -c CMD`, run once per request with
    /// the request and a newline on its stdin (one trailing newline of its output is removed).
    /// A CMD that exits non-zero, or writes more than the service's largest response, drops the
    /// request: its client gets an error, and serve says why on stderr and goes on. CMD's
    /// stderr is serve's.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Answer each request with its own bytes.
    #[arg(long)]
    echo: bool,
    /// Exit 0 after this many requests (answered or dropped).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Longest wait for one request. Without --count: exit 0 when it passes; with --count: exit
    /// 1 (fewer requests came than asked for) [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    #[command(flatten)]
    open: ServiceOpenArgs,
}

/// Arguments of `shmq call`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// Service name.
    name: String,
    /// Longest wait for each response, from when its request was sent; then call fails (the call
    /// is given up: it will not be answered) [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Keep up to N calls in flight at once, 1 to 64 (at most the service's max in flight);
    /// responses are still printed in the order of the requests (1: one call at a time).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = door::parse_max_in_flight)]
    pipeline: usize,
    /// Require this version of the service.
    #[arg(long, value_name = "N")]
    version: Option<u32>,
    /// How to wait for responses.
    #[arg(long, value_enum, default_value_t = WaitArg::Block)]
    wait: WaitArg,
}

/// How `serve` answers.
enum Handler<'a> {
    Echo,
    Exec(&'a str),
}

/// Serves a service until `--count` requests were taken, `--timeout` passed without one, or the
/// process is killed.
pub fn serve(ctx: &Ctx, a: &ServeArgs) -> CliResult {
    let t = Target { cmd: "serve", name: &a.name, dir: &ctx.dir, want: Want::Service };
    let (svc, made) = a.open.open(ctx, &t)?;
    let mut server = svc.server().map_err(|e| t.error(e))?;
    let handler = match &a.exec {
        Some(cmd) => Handler::Exec(cmd),
        None => Handler::Echo,
    };
    let max_response = svc.max_response_size();
    let how = match handler {
        Handler::Echo => "echoing each request".to_string(),
        Handler::Exec(cmd) => format!("running `{cmd}` once per request"),
    };
    let made = match made {
        door::Made::Opened => String::new(),
        door::Made::Created => format!("; created it in {}", ctx.dir.display()),
        door::Made::Replaced => {
            format!("; created it in {} in place of a half-initialised file a dead creator left", ctx.dir.display())
        }
    };
    report(&format!(
        "serving {:?} (pid {}): {how}; requests up to {}, responses up to {}, version {}{made}",
        a.name,
        std::process::id(),
        count(svc.max_request_size() as u64, "byte"),
        count(max_response as u64, "byte"),
        svc.version()
    ));
    let timeout = a.timeout.map(Duration::from_millis);
    let (mut answered, mut dropped) = (0u64, 0u64);
    while a.count.is_none_or(|n| answered + dropped < n) {
        let r = match timeout {
            Some(d) => server.recv_timeout(d),
            None => server.recv(),
        };
        let req = match r {
            Ok(req) => req,
            Err(ServeError::Timeout) => {
                let done = format!("{} answered, {} dropped", count(answered, "request"), dropped);
                let ms = a.timeout.unwrap_or(0);
                return match a.count {
                    None => {
                        report(&format!("no request for {ms} ms; exiting ({done})"));
                        Ok(())
                    }
                    Some(n) => Err(CliError::msg(format!(
                        "timed out after {ms} ms waiting for a request on service {:?} ({} of {n} taken: {done}); \
                         is anyone calling? (see `shmq stat {}`)",
                        a.name,
                        answered + dropped,
                        a.name
                    ))),
                };
            }
            Err(e @ ServeError::Corrupted(_)) => {
                // The library dropped that request; the others are fine.
                report(&format!("a request could not be taken: {e}"));
                continue;
            }
            Err(e) => return Err(CliError::msg(format!("serving {:?}: {e}", a.name))),
        };
        let (id, pid) = (req.id(), req.client_pid());
        let answer = match handler {
            Handler::Echo if req.len() > max_response => Err(format!(
                "it is {}, over the service's largest response of {} (see --max-response)",
                count(req.len() as u64, "byte"),
                count(max_response as u64, "byte")
            )),
            Handler::Echo => Ok(req.to_vec()),
            Handler::Exec(cmd) => run(cmd, &req, max_response),
        };
        match answer {
            Ok(response) => match req.respond(&response) {
                Ok(()) => answered += 1,
                Err(e) => {
                    dropped += 1;
                    report(&format!("the response to request {id} from pid {pid} was not delivered: {e}"));
                }
            },
            Err(why) => {
                drop(req); // unanswered: its client gets `Dropped`
                dropped += 1;
                report(&format!("dropped request {id} from pid {pid}: {why}"));
            }
        }
    }
    Ok(())
}

/// Runs `sh -c cmd` with `request` and a newline on its stdin; its stdout, one trailing newline
/// removed, or why there is no response.
fn run(cmd: &str, request: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run the command (sh -c): {e}"))?;
    let writer = super::exec::feed_line(&mut child, request);
    // Keep at most `max` bytes and a newline; count the rest (read, so the command can finish).
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut out = Vec::new();
    let read = (&mut stdout).take(max as u64 + 1).read_to_end(&mut out).and_then(|_| {
        let mut rest = [0u8; 1];
        Ok(match stdout.read(&mut rest)? {
            0 => 0,
            _ => 1 + std::io::copy(&mut stdout, &mut std::io::sink())?,
        })
    });
    let status = child.wait().map_err(|e| format!("waiting for the command: {e}"))?;
    let _ = writer.join();
    let extra = read.map_err(|e| format!("reading the output of the command: {e}"))?;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        return Err(match (status.code(), status.signal()) {
            (Some(c), _) => format!("the command exited with status {c}"),
            (None, Some(s)) => format!("the command was killed by signal {s}"),
            _ => format!("the command failed ({status})"),
        });
    }
    if extra == 0 && out.last() == Some(&b'\n') {
        out.pop();
    }
    if extra > 0 || out.len() > max {
        let len = out.len() as u64 + extra;
        return Err(format!(
            "the command wrote {}, over the service's largest response of {} (see --max-response)",
            count(len, "byte"),
            count(max as u64, "byte")
        ));
    }
    Ok(out)
}

/// A call of `shmq call` whose response is not printed yet.
struct Pending {
    /// Its number: the line of stdin (from 1).
    n: u64,
    /// Its request id (none if it was never sent).
    id: Option<RequestId>,
    /// When it was sent.
    sent: Instant,
    state: State,
}

enum State {
    Waiting,
    Answered(Vec<u8>),
    Failed(CallError),
}

/// Sends each line of stdin as a request and prints each response as a line, in order.
pub fn call(ctx: &Ctx, a: &CallArgs, out: &mut Out) -> CliResult {
    let t = Target { cmd: "call", name: &a.name, dir: &ctx.dir, want: Want::Service };
    let mut o = ServiceOptions::new().dir(&ctx.dir).wait(a.wait.into());
    if let Some(v) = a.version {
        o = o.version(v);
    }
    let svc = o.open(&a.name).map_err(|e| t.error(e))?;
    let mut client = svc.client().map_err(|e| t.error(e))?;
    let depth = a.pipeline.min(svc.max_in_flight()).max(1);
    let timeout = a.timeout.map(Duration::from_millis);

    // Stdin is read by a thread, so that responses are received while the next line is awaited.
    let (tx, lines) = mpsc::sync_channel::<CliResult<Vec<u8>>>(depth);
    std::thread::spawn(move || {
        // No limit here: a line over the service's largest request is refused when sent.
        let sink = Sink { what: "service", max: usize::MAX, verb: "sent" };
        let r = each_message(Source::Lines, &sink, |line| tx.send(Ok(line.to_vec())).map_err(|_| CliError::Reported));
        if let Err(e @ CliError::Msg(_)) = r {
            let _ = tx.send(Err(e));
        }
    });

    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(depth);
    let (mut read, mut printed) = (0u64, 0u64);
    let mut more = true; // lines may still come, and no call failed
    loop {
        // Send lines while there is room.
        while more && pending.len() < depth {
            let line = if pending.is_empty() {
                lines.recv().ok()
            } else {
                match lines.try_recv() {
                    Ok(l) => Some(l),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => None,
                }
            };
            let line = match line {
                None => {
                    more = false;
                    break;
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(line)) => line,
            };
            read += 1;
            let sent = Instant::now();
            let (id, state) = match client.send_request(&line) {
                Ok(id) => (Some(id), State::Waiting),
                Err(e) => {
                    more = false;
                    (None, State::Failed(e))
                }
            };
            pending.push_back(Pending { n: read, id, sent, state });
        }
        // Print what is answered, in order; stop at the first failure.
        while let Some(p) = pending.front() {
            match &p.state {
                State::Waiting => break,
                State::Failed(e) => return Err(call_failed(&a.name, a.timeout, p.n, printed, e)),
                State::Answered(bytes) => {
                    let line = out.write_all(bytes).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush());
                    line.map_err(|e| {
                        CliError::msg(format!(
                            "cannot write to stdout ({e}) after {} were written; call stopped and gave up the \
                             calls in flight",
                            count(printed, "response")
                        ))
                    })?;
                    printed += 1;
                    pending.pop_front();
                }
            }
        }
        let Some(front) = pending.front() else {
            if more {
                continue;
            }
            return Ok(());
        };
        // Wait for a response: until the oldest call's deadline; only briefly while lines may
        // come that there is room to send.
        let left = timeout.map(|t| t.saturating_sub(front.sent.elapsed()));
        let slice = (more && pending.len() < depth).then_some(Duration::from_millis(1));
        let wait = match (left, slice) {
            (Some(l), Some(s)) => Some(l.min(s)),
            (l, s) => l.or(s),
        };
        let r = match wait {
            Some(d) => client.recv_response_timeout(d),
            None => client.recv_response(),
        };
        let (id, state) = match r {
            Ok(resp) => (resp.id(), State::Answered(resp.to_vec())),
            Err(CallError::Timeout) => {
                if timeout.is_some_and(|t| front.sent.elapsed() >= t) {
                    return Err(call_failed(&a.name, a.timeout, front.n, printed, &CallError::Timeout));
                }
                continue; // a slice passed: look for lines again
            }
            Err(e @ (CallError::Dropped { id } | CallError::ServerGone { id })) => (id, State::Failed(e)),
            // Failures of no one call in particular (no server, broken memory): the oldest call
            // is not going to be answered either.
            Err(e) => return Err(call_failed(&a.name, a.timeout, front.n, printed, &e)),
        };
        if let Some(p) = pending.iter_mut().find(|p| p.id == Some(id)) {
            if matches!(state, State::Failed(_)) {
                more = false; // no more calls; those before it are still printed
            }
            p.state = state;
        }
    }
}

/// The error line of call number `n` that failed with `e`, `printed` responses after the start.
fn call_failed(name: &str, timeout_ms: Option<u64>, n: u64, printed: u64, e: &CallError) -> CliError {
    let before = format!("{} answered before it", count(printed, "call"));
    CliError::msg(match e {
        CallError::ServiceUnavailable { .. } => format!(
            "service {name:?} has no live server, so call {n} was not answered ({before}); start one with \
             `shmq serve {name} --echo` (or --exec CMD), then call again"
        ),
        CallError::ServerGone { .. } => format!(
            "the server handling call {n} to service {name:?} died before answering ({before}); the request may or \
             may not have been carried out: call again only if that is safe"
        ),
        CallError::Dropped { .. } => format!(
            "the server dropped call {n} to service {name:?} without answering it ({before}); the server's stderr \
             may say why"
        ),
        CallError::Timeout => format!(
            "call {n} to service {name:?} timed out after {} ms ({before}); the server may be slow or stopped (see \
             `shmq stat {name}`)",
            timeout_ms.unwrap_or(0)
        ),
        CallError::RequestTooLarge { len, max } => format!(
            "line {n} is {}, over the largest request of service {name:?} ({}), so it was not sent ({before}); \
             split it, or serve a service created with a larger --max-request",
            count(*len as u64, "byte"),
            count(*max as u64, "byte")
        ),
        e => format!("call {n} to service {name:?} failed ({before}): {e}"),
    })
}
