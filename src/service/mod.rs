//! Request-response: a named service that server processes offer and client processes call.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::service::ServiceOptions;
//!
//! let svc = ServiceOptions::new().dir(dir.path()).description("upper-cases text").create("upper")?;
//! let mut server = svc.server()?;
//! let mut client = svc.client()?;
//! let id = client.send_request(b"hello")?;
//! let req = server.recv()?;
//! let answer = req.to_ascii_uppercase();
//! req.respond(&answer)?;
//! let resp = client.recv_response()?;
//! assert_eq!((resp.id(), &resp[..]), (id, &b"HELLO"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A service is one segment (the README's "Segment layout" draws it): every participant owns
//! `max_in_flight` call slots, each with room for a request and its response. A client
//! writes its request in place and marks it requested; servers take requests (each exactly
//! once, the oldest of a client first, clients in turn) and write the response into the same
//! call slot, so it can only reach the client that asked. No queue per client, no file per
//! call: a call is a handful of atomic operations on shared memory.
//!
//! ## Failures
//! - **No server**: a call made while no server lives ends with
//!   [`CallError::ServiceUnavailable`] within 10 ms (the client looks every 10 ms while it
//!   waits); the request is withdrawn, so a server started later never sees it.
//! - **A server dies holding a request**: the call ends with [`CallError::ServerGone`]
//!   within 10 ms. Delivery is **at most once**: the request may or may not have been carried
//!   out, and it is never handed to another server. Requests no server had taken yet go to the
//!   other servers.
//! - **A client dies**: nothing waits for it. Its requests that no server took are withdrawn
//!   when its participant entry is taken over, answers to it are dropped, and its call slots go
//!   to the next process.
//! - **A client gives up** (timeout): a request not yet taken is withdrawn; one being handled
//!   is answered into the void and its slot freed by its server.

mod client;
mod error;
mod server;

use std::path::Path;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::Arc;

use crate::attach::Attachment;
use crate::error::{Error, OpenError, Result};
use crate::layout::{self, Kind, DEFAULT_PARTICIPANTS, MAX_DESCRIPTION};
use crate::mapped_ring::MappedService;
use crate::options::{common_setters, Common};
use crate::ring::call::{self, CallMem};
use crate::ring::RingMem;
use crate::segment::{Config, Expect, Segment};
use crate::sync::Ordering::Relaxed;

pub use client::{Client, RequestId, RequestLoan, Response};
pub use error::{CallError, ServeError};
pub use server::{ActiveRequest, ResponseLoan, Server};

/// Default maximum request and response size in bytes.
pub const DEFAULT_MAX_PAYLOAD: usize = 256;
/// Default number of calls one process may have in flight on a service.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;
/// Largest number of calls one process may have in flight on a service.
pub const MAX_IN_FLIGHT: usize = 64;

