//! At the door: what is checked before a command creates anything, and what a user is told when
//! something goes wrong.
//!
//! - Options that shape a segment (`--capacity`, `--max-msg`, `--max-subscribers`, `--mode`,
//!   and a service's `--max-request`, `--max-response`, `--max-in-flight`, `--description`)
//!   are checked by clap's value parsers here, before anything runs: a refused option is a
//!   usage error (exit 2) and leaves nothing behind. Subscriber names are checked before the
//!   topic is opened ([`check_subscriber_name`]).
//! - [`check_dir`]: the segment directory must exist before any command looks in it.
//! - [`open_or_create`]: opens a segment, or creates it, and says which it did (readers tell the
//!   user when they created what they meant to read, see `recv` and `sub`).
//! - [`describe`] and [`advice`]: one line for a [`shmq::Error`], with the next step at the
//!   command line. The library's texts are written for programs; the advice for people at a
//!   shell is made here, from the error's fields and the command that met it.

use std::path::Path;

use shmq::{Error, OpenError};

use super::{CliError, CliResult, Ctx};

pub use shmq::limits::{MAX_DESCRIPTION, MAX_MSG, MAX_SUBSCRIBERS, MAX_SUBSCRIBER_NAME};

/// Largest capacity of a segment.
pub const MAX_CAPACITY: u64 = shmq::limits::MAX_CAPACITY as u64;
/// The naming rule of queues and topics, as the user reads it.
pub const NAME_RULE: &str = "use 1 to 200 bytes of [A-Za-z0-9._-], not starting with '.'";

/// `n` followed by `one` or `many`: "1 message", "3 messages".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `n` and the plural of a noun that takes an -s: "1 line", "5 lines".
pub fn count(n: u64, noun: &str) -> String {
    plural(n, noun, &format!("{noun}s"))
}

/// `--capacity`: 1 to 2^30 slots (the library rounds it up to a power of two).
pub fn parse_capacity(s: &str) -> Result<u64, String> {
    let c: u64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=MAX_CAPACITY).contains(&c) {
        return Err(format!("must be from 1 to {MAX_CAPACITY} (2^30) slots; it is rounded up to a power of two"));
    }
    Ok(c)
}

/// `--max-msg`: 1 byte to 64 MiB.
pub fn parse_max_msg(s: &str) -> Result<usize, String> {
    let m: usize = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=MAX_MSG).contains(&m) {
        return Err(format!("must be from 1 to {MAX_MSG} bytes (64 MiB): a queue needs room for a message"));
    }
    Ok(m)
}

/// `--max-request`, `--max-response`: 1 byte to 64 MiB.
pub fn parse_max_payload(s: &str) -> Result<usize, String> {
    let m: usize = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=MAX_MSG).contains(&m) {
        return Err(format!("must be from 1 to {MAX_MSG} bytes (64 MiB)"));
    }
    Ok(m)
}

/// `--max-in-flight`, `call --pipeline`: 1 to 64 calls.
pub fn parse_max_in_flight(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    let max = shmq::service::MAX_IN_FLIGHT;
    if !(1..=max).contains(&n) {
        return Err(format!("must be from 1 to {max} calls"));
    }
    Ok(n)
}

/// `--description`: up to 256 bytes.
pub fn parse_description(s: &str) -> Result<String, String> {
    let max = MAX_DESCRIPTION;
    if s.len() > max {
        return Err(format!("is {}; a description has at most {max}", count(s.len() as u64, "byte")));
    }
    Ok(s.to_string())
}

/// `--max-subscribers`: 1 to 1024.
pub fn parse_max_subscribers(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=MAX_SUBSCRIBERS).contains(&n) {
        return Err(format!("must be from 1 to {MAX_SUBSCRIBERS}"));
    }
    Ok(n)
}

/// Checks a durable subscriber name (`sub --name`, `rm --subscriber`) before anything is
/// opened: 1 to 64 bytes of `[A-Za-z0-9._-]`. (An error of exit status 1, as the library's
/// was, not a usage error: scripts may tell them apart.)
pub fn check_subscriber_name(s: &str) -> CliResult {
    check_table_name(s, "a durable subscriber")
}

