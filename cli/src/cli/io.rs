//! `shmq send` and `shmq recv`: messages between a queue and stdin/stdout.

use std::io::{BufRead, Write};
use std::time::Duration;

use shmq::Error;

use super::{CliError, CliResult, Ctx, OpenArgs, Out};

/// Arguments of `shmq send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Queue name.
    name: String,
    /// Generate N messages instead of reading stdin: message i (from 0) is the decimal number i.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// With --count: pad each generated message with '.' to exactly this many bytes.
    #[arg(long, value_name = "BYTES", requires = "count")]
    size: Option<usize>,
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
    /// Queue name.
    name: String,
    /// Exit 0 after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Longest wait for one message. With --count: exit 1 when it passes; without: exit 0
    /// (the queue is drained) [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Print each message as `<kind><TAB><payload>`.
    #[arg(long)]
    show_kind: bool,
    #[command(flatten)]
    open: OpenArgs,
}

/// Sends stdin lines, or generated messages, to a queue.
pub fn send(ctx: &Ctx, a: &SendArgs) -> CliResult {
    let q = a.open.options(ctx).open_or_create(&a.name)?;
    let mut tx = q.producer()?;
    let timeout = a.timeout.map(Duration::from_millis);
    let mut sent: u64 = 0;
    let send_one = |payload: &[u8]| -> CliResult {
        let r = match timeout {
            Some(t) => tx.send_kind_timeout(a.kind, payload, t),
            None => tx.send_kind(a.kind, payload),
        };
        match r {
            Ok(()) => {
                sent += 1;
                Ok(())
            }
            Err(Error::Timeout) => Err(CliError::msg(format!(
                "timed out after {} ms waiting for space in queue {:?} ({sent} messages sent); is a consumer running?",
                a.timeout.unwrap_or(0),
                a.name
            ))),
            Err(e @ Error::MessageTooLarge { .. }) => Err(CliError::msg(format!("message {}: {e}", sent + 1))),
            Err(e) => Err(e.into()),
        }
    };
    each_message(a.count, a.size, send_one)
}

