//! What is measured: the table's rows, the measurements ([`Unit`]s) each row holds, and one
//! repetition of a measurement, on both sides.
//!
//! The parent is always the side that is timed: the requester of a round trip, the receiver
//! of a throughput run (which also checks every message). The peer answers or sends.

use std::time::Duration;

use crate::peer::{Handshake, Peer, PeerArgs};
use crate::shm::{Shared, ZeroValid};
use crate::stats::{new_hist, RttRep, TputRep};
use crate::watch::{Patience, PeerStat};
use crate::{bare_ring, floor, futex, shmq_rows, Res};

/// One measurement: a statistic of the table, measured `--reps` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    FloorRtt,
    SpscRtt8,
    SpscTput8,
    SpscRtt64,
    SpscTput64,
    TopicRtt8,
    TopicRtt64,
    TopicTput64,
    MpmcTput64,
    BatchTput64,
    BareTput64,
    FutexRtt,
    BlockRtt8,
    WaitRtt1,
    WaitRtt8,
    WaitRtt64,
    CallRtt8,
    CallRtt64,
    GroupTput1,
    GroupTput2,
    GroupTput4,
}

impl Unit {
    /// Every measurement, in table order.
    pub const ALL: [Unit; 21] = [
        Unit::FloorRtt,
        Unit::SpscRtt8,
        Unit::SpscTput8,
        Unit::SpscRtt64,
        Unit::SpscTput64,
        Unit::TopicRtt8,
        Unit::TopicRtt64,
        Unit::TopicTput64,
        Unit::MpmcTput64,
        Unit::BatchTput64,
        Unit::BareTput64,
        Unit::FutexRtt,
        Unit::BlockRtt8,
        Unit::WaitRtt1,
        Unit::WaitRtt8,
        Unit::WaitRtt64,
        Unit::CallRtt8,
        Unit::CallRtt64,
        Unit::GroupTput1,
        Unit::GroupTput2,
        Unit::GroupTput4,
    ];

    /// The name in `--json` and on the peer's command line.
    pub fn name(self) -> &'static str {
        match self {
            Unit::FloorRtt => "floor_rtt",
            Unit::SpscRtt8 => "spsc_rtt_8",
            Unit::SpscTput8 => "spsc_tput_8",
            Unit::SpscRtt64 => "spsc_rtt_64",
            Unit::SpscTput64 => "spsc_tput_64",
            Unit::TopicRtt8 => "topic_rtt_8",
            Unit::TopicRtt64 => "topic_rtt_64",
            Unit::TopicTput64 => "topic_tput_64",
            Unit::MpmcTput64 => "mpmc_tput_64",
            Unit::BatchTput64 => "spsc_batch_tput_64",
            Unit::BareTput64 => "bare_ring_tput_64",
            Unit::FutexRtt => "futex_rtt",
            Unit::BlockRtt8 => "block_rtt_8",
            Unit::WaitRtt1 => "waitset_rtt_1",
            Unit::WaitRtt8 => "waitset_rtt_8",
            Unit::WaitRtt64 => "waitset_rtt_64",
            Unit::CallRtt8 => "call_rtt_8",
            Unit::CallRtt64 => "call_rtt_64",
            Unit::GroupTput1 => "group1_tput_64",
            Unit::GroupTput2 => "group2_tput_64",
            Unit::GroupTput4 => "group4_tput_64",
        }
    }

    /// The measurement called `name`.
    pub fn parse(name: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.name() == name)
    }

    /// Payload bytes (the floor and the futex carry their sequence number in their word).
    pub fn size(self) -> usize {
        match self {
            Unit::FutexRtt => 4,
            Unit::FloorRtt | Unit::SpscRtt8 | Unit::SpscTput8 | Unit::TopicRtt8 | Unit::BlockRtt8 => 8,
            Unit::WaitRtt1 | Unit::WaitRtt8 | Unit::WaitRtt64 | Unit::CallRtt8 => 8,
            _ => 64,
        }
    }

    /// A round trip (else a one-way throughput).
    pub fn is_rtt(self) -> bool {
        matches!(
            self,
            Unit::FloorRtt
                | Unit::SpscRtt8
                | Unit::SpscRtt64
                | Unit::TopicRtt8
                | Unit::TopicRtt64
                | Unit::FutexRtt
                | Unit::BlockRtt8
                | Unit::WaitRtt1
                | Unit::WaitRtt8
                | Unit::WaitRtt64
                | Unit::CallRtt8
                | Unit::CallRtt64
        )
    }

    /// For a WaitSet round trip: the number of streams the peer waits on.
    pub fn streams(self) -> Option<usize> {
        match self {
            Unit::WaitRtt1 => Some(1),
            Unit::WaitRtt8 => Some(8),
            Unit::WaitRtt64 => Some(64),
            _ => None,
        }
    }

    /// For a consumer group's throughput: the number of members (one process each).
    pub fn members(self) -> Option<usize> {
        match self {
            Unit::GroupTput1 => Some(1),
            Unit::GroupTput2 => Some(2),
            Unit::GroupTput4 => Some(4),
            _ => None,
        }
    }

    /// A round trip to a sleeping peer.
    pub fn sleeps(self) -> bool {
        matches!(self, Unit::FutexRtt | Unit::BlockRtt8 | Unit::WaitRtt1 | Unit::WaitRtt8 | Unit::WaitRtt64)
    }

    /// The row it belongs to.
    pub fn row(self) -> RowId {
        RowId::all().find(|r| r.units().contains(&self)).expect("every unit has a row")
    }
}

