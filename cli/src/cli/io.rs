//! `shmq send` and `shmq recv`: messages between a queue and stdin/stdout (the payload
//! formats are in `payload`), and the receive loop `sub` shares.

use std::io::Write;
use std::time::Duration;

use shmq::Error;

use super::door::{count, Target, Want};
use super::payload::{check_generated, each_message, Format, Sink, Source};
use super::{CliError, CliResult, Ctx, OpenArgs, Out};

/// Arguments of `shmq send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Queue name.
    name: String,
    /// Generate N messages instead of reading stdin: message i (from 0) is the decimal number i.
    #[arg(long, value_name = "N", conflicts_with = "raw")]
    count: Option<u64>,
    /// With --count: pad each generated message with '.' to exactly this many bytes.
    #[arg(long, value_name = "BYTES", requires = "count")]
    size: Option<usize>,
    /// Read stdin as raw frames instead of lines: each frame is the payload's length as a u32,
    /// little-endian, then the payload's bytes (what `recv --raw` writes), so payloads may hold
    /// newlines and any byte.
    #[arg(long)]
    raw: bool,
    /// Kind tag sent with every message (receivers see it with `recv --show-kind`).
    #[arg(long, value_name = "K", default_value_t = 0)]
    kind: u32,
    /// Wait at most this long for space in a full queue, then fail [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    #[command(flatten)]
    open: OpenArgs,
}

/// Arguments of `shmq recv`.
#[derive(Debug, clap::Args)]
pub struct RecvArgs {
    /// Queue name; several follow them all in one process (each line then starts with the
    /// queue's name and a tab).
    #[arg(required = true, value_name = "QUEUE")]
    names: Vec<String>,
    /// Exit 0 after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Longest wait for one message. With --count: exit 1 when it passes; without: exit 0
    /// (the queue is drained) [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Print each message as `<kind><TAB><payload>`.
    #[arg(long, conflicts_with = "raw")]
    show_kind: bool,
    /// Keep waiting when every producer has left and every message was received (by default
    /// recv then says so and exits: 0 without --count, 1 with a --count not reached). A
    /// producer that attaches later is waited for.
    #[arg(long)]
    wait_for_producer: bool,
    /// Run CMD (`sh -c CMD`) once per message instead of printing it: the payload and a newline
    /// on its stdin, its stdout and stderr ours, SHMQ_QUEUE, SHMQ_KIND and SHMQ_DELIVERY (in a
    /// queue with --max-deliveries) in its environment. Exit status 0 acknowledges the message;
    /// any other rejects it, with the status and CMD's last stderr line as the reason: it is
    /// delivered again, and after --max-deliveries failures moved to the dead-letter queue (see
    /// `shmq dlq`). --count counts the runs of CMD. One queue only.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["raw", "hex", "show_kind"])]
    exec: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    open: OpenArgs,
}

/// How `recv` and `sub` write payloads.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Write each payload as a raw frame instead of a line: its length as a u32, little-endian,
    /// then its bytes, nothing between frames (`send --raw` and `pub --raw` read them back).
    #[arg(long, conflicts_with = "hex")]
    pub(super) raw: bool,
    /// Write each payload as one line of lowercase hex (two digits a byte).
    #[arg(long)]
    hex: bool,
}

impl OutputArgs {
    /// The format asked for.
    pub(super) fn format(&self, show_kind: bool) -> Format {
        Format::of(self.raw, self.hex, show_kind)
    }
}

/// `--size` against the largest message of the queue or topic that would take them.
pub(super) fn check_size(size: Option<usize>, max: usize, what: &str, created: bool) -> CliResult {
    match size {
        Some(size) if size > max && created => Err(CliError::msg(format!(
            "--size {size} is over the largest message of the {what} this would create ({}); add --max-msg {size}, \
             or use a smaller --size",
            count(max as u64, "byte")
        ))),
        Some(size) if size > max => Err(CliError::msg(format!(
            "--size {size} is over the {what}'s largest message ({}); use --size {max} or less, or a {what} created \
             with a larger --max-msg",
            count(max as u64, "byte")
        ))),
        _ => Ok(()),
    }
}

