//! `shmq list`, `shmq stat` and `shmq rm`: look at and remove segments without attaching.
//!
//! Snapshots come from [`shmq::status`]; they take no participant entry and change nothing.
//! Topics show their subscribers (count in `list`, one row each in `stat`) and how many
//! messages were published; `rm TOPIC --subscriber NAME` removes a durable subscriber. Their
//! consumer groups show in `stat` with their members (read from the topic, opened for it: the
//! status snapshot has no members), and `rm TOPIC --group NAME` removes one with no live member.
//! Services show their live servers (count and pids in `list`) and, in `stat`, the counters of
//! each server and the calls in flight of each client.
//! Text output is for people; `--json` output (snake_case fields) is for scripts.

use std::io::Write;

use serde_json::{json, Value};
use shmq::service::{ServiceInfo, ServicePeer};
use shmq::status::{self, Status};
use shmq::status::{Kind, ROLE_CLIENT, ROLE_CONSUMER, ROLE_PRODUCER, ROLE_PUBLISHER, ROLE_SERVER, ROLE_SUBSCRIBER};
use shmq::status::{ParticipantInfo, SubscriberInfo};
use shmq::topic::GroupInfo;

mod groups;

use super::door::{self, count, describe, Target, Want};
use super::{report, CliError, CliResult, Ctx, Out};
use groups::{group_alive, group_json, groups_text, rm_groups, status_with_groups};

/// Arguments of `shmq list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print a JSON array of objects (name, kind, capacity, max_msg, depth, memory_bytes,
    /// attached (live processes), subscribers (topics; null otherwise), service (services:
    /// version, description, max_request, max_response, max_in_flight, and servers, each
    /// {pid, alive}; null otherwise); or name and error for a segment that cannot be read).
    #[arg(long)]
    json: bool,
}

/// Arguments of `shmq stat`.
#[derive(Debug, clap::Args)]
pub struct StatArgs {
    /// Queue, topic or service name.
    name: String,
    /// Print one JSON object (snake_case fields). Queues have `head` and `tail`; SPSC queues add
    /// `producer` and `consumer` (the holder of each role: `{"id", "pid", "alive"}`, or null
    /// when free). Topics have `tail` (= `published`), `subscriber_epoch`, `subscribers` (each
    /// with `kind`: anonymous, durable or group) and `groups` (`name`, `mode`, `position`, `next`,
    /// `lag`, `delivered`, `redelivered`, `lagged` and `members`: `id`, `pid`, `alive`,
    /// `in_flight`; null, with `groups_error`, if the topic could not be opened to read them).
    /// `producer_holder` and `consumer_holder` are the older names of the SPSC holders (null for
    /// MPMC queues and topics, which have no such roles). `service` is null except for services:
    /// `description`, `version`, `max_request`, `max_response`, `max_in_flight`, `servers`
    /// (`id`, `pid`, `alive`, `served`, `dropped`, `handling`) and `clients` (`id`, `pid`,
    /// `alive`, `calls`, `answered`, `failed`, `waiting`, `in_service`).
    #[arg(long)]
    json: bool,
}

/// Arguments of `shmq rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Names of the queues and topics to remove (with --subscriber or --group: the topics).
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Remove this durable subscriber from each topic named, instead of the topics (repeat for
    /// several). Fails if a live process holds it or it does not exist.
    #[arg(long = "subscriber", value_name = "NAME")]
    subscribers: Vec<String>,
    /// Remove this consumer group from each topic named, instead of the topics (repeat for
    /// several): its unacknowledged messages stop holding publishers back. Fails if it has a
    /// live member or does not exist.
    #[arg(long = "group", value_name = "NAME", conflicts_with = "subscribers")]
    groups: Vec<String>,
}

