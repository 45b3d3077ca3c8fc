//! The command line: argument definitions, dispatch, error reporting and output.
//!
//! One module per command group: [`io`] (send, recv), [`topics`] (pub, sub), [`service`]
//! (serve, call), [`inspect`] (list, stat, rm), [`gc`], [`journal`] (record, replay, journal),
//! [`dlq`] (dlq, and the `recv --exec` loop that rejects messages into dead letters),
//! [`demo`] (demo and its hidden worker), [`bench`] (bench and its hidden worker). A new group
//! adds a module, a variant of [`Command`] and a line in [`run`].
//!
//! Journals (`shmq::journal`): `record TOPIC --journal DIR` keeps a topic's messages on disk,
//! in `DIR/TOPIC/*.jrnl`, as a durable subscriber of the topic (so it misses nothing, and a
//! restarted `record` goes on where it stopped); `replay TOPIC --journal DIR` prints them back
//! exactly as `sub` prints messages, from the start, a sequence number or a time; `journal DIR`
//! shows what each journal holds and any damage. `replay` and `journal` read files only: they
//! do not look in the segment directory.
//!
//! Errors: every command returns [`CliResult`]; [`main`] prints one line `shmq: <message>` to
//! stderr and exits 1. A closed stdout ends `list`, `stat` and the like quietly with status 0;
//! `recv` and `sub`, which take messages off a queue, stop taking them and exit 1 saying how
//! many they wrote (see `io::print_messages`); so does `call`, whose calls may have effects.
//! `replay` and `journal` print every damaged place of a journal as a line on stderr, and exit 1
//! after printing everything readable. A panic prints one line too (see
//! [`install_panic_hook`]).

mod bench;
mod demo;
mod dlq;
mod door;
mod exec;
mod follow;
mod gc;
mod inspect;
mod io;
mod journal;
mod payload;
mod service;
mod topics;
mod units;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use shmq::{QueueKind, QueueOptions, WaitStrategy};