/// Options for creating or opening a [`Service`].
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    common: Common,
    max_response: Option<usize>,
    max_in_flight: Option<usize>,
    version: Option<u32>,
    description: String,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceOptions {
    /// Defaults: requests and responses of up to 256 bytes, 16 calls in flight per process, 64
    /// processes, version 0.
    pub fn new() -> Self {
        ServiceOptions {
            common: Common::default(),
            max_response: None,
            max_in_flight: None,
            version: None,
            description: String::new(),
        }
    }

    common_setters!();

    /// Largest request in bytes (default 256); the same as `max_msg_size`.
    pub fn max_request_size(self, bytes: usize) -> Self {
        self.max_msg_size(bytes)
    }
    /// Largest response in bytes (default 256).
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_response = Some(bytes);
        self
    }
    /// Calls one process may have in flight at once, 1 to 64 (default 16), rounded up to a
    /// power of two; checked against an existing service.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = Some(calls);
        self
    }
    /// The service's version: set when creating; when opening, the service must have exactly
    /// this one ([`OpenError::Incompatible`] otherwise).
    pub fn version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }
    /// What the service does, for `shmq list` and [`Service::list`] (up to 256 bytes; set when
    /// creating, not checked when opening).
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    fn config(&self) -> Result<Config> {
        let k = self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if k == 0 || k > MAX_IN_FLIGHT {
            return Err(Error::InvalidConfig(format!("max in flight {k} is out of range; use 1 to {MAX_IN_FLIGHT}")));
        }
        let resp = self.max_response.unwrap_or(DEFAULT_MAX_PAYLOAD);
        if self.description.len() > MAX_DESCRIPTION {
            return Err(Error::InvalidConfig(format!(
                "a description of {} bytes is too long; use at most {MAX_DESCRIPTION}",
                self.description.len()
            )));
        }
        Ok(Config {
            kind: Kind::Service,
            capacity: DEFAULT_PARTICIPANTS as u64 * k.next_power_of_two() as u64,
            max_msg: self.common.max_msg_u32()?,
            max_participants: DEFAULT_PARTICIPANTS,
            max_subscribers: 0,
            max_response: u32::try_from(resp)
                .map_err(|_| Error::InvalidConfig(format!("max response size {resp} is too large")))?,
            max_deliveries: 0,
            flags: 0,
            max_groups: 0,
        })
    }

    fn expect(&self) -> Expect {
        const SERVICE: &[Kind] = &[Kind::Service];
        Expect {
            kinds: SERVICE,
            capacity: None,
            max_msg: self.common.max_msg.map(|m| m.min(u32::MAX as usize) as u32),
            max_subscribers: None,
            max_deliveries: None,
        }
    }

    /// Creates service `name`; [`OpenError::AlreadyExists`] if it exists.
    pub fn create(&self, name: &str) -> std::result::Result<Service, OpenError> {
        self.create_inner(name).map_err(OpenError::from_internal)
    }

    /// Opens existing service `name`: [`OpenError::NotFound`] if there is none,
    /// [`OpenError::Incompatible`] if it is not a service, or not of the version or sizes asked
    /// for.
    pub fn open(&self, name: &str) -> std::result::Result<Service, OpenError> {
        self.open_inner(name).map_err(OpenError::from_internal)
    }

    /// Opens service `name`, creating it if it does not exist (see `QueueOptions::open_or_create`).
    pub fn open_or_create(&self, name: &str) -> std::result::Result<Service, OpenError> {
        self.common
            .open_or_create(name, || self.create_inner(name), || self.open_inner(name))
            .map_err(OpenError::from_internal)
    }

    fn create_inner(&self, name: &str) -> Result<Service> {
        let config = self.config()?;
        let (version, description) = (self.version.unwrap_or(0), self.description.as_bytes());
        let seg = Segment::create(&self.common.dir_path(), name, config, self.common.mode, |seg| {
            let info = seg.service_info().expect("a service segment");
            info.version.store(version, Relaxed);
            info.description_len.store(description.len() as u32, Relaxed);
            for (i, chunk) in description.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                info.description[i].store(u64::from_le_bytes(w), Relaxed);
            }
        })?;
        match seg {
            Some(seg) => self.attach(seg),
            None => Err(Error::AlreadyExists { name: name.into() }),
        }
    }

    fn open_inner(&self, name: &str) -> Result<Service> {
        self.common.open(name, &self.expect(), |seg| self.attach(seg))
    }

    fn attach(&self, seg: Segment) -> Result<Service> {
        let (version, description) = read_info(&seg)?;
        if let Some(v) = self.version.filter(|&v| v != version) {
            return Err(Error::Incompatible {
                what: "service version",
                expected: v.to_string(),
                found: version.to_string(),
            });
        }
        let per_client = seg.config.capacity / seg.config.max_participants as u64;
        if let Some(k) = self.max_in_flight.map(|k| k.next_power_of_two() as u64).filter(|&k| k != per_client) {
            return Err(Error::Incompatible {
                what: "max in flight",
                expected: k.to_string(),
                found: per_client.to_string(),
            });
        }
        if let Some(r) = self.max_response.filter(|&r| r != seg.config.max_response as usize) {
            return Err(Error::Incompatible {
                what: "max response size",
                expected: r.to_string(),
                found: seg.config.max_response.to_string(),
            });
        }
        let mem = seg.service().ok_or_else(|| Error::corrupted("a service segment without service parts"))?;
        let scrub_mem = mem.clone();
        let att = Attachment::new(seg, self.common.wait, self.common.ready_timeout, move |_, dead| {
            call::scrub(&scrub_mem, dead)
        })?;
        let next_corr = call::last_corr(&mem, att.id).wrapping_add(1);
        Ok(Service {
            shared: Arc::new(ServiceShared {
                att,
                mem,
                version,
                description,
                slots: StdAtomicU64::new(0),
                next_corr: StdAtomicU64::new(next_corr),
            }),
        })
    }
}

