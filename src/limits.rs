//! The limits of a segment's configuration and of names, for tools that check input before
//! they create anything (the command line does). Values outside them are refused with
//! `InvalidConfig` or `InvalidName`.

/// Largest capacity, in slots (a capacity from 1 up to this is rounded up to a power of two).
pub const MAX_CAPACITY: usize = crate::layout::MAX_CAPACITY as usize;
/// Largest maximum message size, in bytes (the smallest is 1).
pub const MAX_MSG: usize = crate::layout::MAX_MSG as usize;
/// Largest subscriber table of a topic.
pub const MAX_SUBSCRIBERS: u32 = crate::segment::MAX_SUBSCRIBERS;
/// Longest durable subscriber name, in bytes of `[A-Za-z0-9._-]`.
pub const MAX_SUBSCRIBER_NAME: usize = crate::layout::MAX_SUBSCRIBER_NAME;
/// Longest queue or topic name, in bytes of `[A-Za-z0-9._-]`, not starting with '.'.
pub const MAX_NAME: usize = crate::segment::MAX_NAME;
/// Longest service description, in bytes.
pub const MAX_DESCRIPTION: usize = crate::layout::MAX_DESCRIPTION;
/// Most calls one process may have in flight on a service.
pub const MAX_IN_FLIGHT: usize = crate::service::MAX_IN_FLIGHT;