/// Lock-free shared-memory message queues for processes on one Linux host.
///
/// A queue is a file named shmq.<NAME> in the segment directory (--dir, else $SHMQ_DIR, else
/// /dev/shm). It lives until `shmq rm` removes it, so messages wait for a consumer that starts
/// later. Names are 1 to 200 bytes of [A-Za-z0-9._-], not starting with '.'.
#[derive(Debug, Parser)]
#[command(
    name = "shmq",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
        shmq demo                                 check delivery, measure throughput and latency vs a Unix socket\n  \
        printf 'a\\nb\\nc\\n' | shmq send orders     queue three messages (creates the queue)\n  \
        shmq recv orders --count 3                print them, one per line\n  \
        shmq list                                 every queue with its depth\n  \
        shmq stat orders --json                   indices, participants and counters as JSON\n  \
        shmq serve upper --exec 'tr a-z A-Z' &    answer requests with a command's output\n  \
        echo hello | shmq call upper              call it: prints HELLO\n  \
        shmq rm orders                            remove the queue\n  \
        shmq record prices --journal ./j &        keep every message of topic prices on disk\n  \
        shmq replay prices --journal ./j          print them back, as `sub` would\n\n\
        Exit status: 0 on success, 1 on an error (one line `shmq: ...` on stderr), 2 on invalid usage."
)]
pub struct Cli {
    /// Segment directory [default: $SHMQ_DIR, else /dev/shm].
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check delivery between two processes, then measure throughput and round-trip latency
    /// beside a Unix socket pair.
    ///
    /// Creates a private queue, starts a producer and a consumer process, sends --count
    /// messages and checks that each arrived exactly once, in order, with an intact payload.
    /// Then two processes ping-pong through two SPSC queues. The same measurements are made
    /// over a Unix domain socket pair (SOCK_SEQPACKET) in the same run. The demo's segments are
    /// removed at the end, also on error.
    Demo(demo::DemoArgs),
    /// Internal: one process of `shmq demo`.
    #[command(hide = true)]
    DemoWorker(demo::WorkerArgs),
    /// Measure round-trip latency and throughput between processes, beside a shared-memory
    /// floor, a Unix socket pair and a pipe pair in the same run.
    ///
    /// Round trip: this process and an echo process ping-pong --count messages per repetition
    /// through two rings (two SPSC queues, two MPMC queues, or two topics with one subscriber
    /// each); percentiles from an HDR histogram. Throughput: one way, P producers -> C consumers
    /// (mpmc) or 1 publisher -> S subscribers (topic). Every payload is really written, read
    /// and checked. Each statistic is the median across --reps repetitions. The progress bar
    /// (stderr, terminals only) is drawn by another thread: redirect stderr, or use --json, for
    /// the quietest tails.
    Bench(bench::BenchArgs),
    /// Internal: one process of `shmq bench`.
    #[command(hide = true)]
    BenchWorker(bench::WorkerArgs),
    /// Send each line of stdin as one message (without its newline), or generate messages.
    ///
    /// Opens the queue, creating it if needed (MPMC unless --spsc). With --count, sends N
    /// generated messages instead of reading stdin: message i (from 0) is the decimal number
    /// i, padded with '.' to --size bytes if given. With --raw, reads length-prefixed frames
    /// instead of lines (see --raw). Waits while the queue is full (see --timeout).
    ///
    /// A line longer than the queue's maximum message stops send with an error that says how
    /// many lines were sent and how many were not; lines before it are sent. When stdin is a
    /// file, the rest of it is read to count the lines not sent; a pipe or terminal is not read
    /// further (it may never end).
    Send(io::SendArgs),
    /// Print messages from a queue, one per line (payload as UTF-8, invalid bytes replaced).
    ///
    /// Opens the queue. If there is none of that name yet, recv creates it and says so on
    /// stderr (`shmq: created queue "NAME" ... waiting for messages`), so that a mistyped name
    /// does not wait in silence. With --count N: exits 0 after N messages, and with 1 (an
    /// error) if --timeout passes without a message first. Without --count: runs until
    /// interrupted, or, with --timeout, until no message has arrived for that long, then exits
    /// 0 (drains the queue). A message is taken off the queue only once the previous one was
    /// written to stdout; when stdout is closed (its reader exited), recv takes no more and
    /// exits 1 saying how many it wrote. --raw and --hex print payloads that are not text.
    Recv(io::RecvArgs),
    /// List every segment in the segment directory: kind, capacity, message size, depth, memory.
    ///
    /// Segments that cannot be read are listed with the reason instead.
    List(inspect::ListArgs),
    /// Show one segment in detail: header, indices, participants, role holders, counters.
    Stat(inspect::StatArgs),
    /// Remove segments. Processes attached keep working on their mapping until they detach.
    ///
    /// Removes every name given; exits 1 if any did not exist or could not be removed.
    Rm(inspect::RmArgs),
    /// Publish each line of stdin as one message to a topic, or generate messages.
    ///
    /// Opens the topic, creating it if needed. Every subscriber receives every message. With
    /// --count, publishes N generated messages instead of reading stdin: message i (from 0) is
    /// the decimal number i, padded with '.' to --size bytes if given. With --raw, reads
    /// length-prefixed frames (see --raw). Waits while the slowest reliable subscriber (also a
    /// durable one that is away) is a whole topic behind (see --timeout). A topic with no
    /// subscriber is said so once on stderr: its messages are kept only up to its capacity, for
    /// subscribers that start from the earliest. A line over the topic's maximum message stops
    /// pub as it stops `send`.
    Pub(topics::PubArgs),
    /// Print messages from a topic, one per line (payload as UTF-8, invalid bytes replaced).
    ///
    /// Opens the topic and subscribes (from the next message unless --from earliest). If there
    /// is no topic of that name yet, sub creates it and says so on stderr, as `recv` does.
    /// --count, --timeout, --raw and --hex work as for `recv`. With --name the subscriber is
    /// durable: each message is acknowledged once printed, and the next `sub --name NAME`
    /// continues with the first message not yet printed. With --group NAME it is a member of
    /// consumer group NAME: each message goes to one member of the group (every group gets
    /// every message), acknowledged once printed; one taken by a member that dies before
    /// printing it goes to another member.
    Sub(topics::SubArgs),
    /// Remove segments that no live process uses and nothing waits in; one line per segment.
    ///
    /// A segment is removed when its creator and every attached process are dead, and it holds
    /// nothing someone may come back for (a queue must be empty, a topic must have no durable
    /// subscriber; --force removes those too). Liveness is each process's lock on the segment
    /// file, not its pid. Files of segments whose creator died while creating them
    /// (.shmq-new.*) are removed, as is a file under a segment name that is not a complete
    /// segment and that nobody works on. A process attaching meanwhile is never left on a
    /// removed segment.
    Gc(gc::GcArgs),
    /// Answer the requests of a service: with their own bytes (--echo), or with a command's
    /// output (--exec CMD).
    ///
    /// Opens the service, creating it if needed, and serves it until killed (or --count, or
    /// --timeout). With --exec, each request is piped to CMD's stdin (`sh -c CMD`, the request
    /// followed by a newline), its stdout is the response (one trailing newline removed); CMD
    /// runs once per request. A CMD that exits non-zero, or writes more than the service's
    /// largest response, drops the request: its client gets an error, and serve says why on
    /// stderr (one line `shmq: dropped request ...`) and goes on. Any number of serve processes
    /// may serve one service; each request goes to one of them. Says on stderr when it is ready
    /// (`shmq: serving "NAME" (pid P): ...`). A request being handled when serve is killed fails
    /// in its client (it may or may not have been carried out).
    #[command(disable_version_flag = true)]
    Serve(service::ServeArgs),
    /// Send each line of stdin as a request to a service and print each response as a line, in
    /// order.
    ///
    /// Opens the service (it must exist: `shmq serve NAME` creates it). Each response is printed
    /// as its server sent it, followed by a newline. The first call that fails stops call with
    /// exit 1 and one line on stderr naming the failure and how many calls were answered before
    /// it: no live server (within about 10 ms), the server died or dropped the request, --timeout
    /// passed, or a line is over the service's largest request. With --pipeline N, up to N calls
    /// are in flight at once, which several servers can answer in parallel; the responses are
    /// still printed in the order of the lines.
    #[command(disable_version_flag = true)]
    Call(service::CallArgs),
    /// Record a topic's messages into its journal on disk (DIR/TOPIC/*.jrnl), to replay them
    /// later.
    ///
    /// Opens the topic, creating it if needed (and says so on stderr, as `sub` does), and
    /// subscribes durably (as "journal" unless --name; reliable unless --lossy) from the oldest
    /// message the topic still holds. Each message is appended to the journal and acknowledged
    /// once it is in the journal's file (the page cache), so a `record` that is stopped or dies
    /// and starts again goes on with the first message its journal lacks: every message once,
    /// none missing; --fsync decides when records reach the device, so what a crash of the
    /// machine may take. The journal is a series of files of --file-size bytes; --retain-bytes and
    /// --retain-age remove the oldest. Runs until SIGINT or SIGTERM (syncs, then exits 0),
    /// outliving its publishers (a publisher that restarts is recorded on), or per --count,
    /// --timeout (which work as for `sub`) and --until-publishers-leave (exits 0 once every
    /// publisher has left and everything was recorded, saying how many). A torn record at the end of the journal
    /// (a crash mid-write) is cut off when it starts, and said on stderr, one line each. On a
    /// terminal, stderr shows the progress (messages, last sequence, journal size). One
    /// `record` at a time writes a journal.
    Record(journal::RecordArgs),
    /// Print a topic's journaled messages, one per line, exactly as `sub` prints messages.
    ///
    /// Reads DIR/TOPIC/*.jrnl from the oldest message kept, from --from SEQ, or from --since
    /// TIME, to the end of what the journal holds now (a `record` may be writing it), then
    /// exits 0. --raw, --hex and --show-kind work as for `sub`. A damaged or torn record is
    /// never printed: each damaged place is one line on stderr (`shmq: damage in the journal
    /// ...`), the messages after it that can be read are printed, and the exit status is 1. No
    /// journal there is an error naming the directory looked in.
    Replay(journal::ReplayArgs),
    /// Show the journals under a directory: files, records, sequences, times and any damage.
    ///
    /// For each topic's journal (each subdirectory holding *.jrnl files) and each of its files:
    /// records, first and last sequence number and time (RFC 3339 UTC, which `replay --since`
    /// accepts), and bytes used of the file's size. Reads every record of every file and checks its checksum. Each damaged place is shown as
    /// `corruption found: FILE at byte N: WHAT`; a record torn at the very end may also be one a
    /// `record` is writing at this moment. Exits 1 if any damage was found, after printing
    /// everything.
    Journal(journal::JournalArgs),
    /// List the dead letters of a queue created with --max-deliveries, or send them back
    /// (--requeue).
    ///
    /// A message of such a queue that was rejected (`recv --exec`), or whose consumer died,
    /// --max-deliveries times is moved to the queue's dead-letter queue (NAME.dlq unless
    /// created with --dlq) with the reason. `dlq NAME` prints one line per letter, oldest
    /// first: its position in the dead-letter queue, its deliveries, when its first delivery
    /// failed (RFC 3339 UTC), the reason and the start of its payload; the letters stay where
    /// they are. The count is said on stderr (`shmq: N dead letters in NAME.dlq`); none is not
    /// an error. --json prints every field, the payload whole. --requeue sends the letters back
    /// into NAME (each with its kind; deliveries counted anew) and takes them off the
    /// dead-letter queue.
    Dlq(dlq::DlqArgs),
}

