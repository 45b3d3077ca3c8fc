//! iceoryx2 0.10's ends: two publish-subscribe services ("ping", "pong") with `[u8; N]` payloads,
//! one publisher and one subscriber each, in the configuration that favours it most for this
//! layout: 1 publisher, 1 subscriber, no history, a 1024-sample subscriber buffer, and
//! `enable_safe_overflow(false)` so a full buffer holds the publisher back instead of dropping
//! the oldest sample (shmq never drops either).
//!
//! Both sides busy-poll: `subscriber.receive()` in a loop with `spin_loop()`. Samples are sent
//! with the zero-copy API: `loan_uninit()`, `write_payload(..)`, `send()`.
//!
//! What "spin while the ring is full" means here (`--ice-full`):
//! - `retry` (default): `BackpressureStrategy::RetryUntilDelivered`, iceoryx2's own lossless
//!   mode: `send` waits inside iceoryx2 (its adaptive wait: `sched_yield` up to 10,000 times,
//!   then sleeps).
//! - `spin`: `BackpressureStrategy::DiscardData`; a `send` that reached nobody (buffer full) is
//!   repeated with a fresh loan, spinning in our loop with no syscall, like shmq.

use std::hint::spin_loop;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::port::LoanError;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;

use crate::proto::{seq_of, stamp, ChildEnd, ParentEnd};
use crate::CAPACITY;

type Service = ipc::Service;
type Factory<const N: usize> = PubSubFactory<Service, [u8; N], ()>;

/// How a publisher behaves when the subscriber's buffer is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// iceoryx2 waits inside `send` (RetryUntilDelivered).
    Retry,
    /// `send` discards; we re-send in a spin loop (DiscardData).
    Spin,
}

impl Full {
    fn strategy(self) -> BackpressureStrategy {
        match self {
            Full::Retry => BackpressureStrategy::RetryUntilDelivered,
            Full::Spin => BackpressureStrategy::DiscardData,
        }
    }
}

/// An iceoryx2 node for one process (also the request-response rows'): errors-only logging and
/// no signal handling.
pub fn node() -> Node<Service> {
    set_log_level(LogLevel::Error); // not the "no config file, using defaults" warning
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Service>()
        .expect("creating an iceoryx2 node")
}

/// Creates (`create`) or opens the service `name` with the benchmark's settings.
fn service<const N: usize>(node: &Node<Service>, name: &str, create: bool) -> Factory<N> {
    let sname: ServiceName = name.try_into().expect("a valid iceoryx2 service name");
    let builder = node
        .service_builder(&sname)
        .publish_subscribe::<[u8; N]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(CAPACITY)
        .enable_safe_overflow(false);
    if create {
        builder.create().unwrap_or_else(|e| panic!("creating iceoryx2 service {name}: {e:?}"))
    } else {
        builder.open().unwrap_or_else(|e| panic!("opening iceoryx2 service {name}: {e:?}"))
    }
}

fn publisher<const N: usize>(f: &Factory<N>, full: Full) -> Publisher<Service, [u8; N], ()> {
    f.publisher_builder().backpressure_strategy(full.strategy()).create().expect("creating an iceoryx2 publisher")
}

fn subscriber<const N: usize>(f: &Factory<N>) -> Subscriber<Service, [u8; N], ()> {
    f.subscriber_builder().buffer_size(CAPACITY).create().expect("creating an iceoryx2 subscriber")
}

fn names(prefix: &str) -> (String, String) {
    (format!("{prefix}/ping"), format!("{prefix}/pong"))
}

