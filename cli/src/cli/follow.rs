//! `shmq recv Q1 Q2 ...` and `shmq sub T1 T2 ...`: several queues or topics followed by one
//! process, on one [`WaitSet`] (blocked in the kernel while nothing comes). Each line starts with
//! the stream's name and a tab.
//!
//! The receive loop is `io::print_messages`'s, with a [`Multi`] as its receiver: `ready` waits on
//! the set, `take` takes from the ready streams in turn (one message each, round robin), so a busy
//! stream does not starve the others. A stream whose senders have all left is dropped once
//! drained (the loop ends when every one is); with `--wait-for-*` it is parked instead and looked
//! at every 50 ms until a sender comes back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shmq::waitset::{Attach, Key, Token, WaitSet};
use shmq::{Error, Received, Receiver};

/// The names to follow, checked: no name twice, and, for several, no `--raw` (frames carry
/// no name).
pub(super) fn check_names<'a>(
    names: &'a [String],
    raw: bool,
    what: &str,
    cmd: &str,
) -> Result<Vec<&'a str>, super::CliError> {
    if raw && names.len() > 1 {
        return Err(super::CliError::msg(format!(
            "--raw frames carry no {what} name: follow one {what} per `shmq {cmd} --raw`, or leave out --raw (lines then \
             start with the {what}'s name)"
        )));
    }
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        if seen.contains(&n.as_str()) {
            return Err(super::CliError::msg(format!("{what} {n:?} is named twice; name each {what} once")));
        }
        seen.push(n);
    }
    Ok(seen)
}

/// How often parked streams (all senders gone, `--wait-for-*`) are looked at.
const PARK_CHECK: Duration = Duration::from_millis(50);

struct Stream<T> {
    name: String,
    key: Option<Key<T>>,
    /// Senders all gone, kept for `--wait-for-*`.
    parked: Option<T>,
}

/// Several consumers or subscribers, as one receiver of `print_messages`.
pub(super) struct Multi<T> {
    ws: WaitSet,
    streams: Vec<Stream<T>>,
    /// Streams that may have a message, in turn order.
    pending: VecDeque<usize>,
    ready: Vec<Token>,
    /// The stream the last message came from (its name prefixes the line).
    current: usize,
    keep_waiting: bool,
    last_park_check: Instant,
}

impl<T: Attach + Receiver> Multi<T> {
    /// Follows `handles` (name, handle).
    pub fn new(handles: Vec<(String, T)>, keep_waiting: bool) -> Multi<T> {
        let mut ws = WaitSet::new();
        let n = handles.len();
        let streams =
            handles.into_iter().map(|(name, h)| Stream { name, key: Some(ws.add(h)), parked: None }).collect();
        Multi {
            ws,
            streams,
            pending: VecDeque::with_capacity(n),
            ready: Vec::with_capacity(n),
            current: 0,
            keep_waiting,
            last_park_check: Instant::now(),
        }
    }

    /// How the set sleeps: for the line said at start.
    pub fn mechanism(&self) -> &'static str {
        self.ws.mechanism().name()
    }

    /// The name of the stream the last message came from.
    pub fn current_name(&self) -> &str {
        &self.streams[self.current].name
    }

    /// The handle of the stream the last message came from (to acknowledge it).
    pub fn current(&mut self) -> Option<&mut T> {
        let key = self.streams[self.current].key?;
        Some(&mut self.ws[key])
    }

    /// Waits until a stream may have a message (`print_messages`'s `ready`). `is_back`: whether a
    /// parked stream's senders came back.
    pub fn ready(&mut self, timeout: Option<Duration>, is_back: impl Fn(&mut T) -> bool) -> shmq::Result<()> {
        self.unpark(is_back);
        if !self.pending.is_empty() {
            return Ok(());
        }
        let active = self.streams.iter().filter(|s| s.key.is_some()).count();
        if active == 0 {
            if self.streams.iter().all(|s| s.parked.is_none()) {
                return Err(Error::Disconnected);
            }
            // Only parked streams: look again after a while.
            std::thread::sleep(timeout.unwrap_or(PARK_CHECK).min(PARK_CHECK));
            return Err(Error::Timeout);
        }
        let wait = match timeout {
            Some(t) if self.streams.iter().any(|s| s.parked.is_some()) => t.min(PARK_CHECK),
            Some(t) => t,
            None if self.streams.iter().any(|s| s.parked.is_some()) => PARK_CHECK,
            None => Duration::from_secs(3600),
        };
        match self.ws.wait_timeout(&mut self.ready, wait) {
            Ok(()) => {}
            Err(e) if e.is_timeout() => return Err(Error::Timeout),
            Err(e) => return Err(e.into()),
        }
        for t in &self.ready {
            if let Some(i) = self.streams.iter().position(|s| s.key.is_some_and(|k| k == *t)) {
                if !self.pending.contains(&i) {
                    self.pending.push_back(i);
                }
            }
        }
        Ok(())
    }

    /// Takes one message from the next stream in turn (`print_messages`'s `take`): `Empty` if
    /// that stream had nothing after all (the loop then waits again), `Disconnected` once every
    /// stream has ended.
    pub fn take(&mut self, buf: &mut [u8]) -> shmq::Result<Received> {
        let Some(i) = self.pending.pop_front() else { return Err(Error::Empty) };
        let Some(key) = self.streams[i].key else { return Err(Error::Empty) };
        self.current = i;
        match self.ws[key].try_recv(buf) {
            Ok(m) => {
                self.pending.push_back(i); // there may be more: its next turn
                Ok(m)
            }
            Err(e) if e.is_empty() => Err(Error::Empty),
            Err(e) if e.is_disconnected() => {
                let h = self.ws.remove(key);
                self.streams[i].key = None;
                if self.keep_waiting {
                    self.streams[i].parked = Some(h);
                }
                if self.streams.iter().all(|s| s.key.is_none() && s.parked.is_none()) {
                    Err(Error::Disconnected)
                } else {
                    Err(Error::Empty)
                }
            }
            Err(e) => {
                self.pending.push_back(i);
                Err(e.into())
            }
        }
    }

    /// Puts parked streams whose senders came back into the set again (at most every
    /// [`PARK_CHECK`]).
    fn unpark(&mut self, is_back: impl Fn(&mut T) -> bool) {
        if self.last_park_check.elapsed() < PARK_CHECK {
            return;
        }
        self.last_park_check = Instant::now();
        for s in &mut self.streams {
            if let Some(mut h) = s.parked.take() {
                if is_back(&mut h) {
                    s.key = Some(self.ws.add(h));
                } else {
                    s.parked = Some(h);
                }
            }
        }
    }
}