/// How blocking operations wait for a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WaitArg {
    /// Busy-poll: lowest latency, one core at 100% while waiting.
    Spin,
    /// Poll, giving up the CPU between polls.
    Yield,
    /// Spin briefly, then sleep on a futex: no CPU while idle.
    Block,
}

impl From<WaitArg> for WaitStrategy {
    fn from(w: WaitArg) -> WaitStrategy {
        match w {
            WaitArg::Spin => WaitStrategy::Spin,
            WaitArg::Yield => WaitStrategy::Yield,
            WaitArg::Block => WaitStrategy::Block,
        }
    }
}

impl WaitArg {
    /// The name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WaitArg::Spin => "spin",
            WaitArg::Yield => "yield",
            WaitArg::Block => "block",
        }
    }
}

/// Options for opening or creating a queue, shared by send and recv.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenArgs {
    /// Slots of a new queue, 1 to 2^30, rounded up to a power of two [default: 1024]; checked against an
    /// existing queue.
    #[arg(long, value_name = "SLOTS", value_parser = door::parse_capacity)]
    capacity: Option<u64>,
    /// Largest message in bytes of a new queue, 1 to 64 MiB [default: 256]; checked against an
    /// existing queue.
    #[arg(long, value_name = "BYTES", value_parser = door::parse_max_msg)]
    max_msg: Option<usize>,
    /// Create a single-producer single-consumer queue (default: MPMC); require one when opening.
    #[arg(long)]
    spsc: bool,
    /// Permission bits of a new queue, in octal [default: 0600, the owner only]: 0660 lets the
    /// file's group use it, 0666 everyone. Checked against an existing queue.
    #[arg(long, value_name = "MODE", value_parser = door::parse_mode)]
    mode: Option<u32>,
    /// Dead letters (MPMC queues): deliver each message of a new queue at most N times (1 to
    /// 1000000); a message rejected (`recv --exec`) or whose consumer died N times moves to the
    /// dead-letter queue (see `shmq dlq`). Checked against an existing queue.
    #[arg(long, value_name = "N", conflicts_with = "spsc")]
    max_deliveries: Option<u32>,
    /// With --max-deliveries: name of the new queue's dead-letter queue [default: NAME.dlq].
    /// Checked against an existing queue.
    #[arg(long, value_name = "NAME", requires = "max_deliveries")]
    dlq: Option<String>,
    /// How to wait for space or messages.
    #[arg(long, value_enum, default_value_t = WaitArg::Block)]
    wait: WaitArg,
}

