//! `shmq pub` and `shmq sub`: messages between a topic and stdin/stdout.
//!
//! Both open the topic, creating it if needed (`sub` says so on stderr when it creates it, and
//! `pub` says once when the topic has no subscriber). `pub` behaves like `shmq send` (stdin
//! lines, raw frames or generated messages); `sub` like `shmq recv`, with the same
//! `--count`/`--timeout`/`--raw`/`--hex` rules. A
//! durable subscriber (`sub --name`) acknowledges a message only after its line has been
//! written and flushed to stdout, so a restarted `sub --name` continues with the first message
//! not yet printed (a crash between the flush and the acknowledgement prints that one message
//! again: at least once, never lost). "Printed" means accepted by stdout: lines still in a
//! pipe when its reader exits (`shmq sub t --name n | head -1`) are acknowledged but unread;
//! once stdout is closed, `sub` takes no further message and exits 1 (see `print_messages`).
//!
//! A consumer group member (`sub --group NAME`) acknowledges the same way, each message once
//! its line is flushed: each message of the topic goes to one member of the group, and what a
//! member that is killed received but did not print goes to another member (or to the next
//! `sub --group NAME`). With several topics, `--group NAME` joins the group of that name on
//! each of them.

use std::time::{Duration, Instant};

use shmq::{AckMode, Start, SubscriberMode, Topic, TopicOptions};

use super::door::{self, count, Target, Want};
use super::io::{check_size, print_messages, send_counted, OutputArgs, Show};
use super::payload::{check_generated, each_message, Sink, Source};
use super::{report, CliError, CliResult, Ctx, Out, WaitArg};

/// Options for opening or creating a topic, shared by pub and sub.
#[derive(Debug, Clone, clap::Args)]
pub struct TopicOpenArgs {
    /// Slots of a new topic, 1 to 2^30, rounded up to a power of two [default: 1024]; checked against an
    /// existing topic.
    #[arg(long, value_name = "SLOTS", value_parser = door::parse_capacity)]
    capacity: Option<u64>,
    /// Largest message in bytes of a new topic, 1 to 64 MiB [default: 256]; checked against an
    /// existing topic.
    #[arg(long, value_name = "BYTES", value_parser = door::parse_max_msg)]
    max_msg: Option<usize>,
    /// Size of the subscriber table of a new topic, 1 to 1024 [default: 16]; checked against an
    /// existing topic.
    #[arg(long, value_name = "N", value_parser = door::parse_max_subscribers)]
    max_subscribers: Option<u32>,
    /// Consumer groups a new topic can hold at once (`sub --group`), 0 to --max-subscribers
    /// [default: 4, at most --max-subscribers]; each takes a subscriber slot and 8 bytes per
    /// slot of the topic. Not checked against an existing topic.
    #[arg(long, value_name = "N", value_parser = parse_max_groups)]
    max_groups: Option<u32>,
    /// Permission bits of a new topic, in octal [default: 0600, the owner only]: 0660 lets the
    /// file's group use it, 0666 everyone. Checked against an existing topic.
    #[arg(long, value_name = "MODE", value_parser = door::parse_mode)]
    mode: Option<u32>,
    /// How to wait for space or messages.
    #[arg(long, value_enum, default_value_t = WaitArg::Block)]
    wait: WaitArg,
}

impl TopicOpenArgs {
    /// Opens topic `name` in the segment directory of `ctx`, creating it if needed (after
    /// `before_create`, which may refuse); returns it and what was done.
    fn open(
        &self,
        t: &Target<'_>,
        ctx: &Ctx,
        before_create: impl FnOnce() -> CliResult,
    ) -> CliResult<(Topic, door::Made)> {
        let mut o = TopicOptions::new().dir(&ctx.dir).wait(self.wait.into());
        if let Some(c) = self.capacity {
            o = o.capacity(c as usize);
        }
        if let Some(m) = self.max_msg {
            o = o.max_msg_size(m);
        }
        if let Some(n) = self.max_subscribers {
            o = o.max_subscribers(n);
        }
        if let Some(n) = self.max_groups {
            o = o.max_groups(n);
        }
        if let Some(m) = self.mode {
            o = o.mode(m);
        }
        let name = t.name;
        let (topic, made) =
            door::open_or_create(t, || o.open(name), before_create, || o.create(name), || o.open_or_create(name))?;
        if made == door::Made::Opened {
            door::check_mode(t, "topic", topic.path(), self.mode)?;
        }
        Ok((topic, made))
    }
}

