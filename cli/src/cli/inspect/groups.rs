//! Consumer groups in `shmq stat` (read from the topic, opened for it: the status snapshot has
//! no members) and `shmq rm TOPIC --group NAME` (only a group with no live member).

use std::io::Write;

use serde_json::{json, Value};
use shmq::status::{Kind, Status, SubscriberInfo};
use shmq::topic::GroupInfo;

use super::{indented_rows, indented_table, target, yes_no, RmArgs};
use crate::cli::door::{self, count, describe, Target, Want};
use crate::cli::{report, CliError, CliResult, Ctx, Out};

/// The status of segment `name` and, for a topic, its groups: read one after the other, so read
/// again (a few times) while a group was created or removed in between.
pub(super) fn status_with_groups(ctx: &Ctx, name: &str) -> CliResult<(Status, Result<Vec<GroupInfo>, String>)> {
    let mut tries = 0;
    loop {
        let s = Status::read(&ctx.dir, name).map_err(|e| target(ctx, "stat", name).error(e))?;
        let groups = groups_of(ctx, &s);
        tries += 1;
        let same = groups.as_ref().is_ok_and(|g| {
            let mut entries: Vec<&str> =
                s.subscribers.iter().filter(|e| e.group).filter_map(|e| e.name.as_deref()).collect();
            let mut names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
            entries.sort_unstable();
            names.sort_unstable();
            entries == names
        });
        if same || groups.is_err() || tries == 5 {
            return Ok((s, groups));
        }
    }
}

/// The consumer groups of a topic, with their members, or why they could not be read. The
/// status snapshot has the groups' entries but not their members: the topic is opened (which
/// attaches this process to it for a moment), only when it has a group.
pub(super) fn groups_of(ctx: &Ctx, s: &Status) -> Result<Vec<GroupInfo>, String> {
    if s.kind != Kind::Topic || !s.subscribers.iter().any(|e| e.group) {
        return Ok(Vec::new());
    }
    let t = target(ctx, "stat", &s.name);
    let topic = shmq::TopicOptions::new().dir(&ctx.dir).open(&s.name).map_err(|e| describe(&e.into(), Some(&t)))?;
    Ok(topic.groups())
}

/// The ALIVE cell of a group's entry in the subscriber table: how many live members it has.
pub(super) fn group_alive(sub: &SubscriberInfo, groups: &Result<Vec<GroupInfo>, String>) -> String {
    let Ok(groups) = groups else { return "-".into() };
    let Some(g) = groups.iter().find(|g| Some(&g.name) == sub.name.as_ref()) else { return "-".into() };
    match g.members.iter().filter(|m| m.alive).count() {
        0 if g.lossy => "no member".into(),
        0 => "no member (group: messages wait for it)".into(),
        n => count(n as u64, "live member"),
    }
}

/// The groups part of a topic's `stat`: one row per group, then the members of each.
pub(super) fn groups_text(out: &mut Out, groups: &Result<Vec<GroupInfo>, String>) -> CliResult {
    let groups = match groups {
        Ok(g) if g.is_empty() => {
            writeln!(out, "groups        none")?;
            return Ok(());
        }
        Ok(g) => g,
        Err(e) => {
            writeln!(out, "groups        cannot be read: {e}")?;
            return Ok(());
        }
    };
    writeln!(
        out,
        "groups        position: first message not acknowledged; next: next to hand out; in flight: received, \
         not acknowledged"
    )?;
    let mut rows = vec![["NAME", "MODE", "POSITION", "NEXT", "LAG", "DELIVERED", "REDELIVERED", "LAGGED", "MEMBERS"]
        .map(String::from)
        .to_vec()];
    for g in groups {
        let live = g.members.iter().filter(|m| m.alive).count();
        rows.push(vec![
            g.name.clone(),
            group_mode(g).into(),
            g.position.to_string(),
            g.next.to_string(),
            g.lag.to_string(),
            g.delivered.to_string(),
            g.redelivered.to_string(),
            g.lagged.to_string(),
            format!("{} ({live} alive)", g.members.len()),
        ]);
    }
    indented_table(out, &rows)?;
    for g in groups {
        if g.members.is_empty() {
            writeln!(out, "  members of {}: none", g.name)?;
            continue;
        }
        writeln!(out, "  members of {}", g.name)?;
        let mut rows = vec![["ID", "PID", "ALIVE", "IN_FLIGHT"].map(String::from).to_vec()];
        for m in &g.members {
            rows.push(vec![
                m.id.to_string(),
                if m.pid == 0 { "-".into() } else { m.pid.to_string() },
                yes_no(m.alive).into(),
                m.in_flight.to_string(),
            ]);
        }
        indented_rows(out, &rows, "    ")?;
    }
    Ok(())
}