/// A row of the table (the values of `--only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RowId {
    Floor,
    Spsc8,
    Spsc64,
    Topic,
    Mpmc,
    Batch,
    Bare,
    Futex,
    Block,
    Waitset,
    Call,
    Group,
}

impl RowId {
    /// The rows of the default table, in table order (the rows; `waitset`, `call` and
    /// `group` run only when asked for with `--only`).
    pub const DEFAULT: [RowId; 9] = [
        RowId::Floor,
        RowId::Spsc8,
        RowId::Spsc64,
        RowId::Topic,
        RowId::Mpmc,
        RowId::Batch,
        RowId::Bare,
        RowId::Futex,
        RowId::Block,
    ];

    /// Every row, in table order: the default ones, then those run only when asked for.
    pub fn all() -> impl Iterator<Item = RowId> {
        RowId::DEFAULT.into_iter().chain([RowId::Waitset, RowId::Call, RowId::Group])
    }

    /// The name in `--only` and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            RowId::Floor => "floor",
            RowId::Spsc8 => "spsc8",
            RowId::Spsc64 => "spsc64",
            RowId::Topic => "topic",
            RowId::Mpmc => "mpmc",
            RowId::Batch => "batch",
            RowId::Bare => "bare",
            RowId::Futex => "futex",
            RowId::Block => "block",
            RowId::Waitset => "waitset",
            RowId::Call => "call",
            RowId::Group => "group",
        }
    }

    /// What the table calls it.
    pub fn label(self) -> &'static str {
        match self {
            RowId::Floor => "floor: two atomics on two 128-byte lines",
            RowId::Spsc8 => "shmq SPSC, 8 B",
            RowId::Spsc64 => "shmq SPSC, 64 B",
            RowId::Topic => "shmq topic, 1 reliable subscriber, 8 B / 64 B",
            RowId::Mpmc => "shmq MPMC 1P1C, 64 B",
            RowId::Batch => "shmq SPSC 64 B, batches of 64",
            RowId::Bare => "a bare shared-memory SPSC ring, 64 B, cached indices",
            RowId::Futex => "futex ping-pong on shared memory (FUTEX_WAIT/FUTEX_WAKE)",
            RowId::Block => "shmq SPSC 8 B, WaitStrategy::Block, peer asleep",
            RowId::Waitset => "shmq WaitSet over 1 / 8 / 64 SPSC queues, 8 B, peer asleep",
            RowId::Call => "shmq request-response: Client::call, 8 B / 64 B",
            RowId::Group => "shmq topic, consumer group of 1 / 2 / 4 members, 64 B",
        }
    }

    /// Its measurements.
    pub fn units(self) -> &'static [Unit] {
        match self {
            RowId::Floor => &[Unit::FloorRtt],
            RowId::Spsc8 => &[Unit::SpscRtt8, Unit::SpscTput8],
            RowId::Spsc64 => &[Unit::SpscRtt64, Unit::SpscTput64],
            RowId::Topic => &[Unit::TopicRtt8, Unit::TopicRtt64, Unit::TopicTput64],
            RowId::Mpmc => &[Unit::MpmcTput64],
            RowId::Batch => &[Unit::BatchTput64],
            RowId::Bare => &[Unit::BareTput64],
            RowId::Futex => &[Unit::FutexRtt],
            RowId::Block => &[Unit::BlockRtt8],
            RowId::Waitset => &[Unit::WaitRtt1, Unit::WaitRtt8, Unit::WaitRtt64],
            RowId::Call => &[Unit::CallRtt8, Unit::CallRtt64],
            RowId::Group => &[Unit::GroupTput1, Unit::GroupTput2, Unit::GroupTput4],
        }
    }
}

/// How much to measure, and where.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Messages per throughput repetition.
    pub count: u64,
    /// Timed round trips per spinning round-trip repetition.
    pub rounds: u64,
    /// Timed round trips per sleeping round-trip repetition (futex, Block).
    pub sleep_rounds: u64,
    /// The requester's sleep before each ping of a sleeping row (not timed).
    pub gap: Duration,
    /// `[parent, peer]` CPUs, if pinned.
    pub cpus: Option<[usize; 2]>,
    /// If pinned: the CPUs of a consumer group's members, every allowed CPU but the parent's
    /// (member `j` on `member_cpus[j % len]`; on 2 CPUs they all share the peer's).
    pub member_cpus: Vec<usize>,
}