/// Lists every segment of the directory.
pub fn list(ctx: &Ctx, a: &ListArgs, out: &mut Out) -> CliResult {
    let all = status::list(&ctx.dir)?;
    if a.json {
        let rows: Vec<Value> = all
            .iter()
            .map(|(name, s)| match s {
                Ok(s) => json!({
                    "name": name,
                    "kind": s.kind.name(),
                    "capacity": s.capacity,
                    "max_msg": s.max_msg,
                    "depth": s.depth,
                    "memory_bytes": s.memory_bytes,
                    "attached": s.participants.iter().filter(|p| p.alive).count(),
                    "subscribers": if s.kind == Kind::Topic { json!(s.subscribers.len()) } else { Value::Null },
                    "service": s.service.as_ref().map_or(Value::Null, |v| json!({
                        "version": v.version,
                        "description": v.description,
                        "max_request": v.max_request_size,
                        "max_response": v.max_response_size,
                        "max_in_flight": v.max_in_flight,
                        "servers": servers(v).map(|p| json!({ "pid": p.pid, "alive": p.alive })).collect::<Vec<_>>(),
                    })),
                }),
                Err(e) => json!({ "name": name, "error": describe(e, Some(&target(ctx, "list", name))) }),
            })
            .collect();
        writeln!(out, "{}", Value::Array(rows))?;
        return Ok(());
    }
    if all.is_empty() {
        writeln!(out, "no segments in {}", ctx.dir.display())?;
        return Ok(());
    }
    let mut rows =
        vec![["NAME", "KIND", "CAPACITY", "MAX_MSG", "DEPTH", "MEMORY", "ATTACHED", "SERVERS", "SUBSCRIBERS"]
            .map(String::from)
            .to_vec()];
    let mut errors = Vec::new();
    for (name, s) in &all {
        match s {
            Ok(s) => rows.push(vec![
                name.clone(),
                s.kind.name().into(),
                s.capacity.to_string(),
                s.max_msg.to_string(),
                if matches!(s.kind, Kind::Topic | Kind::Service) { "-".into() } else { s.depth.to_string() },
                bytes(s.memory_bytes),
                s.participants.iter().filter(|p| p.alive).count().to_string(),
                s.service.as_ref().map_or("-".into(), |v| v.live_servers().count().to_string()),
                if s.kind == Kind::Topic { s.subscribers.len().to_string() } else { "-".into() },
            ]),
            Err(e) => errors.push((name, e)),
        }
    }
    table(out, &rows)?;
    for v in all.iter().filter_map(|(_, s)| s.as_ref().ok()?.service.as_ref()) {
        let live: Vec<String> = v.live_servers().map(|p| format!("pid {}", p.pid)).collect();
        let live = if live.is_empty() { "none".into() } else { live.join(", ") };
        let description = if v.description.is_empty() { String::new() } else { format!("; {}", v.description) };
        writeln!(
            out,
            "service {}: version {}, requests <= {}, responses <= {}, live servers: {live}{description}",
            v.name,
            v.version,
            count(v.max_request_size as u64, "byte"),
            count(v.max_response_size as u64, "byte"),
        )?;
    }
    for (name, e) in errors {
        writeln!(out, "{name}: error: {}", describe(e, Some(&target(ctx, "list", name))))?;
    }
    Ok(())
}

/// How a `WaitSet` sleeps on this kernel: `futex_waitv` (Linux 5.16+) or `fallback`.
fn waitset_mechanism() -> &'static str {
    if shmq::waitset::futex_waitv_supported() {
        "futex_waitv"
    } else {
        "fallback"
    }
}