/// Sends stdin lines, or generated messages, to a queue.
pub fn send(ctx: &Ctx, a: &SendArgs) -> CliResult {
    check_generated(a.count, a.size)?;
    let before_create = || check_size(a.size, a.open.max_msg_to_create(), "queue", true);
    let (q, _) = a.open.open(ctx, "send", &a.name, before_create)?;
    check_size(a.size, q.max_msg_size(), "queue", false)?;
    let t = Target { cmd: "send", name: &a.name, dir: &ctx.dir, want: Want::Queue };
    let mut tx = q.producer().map_err(|e| t.error(e))?;
    let timeout = a.timeout.map(Duration::from_millis);
    let mut sent: u64 = 0;
    let send_one = |payload: &[u8]| -> CliResult {
        send_counted(&mut tx, a.kind, payload, timeout, &mut sent, &t, |sent| {
            format!(
                "timed out after {} ms waiting for space in queue {:?} ({} sent); is a consumer running? (see `shmq stat {}`)",
                a.timeout.unwrap_or(0),
                a.name,
                count(sent, "message"),
                a.name
            )
        })
    };
    let sink = Sink { what: "queue", max: q.max_msg_size(), verb: "sent" };
    each_message(Source::of(a.count, a.size, a.raw), &sink, send_one)
}

/// Sends one message of `send` or `pub` (waiting at most `timeout`, or as long as it takes)
/// and counts it in `sent`; a timeout is told with `timed_out(sent)`.
pub(super) fn send_counted(
    tx: &mut impl shmq::Sender,
    kind: u32,
    payload: &[u8],
    timeout: Option<Duration>,
    sent: &mut u64,
    t: &Target,
    timed_out: impl FnOnce(u64) -> String,
) -> CliResult {
    let r = match timeout {
        Some(d) => tx.send_kind_timeout(kind, payload, d).map_err(Error::from),
        None => tx.send_kind(kind, payload).map_err(Error::from),
    };
    match r {
        Ok(()) => {
            *sent += 1;
            Ok(())
        }
        Err(Error::Timeout) => Err(CliError::msg(timed_out(*sent))),
        Err(e) => Err(t.error(e)),
    }
}

/// Prints messages from a queue, one per line; from several, on one `WaitSet` (see `follow`),
/// each line starting with its queue's name.
pub fn recv(ctx: &Ctx, a: &RecvArgs, out: &mut Out) -> CliResult {
    let names = super::follow::check_names(&a.names, a.output.raw, "queue", "recv")?;
    if a.exec.is_some() && names.len() > 1 {
        return Err(CliError::msg(format!(
            "--exec takes one queue ({} given); run one `shmq recv NAME --exec CMD` per queue",
            names.len()
        )));
    }
    let mut handles = Vec::new();
    let mut max = 0;
    for name in &a.names {
        let (q, made) = a.open.open(ctx, "recv", name, || Ok(()))?;
        if let Some(notice) = made.notice("queue", name, &ctx.dir) {
            super::report(&notice);
        }
        let t = Target { cmd: "recv", name, dir: &ctx.dir, want: Want::Queue };
        let mut rx = q.consumer().map_err(|e| t.error(e))?;
        if let Some(cmd) = &a.exec {
            let e = super::dlq::Exec {
                cmd,
                count: a.count,
                timeout_ms: a.timeout,
                keep_waiting: a.wait_for_producer,
                max_deliveries: q.max_deliveries(),
            };
            return super::dlq::exec_loop(&t, &mut rx, &e, out);
        }
        handles.push((name.clone(), rx));
        max = max.max(q.max_msg_size());
    }
    let joined = names.join(", ");
    let t = Target { cmd: "recv", name: &joined, dir: &ctx.dir, want: Want::Queue };
    let what = if names.len() == 1 { format!("queue {joined:?}") } else { format!("queues {joined}") };
    let show = Show {
        count: a.count,
        timeout_ms: a.timeout,
        format: a.output.format(a.show_kind),
        what: &what,
        durable: false,
        target: &t,
        keep_waiting: a.wait_for_producer,
        sender: "producer",
    };
    let mut buf = vec![0u8; max];
    if handles.len() == 1 {
        let (_, mut rx) = handles.pop().expect("one queue");
        return print_messages(
            out,
            &mut buf,
            &show,
            &mut rx,
            |rx, timeout| Ok(rx.wait_ready(timeout)?),
            |rx, buf| Ok(rx.try_recv(buf)?),
            |_| Ok(()),
            |_, _| Ok(()),
        );
    }
    let mut multi = super::follow::Multi::new(handles, a.wait_for_producer);
    super::report(&format!("following {} queues ({joined}), waiting with {}", names.len(), multi.mechanism()));
    print_messages(
        out,
        &mut buf,
        &show,
        &mut multi,
        |m, timeout| m.ready(timeout, |c| !matches!(c.wait_ready(Some(Duration::ZERO)), Err(e) if e.is_disconnected())),
        |m, buf| m.take(buf),
        |_| Ok(()),
        |m, out| write!(out, "{}\t", m.current_name()),
    )
}