impl Plan {
    /// Timed round trips of `unit` per repetition.
    pub fn rounds(&self, unit: Unit) -> u64 {
        if unit.sleeps() {
            self.sleep_rounds
        } else {
            self.rounds
        }
    }

    /// Untimed round trips before them: a tenth of the spinning ones (at least 100), 20 for
    /// the sleeping ones; none for throughput (timed from the first message received).
    pub fn warmup(&self, unit: Unit) -> u64 {
        match (unit.is_rtt(), unit.sleeps()) {
            (false, _) => 0,
            (true, true) => 20,
            (true, false) => (self.rounds / 10).max(100),
        }
    }

    /// The peer's arguments for a repetition of `unit`.
    pub fn peer_args(&self, unit: Unit, n: u64, fd: Option<i32>, name: Vec<String>) -> PeerArgs {
        PeerArgs {
            unit: unit.name().into(),
            n,
            cpu: self.cpus.map(|c| c[1]),
            parent: std::process::id(),
            fd,
            name,
            member: None,
        }
    }

    /// The CPU of a consumer group's member `j`, if pinned.
    pub fn member_cpu(&self, j: usize) -> Option<usize> {
        self.cpus?;
        self.member_cpus.get(j % self.member_cpus.len().max(1)).copied()
    }
}

/// What one repetition measured.
#[derive(Clone, Copy, Debug)]
pub enum Rep {
    Rtt(RttRep),
    Tput(TputRep),
}

/// One repetition of `unit` (the parent's side; it starts the peer).
pub fn run(plan: &Plan, unit: Unit, rep: usize) -> Res<Rep> {
    let (warm, rounds) = (plan.warmup(unit), plan.rounds(unit));
    match unit {
        Unit::FloorRtt => with_shared::<floor::Lines>(plan, unit, warm + rounds, |l, _, p| {
            let mut hist = new_hist();
            floor::requester(l, warm, rounds, &mut hist, p)?;
            Ok(Rep::Rtt(RttRep::of(&hist)))
        }),
        Unit::BareTput64 => with_shared::<bare_ring::Ring>(plan, unit, plan.count, |r, _, p| {
            bare_ring::consume(r, plan.count, p).map(Rep::Tput)
        }),
        Unit::FutexRtt => with_shared::<futex::Words>(plan, unit, warm + rounds, |w, peer, p| {
            let stat = PeerStat::open(peer.pid())?;
            futex::requester(w, &stat, plan.gap, warm, rounds, p).map(Rep::Rtt)
        }),
        _ => shmq_rows::run(plan, unit, rep),
    }
}

/// A baseline's repetition: a fresh shared `T`, a peer that maps it, `run` once it is ready.
fn with_shared<T: ZeroValid>(
    plan: &Plan,
    unit: Unit,
    n_peer: u64,
    run: impl FnOnce(&T, &Peer, &Patience) -> Res<Rep>,
) -> Res<Rep> {
    let mut shm = Shared::<T>::create().map_err(|e| format!("shared memory: {e}"))?;
    let spawned = Peer::spawn(&plan.peer_args(unit, n_peer, shm.fd(), Vec::new()));
    shm.close_fd();
    let mut peer = spawned?;
    peer.ready()?;
    peer.go()?;
    let r = run(&shm, &peer, &Patience::new(Some(peer.pid())))?;
    peer.finish()?;
    Ok(r)
}

/// The peer's side of `args` (the hidden `peer` subcommand).
pub fn peer(args: &PeerArgs, hs: &mut Handshake) -> Res<()> {
    let unit = Unit::parse(&args.unit).ok_or_else(|| format!("unknown measurement {:?}", args.unit))?;
    let fd = || args.fd.ok_or_else(|| "missing --fd".to_string());
    let p = Patience::new(None);
    let shared = |e: std::io::Error| format!("shared memory: {e}");
    match unit {
        Unit::FloorRtt => {
            let l = Shared::<floor::Lines>::inherit(fd()?).map_err(shared)?;
            hs.ready()?;
            floor::responder(&l, args.n, &p)
        }
        Unit::BareTput64 => {
            let r = Shared::<bare_ring::Ring>::inherit(fd()?).map_err(shared)?;
            hs.ready()?;
            bare_ring::produce(&r, args.n, &p)
        }
        Unit::FutexRtt => {
            let w = Shared::<futex::Words>::inherit(fd()?).map_err(shared)?;
            hs.ready()?;
            futex::responder(&w, args.n, &p)
        }
        _ => shmq_rows::peer(unit, args, hs),
    }
}
