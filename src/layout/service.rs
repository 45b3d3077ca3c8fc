//! The parts of a service segment (see [`crate::service`]): its identity, its channels, and
//! the call slots' records and states.

use super::{round_up, Event, LINE, SLOT_ALIGN, SLOT_HEADER};
use crate::sync::{AtomicU32, AtomicU64};

/// A service's identity: written by its creator before the segment is marked ready, read once
/// (and validated) by every opener.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct ServiceInfo {
    /// The user's version of the service's protocol (clients may require an exact one).
    pub version: AtomicU32,
    /// Bytes of `description` in use, at most [`MAX_DESCRIPTION`].
    pub description_len: AtomicU32,
    /// Reserved, zero.
    pub reserved: [AtomicU32; 30],
    /// What the service does, UTF-8.
    pub description: [AtomicU64; MAX_DESCRIPTION / 8],
}

/// Size of [`ServiceInfo`].
pub const SERVICE_INFO_SIZE: usize = 3 * LINE;
/// Longest service description.
pub const MAX_DESCRIPTION: usize = 256;

/// One participant's line in a service: the event its client threads sleep on for responses,
/// and its counters (written Relaxed by the participant itself, except `responses`, which
/// servers notify).
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Channel {
    /// Client threads of this participant sleep here for responses.
    pub responses: Event,
    /// Pads the event to its own 64-byte half: servers read it on every answer, the counters
    /// below change on every call.
    pub pad: [AtomicU32; 14],
    /// Requests sent (as a client).
    pub calls: AtomicU64,
    /// Calls that ended with a response (as a client).
    pub answered: AtomicU64,
    /// Calls that ended in an error: the server died or dropped the request, no server was
    /// there, or the call was given up (as a client).
    pub failed: AtomicU64,
    /// Requests answered (as a server).
    pub served: AtomicU64,
    /// Requests dropped without an answer (as a server).
    pub dropped: AtomicU64,
    /// Reserved, zero.
    pub reserved: [AtomicU64; 3],
}

/// Size of [`Channel`].
pub const CHANNEL_SIZE: usize = LINE;

/// What precedes a response's payload.
#[derive(Debug)]
#[repr(C)]
pub struct ResponseHeader {
    /// Payload length, at most the service's max response (validated by the client).
    pub len: AtomicU32,
    /// [`call::STATUS_OK`] or [`call::STATUS_DROPPED`].
    pub status: AtomicU32,
}

/// Size of [`ResponseHeader`].
pub const RESPONSE_HEADER: usize = 8;

/// Call slots of a service: the state word of slot `i` (participant `i / K + 1`'s call
/// `i % K`, K calls in flight per participant) is `[corr:48 | tag:4 | server:12]`, packed with
/// [`slot::pack`]. `corr` counts the calls made in the slot (a request's correlation id).
///
/// ```text
///  FREE(c) --client--> WRITING(c+1) --client, Release--> REQUESTED(c+1) --server CAS--> TAKEN(c+1, s)
///                                         |                                  |
///                      client gives up: FREE(c+1)      server answers (CAS, Release): ANSWERED(c+1, s)
///                                                      client gives up: CANCELLED(c+1, s) --server--> FREE
///                                                      server died: FAILED(c+1) (or FREE by the client)
///  ANSWERED / FAILED --client, after reading--> FREE(c+1)
/// ```
pub mod call {
    /// No call; `corr` is the last one made.
    pub const FREE: u64 = 0;
    /// The client writes the request.
    pub const WRITING: u64 = 1;
    /// The request waits for a server.
    pub const REQUESTED: u64 = 8;
    /// Server `claimer` handles the request and writes the response.
    pub const TAKEN: u64 = 9;
    /// The response is there, from server `claimer`.
    pub const ANSWERED: u64 = 10;
    /// The client gave up while server `claimer` handled it; that server frees the slot.
    pub const CANCELLED: u64 = 11;
    /// The server died holding the request (set by whoever took over its entry).
    pub const FAILED: u64 = 12;
    /// Response status: the server answered.
    pub const STATUS_OK: u32 = 0;
    /// Response status: the server dropped the request without answering.
    pub const STATUS_DROPPED: u32 = 1;
}

/// A service's call slot: `(stride, request offset, response header offset, response offset)`
/// within the slot, whose [`SlotHeader`] is at 0.
///
/// - Small calls (header, request rounded up to 8 bytes, [`ResponseHeader`] and response in 64
///   bytes or less): one record of a power of two bytes, in that order, so that a call moves one
///   cache line back and forth (8-byte requests and responses: 16 + 8 + 8 + 8 bytes).
/// - Larger ones: a 64-byte line of the two headers, then the request and then the response,
///   each from a 64-byte boundary, so that the client writes the request's lines and the server
///   the response's, and neither shares a line with the other's writes.
pub const fn call_slot_layout(max_request: usize, max_response: usize) -> (usize, usize, usize, usize) {
    let request_room = round_up(max_request, 8);
    let n = SLOT_HEADER + request_room + RESPONSE_HEADER + max_response;
    if n <= SLOT_ALIGN {
        let at = SLOT_HEADER + request_room;
        (n.next_power_of_two(), SLOT_HEADER, at, at + RESPONSE_HEADER)
    } else {
        let request = SLOT_ALIGN;
        let response = request + round_up(max_request, SLOT_ALIGN);
        (response + round_up(max_response, SLOT_ALIGN), request, SLOT_HEADER, response)
    }
}