/// Checks a consumer group name (`sub --group`, `rm --group`) as [`check_subscriber_name`]
/// does: a group takes an entry of the same table.
pub fn check_group_name(s: &str) -> CliResult {
    check_table_name(s, "a consumer group")
}

fn check_table_name(s: &str, what: &str) -> CliResult {
    let why = if s.is_empty() {
        "it is empty".to_string()
    } else if s.len() > MAX_SUBSCRIBER_NAME {
        format!("it has {}", count(s.len() as u64, "byte"))
    } else if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        "it has a character outside [A-Za-z0-9._-]".to_string()
    } else {
        return Ok(());
    };
    Err(CliError::msg(format!(
        "invalid name {s:?} for {what}: {why}; use 1 to {MAX_SUBSCRIBER_NAME} bytes of [A-Za-z0-9._-]"
    )))
}

/// `--mode`: octal permission bits of a new segment. The owner needs read and write; the group
/// and others get both or neither (a segment is opened read-write: read alone lets nobody in).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let m = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("{s:?} is not an octal mode; use 0600 (owner only), 0660 (owner and group) or 0666"))?;
    if m > 0o777 {
        return Err("only permission bits (at most 0777) can be given".into());
    }
    if m & 0o111 != 0 {
        return Err("execute bits mean nothing on a segment; use 0600, 0660 or 0666".into());
    }
    if m & 0o600 != 0o600 {
        return Err("the owner needs read and write (0600 at least): it could not open its own segment again".into());
    }
    for (who, bits) in [("the group needs", (m >> 3) & 0o6), ("others need", m & 0o6)] {
        if bits != 0 && bits != 0o6 {
            return Err(format!(
                "{who} read and write (6) or nothing: a segment is opened read-write, so read or write alone lets nobody in"
            ));
        }
    }
    Ok(m)
}

/// Fails unless the segment directory exists and is a directory: no command looks into, or
/// creates segments in, a directory that is not there.
pub fn check_dir(ctx: &Ctx) -> CliResult {
    let d = ctx.dir.display();
    let from = ctx.dir_from;
    match std::fs::metadata(&ctx.dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CliError::msg(format!(
            "segment directory {d} ({from}) is not a directory; point --dir or SHMQ_DIR at a directory"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::msg(format!(
            "segment directory {d} ({from}) does not exist; create it (mkdir -p {d}) or point --dir or SHMQ_DIR at an existing directory"
        ))),
        Err(e) => Err(CliError::msg(format!(
            "cannot use segment directory {d} ({from}): {e}; point --dir or SHMQ_DIR at a directory you can use"
        ))),
    }
}

/// What a command expects a name to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// `send`, `recv`.
    Queue,
    /// `pub`, `sub`, `rm --subscriber`.
    Topic,
    /// `call`, `serve`.
    Service,
    /// `stat`, `rm`, `list`.
    Any,
}

/// The command and the segment an error met, for [`advice`].
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The command, as typed: "send", "stat", ...
    pub cmd: &'static str,
    /// The queue or topic name.
    pub name: &'a str,
    /// The segment directory.
    pub dir: &'a Path,
    /// What the command expects the name to be.
    pub want: Want,
}

impl Target<'_> {
    /// The error `e` as a command error: one line, with advice for this command.
    pub fn error(&self, e: impl Into<Error>) -> CliError {
        CliError::Msg(describe(&e.into(), Some(self)))
    }
}

/// One line for `e`: what happened (from the error's fields, without the library's advice for
/// programs), then `; ` and [`advice`] for this command if there is any.
pub fn describe(e: &Error, t: Option<&Target<'_>>) -> String {
    let what = what(e, t);
    match advice(e, t) {
        Some(a) => format!("{what}; {a}"),
        None => what,
    }
}

/// Whether `s` names a kind of segment (an unknown kind number is not one).
fn is_kind(s: &str) -> bool {
    matches!(s, "spsc" | "mpmc" | "topic" | "service")
}

/// "queue", "topic" or "service" for a kind name (or kind names: "spsc or mpmc") as the library
/// writes it.
fn noun_of_kind(kind: &str) -> &'static str {
    match kind {
        "topic" => "topic",
        "service" => "service",
        _ => "queue",
    }
}

