//! `iceoryx2-rr`: iceoryx2 0.10's request-response messaging pattern between the two processes.
//! One service `request_response::<[u8; N], [u8; N]>()` with `max_clients(1)` and
//! `max_servers(1)` (every other setting is iceoryx2's default); a `Client` in the parent, a
//! `Server` in the child.
//!
//! A call, as the iceoryx2 examples make one, with the zero-copy (loan) API on both sides:
//! - parent: `client.loan_uninit()`, `write_payload(request)`, `send()`, which returns a
//!   `PendingResponse`; then `pending.receive()` in a loop with `spin_loop()` until the response
//!   is there; the response and the pending response are dropped after the check.
//! - child: `server.receive()` in a loop with `spin_loop()` until an `ActiveRequest` is there;
//!   `active.loan_uninit()`, `write_payload(*active.payload())`, `send()`; the active request is
//!   dropped after the response is sent (which tells the client the stream of responses ended).

use std::hint::spin_loop;

use iceoryx2::active_request::ActiveRequest;
use iceoryx2::pending_response::PendingResponse;
use iceoryx2::port::client::Client;
use iceoryx2::port::server::Server;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::request_response::PortFactory as RrFactory;

use crate::ice_side::node;
use crate::proto::{seq_of, stamp, ChildEnd, ParentEnd};

type Service = ipc::Service;
type Factory<const N: usize> = RrFactory<Service, [u8; N], (), [u8; N], ()>;
/// A request's `[u8; N]` payload and its response's, no user headers.
type Pending<const N: usize> = PendingResponse<Service, [u8; N], (), [u8; N], ()>;
type Active<const N: usize> = ActiveRequest<Service, [u8; N], (), [u8; N], ()>;

/// Creates (`create`) or opens the service of `prefix`.
fn service<const N: usize>(node: &Node<Service>, prefix: &str, create: bool) -> Factory<N> {
    let name = format!("{prefix}/rr");
    let sname: ServiceName = name.as_str().try_into().expect("a valid iceoryx2 service name");
    let builder = node.service_builder(&sname).request_response::<[u8; N], [u8; N]>().max_clients(1).max_servers(1);
    if create {
        builder.create().unwrap_or_else(|e| panic!("creating iceoryx2 service {name}: {e:?}"))
    } else {
        builder.open().unwrap_or_else(|e| panic!("opening iceoryx2 service {name}: {e:?}"))
    }
}

/// Process A: the client.
pub struct IceRrParent<const N: usize> {
    // Fields drop in order: the call in flight and the port first, then the service, the node.
    pending: Option<Pending<N>>,
    client: Client<Service, [u8; N], (), [u8; N], ()>,
    service: Factory<N>,
    _node: Node<Service>,
    buf: [u8; N],
}

impl<const N: usize> IceRrParent<N> {
    /// Creates the service and the client (before the child exists).
    pub fn create(prefix: &str) -> Self {
        let node = node();
        let service = service::<N>(&node, prefix, true);
        let client = service.client_builder().create().expect("creating an iceoryx2 client");
        IceRrParent { pending: None, client, service, _node: node, buf: [0; N] }
    }
}

impl<const N: usize> ParentEnd for IceRrParent<N> {
    /// Connects the client to the child's server, so the first request is not sent to nobody.
    fn connected(&mut self) {
        let servers = self.service.dynamic_config().number_of_servers();
        assert_eq!(servers, 1, "iceoryx2 request-response service: expected the child's server, found {servers}");
        self.client.update_connections().expect("iceoryx2 update_connections");
    }
    /// Sends the request (a loan, written and sent) and keeps its `PendingResponse`.
    #[inline]
    fn send(&mut self, seq: u64) {
        stamp(&mut self.buf, seq);
        let request = self.client.loan_uninit().expect("iceoryx2 client loan");
        let pending = request.write_payload(self.buf).send().expect("iceoryx2 request send");
        let n = pending.number_of_server_connections();
        assert_eq!(n, 1, "iceoryx2 request reached {n} servers, expected 1");
        self.pending = Some(pending);
    }
    /// Busy-polls the pending response of the last request.
    #[inline]
    fn recv(&mut self) -> u64 {
        let pending = self.pending.take().expect("a request in flight");
        loop {
            if let Some(r) = pending.receive().expect("iceoryx2 response receive") {
                return seq_of(r.payload());
            }
            spin_loop();
        }
    }
}

/// Process B: the server.
pub struct IceRrChild<const N: usize> {
    server: Server<Service, [u8; N], (), [u8; N], ()>,
    _service: Factory<N>,
    _node: Node<Service>,
}

impl<const N: usize> IceRrChild<N> {
    /// Opens the service and creates the server.
    pub fn open(prefix: &str) -> Self {
        let node = node();
        let service = service::<N>(&node, prefix, false);
        let server = service.server_builder().create().expect("creating an iceoryx2 server");
        IceRrChild { server, _service: service, _node: node }
    }

    #[inline(always)]
    fn next(&mut self) -> Active<N> {
        loop {
            if let Some(r) = self.server.receive().expect("iceoryx2 request receive") {
                return r;
            }
            spin_loop();
        }
    }
}

impl<const N: usize> ChildEnd for IceRrChild<N> {
    /// Receives one request and answers it with a response carrying the same bytes.
    #[inline]
    fn echo(&mut self) -> u64 {
        let active = self.next();
        let seq = seq_of(active.payload());
        let response = active.loan_uninit().expect("iceoryx2 response loan");
        response.write_payload(*active.payload()).send().expect("iceoryx2 response send");
        seq
    }
    fn drain(&mut self) -> u64 {
        unreachable!("iceoryx2-rr is run for round trips only")
    }
}