/// Arguments of `shmq pub`.
#[derive(Debug, clap::Args)]
pub struct PubArgs {
    /// Topic name.
    topic: String,
    /// Generate N messages instead of reading stdin: message i (from 0) is the decimal number i.
    #[arg(long, value_name = "N", conflicts_with = "raw")]
    count: Option<u64>,
    /// With --count: pad each generated message with '.' to exactly this many bytes.
    #[arg(long, value_name = "BYTES", requires = "count")]
    size: Option<usize>,
    /// Read stdin as raw frames instead of lines: each frame is the payload's length as a u32,
    /// little-endian, then the payload's bytes (what `sub --raw` writes).
    #[arg(long)]
    raw: bool,
    /// Publish at most this many messages per second [default: as fast as subscribers allow].
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Kind tag published with every message (subscribers filter with `sub --kind`).
    #[arg(long, value_name = "K", default_value_t = 0)]
    kind: u32,
    /// Wait at most this long for a slow reliable subscriber to make room, then fail
    /// [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    #[command(flatten)]
    open: TopicOpenArgs,
}

/// Where `sub` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FromArg {
    /// The oldest message still in the topic (up to --capacity messages of history).
    Earliest,
    /// The next message published.
    Latest,
}

/// Arguments of `shmq sub`.
#[derive(Debug, clap::Args)]
pub struct SubArgs {
    /// Topic name; several follow them all in one process (each line then starts with the
    /// topic's name and a tab).
    #[arg(required = true, value_name = "TOPIC")]
    topics: Vec<String>,
    /// Exit 0 after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Where a new subscriber starts [default: latest]. A durable one that returns continues
    /// where it stopped (and says so on stderr if --from is given).
    #[arg(long, value_enum, value_name = "WHERE")]
    from: Option<FromArg>,
    /// Subscribe durably under this name (1 to 64 bytes of [A-Za-z0-9._-]): the place is kept
    /// when this process exits, messages wait for the next `sub --name NAME`, and each one is
    /// acknowledged once printed.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Join consumer group NAME (1 to 64 bytes of [A-Za-z0-9._-]), creating it if needed: each
    /// message goes to one member of the group, and every group gets every message. The group
    /// keeps its place while it has no member; each message is acknowledged once printed, and
    /// one a member received but did not print goes to another member. --from and --lossy
    /// apply when the group is created.
    #[arg(long, value_name = "NAME", conflicts_with = "name")]
    group: Option<String>,
    /// Never slow publishers down; messages missed are reported on stderr
    /// (`shmq: missed N messages`; gaps with no message between them make one line).
    #[arg(long)]
    lossy: bool,
    /// Receive only messages of this kind (repeat for several; not with --group: a member
    /// takes whatever its group hands it).
    #[arg(long = "kind", value_name = "K", conflicts_with = "group")]
    kinds: Vec<u32>,
    /// Longest wait for one message. With --count: exit 1 when it passes; without: exit 0
    /// [default: wait forever].
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Print each message as `<kind><TAB><payload>`.
    #[arg(long, conflicts_with = "raw")]
    show_kind: bool,
    /// Keep waiting when every publisher has left and every message was received (by default
    /// sub then says so and exits: 0 without --count, 1 with a --count not reached). A
    /// publisher that attaches later is waited for.
    #[arg(long)]
    wait_for_publisher: bool,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    open: TopicOpenArgs,
}

/// `--max-groups`: 0 to the largest subscriber table (the topic's own --max-subscribers is
/// checked when it is created).
fn parse_max_groups(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n > door::MAX_SUBSCRIBERS {
        return Err(format!("must be from 0 to {}", door::MAX_SUBSCRIBERS));
    }
    Ok(n)
}