/// What [`print_messages`] prints and when it stops.
pub(super) struct Show<'a> {
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Longest wait for one message.
    pub timeout_ms: Option<u64>,
    /// How each message is written.
    pub format: Format,
    /// "queue \"name\"" or "topic \"name\"", for the timeout message.
    pub what: &'a str,
    /// A durable subscriber: a message whose line could not be written is not acknowledged.
    pub durable: bool,
    /// The command and segment, for the advice of errors.
    pub target: &'a Target<'a>,
    /// Keep waiting when every sender has left (`--wait-for-producer`, `--wait-for-publisher`);
    /// otherwise say so and stop.
    pub keep_waiting: bool,
    /// "producer" or "publisher", for the line said when they have all left.
    pub sender: &'a str,
}

/// The receive loop of `recv` and `sub`: waits until a message is ready (`ready`, which takes
/// nothing), checks that stdout can still take a line, takes the message (`take`, without
/// waiting), writes its line and flushes it, and only then takes the next one; `after_line`
/// runs after each line is out (`sub --name` acknowledges there); `prefix` writes what starts
/// each line (the stream's name when several are followed). So a message is taken off the
/// queue only once the previous one has reached stdout, and a reader that goes away
/// (`shmq recv q | head -2`) costs no message: the loop sees the closed stdout before it takes
/// the next one, and ends with an error naming how many were written. (A reader that exits in
/// the instant between that check and the write loses the one message taken; the error says
/// so.)
///
/// A timeout ends the loop: with a count, as an error; without one, cleanly. `Lagged(n)` is
/// reported on stderr (`shmq: missed N messages`) and the loop goes on; gaps that follow each
/// other with no message between them make one line with their sum, written before the next
/// message, before the loop waits, or when it ends.
#[allow(clippy::too_many_arguments)]
pub(super) fn print_messages<R>(
    out: &mut Out,
    buf: &mut [u8],
    show: &Show<'_>,
    rx: &mut R,
    ready: impl FnMut(&mut R, Option<Duration>) -> shmq::Result<()>,
    take: impl FnMut(&mut R, &mut [u8]) -> shmq::Result<shmq::Received>,
    after_line: impl FnMut(&mut R) -> CliResult,
    prefix: impl FnMut(&R, &mut Out) -> std::io::Result<()>,
) -> CliResult {
    let mut missed = Missed(0);
    let r = receive_loop(out, buf, show, rx, ready, take, after_line, prefix, &mut missed);
    missed.report();
    r
}

/// Messages missed (`Lagged`) and not reported yet.
struct Missed(u64);