impl OpenArgs {
    /// The queue options these arguments ask for, in the segment directory of `ctx`.
    pub fn options(&self, ctx: &Ctx) -> QueueOptions {
        let mut o = QueueOptions::new().dir(&ctx.dir).wait(self.wait.into());
        if let Some(c) = self.capacity {
            o = o.capacity(c as usize);
        }
        if let Some(m) = self.max_msg {
            o = o.max_msg_size(m);
        }
        if self.spsc {
            o = o.kind(QueueKind::Spsc);
        }
        if let Some(m) = self.mode {
            o = o.mode(m);
        }
        if let Some(n) = self.max_deliveries {
            o = o.max_deliveries(n);
        }
        if let Some(d) = &self.dlq {
            o = o.dead_letter_queue(d);
        }
        o
    }

    /// Opens queue `name`, creating it if needed (after `before_create`, which may refuse);
    /// returns it and what was done. `--mode` is checked against a queue that existed.
    pub fn open(
        &self,
        ctx: &Ctx,
        cmd: &'static str,
        name: &str,
        before_create: impl FnOnce() -> CliResult,
    ) -> CliResult<(shmq::Queue, door::Made)> {
        let o = self.options(ctx);
        let t = door::Target { cmd, name, dir: &ctx.dir, want: door::Want::Queue };
        let (q, made) =
            door::open_or_create(&t, || o.open(name), before_create, || o.create(name), || o.open_or_create(name))?;
        if made == door::Made::Opened {
            door::check_mode(&t, "queue", q.path(), self.mode)?;
            dlq::check_link(&t, &q, self.dlq.as_deref())?;
        }
        Ok((q, made))
    }

    /// Largest message of a queue these arguments create.
    pub fn max_msg_to_create(&self) -> usize {
        self.max_msg.unwrap_or(shmq::queue::DEFAULT_MAX_MSG)
    }
}