/// Shows one segment in detail.
pub fn stat(ctx: &Ctx, a: &StatArgs, out: &mut Out) -> CliResult {
    let (s, groups) = status_with_groups(ctx, &a.name)?;
    if a.json {
        writeln!(out, "{}", status_json(&s, &groups))?;
        return Ok(());
    }
    let c = &s.counters;
    let age = super::now_unix_ns().saturating_sub(s.created_unix_ns) as f64 / 1e9;
    writeln!(out, "name          {}", s.name)?;
    writeln!(out, "path          {}", s.path)?;
    writeln!(out, "kind          {}", s.kind.name())?;
    writeln!(out, "capacity      {} slots", s.capacity)?;
    let layout = if s.split_slots { ", header and payload in separate arrays" } else { "" };
    writeln!(
        out,
        "max_msg       {} (slot stride {}{layout})",
        count(s.max_msg.into(), "byte"),
        count(s.slot_stride, "byte")
    )?;
    writeln!(out, "memory        {} ({} bytes)", bytes(s.memory_bytes), s.memory_bytes)?;
    writeln!(out, "created       {} ago by pid {}", duration(age), s.creator_pid)?;
    if s.kind == Kind::Topic {
        writeln!(out, "published     {}", c.tail)?;
    } else if s.kind == Kind::Service {
        // A service's slots are call slots: its ring indices count nothing a user waits for.
    } else {
        writeln!(out, "depth         {}", s.depth)?;
        writeln!(out, "head / tail   {} / {}", c.head, c.tail)?;
    }
    if s.kind == Kind::Spsc {
        writeln!(out, "producer      {}", holder(s.producer_holder))?;
        writeln!(out, "consumer      {}", holder(s.consumer_holder))?;
    }
    if s.max_deliveries > 0 {
        let dlq = s.dead_letter_link.as_deref().unwrap_or("?");
        writeln!(
            out,
            "dead letters  after {}, to {dlq} (shmq dlq {})",
            door::plural(s.max_deliveries.into(), "delivery", "deliveries"),
            s.name
        )?;
    } else if s.dead_letter_queue {
        let origin = s.dead_letter_link.as_deref().unwrap_or("?");
        writeln!(out, "dead letters  this is the dead-letter queue of {origin} (shmq dlq {origin})")?;
    }
    writeln!(out, "counters")?;
    writeln!(out, "  aborted         {:>12}   loans dropped without commit", c.aborted)?;
    writeln!(out, "  abandoned       {:>12}   slots of producers that died mid-write", c.abandoned)?;
    writeln!(out, "  lost_by_crash   {:>12}   messages lost with a consumer that died", c.lost_by_crash)?;
    writeln!(out, "  full_events     {:>12}   times a producer found the queue full", c.full_events)?;
    if s.kind == Kind::Mpmc {
        writeln!(out, "  rejected        {:>12}   deliveries rejected by their consumer", c.rejected)?;
        writeln!(out, "  retry_pending   {:>12}   rejected messages waiting to be delivered again", c.retry_pending)?;
    }
    if s.max_deliveries > 0 {
        writeln!(
            out,
            "  redelivered     {:>12}   messages delivered again after their consumer died",
            c.redelivered_after_crash
        )?;
        writeln!(out, "  dead_lettered   {:>12}   messages moved to the dead-letter queue", c.dead_lettered)?;
    }
    writeln!(out, "  blocked         {:>12}   time producers waited for space", duration(c.blocked_ns as f64 / 1e9))?;
    writeln!(
        out,
        "  sleepers        {:>12}   sleeping for data / for space",
        format!("{} / {}", c.sleepers.0, c.sleepers.1)
    )?;
    writeln!(out, "waitset       {} (how a WaitSet on this host sleeps on many streams)", waitset_mechanism())?;
    if s.participants.is_empty() {
        writeln!(out, "participants  none")?;
    } else {
        writeln!(out, "participants")?;
        let mut rows = vec![["ID", "PID", "ROLES", "ALIVE"].map(String::from).to_vec()];
        for p in &s.participants {
            let roles = roles(p.roles);
            rows.push(vec![
                p.id.to_string(),
                p.pid.to_string(),
                if roles.is_empty() { "-".into() } else { roles.join(",") },
                if p.busy { "attaching".into() } else { yes_no(p.alive).into() },
            ]);
        }
        indented_table(out, &rows)?;
    }
    if s.kind == Kind::Topic {
        if s.subscribers.is_empty() {
            writeln!(out, "subscribers   none")?;
        } else {
            writeln!(out, "subscribers   cursor: next message to read (durable, group: first not acknowledged)")?;
            let mut rows = vec![["NAME", "KIND", "MODE", "CURSOR", "LAG", "DELIVERED", "LAGGED", "PID", "ALIVE"]
                .map(String::from)
                .to_vec()];
            for sub in &s.subscribers {
                rows.push(vec![
                    sub.name.clone().unwrap_or_else(|| "-".into()),
                    sub_kind(sub).into(),
                    mode(sub).into(),
                    sub.cursor.to_string(),
                    sub.lag.to_string(),
                    sub.delivered.to_string(),
                    sub.lagged.to_string(),
                    if sub.pid == 0 { "-".into() } else { sub.pid.to_string() },
                    if sub.group {
                        group_alive(sub, &groups)
                    } else if sub.alive {
                        "yes".into()
                    } else if sub.name.is_some() {
                        "no (durable: messages wait for it)".into()
                    } else {
                        "no".into()
                    },
                ]);
            }
            indented_table(out, &rows)?;
        }
        groups_text(out, &groups)?;
    }
    if let Some(v) = &s.service {
        service_text(out, v)?;
    }
    Ok(())
}