/// A rate in messages per second: finite and above zero.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        Ok(_) => Err("must be a number of messages per second above 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Publishes stdin lines, or generated messages, to a topic.
pub fn publish(ctx: &Ctx, a: &PubArgs) -> CliResult {
    check_generated(a.count, a.size)?;
    let t = Target { cmd: "pub", name: &a.topic, dir: &ctx.dir, want: Want::Topic };
    let max_to_create = a.open.max_msg.unwrap_or(shmq::queue::DEFAULT_MAX_MSG);
    let (topic, _) = a.open.open(&t, ctx, || check_size(a.size, max_to_create, "topic", true))?;
    check_size(a.size, topic.max_msg_size(), "topic", false)?;
    let mut publisher = topic.publisher().map_err(|e| t.error(e))?;
    let timeout = a.timeout.map(Duration::from_millis);
    let started = Instant::now();
    let mut sent: u64 = 0;
    let publish_one = |payload: &[u8]| -> CliResult {
        if sent == 0 && !topic.has_subscribers() {
            report(&format!(
                "topic {:?} has no subscribers; messages are kept only up to its capacity ({}) for subscribers that \
                 start from the earliest (`shmq sub {} --from earliest`)",
                a.topic,
                topic.capacity(),
                a.topic
            ));
        }
        if let Some(rate) = a.rate {
            // Message i goes out no earlier than i / rate seconds after the first.
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        send_counted(&mut publisher, a.kind, payload, timeout, &mut sent, &t, |sent| {
            format!(
                "timed out after {} ms waiting for a reliable subscriber of topic {:?} to make room ({} published); see `shmq stat {}`",
                a.timeout.unwrap_or(0),
                a.topic,
                count(sent, "message"),
                a.topic
            )
        })
    };
    let sink = Sink { what: "topic", max: topic.max_msg_size(), verb: "published" };
    each_message(Source::of(a.count, a.size, a.raw), &sink, publish_one)
}

/// Prints messages from a topic, one per line; from several, on one `WaitSet` (see `follow`),
/// each line starting with its topic's name (`--name` makes each subscriber durable under that
/// name in its topic).
pub fn subscribe(ctx: &Ctx, a: &SubArgs, out: &mut Out) -> CliResult {
    if let Some(n) = &a.name {
        door::check_subscriber_name(n)?;
    }
    if let Some(g) = &a.group {
        door::check_group_name(g)?;
    }
    let names = super::follow::check_names(&a.topics, a.output.raw, "topic", "sub")?;
    let mut handles = Vec::new();
    let mut max = 0;
    for name in &a.topics {
        let t = Target { cmd: "sub", name, dir: &ctx.dir, want: Want::Topic };
        let (sub, m) = join(ctx, a, name, &t)?;
        handles.push((name.clone(), sub));
        max = max.max(m);
    }
    let joined = names.join(", ");
    let t = Target { cmd: "sub", name: &joined, dir: &ctx.dir, want: Want::Topic };
    let what = if names.len() == 1 { format!("topic {joined:?}") } else { format!("topics {joined}") };
    // A group member acknowledges as a durable subscriber does.
    let durable = a.name.is_some() || a.group.is_some();
    let show = Show {
        count: a.count,
        timeout_ms: a.timeout,
        format: a.output.format(a.show_kind),
        what: &what,
        durable,
        target: &t,
        keep_waiting: a.wait_for_publisher,
        sender: "publisher",
    };
    let mut buf = vec![0u8; max];
    if handles.len() == 1 {
        let (_, mut sub) = handles.pop().expect("one topic");
        return print_messages(
            out,
            &mut buf,
            &show,
            &mut sub,
            |sub, timeout| Ok(sub.wait_ready(timeout)?),
            |sub, buf| Ok(sub.try_recv(buf)?),
            |sub| {
                if durable {
                    // Acknowledge only what stdout has taken: a message whose line could not be
                    // written is delivered again to the next `sub --name` (a group's, to another
                    // member or the next `sub --group`). (An anonymous
                    // subscriber's messages count as acknowledged on receipt.)
                    sub.ack();
                }
                Ok(())
            },
            |_, _| Ok(()),
        );
    }
    let mut multi = super::follow::Multi::new(handles, a.wait_for_publisher);
    report(&format!("following {} topics ({joined}), waiting with {}", names.len(), multi.mechanism()));
    print_messages(
        out,
        &mut buf,
        &show,
        &mut multi,
        |m, timeout| m.ready(timeout, |s| !matches!(s.wait_ready(Some(Duration::ZERO)), Err(e) if e.is_disconnected())),
        |m, buf| m.take(buf),
        |m| {
            if let (true, Some(sub)) = (durable, m.current()) {
                sub.ack(); // as for one topic: only what stdout has taken
            }
            Ok(())
        },
        |m, out| std::io::Write::write_fmt(out, format_args!("{}\t", m.current_name())),
    )
}

/// Opens topic `name` and joins it as `a` asks; returns the subscriber and the topic's largest
/// message.
fn join(ctx: &Ctx, a: &SubArgs, name: &str, t: &Target<'_>) -> Result<(shmq::Subscriber, usize), super::CliError> {
    let (topic, made) = a.open.open(t, ctx, || Ok(()))?;
    if let Some(notice) = made.notice("topic", name, &ctx.dir) {
        report(&notice);
    }
    let mut b = topic
        .subscriber()
        .start(match a.from {
            Some(FromArg::Earliest) => Start::Earliest,
            Some(FromArg::Latest) | None => Start::Latest,
        })
        .mode(if a.lossy { SubscriberMode::Lossy } else { SubscriberMode::Reliable })
        .ack(AckMode::Explicit);
    if let Some(n) = &a.name {
        b = b.name(n);
        if topic.subscribers().iter().any(|s| s.group && s.name.as_deref() == Some(n.as_str())) {
            return Err(CliError::msg(format!(
                "topic {name:?} has a consumer group named {n:?}, not a durable subscriber: join it with `shmq sub \
                 {name} --group {n}`, or choose another name"
            )));
        }
        let returning =
            topic.subscribers().into_iter().find(|s| s.name.as_deref() == Some(n.as_str()) && !s.alive && !s.group);
        if let (Some(from), Some(s)) = (a.from, returning) {
            let from = if from == FromArg::Earliest { "earliest" } else { "latest" };
            report(&format!(
                "durable subscriber {n:?} continues where it stopped (message {}), not from the {from}: --from applies \
                 to a new subscriber (`shmq rm {name} --subscriber {n}` forgets this one)",
                s.cursor
            ));
        }
    }
    if let Some(g) = &a.group {
        b = b.group(g);
        joining_group(&topic, a, name, g)?;
    }
    if !a.kinds.is_empty() {
        b = b.kinds(&a.kinds);
    }
    let sub = b.build().map_err(|e| t.error(e))?;
    Ok((sub, topic.max_msg_size()))
}

/// Before `sub --group` joins group `g` of topic `name`: a durable subscriber of that name is an
/// error; an existing group keeps its place and mode, said on stderr when --from or --lossy
/// asks for something else.
fn joining_group(topic: &Topic, a: &SubArgs, name: &str, g: &str) -> CliResult {
    let entry = topic.subscribers().into_iter().find(|s| s.name.as_deref() == Some(g));
    match entry {
        None => return Ok(()),
        Some(s) if !s.group => {
            return Err(CliError::msg(format!(
                "topic {name:?} has a durable subscriber named {g:?}, not a consumer group: choose another group \
                 name, or remove it with `shmq rm {name} --subscriber {g}`"
            )));
        }
        Some(_) => {}
    }
    let Some(info) = topic.groups().into_iter().find(|i| i.name == g) else { return Ok(()) };
    if let Some(from) = a.from {
        let from = if from == FromArg::Earliest { "earliest" } else { "latest" };
        report(&format!(
            "consumer group {g:?} of topic {name:?} exists: joining it at its position (message {}), not from the \
             {from}: --from applies to a new group (`shmq rm {name} --group {g}` forgets it once it has no member)",
            info.position
        ));
    }
    if a.lossy != info.lossy {
        let (is, asked) = if info.lossy { ("lossy", "reliable") } else { ("reliable", "lossy") };
        report(&format!(
            "consumer group {g:?} of topic {name:?} is {is}: joining it as it is, not {asked} (a group's mode is \
             set when it is created)"
        ));
    }
    Ok(())
}