/// Publishes `payload`, spinning (per `full`) until the one subscriber got it.
#[inline(always)]
fn publish<const N: usize>(p: &Publisher<Service, [u8; N], ()>, payload: &[u8; N], full: Full) {
    loop {
        let sample = match p.loan_uninit() {
            Ok(s) => s,
            // Every sample is in flight: the subscriber returns them as it reads.
            Err(LoanError::OutOfMemory) => {
                spin_loop();
                continue;
            }
            Err(e) => panic!("iceoryx2 loan: {e:?}"),
        };
        match (sample.write_payload(*payload).send().expect("iceoryx2 send"), full) {
            (1, _) => return,
            (_, Full::Spin) => spin_loop(), // the buffer was full and the sample discarded: again
            (n, Full::Retry) => panic!("iceoryx2 send reached {n} subscribers, expected 1"),
        }
    }
}

/// Process A.
pub struct IceParent<const N: usize> {
    // Fields drop in order: ports first, then services, then the node.
    tx: Publisher<Service, [u8; N], ()>,
    rx: Subscriber<Service, [u8; N], ()>,
    ping: Factory<N>,
    _pong: Factory<N>,
    _node: Node<Service>,
    buf: [u8; N],
    full: Full,
}

impl<const N: usize> IceParent<N> {
    /// Creates both services, the "ping" publisher and the "pong" subscriber (before the child
    /// exists, so no pong is published before its subscriber is there).
    pub fn create(prefix: &str, full: Full) -> Self {
        let node = node();
        let (ping_name, pong_name) = names(prefix);
        let ping = service::<N>(&node, &ping_name, true);
        let pong = service::<N>(&node, &pong_name, true);
        IceParent {
            tx: publisher(&ping, full),
            rx: subscriber(&pong),
            ping,
            _pong: pong,
            _node: node,
            buf: [0; N],
            full,
        }
    }
}

impl<const N: usize> ParentEnd for IceParent<N> {
    /// Connects the "ping" publisher to the child's subscriber, so the first ping is not
    /// published to nobody.
    fn connected(&mut self) {
        let subs = self.ping.dynamic_config().number_of_subscribers();
        assert_eq!(subs, 1, "iceoryx2 ping service: expected the child's subscriber, found {subs}");
        self.tx.update_connections().expect("iceoryx2 update_connections");
    }
    #[inline]
    fn send(&mut self, seq: u64) {
        stamp(&mut self.buf, seq);
        publish(&self.tx, &self.buf, self.full);
    }
    #[inline]
    fn recv(&mut self) -> u64 {
        loop {
            if let Some(s) = self.rx.receive().expect("iceoryx2 receive") {
                return seq_of(s.payload());
            }
            spin_loop();
        }
    }
}

/// Process B.
pub struct IceChild<const N: usize> {
    rx: Subscriber<Service, [u8; N], ()>,
    tx: Publisher<Service, [u8; N], ()>,
    _ping: Factory<N>,
    _pong: Factory<N>,
    _node: Node<Service>,
    full: Full,
}

impl<const N: usize> IceChild<N> {
    /// Opens both services, subscribes to "ping" and connects a "pong" publisher.
    pub fn open(prefix: &str, full: Full) -> Self {
        let node = node();
        let (ping_name, pong_name) = names(prefix);
        let ping = service::<N>(&node, &ping_name, false);
        let pong = service::<N>(&node, &pong_name, false);
        let rx = subscriber(&ping);
        let tx = publisher(&pong, full);
        tx.update_connections().expect("iceoryx2 update_connections");
        IceChild { rx, tx, _ping: ping, _pong: pong, _node: node, full }
    }

    #[inline(always)]
    fn next(&mut self) -> iceoryx2::sample::Sample<Service, [u8; N], ()> {
        loop {
            if let Some(s) = self.rx.receive().expect("iceoryx2 receive") {
                return s;
            }
            spin_loop();
        }
    }
}

impl<const N: usize> ChildEnd for IceChild<N> {
    #[inline]
    fn echo(&mut self) -> u64 {
        let s = self.next();
        let seq = seq_of(s.payload());
        publish(&self.tx, s.payload(), self.full);
        seq
    }
    #[inline]
    fn drain(&mut self) -> u64 {
        let s = self.next();
        seq_of(s.payload())
    }
}