/// The service part of `stat`: what it is, its servers and its clients.
fn service_text(out: &mut Out, v: &ServiceInfo) -> CliResult {
    let description = if v.description.is_empty() { "(none)" } else { v.description.as_str() };
    writeln!(out, "description   {description}")?;
    writeln!(out, "version       {}", v.version)?;
    writeln!(out, "max_request   {}", count(v.max_request_size as u64, "byte"))?;
    writeln!(out, "max_response  {}", count(v.max_response_size as u64, "byte"))?;
    writeln!(out, "max_in_flight {} per process", count(v.max_in_flight as u64, "call"))?;
    let servers: Vec<&ServicePeer> = servers(v).collect();
    if servers.is_empty() {
        writeln!(out, "servers       none (start one with `shmq serve {} --echo` or --exec CMD)", v.name)?;
    } else {
        writeln!(out, "servers       served: answered; dropped: without an answer; handling: now")?;
        let mut rows = vec![["PID", "ALIVE", "SERVED", "DROPPED", "HANDLING"].map(String::from).to_vec()];
        for p in servers {
            let n = [p.served, p.dropped, p.handling].map(|n| n.to_string());
            rows.push([vec![p.pid.to_string(), yes_no(p.alive).into()], n.to_vec()].concat());
        }
        indented_table(out, &rows)?;
    }
    let clients: Vec<&ServicePeer> = clients(v).collect();
    if clients.is_empty() {
        writeln!(out, "clients       none")?;
    } else {
        writeln!(out, "clients       in flight: waiting for a server, in service (a server handles it)")?;
        let mut rows =
            vec![["PID", "ALIVE", "CALLS", "ANSWERED", "FAILED", "WAITING", "IN_SERVICE"].map(String::from).to_vec()];
        for p in clients {
            let n = [p.calls, p.answered, p.failed, p.waiting, p.in_service].map(|n| n.to_string());
            rows.push([vec![p.pid.to_string(), yes_no(p.alive).into()], n.to_vec()].concat());
        }
        indented_table(out, &rows)?;
    }
    Ok(())
}

/// The servers of a service, live or dead.
fn servers(v: &ServiceInfo) -> impl Iterator<Item = &ServicePeer> {
    v.peers.iter().filter(|p| p.server)
}

/// Its clients: processes attached as clients, and any other with calls in flight.
fn clients(v: &ServiceInfo) -> impl Iterator<Item = &ServicePeer> {
    v.peers.iter().filter(|p| p.client || !p.server)
}

fn service_json(v: &ServiceInfo) -> Value {
    json!({
        "description": v.description,
        "version": v.version,
        "max_request": v.max_request_size,
        "max_response": v.max_response_size,
        "max_in_flight": v.max_in_flight,
        "servers": servers(v).map(|p| json!({
            "id": p.id,
            "pid": p.pid,
            "alive": p.alive,
            "served": p.served,
            "dropped": p.dropped,
            "handling": p.handling,
        })).collect::<Vec<_>>(),
        "clients": clients(v).map(|p| json!({
            "id": p.id,
            "pid": p.pid,
            "alive": p.alive,
            "calls": p.calls,
            "answered": p.answered,
            "failed": p.failed,
            "waiting": p.waiting,
            "in_service": p.in_service,
        })).collect::<Vec<_>>(),
    })
}