/// Whether the error is met by a command that works on a service.
fn for_service(t: Option<&Target<'_>>) -> bool {
    t.is_some_and(|t| t.want == Want::Service)
}

/// The name a service's option has in an `Incompatible` error.
fn service_field(what: &str) -> &str {
    match what {
        "max message size" => "max request size",
        other => other,
    }
}

/// What happened, without advice.
fn what(e: &Error, t: Option<&Target<'_>>) -> String {
    let name = t.map_or("", |t| t.name);
    match e {
        Error::InvalidName { name, reason } => format!("invalid name {name:?}: {reason}"),
        Error::NotFound { name, dir } if for_service(t) => format!("no service named {name:?} in {dir}"),
        Error::NotFound { name, dir } => format!("no queue or topic named {name:?} in {dir}"),
        Error::AlreadyExists { name } => format!("{name:?} already exists"),
        Error::Incompatible { what: "kind", expected, found } if t.is_some() && is_kind(found) => {
            let n = noun_of_kind(found);
            if noun_of_kind(expected) == n {
                format!("incompatible segment: {n} {name:?} is {found}, expected {expected}")
            } else {
                let detail = if found == n { String::new() } else { format!(" ({found})") };
                format!("{name:?} is a {n}{detail}, not a {}", noun_of_kind(expected))
            }
        }
        Error::Incompatible { what, expected, found } if for_service(t) => {
            format!("incompatible service {name:?}: {} is {found}, expected {expected}", service_field(what))
        }
        Error::Incompatible { what, expected, found } => {
            format!("incompatible segment: {what} is {found}, expected {expected}")
        }
        Error::Stale { name } => format!("segment {name:?} was left half-initialised by a creator that died"),
        Error::Corrupted(what) => format!("corrupted segment: {what}"),
        Error::MessageTooLarge { len, max } => {
            format!("a message of {} is over the maximum of {}", count(*len as u64, "byte"), count(*max as u64, "byte"))
        }
        Error::TooManySubscribers { max } => {
            let of = if t.is_some() { format!("topic {name:?}") } else { "the topic".into() };
            if *max == 1 {
                format!("the one subscriber slot of {of} is in use")
            } else {
                format!("all {max} subscriber slots of {of} are in use")
            }
        }
        Error::TooManyGroups { max } => {
            let of = if t.is_some() { format!("topic {name:?}") } else { "the topic".into() };
            let n = plural(*max as u64, "consumer group entry", "consumer group entries");
            match max {
                0 => format!("{of} has no room for consumer groups (it was created with --max-groups 0)"),
                1 => format!("the {n} of {of} is in use"),
                _ => format!("all {n} of {of} are in use"),
            }
        }
        Error::RoleTaken { role, pid } if t.is_some() => {
            format!("the {role} role of SPSC queue {name:?} is held by live process {pid}")
        }
        Error::TooManyParticipants { max } => {
            let of = if t.is_some() { format!("{name:?}") } else { "the segment".into() };
            format!(
                "all {} of {of} are held by live processes",
                plural(*max as u64, "participant slot", "participant slots")
            )
        }
        Error::NoSpace { dir, bytes } => {
            format!("not enough space in {dir} for a segment of {}", count(*bytes, "byte"))
        }
        Error::PermissionDenied { path } if t.is_some_and(|t| t.cmd == "rm") => format!("permission denied on {path}"),
        Error::PermissionDenied { path } => permission_denied(Path::new(path), t),
        Error::Timeout => "timed out".into(),
        e => e.to_string(),
    }
}

/// Whether a permission error on `path` is the directory's: the file is not there (it was
/// being created), so the directory refused it.
fn directory_refused(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_err()
        || path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".shmq-new."))
}

fn permission_denied(path: &Path, t: Option<&Target<'_>>) -> String {
    if directory_refused(path) {
        let dir = t.map(|t| t.dir).or(path.parent()).unwrap_or(Path::new("."));
        return format!("cannot create a segment in {}: permission denied by the directory", dir.display());
    }
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "permission denied on {}: it belongs to uid {} (group {}) with mode {:04o}",
            path.display(),
            m.uid(),
            m.gid(),
            m.mode() & 0o777
        ),
        Err(_) => format!("permission denied on {}", path.display()),
    }
}