/// `shmq rm TOPIC... --group NAME...`: only consumer groups (a durable subscriber of the name is
/// left alone), only with no live member.
pub(super) fn rm_groups(ctx: &Ctx, a: &RmArgs) -> CliResult {
    for g in &a.groups {
        door::check_group_name(g)?;
    }
    let mut failed = false;
    for topic in &a.names {
        let t = Target { cmd: "rm --group", name: topic, dir: &ctx.dir, want: Want::Topic };
        let s = match Status::read(&ctx.dir, topic) {
            Ok(s) if s.kind == Kind::Topic => s,
            Ok(s) => {
                failed = true;
                report(&format!(
                    "cannot remove consumer groups of {topic:?}: it is not a topic (kind {}); only topics have \
                     consumer groups",
                    s.kind.name()
                ));
                continue;
            }
            Err(e) => {
                failed = true;
                report(&format!("cannot remove consumer groups of {topic:?}: {}", describe(&e, Some(&t))));
                continue;
            }
        };
        for g in &a.groups {
            let no_group = || format!("it has no consumer group of that name (see `shmq stat {topic}`)");
            let why = match s.subscribers.iter().find(|e| e.name.as_deref() == Some(g.as_str())) {
                None => Some(no_group()),
                Some(e) if !e.group => Some(format!(
                    "it has no consumer group of that name; {g:?} is a durable subscriber (`shmq rm {topic} \
                     --subscriber {g}` removes it)"
                )),
                Some(_) => match shmq::status::remove_subscriber(&ctx.dir, topic, g) {
                    Ok(true) => None,
                    Ok(false) => Some(no_group()),
                    Err(shmq::Error::SubscriberNameTaken { pid, .. }) => Some(live_member(topic, pid)),
                    Err(e) => Some(describe(&e, Some(&t))),
                },
            };
            if let Some(why) = why {
                failed = true;
                report(&format!("cannot remove consumer group {g:?} of topic {topic:?}: {why}"));
            }
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

/// Why a group with a live member stays: `pid` is a member's process (0 if unknown).
pub(super) fn live_member(topic: &str, pid: u32) -> String {
    let who = if pid == 0 { String::new() } else { format!(" (pid {pid})") };
    format!(
        "it has a live member{who}; stop its members first (`shmq stat {topic}` lists them): a group is removed \
         only when no member is left"
    )
}

pub(super) fn group_json(g: &GroupInfo) -> Value {
    json!({
        "name": g.name,
        "mode": group_mode(g),
        "position": g.position,
        "next": g.next,
        "lag": g.lag,
        "delivered": g.delivered,
        "redelivered": g.redelivered,
        "lagged": g.lagged,
        "members": g.members.iter().map(|m| json!({
            "id": m.id,
            "pid": m.pid,
            "alive": m.alive,
            "in_flight": m.in_flight,
        })).collect::<Vec<_>>(),
    })
}

pub(super) fn group_mode(g: &GroupInfo) -> &'static str {
    if g.lossy {
        "lossy"
    } else {
        "reliable"
    }
}
