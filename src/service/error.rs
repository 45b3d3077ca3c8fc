//! The errors of calls and of serving.

use crate::error::Error;

use super::RequestId;

/// Why a call (or a receive of its response) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No live process serves the service; the request was withdrawn (no server will see it).
    #[error("service {service:?} has no live server; start one (e.g. `shmq serve {service} --echo`), then call again")]
    ServiceUnavailable {
        /// The service's name.
        service: String,
    },
    /// The server handling the request died before answering. The request may or may not have
    /// been carried out (delivery is at most once); it was not handed to another server.
    #[error("the server handling request {id} died before answering; the request may or may not have been carried out (at most once): call again only if that is safe")]
    ServerGone {
        /// The request.
        id: RequestId,
    },
    /// The server dropped the request without answering it.
    #[error("the server dropped request {id} without answering it")]
    Dropped {
        /// The request.
        id: RequestId,
    },
    /// No response in time. For a call, the request was given up: withdrawn if no server had
    /// taken it, otherwise its answer will be dropped.
    #[error("timed out waiting for a response; the server may be slow or stopped (a timed-out call is given up: it will not be answered)")]
    Timeout,
    /// Nothing answered yet (`try_recv_response`), or no call in flight.
    #[error("no response yet; retry later, or use recv_response (or recv_response_timeout) to wait")]
    Empty,
    /// The request is larger than the service allows.
    #[error("{}", Error::MessageTooLarge { len: *len, max: *max })]
    RequestTooLarge {
        /// Its length.
        len: usize,
        /// The service's maximum request.
        max: usize,
    },
    /// This process has as many calls in flight as the service allows per process.
    #[error("all {max} calls this process may have in flight on the service are in flight; receive responses first, or create the service with more (ServiceOptions::max_in_flight)")]
    InFlightFull {
        /// Calls in flight per process.
        max: usize,
    },
    /// Another process took our call slot (it judged this process dead, or wrote shared memory
    /// it should not): the call was lost; call again.
    #[error("{}", Error::ClaimRevoked)]
    ClaimRevoked,
    /// The service's shared memory holds impossible data.
    #[error("{}", Error::Corrupted(.0.clone()))]
    Corrupted(String),
}

impl CallError {
    pub(crate) fn from_internal(e: Error) -> Self {
        match e {
            Error::Timeout => CallError::Timeout,
            Error::Empty => CallError::Empty,
            Error::ClaimRevoked => CallError::ClaimRevoked,
            Error::MessageTooLarge { len, max } => CallError::RequestTooLarge { len, max },
            Error::Corrupted(s) => CallError::Corrupted(s),
            other => CallError::Corrupted(other.to_string()),
        }
    }
}

/// Why taking a request or answering it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No request waits (`try_recv`).
    #[error("no request waits; retry later, or use recv (or recv_timeout) to wait for one")]
    Empty,
    /// No request came in time.
    #[error("timed out waiting for a request")]
    Timeout,
    /// The response is larger than the service allows (the request is still ours: answer it
    /// with a shorter response, or drop it).
    #[error("a response of {len} bytes exceeds the service's maximum of {max}; answer with a shorter one, or create the service with a larger max response size")]
    ResponseTooLarge {
        /// Its length.
        len: usize,
        /// The service's maximum response.
        max: usize,
    },
    /// Another process took the request back (it judged this process dead, or wrote shared
    /// memory it should not); the response was not delivered.
    #[error("{}", Error::ClaimRevoked)]
    ClaimRevoked,
    /// The service's shared memory holds impossible data (that request was dropped).
    #[error("{}", Error::Corrupted(.0.clone()))]
    Corrupted(String),
}

impl ServeError {
    pub(crate) fn from_internal(e: Error) -> Self {
        match e {
            Error::Timeout => ServeError::Timeout,
            Error::Empty => ServeError::Empty,
            Error::ClaimRevoked => ServeError::ClaimRevoked,
            Error::Corrupted(s) => ServeError::Corrupted(s),
            other => ServeError::Corrupted(other.to_string()),
        }
    }
}
