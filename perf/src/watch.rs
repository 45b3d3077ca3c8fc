//! Watching the other process: never waiting forever on a peer that died or stalled, and, for
//! the sleeping rows, knowing that the peer really sleeps.
//!
//! - [`Patience`]: every wait loop calls [`Patience::spin`] or [`Patience::slept`]; once a wait
//!   takes unusually long (2^20 spins, a second sleep) they check whether it has stalled and
//!   whether the peer still lives. The normal path is an increment and a branch: no clock read,
//!   no system call.
//! - [`wait_until_asleep`]: reads the peer's state in `/proc/PID/stat` until it is `S` (in an
//!   interruptible sleep: for our peers, only `FUTEX_WAIT` in the timed loop).
//! - [`voluntary_switches`], [`own_voluntary_switches`]: how often a process or this thread
//!   went to sleep.
//! - [`asleep_round_trips`]: the requester's loop of the sleeping rows (futex, Block), built on
//!   the three.

use std::cell::Cell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::stats::{RttRep, Sleeps};
use crate::Res;

/// How long a single wait may go without progress before it counts as stalled.
pub const STALL: Duration = Duration::from_secs(60);

/// Stall and peer checks for wait loops: [`spin`](Self::spin) in busy-wait loops,
/// [`slept`](Self::slept) in loops that sleep. Each wait keeps its own round counter (from 0);
/// the checks start once a wait takes unusually long, so they never run on the normal path.
pub struct Patience {
    since: Cell<Instant>,
    peers: Vec<u32>,
}

impl Patience {
    /// Gives up when a wait makes no progress for [`STALL`], or once process `peer` (if any)
    /// has exited.
    pub fn new(peer: Option<u32>) -> Patience {
        Patience::watching(peer.into_iter().collect())
    }

    /// As [`new`](Self::new), giving up once any of the processes `peers` has exited.
    pub fn watching(peers: Vec<u32>) -> Patience {
        Patience { since: Cell::new(Instant::now()), peers }
    }

    /// One round of a busy-wait loop: a spin hint, and the checks every 2^20 rounds.
    #[inline(always)]
    pub fn spin(&self, rounds: &mut u32) -> Res<()> {
        *rounds = rounds.wrapping_add(1);
        if *rounds & 0xF_FFFF == 0 {
            self.check(*rounds >> 20)?;
        }
        std::hint::spin_loop();
        Ok(())
    }

    /// After a sleep in a wait loop: the checks, from the wait's second sleep on (the first is
    /// the normal case: a wake-up, then the condition holds).
    #[inline]
    pub fn slept(&self, sleeps: &mut u32) -> Res<()> {
        *sleeps = sleeps.wrapping_add(1);
        if *sleeps >= 2 {
            self.check(*sleeps - 1)?;
        }
        Ok(())
    }

    /// The `nth` check of a wait: the first starts its clock; each checks the peer.
    #[cold]
    fn check(&self, nth: u32) -> Res<()> {
        let now = Instant::now();
        if nth == 1 {
            self.since.set(now);
        } else if now.duration_since(self.since.get()) > STALL {
            return Err(format!("no progress for {} s: stalled", STALL.as_secs()));
        }
        for &pid in &self.peers {
            if matches!(state(pid), None | Some(b'Z' | b'X')) {
                return Err(format!("the peer process {pid} exited"));
            }
        }
        Ok(())
    }
}

/// The state letter of process `pid` (`R`, `S`, `D`, `Z`, ...), `None` if it is gone.
pub fn state(pid: u32) -> Option<u8> {
    let f = File::open(format!("/proc/{pid}/stat")).ok()?;
    stat_state(&f)
}

/// The state letter from an open `/proc/PID/stat` (read again at offset 0 each time).
fn stat_state(f: &File) -> Option<u8> {
    let mut buf = [0u8; 512];
    let n = f.read_at(&mut buf, 0).ok()?;
    // "pid (comm) S ...": the command may contain ')' and spaces; the state follows the last ')'.
    let close = buf[..n].iter().rposition(|&b| b == b')')?;
    buf.get(close + 2).copied()
}

/// The peer's `/proc/PID/stat`, kept open for [`wait_until_asleep`].
pub struct PeerStat {
    file: File,
    pid: u32,
}

impl PeerStat {
    /// Opens process `pid`'s stat file.
    pub fn open(pid: u32) -> Res<PeerStat> {
        let file = File::open(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        Ok(PeerStat { file, pid })
    }
}

/// Sleeps `gap`, then until the peer is asleep (`S`), checking every 20 µs. Returns how many
/// extra checks it took (0: asleep after the gap).
pub fn wait_until_asleep(stat: &PeerStat, gap: Duration, patience: &Patience) -> Res<u32> {
    std::thread::sleep(gap);
    let (mut extra, mut sleeps) = (0, 0);
    loop {
        match stat_state(&stat.file) {
            Some(b'S') => return Ok(extra),
            Some(b'Z' | b'X') | None => return Err("the peer process exited".into()),
            Some(_) => {}
        }
        extra += 1;
        std::thread::sleep(Duration::from_micros(20));
        patience.slept(&mut sleeps)?;
    }
}

/// Voluntary context switches (times it went to sleep) of process `pid`'s main thread so far.
pub fn voluntary_switches(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:")).and_then(|v| v.trim().parse().ok())
}

/// Voluntary context switches of the calling thread so far (one `getrusage` call).
#[inline]
pub fn own_voluntary_switches() -> u64 {
    // SAFETY: all-zero bytes are a valid rusage (plain integers).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer; RUSAGE_THREAD is supported since Linux 2.6.26.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru.ru_nvcsw as u64
}

/// `warmup + rounds` round trips to a peer that sleeps before each ping: before each, sleeps
/// `gap` and waits until the peer is asleep (not timed); then times `round(i)` (ping `i`, wait
/// for pong `i`, `i` from 0) and counts whether this thread slept in it. The last `rounds` are
/// recorded.
pub fn asleep_round_trips(
    peer: &PeerStat,
    gap: Duration,
    warmup: u64,
    rounds: u64,
    p: &Patience,
    mut round: impl FnMut(u64) -> Res<()>,
) -> Res<RttRep> {
    let mut sleeps = Sleeps::new();
    let mut peer_start = 0;
    for i in 0..warmup + rounds {
        if i == warmup {
            peer_start = voluntary_switches(peer.pid).unwrap_or(0);
        }
        let extra = wait_until_asleep(peer, gap, p)?;
        let before = own_voluntary_switches();
        let t = Instant::now();
        round(i)?;
        let ns = t.elapsed().as_nanos() as u64;
        let slept = own_voluntary_switches() - before;
        if i >= warmup {
            sleeps.record(ns, slept, extra);
        }
    }
    let peer_end = voluntary_switches(peer.pid).unwrap_or(peer_start);
    sleeps.set_responder_sleeps(peer_end.saturating_sub(peer_start));
    Ok(sleeps.finish())
}
