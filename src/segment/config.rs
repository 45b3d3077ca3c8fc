//! A segment's configuration and the checks it passes before anything is laid out.

use super::MAX_SUBSCRIBERS;
use crate::error::{Error, Result};
use crate::layout::{DeadLetterParts, Kind, Offsets, FLAG_DEAD_LETTER_QUEUE, MAX_CAPACITY, MAX_DELIVERIES, MAX_MSG, MAX_PARTICIPANTS, MAX_SEGMENT};

/// The configuration of a segment, as created or as validated at open. Trusted: never
/// re-read from shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// What the segment holds.
    pub kind: Kind,
    /// Slots, a power of two >= 2.
    pub capacity: u64,
    /// Maximum payload bytes.
    pub max_msg: u32,
    /// Participant table entries.
    pub max_participants: u32,
    /// Subscriber table entries (topics).
    pub max_subscribers: u32,
    /// Maximum response payload bytes (services; 0 for queues and topics).
    pub max_response: u32,
    /// MPMC queues: deliveries before a message is dead-lettered (0: no dead letters).
    pub max_deliveries: u32,
    /// [`FLAG_DEAD_LETTER_QUEUE`] or 0.
    pub flags: u32,
    /// Topics: subscriber entries that can hold a consumer group (0: none).
    pub max_groups: u32,
}

impl Config {
    /// Checks ranges; returns the offsets of this configuration.
    pub fn validate(&self) -> Result<Offsets> {
        if self.capacity < 2 || !self.capacity.is_power_of_two() || self.capacity > MAX_CAPACITY {
            return Err(Error::InvalidConfig(format!(
                "capacity {} must be a power of two from 2 to 2^30",
                self.capacity
            )));
        }
        if self.max_msg == 0 {
            return Err(Error::InvalidConfig(
                "max message size 0 leaves no room for a message; use 1 byte or more".into(),
            ));
        }
        if self.max_msg > MAX_MSG {
            return Err(Error::InvalidConfig(format!(
                "max message size {} exceeds the limit of {MAX_MSG} bytes",
                self.max_msg
            )));
        }
        if self.max_participants == 0 || self.max_participants > MAX_PARTICIPANTS {
            return Err(Error::InvalidConfig(format!(
                "participant table size {} must be from 1 to {MAX_PARTICIPANTS}",
                self.max_participants
            )));
        }
        if self.max_subscribers > MAX_SUBSCRIBERS || (self.kind != Kind::Topic && self.max_subscribers != 0) {
            return Err(Error::InvalidConfig(format!(
                "max subscribers {} must be from 1 to {MAX_SUBSCRIBERS} for topics, 0 for queues",
                self.max_subscribers
            )));
        }
        if self.kind == Kind::Service {
            if self.max_response == 0 || self.max_response > MAX_MSG {
                return Err(Error::InvalidConfig(format!(
                    "max response size {} must be from 1 to {MAX_MSG} bytes",
                    self.max_response
                )));
            }
            if !self.max_participants.is_power_of_two() || self.capacity % self.max_participants as u64 != 0 {
                return Err(Error::InvalidConfig(format!(
                    "a service's {} call slots must be a whole number per participant ({} participants, a power \
                     of two)",
                    self.capacity, self.max_participants
                )));
            }
        } else if self.max_response != 0 {
            return Err(Error::InvalidConfig(format!(
                "max response size {} is for services; 0 for queues and topics",
                self.max_response
            )));
        }
        if self.flags & !FLAG_DEAD_LETTER_QUEUE != 0 {
            return Err(Error::InvalidConfig(format!("unknown flags {:#x}", self.flags)));
        }
        if self.max_deliveries > MAX_DELIVERIES {
            return Err(Error::InvalidConfig(format!(
                "max deliveries {} exceeds the limit of {MAX_DELIVERIES}",
                self.max_deliveries
            )));
        }
        let parts = match (self.max_deliveries, self.flags & FLAG_DEAD_LETTER_QUEUE != 0) {
            (0, false) => DeadLetterParts::None,
            (0, true) => DeadLetterParts::Queue,
            (_, false) => DeadLetterParts::Origin,
            (_, true) => {
                return Err(Error::InvalidConfig(
                    "a dead-letter queue has no dead-letter queue of its own (max deliveries must be 0)".into(),
                ))
            }
        };
        if parts != DeadLetterParts::None && self.kind != Kind::Mpmc {
            return Err(Error::InvalidConfig(format!(
                "dead letters need an MPMC queue (this is {}): create it with QueueOptions::new() (MPMC by default)",
                self.kind.name()
            )));
        }
        if self.max_groups > 0
            && (self.kind != Kind::Topic || self.max_groups > self.max_subscribers || self.max_participants > 1024)
        {
            return Err(Error::InvalidConfig(format!(
                "max groups {} must be at most the subscriber table ({}), for topics of at most 1024 participants \
                 ({} asked) only",
                self.max_groups, self.max_subscribers, self.max_participants
            )));
        }
        Offsets::compute_with(
            self.capacity,
            self.max_msg,
            self.max_participants,
            self.max_subscribers,
            self.max_response,
            parts,
            self.max_groups,
        )
        .ok_or_else(|| Error::InvalidConfig(format!("a segment of this size would exceed {MAX_SEGMENT} bytes")))
    }
}