/// A service as `shmq list`, `shmq stat` and [`Service::list`] show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its version.
    pub version: u32,
    /// Largest request in bytes.
    pub max_request_size: usize,
    /// Largest response in bytes.
    pub max_response_size: usize,
    /// Calls one process may have in flight.
    pub max_in_flight: usize,
    /// The processes attached as servers (with their counters) or as clients, or with calls
    /// in flight.
    pub peers: Vec<ServicePeer>,
}

impl ServiceInfo {
    /// The live servers.
    pub fn live_servers(&self) -> impl Iterator<Item = &ServicePeer> {
        self.peers.iter().filter(|p| p.server && p.alive)
    }
}

/// One process attached to a service (a snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePeer {
    /// Participant id.
    pub id: u16,
    /// Process id (information only).
    pub pid: u32,
    /// Whether the process lives.
    pub alive: bool,
    /// Whether it serves.
    pub server: bool,
    /// Whether it calls.
    pub client: bool,
    /// As a server: requests answered, and dropped without an answer.
    pub served: u64,
    /// See `served`.
    pub dropped: u64,
    /// As a server: requests it is handling now.
    pub handling: u64,
    /// As a client: calls made, answered, failed.
    pub calls: u64,
    /// See `calls`.
    pub answered: u64,
    /// See `calls`.
    pub failed: u64,
    /// As a client: calls in flight that no server took yet, and that a server handles.
    pub waiting: u64,
    /// See `waiting`.
    pub in_service: u64,
}

/// The service part of a segment's snapshot (`None` for queues and topics).
pub(crate) fn info_of(seg: &Segment, participants: &[crate::participants::ParticipantInfo]) -> Option<ServiceInfo> {
    let mem = seg.service()?;
    let (version, description) = read_info(seg).unwrap_or_else(|e| (0, format!("(unreadable: {e})")));
    let mut handling = vec![0u64; mem.clients() as usize + 1];
    for i in 0..mem.capacity() {
        let w = mem.slot(i).state.load(Relaxed);
        if crate::layout::slot::tag(w) == crate::layout::call::TAKEN {
            if let Some(n) = handling.get_mut(crate::layout::slot::claimer(w) as usize) {
                *n += 1;
            }
        }
    }
    let peers = participants
        .iter()
        .filter(|p| p.id >= 1 && p.id <= mem.clients())
        .filter_map(|p| {
            let ch = mem.channel(p.id);
            let (waiting, in_service) = call::in_flight(&mem, p.id);
            let (server, client) = (p.roles & layout::ROLE_SERVER != 0, p.roles & layout::ROLE_CLIENT != 0);
            let peer = ServicePeer {
                id: p.id,
                pid: p.pid,
                alive: p.alive,
                server,
                client,
                served: ch.served.load(Relaxed),
                dropped: ch.dropped.load(Relaxed),
                handling: handling[p.id as usize],
                calls: ch.calls.load(Relaxed),
                answered: ch.answered.load(Relaxed),
                failed: ch.failed.load(Relaxed),
                waiting,
                in_service,
            };
            (server || client || waiting + in_service > 0).then_some(peer)
        })
        .collect();
    Some(ServiceInfo {
        name: seg.name.clone(),
        description,
        version,
        max_request_size: seg.config.max_msg as usize,
        max_response_size: seg.config.max_response as usize,
        max_in_flight: mem.per_client() as usize,
        peers,
    })
}

