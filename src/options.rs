//! Settings shared by [`QueueOptions`](crate::QueueOptions) and
//! [`TopicOptions`](crate::TopicOptions).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::segment::{Expect, Segment};
use crate::wait::WaitStrategy;

/// Default number of slots.
pub const DEFAULT_CAPACITY: u64 = 1024;
/// Default maximum message size in bytes.
pub const DEFAULT_MAX_MSG: usize = 256;
/// Default permission mode of new segments: owner only.
pub const DEFAULT_MODE: u32 = 0o600;

/// The settings every segment builder has.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) capacity: Option<u64>,
    pub(crate) max_msg: Option<usize>,
    pub(crate) mode: u32,
    pub(crate) wait: WaitStrategy,
    pub(crate) ready_timeout: Duration,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            dir: None,
            capacity: None,
            max_msg: None,
            mode: DEFAULT_MODE,
            wait: WaitStrategy::default(),
            ready_timeout: Duration::from_secs(2),
        }
    }
}

/// How many times `open` and `open_or_create` start over when the name changes under them
/// (removed, replaced, or created by someone else meanwhile).
const ATTEMPTS: u32 = 16;

impl Common {
    pub(crate) fn dir_path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(crate::os::default_dir)
    }

    /// Opens segment `name` and attaches to it with `attach`; starts over if the segment was
    /// removed between the two (`attach` says `NotFound`), so that we never end up on a
    /// segment that has no name any more.
    pub(crate) fn open<T>(&self, name: &str, expect: &Expect, attach: impl Fn(Segment) -> Result<T>) -> Result<T> {
        let dir = self.dir_path();
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let seg = Segment::open(&dir, name, expect, self.ready_timeout)?;
            match attach(seg) {
                Err(e @ Error::NotFound { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::Timeout))
    }

    /// `open_or_create` of queues and topics: `create`, else `open`. Concurrent callers end on
    /// the same segment (a name only ever shows a complete segment, see `segment`); a stale
    /// file under the name is replaced (only that file, under its lock).
    pub(crate) fn open_or_create<T>(
        &self,
        name: &str,
        create: impl Fn() -> Result<T>,
        open: impl Fn() -> Result<T>,
    ) -> Result<T> {
        for _ in 0..ATTEMPTS {
            match create() {
                Err(Error::AlreadyExists { .. }) => {}
                // A concurrent creator may have won the memory and the name: use its segment.
                Err(e @ Error::NoSpace { .. }) => return open().map_err(|_| e),
                other => return other,
            }
            match open() {
                Err(Error::NotFound { .. }) => {} // removed meanwhile: create again
                Err(Error::Stale { .. }) => {
                    if !crate::segment::remove_stale(&self.dir_path(), name)? {
                        std::thread::sleep(Duration::from_millis(1)); // someone else is at it
                    }
                }
                other => return other,
            }
        }
        Err(Error::Timeout)
    }

    /// The capacity asked for, rounded up to a power of two (at least 2, which the rings
    /// need); `None` if none was asked for.
    pub(crate) fn slots(&self) -> Result<Option<u64>> {
        let Some(n) = self.capacity else { return Ok(None) };
        if n == 0 || n > crate::layout::MAX_CAPACITY {
            return Err(Error::InvalidConfig(format!(
                "capacity {n} is out of range; use 1 to 2^30 slots (rounded up to a power of two)"
            )));
        }
        Ok(Some(n.max(2).next_power_of_two()))
    }

    /// The capacity a new segment gets.
    pub(crate) fn slots_or_default(&self) -> Result<u64> {
        Ok(self.slots()?.unwrap_or(DEFAULT_CAPACITY))
    }

    pub(crate) fn max_msg_u32(&self) -> Result<u32> {
        let m = self.max_msg.unwrap_or(DEFAULT_MAX_MSG);
        u32::try_from(m).map_err(|_| Error::InvalidConfig(format!("max message size {m} is too large")))
    }
}

/// The setters of [`Common`], for a builder with a `common: Common` field.
macro_rules! common_setters {
    () => {
        /// Number of slots, from 1 to 2^30 (default 1024), rounded up to a power of two of at
        /// least 2: 1000 gives 1024, 1 gives 2. The handle's `capacity()` tells what was made.
        /// Opening an existing segment with a capacity set checks it against the rounded value.
        pub fn capacity(mut self, slots: usize) -> Self {
            self.common.capacity = Some(slots as u64);
            self
        }
        /// Largest message in bytes (default 256).
        pub fn max_msg_size(mut self, bytes: usize) -> Self {
            self.common.max_msg = Some(bytes);
            self
        }
        /// Permission bits of a new segment (default 0600; 0660 to share with a group).
        pub fn mode(mut self, mode: u32) -> Self {
            self.common.mode = mode & 0o777;
            self
        }
        /// How blocking calls wait (default [`WaitStrategy::Block`](crate::WaitStrategy)).
        pub fn wait(mut self, wait: crate::WaitStrategy) -> Self {
            self.common.wait = wait;
            self
        }
        /// Segment directory (default: `$SHMQ_DIR`, else `/dev/shm`).
        pub fn dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.common.dir = Some(dir.into());
            self
        }
        /// How long `open` waits while another process holds the segment lock of the name (it
        /// is removing the segment, e.g. `shmq gc`) before it gives up with `Error::Timeout`
        /// (default 2 s). A segment being created is not visible under its name until it is
        /// complete, so there is nothing to wait for there.
        pub fn ready_timeout(mut self, t: std::time::Duration) -> Self {
            self.common.ready_timeout = t;
            self
        }
    };
}
pub(crate) use common_setters;