/// What to do about `e` at the command line, for the command of `t` (`None`: any command).
pub fn advice(e: &Error, t: Option<&Target<'_>>) -> Option<String> {
    let (cmd, name, want) = match t {
        Some(t) => (t.cmd, t.name, t.want),
        None => ("", "NAME", Want::Any),
    };
    Some(match e {
        Error::InvalidName { reason, .. } if !reason.contains("subscriber") => NAME_RULE.into(),
        Error::NotFound { .. } => match cmd {
            "stat" | "rm" => "see `shmq list` for the names there".into(),
            _ if want == Want::Service => {
                format!("start one with `shmq serve {name} --echo` (or --exec CMD), or check the name with `shmq list`")
            }
            _ => format!("check the name with `shmq list`; `shmq send {name}` or `shmq pub {name}` creates one"),
        },
        Error::AlreadyExists { .. } => format!("see it with `shmq stat {name}`"),
        Error::Incompatible { what: "kind", found, .. } if t.is_some() && is_kind(found) => match (want, found.as_str()) {
            (Want::Queue, "topic") => {
                format!("read it with `shmq sub {name}` and write to it with `shmq pub {name}`")
            }
            (Want::Topic, _) if cmd == "rm --subscriber" => "--subscriber applies to topics only".into(),
            (Want::Queue | Want::Topic, "service") => {
                format!("call it with `shmq call {name}` and serve it with `shmq serve {name} --echo` (or --exec CMD)")
            }
            (Want::Service, kind) => {
                let (read, write) = if kind == "topic" { ("sub", "pub") } else { ("recv", "send") };
                let other = if cmd == "serve" { "; a service needs a name of its own" } else { "" };
                format!("read it with `shmq {read} {name}` and write to it with `shmq {write} {name}`{other}")
            }
            (Want::Topic, _) => format!("read it with `shmq recv {name}` and write to it with `shmq send {name}`"),
            (Want::Queue, _) => "leave out --spsc, which asks for an SPSC queue".into(),
            (Want::Any, _) => return None,
        },
        Error::Incompatible { what, .. } => {
            let flag = match *what {
                "max message size" if want == Want::Service => Some("--max-request"),
                "max response size" if want == Want::Service => Some("--max-response"),
                "service version" if want == Want::Service => Some("--version"),
                "max in flight" if want == Want::Service => Some("--max-in-flight"),
                "capacity" => Some("--capacity"),
                "max deliveries" => Some("--max-deliveries"),
                "max message size" => Some("--max-msg"),
                "max subscribers" => Some("--max-subscribers"),
                _ => None,
            };
            match flag {
                Some(flag) => {
                    let it = if want == Want::Service { "service" } else { "segment" };
                    format!("leave out {flag} to use the {it} as it is (see `shmq stat {name}`)")
                }
                None => format!(
                    "it was made by another version of shmq, or is not a shmq segment; if nothing uses it, \
                     `shmq rm {name}` removes it (and its messages)"
                ),
            }
        }
        Error::Stale { .. } => format!("`shmq gc` or `shmq rm {name}` removes it"),
        Error::Corrupted(_) => format!(
            "a process wrote invalid data into it; `shmq rm {name}` removes it (its messages are lost), then create it again"
        ),
        Error::MessageTooLarge { .. } => "split it, or use a segment created with a larger --max-msg".into(),
        Error::TooManySubscribers { .. } => format!(
            "remove durable subscribers that are away with `shmq rm {name} --subscriber SUB` (see `shmq stat {name}`), \
             or recreate the topic with a larger --max-subscribers (`shmq rm {name}` drops its messages)"
        ),
        Error::TooManyGroups { max: 1.. } => format!(
            "remove groups that are not coming back with `shmq rm {name} --group GROUP` (see `shmq stat {name}`), \
             or recreate the topic with a larger --max-groups (`shmq rm {name}` drops its messages)"
        ),
        Error::TooManyGroups { max: 0 } => format!(
            "recreate the topic with --max-groups N (`shmq rm {name}` drops its messages), or subscribe without \
             --group"
        ),
        Error::RoleTaken { role, .. } => format!(
            "stop that process, or use an MPMC queue (created without --spsc) for several {role}s"
        ),
        Error::TooManyParticipants { .. } => format!("stop some of the processes attached (see `shmq stat {name}`)"),
        Error::NoSpace { .. } => {
            "free space there (`shmq gc`), use a smaller --capacity or --max-msg, or another --dir".into()
        }
        Error::PermissionDenied { .. } if cmd == "rm" => {
            let dir = t.map_or(String::new(), |t| format!(" ({})", t.dir.display()));
            format!(
                "removing a segment takes write permission on its directory{dir}, and read and write on the file; \
                 run as a user who has them"
            )
        }
        Error::PermissionDenied { path } if directory_refused(Path::new(path)) => {
            "choose a directory you can write with --dir or SHMQ_DIR, or ask its owner for write access".into()
        }
        Error::PermissionDenied { .. } => format!(
            "run as its owner, or ask the owner to recreate it with --mode 0660 (shared with the group) or 0666 \
             (`shmq rm {name}` first)"
        ),
        Error::Timeout if cmd.is_empty() => return None,
        Error::Timeout => format!("another process may be creating or removing {name:?}; try again, or see `shmq stat {name}`"),
        _ => return None,
    })
}