/// The version and description a service's creator wrote (validated).
fn read_info(seg: &Segment) -> Result<(u32, String)> {
    let info = seg.service_info().ok_or_else(|| Error::corrupted("a service segment without service parts"))?;
    let len = info.description_len.load(Relaxed) as usize;
    if len > MAX_DESCRIPTION {
        return Err(Error::corrupted(format!("description length {len} exceeds {MAX_DESCRIPTION}")));
    }
    let bytes: Vec<u8> = info.description.iter().flat_map(|w| w.load(Relaxed).to_le_bytes()).take(len).collect();
    Ok((info.version.load(Relaxed), String::from_utf8_lossy(&bytes).into_owned()))
}

/// What a process shares between its handles of one service.
#[derive(Debug)]
pub(crate) struct ServiceShared {
    pub(crate) att: Attachment,
    pub(crate) mem: MappedService,
    version: u32,
    description: String,
    /// Our call slots in use by a `Client` of this process (bit k: slot k).
    pub(crate) slots: StdAtomicU64,
    /// Our next call number.
    pub(crate) next_corr: StdAtomicU64,
}

impl ServiceShared {
    pub(crate) fn per_client(&self) -> u64 {
        self.mem.per_client()
    }
}

/// A process's attachment to a service: make [`Server`]s and [`Client`]s from it.
#[derive(Clone, Debug)]
pub struct Service {
    shared: Arc<ServiceShared>,
}

impl Service {
    /// Options for creating or opening a service.
    pub fn options() -> ServiceOptions {
        ServiceOptions::new()
    }
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.shared.att.seg.name
    }
    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.shared.att.seg.path
    }
    /// The service's version.
    pub fn version(&self) -> u32 {
        self.shared.version
    }
    /// What the service does.
    pub fn description(&self) -> &str {
        &self.shared.description
    }
    /// Largest request in bytes.
    pub fn max_request_size(&self) -> usize {
        self.shared.att.seg.config.max_msg as usize
    }
    /// Largest response in bytes.
    pub fn max_response_size(&self) -> usize {
        self.shared.att.seg.config.max_response as usize
    }
    /// Calls one process may have in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.per_client() as usize
    }
    /// Whether a live process serves the service now (asks the kernel: a system call per
    /// process attached).
    pub fn has_server(&self) -> bool {
        self.shared.att.parts.any_alive(layout::ROLE_SERVER, 0)
    }
    /// Removes the service's segment file (attached processes keep working on their mapping).
    pub fn unlink(&self) -> Result<bool> {
        self.shared.att.seg.unlink()
    }

    /// The services in `dir` (default: `$SHMQ_DIR`, else `/dev/shm`), with their servers and
    /// clients; segments that cannot be read are left out.
    pub fn list(dir: Option<&Path>) -> Result<Vec<ServiceInfo>> {
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(crate::os::default_dir);
        Ok(crate::status::list(&dir)?.into_iter().filter_map(|(_, s)| s.ok()?.service).collect())
    }

    /// A server: takes requests and answers them. Any number of servers, in any processes,
    /// share the requests (each is handled by one).
    pub fn server(&self) -> std::result::Result<Server, OpenError> {
        Ok(Server::new(self.shared.clone()))
    }

    /// A client: makes calls. The clients of one process share its `max_in_flight` call slots.
    pub fn client(&self) -> std::result::Result<Client, OpenError> {
        Ok(Client::new(self.shared.clone()))
    }
}

/// Adds one to a counter of our own channel (clients' calls, servers' answers): a load and a
/// store, not a read-modify-write (this is the per-call path; two threads of one process racing
/// lose a count, nothing else).
#[inline]
pub(crate) fn bump(counter: &crate::sync::AtomicU64) {
    use crate::sync::Ordering::Relaxed;
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
}