/// Removes every named segment (or, with `--subscriber`, those durable subscribers of every
/// named topic); reports each failure and goes on.
pub fn rm(ctx: &Ctx, a: &RmArgs) -> CliResult {
    if !a.subscribers.is_empty() {
        return rm_subscribers(ctx, a);
    }
    if !a.groups.is_empty() {
        return rm_groups(ctx, a);
    }
    let mut failed = false;
    for name in &a.names {
        match shmq::status::remove(&ctx.dir, name) {
            Ok(true) => {}
            Ok(false) => {
                failed = true;
                report(&format!(
                    "cannot remove {name:?}: no queue or topic of that name in {}; see `shmq list` for the names there",
                    ctx.dir.display()
                ));
            }
            Err(e) => {
                failed = true;
                report(&format!("cannot remove {name:?}: {}", describe(&e, Some(&target(ctx, "rm", name)))));
            }
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

/// `shmq rm TOPIC... --subscriber NAME...`.
fn rm_subscribers(ctx: &Ctx, a: &RmArgs) -> CliResult {
    for sub in &a.subscribers {
        door::check_subscriber_name(sub)?;
    }
    let mut failed = false;
    for topic in &a.names {
        for sub in &a.subscribers {
            match shmq::status::remove_subscriber(&ctx.dir, topic, sub) {
                Ok(true) => {}
                Ok(false) => {
                    failed = true;
                    report(&format!(
                        "cannot remove subscriber {sub:?} of topic {topic:?}: it has no durable subscriber of that name (see `shmq stat {topic}`)"
                    ));
                }
                Err(e) => {
                    failed = true;
                    let t = Target { cmd: "rm --subscriber", name: topic, dir: &ctx.dir, want: Want::Topic };
                    report(&format!("cannot remove subscriber {sub:?} of topic {topic:?}: {}", describe(&e, Some(&t))));
                }
            }
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

/// The command and segment of an error, for its advice.
fn target<'a>(ctx: &'a Ctx, cmd: &'static str, name: &'a str) -> Target<'a> {
    Target { cmd, name, dir: &ctx.dir, want: Want::Any }
}

/// `shmq stat --json`.
fn status_json(s: &Status, groups: &Result<Vec<GroupInfo>, String>) -> Value {
    let c = &s.counters;
    let holder = |h: Option<(u16, u32, bool)>| match h {
        Some((id, pid, alive)) => json!({ "id": id, "pid": pid, "alive": alive }),
        None => Value::Null,
    };
    let mut v = json!({
        "name": s.name,
        "path": s.path,
        "kind": s.kind.name(),
        "capacity": s.capacity,
        "max_msg": s.max_msg,
        "slot_stride": s.slot_stride,
        "split_slots": s.split_slots,
        "memory_bytes": s.memory_bytes,
        "depth": s.depth,
        "head": c.head,
        "tail": c.tail,
        "creator_pid": s.creator_pid,
        "created_unix_ns": s.created_unix_ns,
        "participants": s.participants.iter().map(participant_json).collect::<Vec<_>>(),
        "producer_holder": holder(s.producer_holder),
        "consumer_holder": holder(s.consumer_holder),
        "counters": {
            "aborted": c.aborted,
            "abandoned": c.abandoned,
            "lost_by_crash": c.lost_by_crash,
            "full_events": c.full_events,
            "blocked_ns": c.blocked_ns,
            "rejected": c.rejected,
            "retry_pending": c.retry_pending,
            "redelivered_after_crash": c.redelivered_after_crash,
            "dead_lettered": c.dead_lettered,
            "sleepers": { "data": c.sleepers.0, "space": c.sleepers.1 },
        },
        "waitset_mechanism": waitset_mechanism(),
        "max_deliveries": s.max_deliveries,
        "dead_letter_queue": s.dead_letter_queue,
        "dead_letter_link": s.dead_letter_link,
        "service": s.service.as_ref().map_or(Value::Null, service_json),
    });
    match s.kind {
        Kind::Topic => {
            // A topic's ring has no read index: the word queues use for it holds the
            // subscriber epoch (bumped on every join and leave).
            let fields = v.as_object_mut().expect("an object");
            fields.remove("head");
            fields.insert("subscriber_epoch".into(), json!(c.head));
            v["published"] = json!(c.tail);
            v["subscribers"] = s.subscribers.iter().map(subscriber_json).collect();
            match groups {
                Ok(g) => v["groups"] = g.iter().map(group_json).collect(),
                Err(e) => {
                    v["groups"] = Value::Null;
                    v["groups_error"] = json!(e);
                }
            }
        }
        Kind::Spsc => {
            v["producer"] = holder(s.producer_holder);
            v["consumer"] = holder(s.consumer_holder);
        }
        _ => {} // MPMC: any number of producers and consumers, no role holders
    }
    v
}

fn subscriber_json(s: &SubscriberInfo) -> Value {
    json!({
        "index": s.index,
        "name": s.name,
        "kind": sub_kind(s),
        "group": s.group,
        "mode": mode(s),
        "cursor": s.cursor,
        "lag": s.lag,
        "alive": s.alive,
        "delivered": s.delivered,
        "lagged": s.lagged,
        "pid": s.pid,
        "last_activity_ns": s.last_activity_ns,
    })
}

/// What an entry of the subscriber table is: a consumer group, a durable or an anonymous
/// subscriber.
fn sub_kind(s: &SubscriberInfo) -> &'static str {
    if s.group {
        "group"
    } else if s.name.is_some() {
        "durable"
    } else {
        "anonymous"
    }
}

fn mode(s: &SubscriberInfo) -> &'static str {
    if s.lossy {
        "lossy"
    } else {
        "reliable"
    }
}

fn participant_json(p: &ParticipantInfo) -> Value {
    json!({
        "id": p.id,
        "pid": p.pid,
        "roles": roles(p.roles),
        "alive": p.alive,
        "busy": p.busy,
        "last_activity_ns": p.last_activity_ns,
    })
}

/// Role bits as names.
fn roles(bits: u32) -> Vec<&'static str> {
    [
        (ROLE_PRODUCER, "producer"),
        (ROLE_CONSUMER, "consumer"),
        (ROLE_PUBLISHER, "publisher"),
        (ROLE_SUBSCRIBER, "subscriber"),
        (ROLE_SERVER, "server"),
        (ROLE_CLIENT, "client"),
    ]
    .into_iter()
    .filter(|&(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

fn holder(h: Option<(u16, u32, bool)>) -> String {
    match h {
        None => "free".into(),
        Some((id, pid, true)) => format!("participant {id}, pid {pid}, alive"),
        Some((id, pid, false)) => format!("participant {id}, pid {pid}, dead (the role will be taken over)"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// [`table`], indented by two spaces.
fn indented_table(out: &mut Out, rows: &[Vec<String>]) -> CliResult {
    let mut indented = Vec::new();
    indented_rows(&mut indented, rows, "  ").expect("writing to a Vec cannot fail");
    out.write_all(&indented)?;
    Ok(())
}

/// [`table`], each line after `indent`.
fn indented_rows(out: &mut impl Write, rows: &[Vec<String>], indent: &str) -> std::io::Result<()> {
    let mut plain = Vec::new();
    table(&mut plain, rows)?;
    for line in String::from_utf8_lossy(&plain).lines() {
        writeln!(out, "{indent}{line}")?;
    }
    Ok(())
}

/// Left-aligned columns, two spaces apart.
fn table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Bytes in binary units: `336.0 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds as a short human duration.
fn duration(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{:.0} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.1} ms", secs * 1e3)
    } else if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}