/// The messages of `send` and `pub`: with `count`, that many generated ones (see
/// [`generate`]); else each line of stdin, without its newline.
pub(super) fn each_message(
    count: Option<u64>,
    size: Option<usize>,
    mut f: impl FnMut(&[u8]) -> CliResult,
) -> CliResult {
    if let Some(count) = count {
        let mut buf = Vec::with_capacity(size.unwrap_or(20));
        for i in 0..count {
            generate(&mut buf, i, size)?;
            f(&buf)?;
        }
        return Ok(());
    }
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = stdin.read_until(b'\n', &mut line).map_err(|e| CliError::msg(format!("read stdin: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        f(&line)?;
    }
}

/// Message `i` of `send --count`: the decimal number, padded with '.' to `size` bytes.
pub(super) fn generate(buf: &mut Vec<u8>, i: u64, size: Option<usize>) -> CliResult {
    buf.clear();
    write!(buf, "{i}").expect("writing to a Vec cannot fail");
    if let Some(size) = size {
        if buf.len() > size {
            return Err(CliError::msg(format!(
                "--size {size} is too small to hold the sequence number {i} ({} bytes)",
                buf.len()
            )));
        }
        buf.resize(size, b'.');
    }
    Ok(())
}

/// Prints messages from a queue, one per line.
pub fn recv(ctx: &Ctx, a: &RecvArgs, out: &mut Out) -> CliResult {
    let q = a.open.options(ctx).open_or_create(&a.name)?;
    let mut rx = q.consumer()?;
    let mut buf = vec![0u8; q.max_msg_size()];
    let what = format!("queue {:?}", a.name);
    let show = Show { count: a.count, timeout_ms: a.timeout, show_kind: a.show_kind, what: &what, durable: false };
    print_messages(
        out,
        &mut buf,
        &show,
        &mut rx,
        |rx, timeout| rx.wait_ready(timeout),
        |rx, buf| rx.try_recv(buf),
        |_| Ok(()),
    )
}

/// What [`print_messages`] prints and when it stops.
pub(super) struct Show<'a> {
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Longest wait for one message.
    pub timeout_ms: Option<u64>,
    /// Print `kind<TAB>` before each payload.
    pub show_kind: bool,
    /// "queue \"name\"" or "topic \"name\"", for the timeout message.
    pub what: &'a str,
    /// A durable subscriber: a message whose line could not be written is not acknowledged.
    pub durable: bool,
}

/// The receive loop of `recv` and `sub`: waits until a message is ready (`ready`, which takes
/// nothing), checks that stdout can still take a line, takes the message (`take`, without
/// waiting), writes its line and flushes it, and only then takes the next one; `after_line`
/// runs after each line is out (`sub --name` acknowledges there). So a message is taken off the
/// queue only once the previous one has reached stdout, and a reader that goes away
/// (`shmq recv q | head -2`) costs no message: the loop sees the closed stdout before it takes
/// the next one, and ends with an error naming how many were written. (A reader that exits in
/// the instant between that check and the write loses the one message taken; the error says
/// so.)
///
/// A timeout ends the loop: with a count, as an error; without one, cleanly. `Lagged(n)` is
/// reported on stderr and the loop goes on.
pub(super) fn print_messages<R>(
    out: &mut Out,
    buf: &mut [u8],
    show: &Show<'_>,
    rx: &mut R,
    mut ready: impl FnMut(&mut R, Option<Duration>) -> shmq::Result<()>,
    mut take: impl FnMut(&mut R, &mut [u8]) -> shmq::Result<shmq::Received>,
    mut after_line: impl FnMut(&mut R) -> CliResult,
) -> CliResult {
    let timeout = show.timeout_ms.map(Duration::from_millis);
    let mut got: u64 = 0;
    let closed = |got: u64, taken: bool| {
        let lost = match (taken, show.durable) {
            (false, _) => String::new(),
            (true, false) => "; the message taken for it could not be written and is lost".into(),
            (true, true) => "; the message taken for it was not acknowledged and will be delivered again".into(),
        };
        CliError::msg(format!("stdout was closed after {got} messages from {} were written{lost}", show.what))
    };
    while show.count.is_none_or(|n| got < n) {
        out.flush().map_err(|_| closed(got, false))?;
        match wait_ready(rx, &mut ready, timeout) {
            Ok(()) => {}
            Err(Error::Timeout) => match show.count {
                None => return Ok(()),
                Some(n) => {
                    return Err(CliError::msg(format!(
                        "timed out after {} ms waiting for a message on {} ({got} of {n} received)",
                        show.timeout_ms.unwrap_or(0),
                        show.what
                    )))
                }
            },
            Err(e) => return Err(e.into()),
        }
        if !stdout_open() {
            return Err(closed(got, false));
        }
        let m = match take(rx, buf) {
            Ok(m) => m,
            Err(Error::Empty) => continue, // another consumer was faster
            Err(Error::Lagged(n)) => {
                super::report(&format!("missed {n} messages"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let line = (|| {
            if show.show_kind {
                write!(out, "{}\t", m.kind)?;
            }
            out.write_all(String::from_utf8_lossy(&buf[..m.len]).as_bytes())?;
            out.write_all(b"\n")?;
            out.flush()
        })();
        line.map_err(|_| closed(got, true))?;
        got += 1;
        after_line(rx)?;
    }
    Ok(())
}

/// How often a waiting `recv`/`sub` looks whether its stdout was closed.
const STDOUT_CHECK: Duration = Duration::from_millis(100);

/// `ready` with `timeout`, in slices of [`STDOUT_CHECK`]: a reader that went away ends the wait
/// (as an error of `print_messages`) even while no message comes.
fn wait_ready<R>(
    rx: &mut R,
    ready: &mut impl FnMut(&mut R, Option<Duration>) -> shmq::Result<()>,
    timeout: Option<Duration>,
) -> shmq::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        let slice = left.map_or(STDOUT_CHECK, |l| l.min(STDOUT_CHECK));
        match ready(rx, Some(slice)) {
            Err(Error::Timeout) if left.is_none_or(|l| l > slice) => {
                if !stdout_open() {
                    return Ok(()); // the caller looks at stdout next and stops
                }
            }
            other => return other,
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