impl Missed {
    /// Reports the messages missed since the last report, if any: one line.
    fn report(&mut self) {
        if self.0 > 0 {
            super::report(&format!("missed {}", count(self.0, "message")));
            self.0 = 0;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn receive_loop<R>(
    out: &mut Out,
    buf: &mut [u8],
    show: &Show<'_>,
    rx: &mut R,
    mut ready: impl FnMut(&mut R, Option<Duration>) -> shmq::Result<()>,
    mut take: impl FnMut(&mut R, &mut [u8]) -> shmq::Result<shmq::Received>,
    mut after_line: impl FnMut(&mut R) -> CliResult,
    mut prefix: impl FnMut(&R, &mut Out) -> std::io::Result<()>,
    missed: &mut Missed,
) -> CliResult {
    let timeout = show.timeout_ms.map(Duration::from_millis);
    let mut got: u64 = 0;
    let closed = |got: u64, taken: bool| {
        let lost = match (taken, show.durable) {
            (false, _) => String::new(),
            (true, false) => "; the message taken for it could not be written and is lost".into(),
            (true, true) => "; the message taken for it was not acknowledged and will be delivered again".into(),
        };
        CliError::msg(format!(
            "stdout was closed after {} from {} were written{lost}",
            count(got, "message"),
            show.what
        ))
    };
    while show.count.is_none_or(|n| got < n) {
        out.flush().map_err(|_| closed(got, false))?;
        if missed.0 > 0 && matches!(ready(rx, Some(Duration::ZERO)), Err(Error::Timeout)) {
            missed.report(); // nothing follows at once: say it before waiting
        }
        match wait_ready(rx, &mut ready, timeout, show.keep_waiting) {
            Ok(()) => {}
            Err(Error::Disconnected) => return gone(show, got),
            Err(Error::Timeout) => match show.count {
                None => return Ok(()),
                Some(n) => {
                    return Err(CliError::msg(format!(
                        "timed out after {} ms waiting for a message on {} ({got} of {n} received); is anyone \
                         sending? (see `shmq stat {}`)",
                        show.timeout_ms.unwrap_or(0),
                        show.what,
                        show.target.name
                    )))
                }
            },
            Err(e) => return Err(show.target.error(e)),
        }
        if !stdout_open() {
            return Err(closed(got, false));
        }
        let m = match take(rx, buf) {
            Ok(m) => m,
            Err(Error::Empty) => continue, // another consumer was faster
            Err(Error::Disconnected) if !show.keep_waiting => return gone(show, got),
            Err(Error::Disconnected) => continue,
            Err(Error::Lagged(n)) => {
                missed.0 += n;
                continue;
            }
            Err(e) => return Err(show.target.error(e)),
        };
        missed.report();
        let line = (|| {
            prefix(rx, out)?;
            show.format.write(out, m.kind, &buf[..m.len])?;
            out.flush()
        })();
        line.map_err(|_| closed(got, true))?;
        got += 1;
        after_line(rx)?;
    }
    Ok(())
}

/// Every sender left and everything was received: one line on stderr, then the end (an error
/// if `--count` was not reached).
fn gone(show: &Show<'_>, got: u64) -> CliResult {
    let left = format!(
        "every {} of {} has left and all its messages were received ({} written)",
        show.sender,
        show.what,
        count(got, "message")
    );
    match show.count {
        None => {
            super::report(&format!("{left}; exiting (--wait-for-{} keeps waiting)", show.sender));
            Ok(())
        }
        Some(n) => Err(CliError::msg(format!(
            "{left}, {got} of the {n} asked for; start a {} or use --wait-for-{} to keep waiting",
            show.sender, show.sender
        ))),
    }
}

/// How long a waiting `recv`/`sub` with `--wait-for-producer` sleeps between looks while no
/// sender is attached.
const SENDER_POLL: Duration = Duration::from_millis(50);

/// How often a waiting `recv`/`sub` looks whether its stdout was closed.
const STDOUT_CHECK: Duration = Duration::from_millis(100);

/// `ready` with `timeout`, in slices of [`STDOUT_CHECK`]: a reader that went away ends the wait
/// (as an error of `print_messages`) even while no message comes.
///
/// With `keep_waiting`, a queue or topic whose senders have all left is waited on too (looked
/// at every [`SENDER_POLL`]) until a sender comes back, the timeout passes or stdout closes.
fn wait_ready<R>(
    rx: &mut R,
    ready: &mut impl FnMut(&mut R, Option<Duration>) -> shmq::Result<()>,
    timeout: Option<Duration>,
    keep_waiting: bool,
) -> shmq::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        let slice = left.map_or(STDOUT_CHECK, |l| l.min(STDOUT_CHECK));
        match ready(rx, Some(slice)) {
            Err(Error::Timeout) if left.is_none_or(|l| l > slice) => {}
            Err(Error::Disconnected) if keep_waiting => {
                if left.is_some_and(|l| l <= SENDER_POLL) {
                    return Err(Error::Timeout);
                }
                std::thread::sleep(SENDER_POLL);
            }
            other => return other,
        }
        if !stdout_open() {
            return Ok(()); // the caller looks at stdout next and stops
        }
    }
}

/// Whether stdout can still take output: false once the reader of a pipe or socket has gone
/// (`poll` reports an error or hang-up on our end).
fn stdout_open() -> bool {
    let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, a zero timeout: poll only fills `revents`.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n < 0 || fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) == 0
}