/// What every command needs from the global options.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The segment directory.
    pub dir: PathBuf,
    /// Where the directory came from, for messages: "from --dir", "from SHMQ_DIR", "the default".
    pub dir_from: &'static str,
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// Print `shmq: <message>` and exit 1.
    Msg(String),
    /// Stdout was closed by the reader: stop quietly, exit 0.
    BrokenPipe,
    /// The command already printed its errors: exit 1 without another line.
    Reported,
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// An error with this message.
    pub fn msg(m: impl Into<String>) -> CliError {
        CliError::Msg(m.into())
    }
}

impl From<shmq::Error> for CliError {
    /// An error without its command: general advice only (commands that know what they were
    /// working on use [`door::Target::error`]).
    fn from(e: shmq::Error) -> CliError {
        CliError::Msg(door::describe(&e, None))
    }
}

/// Each operation's error, like [`shmq::Error`] (general advice only).
macro_rules! from_operation_errors {
    ($($e:ty),*) => {$(
        impl From<$e> for CliError {
            fn from(e: $e) -> CliError {
                CliError::from(shmq::Error::from(e))
            }
        }
    )*};
}
from_operation_errors!(
    shmq::OpenError,
    shmq::SendError,
    shmq::TrySendError,
    shmq::SendTimeoutError,
    shmq::RecvError,
    shmq::TryRecvError,
    shmq::RecvTimeoutError
);

impl From<std::io::Error> for CliError {
    /// For errors of writing to stdout: a closed pipe ends the command quietly.
    fn from(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Msg(format!("write to stdout: {e}"))
        }
    }
}

/// Buffered, locked stdout. Every command writes through it (never `println!`, which panics on
/// a closed pipe) and flushes when it waits.
pub type Out = std::io::BufWriter<std::io::StdoutLock<'static>>;

/// Runs the command line; returns the exit status.
pub fn main() -> i32 {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to stderr with 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let dir_from = if cli.dir.is_some() {
        "from --dir"
    } else if std::env::var_os("SHMQ_DIR").is_some_and(|d| !d.is_empty()) {
        "from SHMQ_DIR"
    } else {
        "the default"
    };
    let ctx = Ctx { dir: cli.dir.clone().unwrap_or_else(shmq::status::default_dir), dir_from };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = run(cli.command, &ctx, &mut out).and_then(|()| out.flush().map_err(CliError::from));
    match r {
        Ok(()) | Err(CliError::BrokenPipe) => 0,
        Err(CliError::Reported) => 1,
        Err(CliError::Msg(m)) => {
            let _ = out.flush();
            report(&m);
            1
        }
    }
}

fn run(command: Command, ctx: &Ctx, out: &mut Out) -> CliResult {
    // Every command but the hidden workers (started by demo and bench, which checked) looks in
    // the segment directory: it must be there. (`replay` and `journal` read journal files only.)
    if !matches!(command, Command::DemoWorker(_) | Command::BenchWorker(_) | Command::Replay(_) | Command::Journal(_)) {
        door::check_dir(ctx)?;
    }
    match command {
        Command::Demo(a) => demo::demo(ctx, &a, out),
        Command::DemoWorker(a) => demo::worker(ctx, &a, out),
        Command::Bench(a) => bench::bench(ctx, &a, out),
        Command::BenchWorker(a) => bench::worker(ctx, &a, out),
        Command::Send(a) => io::send(ctx, &a),
        Command::Recv(a) => io::recv(ctx, &a, out),
        Command::List(a) => inspect::list(ctx, &a, out),
        Command::Stat(a) => inspect::stat(ctx, &a, out),
        Command::Rm(a) => inspect::rm(ctx, &a),
        Command::Pub(a) => topics::publish(ctx, &a),
        Command::Sub(a) => topics::subscribe(ctx, &a, out),
        Command::Gc(a) => gc::gc(ctx, &a, out),
        Command::Serve(a) => service::serve(ctx, &a),
        Command::Call(a) => service::call(ctx, &a, out),
        Command::Record(a) => journal::record(ctx, &a),
        Command::Replay(a) => journal::replay(&a, out),
        Command::Journal(a) => journal::journals(&a, out),
        Command::Dlq(a) => dlq::dlq(ctx, &a, out),
    }
}

/// Prints `shmq: <message>` on stderr (one line; ignores a closed stderr).
pub fn report(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "shmq: {message}");
}

/// A panic is a bug, but it still prints one line, not a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        report(&format!("internal error: {what}{at}; please report this bug"));
    }));
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