/// What [`open_or_create`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Made {
    /// Opened a segment that was there.
    Opened,
    /// Created it: nothing was there.
    Created,
    /// Created it in place of a file a creator that died left half-initialised.
    Replaced,
}

impl Made {
    /// What a reader says on stderr when it made the segment it is going to wait on (a
    /// mistyped name would otherwise wait in silence); `None` if it opened one.
    pub fn notice(self, what: &str, name: &str, dir: &Path) -> Option<String> {
        let why = match self {
            Made::Opened => return None,
            Made::Created => "nothing was there yet",
            Made::Replaced => "in place of a half-initialised file a dead creator left",
        };
        Some(format!("created {what} {name:?} in {} ({why}); waiting for messages", dir.display()))
    }
}

/// Opens a segment with `open`, or creates it with `create` if there is none (after
/// `before_create`, which may refuse); `either` (the library's `open_or_create`) settles the
/// races: a segment created by someone else meanwhile, or a stale file under the name (which it
/// replaces). Returns the segment and what was done.
pub fn open_or_create<T>(
    t: &Target<'_>,
    open: impl Fn() -> Result<T, OpenError>,
    before_create: impl FnOnce() -> CliResult,
    create: impl FnOnce() -> Result<T, OpenError>,
    either: impl Fn() -> Result<T, OpenError>,
) -> CliResult<(T, Made)> {
    match open() {
        Ok(s) => return Ok((s, Made::Opened)),
        Err(OpenError::NotFound { .. }) => {}
        Err(OpenError::Stale { .. }) => {
            before_create()?;
            return either().map(|s| (s, Made::Replaced)).map_err(|e| t.error(e));
        }
        Err(e) => return Err(t.error(e)),
    }
    before_create()?;
    match create() {
        Ok(s) => Ok((s, Made::Created)),
        Err(OpenError::AlreadyExists { .. }) => either().map(|s| (s, Made::Opened)).map_err(|e| t.error(e)),
        Err(e) => Err(t.error(e)),
    }
}

/// With `--mode` given, checks that segment file `path`, which existed already, has that mode:
/// `--mode` is for segments the command creates, and must not pass silently otherwise.
pub fn check_mode(t: &Target<'_>, what: &str, path: &Path, mode: Option<u32>) -> CliResult {
    use std::os::unix::fs::PermissionsExt;
    let Some(want) = mode else { return Ok(()) };
    let have = std::fs::metadata(path)
        .map_err(|e| CliError::msg(format!("cannot read the mode of {}: {e}", path.display())))?
        .permissions()
        .mode()
        & 0o777;
    if have != want {
        return Err(CliError::msg(format!(
            "{what} {:?} exists already with mode {have:04o}, not {want:04o} (--mode applies to new segments); \
             leave out --mode, or change it with `chmod {want:04o} {}`",
            t.name,
            path.display()
        )));
    }
    Ok(())
}
