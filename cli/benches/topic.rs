//! Topics across processes: fan-out throughput to 1, 2 and 4 subscribers, and the publish-to-
//! receive round trip, beside the shared-memory floor measured in the same run.
//!
//! - `fanout/<n>_subscribers`: 64-byte messages published to a topic with `n` reliable
//!   subscriber processes; every subscriber receives and checks every message. Throughput is
//!   messages published per second (each delivered `n` times, written once).
//! - `round_trip/topic`: a message published on `ping`, received by a peer process that
//!   publishes it on `pong`, received back; `round_trip/floor`: two atomics on shared memory.
//!
//! In the round trip both sides spin; in the fan-out, publisher and subscribers yield while
//! waiting (up to 5 processes share the 2 cores these machines have). After criterion, a summary on stderr gives the ratios the topic issue asks
//! about: fan-out to 4 subscribers as a share of 1-subscriber throughput (target >= 50%), and
//! round-trip p50 against the floor (target <= 1.5x), from 100,000 timed round trips each.
//!
//! ```text
//! cargo bench --bench topic
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use shmq::{Topic, TopicOptions, WaitStrategy};
use shmq_cli::baseline::{floor_round_trips, percentile};

const CHILD_ENV: &str = "SHMQ_TOPIC_BENCH_CHILD";
const SIZE: usize = 64;

fn options(dir: &str) -> TopicOptions {
    TopicOptions::new().dir(dir).capacity(4096).max_msg_size(SIZE).wait(WaitStrategy::Spin)
}

/// Fan-out subscribers yield while waiting: with up to 5 processes on the 2 cores these
/// machines have, spinning subscribers would starve the publisher and measure the scheduler.
fn subscriber_options(dir: &str, role: &str) -> TopicOptions {
    options(dir).wait(if role == "sub" { WaitStrategy::Yield } else { WaitStrategy::Spin })
}

fn stamp(buf: &mut [u8; SIZE], seq: u64) {
    for chunk in buf.chunks_exact_mut(8) {
        chunk.copy_from_slice(&seq.to_le_bytes());
    }
}

fn check(buf: &[u8], seq: u64) {
    assert_eq!(buf.len(), SIZE, "message length");
    for chunk in buf.chunks_exact(8) {
        assert_eq!(u64::from_le_bytes(chunk.try_into().unwrap()), seq, "payload of message {seq}");
    }
}

/// A child process: `sub DIR TOPIC` receives and checks batches; `echo DIR` answers pings.
/// It reads a count per batch from stdin and writes one line per finished batch.
fn child(role: &str) {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[args.len() - 2];
    let topic_name = &args[args.len() - 1];
    let topic = subscriber_options(dir, role).open(topic_name).expect("open topic");
    let mut sub = topic.subscriber().build().expect("subscribe");
    let mut reply = (role == "echo").then(|| options(dir).open("pong").expect("open pong").publisher().unwrap());
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    let mut next = 0u64;
    let mut buf = [0u8; SIZE];
    for line in std::io::stdin().lock().lines() {
        let n: u64 = line.unwrap().trim().parse().expect("batch size");
        for _ in 0..n {
            let m = sub.recv_into(&mut buf).expect("receive");
            check(&buf[..m.len], next);
            if let Some(p) = reply.as_mut() {
                p.send(&buf[..m.len]).expect("reply");
            }
            next += 1;
        }
        writeln!(out, "done").unwrap();
    }
}

/// Child processes subscribed to a topic, driven in batches.
struct Peers {
    children: Vec<(Child, ChildStdin, std::io::Lines<BufReader<ChildStdout>>)>,
}

impl Peers {
    fn start(role: &str, dir: &str, topic: &str, n: usize) -> Peers {
        let exe = std::env::current_exe().unwrap();
        let children = (0..n)
            .map(|_| {
                let mut c = Command::new(&exe)
                    .args([dir, topic])
                    .env(CHILD_ENV, role)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn peer");
                let stdin = c.stdin.take().unwrap();
                let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
                assert_eq!(lines.next().unwrap().unwrap(), "ready");
                (c, stdin, lines)
            })
            .collect();
        Peers { children }
    }

    fn begin(&mut self, n: u64) {
        for (_, stdin, _) in &mut self.children {
            writeln!(stdin, "{n}").unwrap();
        }
    }

    fn wait(&mut self) {
        for (_, _, lines) in &mut self.children {
            assert_eq!(lines.next().unwrap().unwrap(), "done");
        }
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for (c, _, _) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Publishes `n` messages starting at `*seq` to the topic `peers` subscribe to.
fn fanout(topic: &Topic, peers: &mut Peers, seq: &mut u64, n: u64) -> Duration {
    let mut p = topic.publisher().unwrap();
    let mut buf = [0u8; SIZE];
    peers.begin(n);
    let t = Instant::now();
    for _ in 0..n {
        stamp(&mut buf, *seq);
        p.send(&buf).unwrap();
        *seq += 1;
    }
    peers.wait();
    t.elapsed()
}

/// One round trip: publish on ping, wait for the echo on pong.
fn round_trips(ping: &Topic, pong_sub: &mut shmq::Subscriber, peer: &mut Peers, seq: &mut u64, n: u64) -> Vec<u64> {
    let mut p = ping.publisher().unwrap();
    let mut buf = [0u8; SIZE];
    let mut back = [0u8; SIZE];
    let mut samples = Vec::with_capacity(n as usize);
    peer.begin(n);
    for _ in 0..n {
        stamp(&mut buf, *seq);
        let t = Instant::now();
        p.send(&buf).unwrap();
        let m = pong_sub.recv_into(&mut back).unwrap();
        samples.push(t.elapsed().as_nanos() as u64);
        check(&back[..m.len], *seq);
        *seq += 1;
    }
    peer.wait();
    samples
}

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child(&role);
        return;
    }
    let tmp = tempfile::Builder::new().prefix("shmq-topic-bench-").tempdir_in("/dev/shm").unwrap();
    let dir = tmp.path().to_str().unwrap().to_string();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();

    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 2, 4] {
        let name = format!("fan{n}");
        // The publisher yields too while gated: on 2 cores, a spinning publisher would take
        // the CPU the subscribers it waits for need.
        let topic = options(&dir).wait(WaitStrategy::Yield).create(&name).unwrap();
        let mut peers = Peers::start("sub", &dir, &name, n);
        let mut seq = 0;
        fanout(&topic, &mut peers, &mut seq, 1000); // check it works before timing
        g.bench_function(BenchmarkId::new(format!("{n}_subscribers"), SIZE), |b| {
            b.iter_custom(|iters| fanout(&topic, &mut peers, &mut seq, iters))
        });
    }
    g.finish();

    let ping = options(&dir).create("ping").unwrap();
    let pong = options(&dir).create("pong").unwrap();
    let mut pong_sub = pong.subscriber().build().unwrap();
    let mut echo = Peers::start("echo", &dir, "ping", 1);
    let mut seq = 0;
    round_trips(&ping, &mut pong_sub, &mut echo, &mut seq, 1000);
    let mut g = c.benchmark_group("round_trip");
    g.bench_function("topic", |b| {
        b.iter_custom(|iters| {
            Duration::from_nanos(round_trips(&ping, &mut pong_sub, &mut echo, &mut seq, iters).iter().sum())
        })
    });
    g.bench_function("floor", |b| {
        b.iter_custom(|iters| Duration::from_nanos(floor_round_trips(iters as usize, SIZE).unwrap().iter().sum()))
    });
    g.finish();

    // Summary: ratios from one run.
    let mut tput = Vec::new();
    for n in [1usize, 4] {
        let name = format!("sum{n}");
        let topic = options(&dir).wait(WaitStrategy::Yield).create(&name).unwrap();
        let mut peers = Peers::start("sub", &dir, &name, n);
        let mut s = 0;
        fanout(&topic, &mut peers, &mut s, 10_000);
        let count = 1_000_000;
        tput.push(count as f64 / fanout(&topic, &mut peers, &mut s, count).as_secs_f64());
    }
    let mut topic_rtt = round_trips(&ping, &mut pong_sub, &mut echo, &mut seq, 100_000);
    let mut floor_rtt = floor_round_trips(100_000, SIZE).unwrap();
    let (t50, f50) = (percentile(&mut topic_rtt, 50.0), percentile(&mut floor_rtt, 50.0));
    eprintln!("\ntopic summary (64-byte messages, both sides spinning, one run):");
    eprintln!("  fan-out 1 subscriber : {:>12.0} msg/s", tput[0]);
    eprintln!(
        "  fan-out 4 subscribers: {:>12.0} msg/s  ({:.0}% of 1; target >= 50%)",
        tput[1],
        100.0 * tput[1] / tput[0]
    );
    eprintln!(
        "  round trip p50/p99/p99.9: topic {t50}/{}/{} ns, floor {f50}/{}/{} ns; topic/floor p50 = {:.2}x (target <= 1.5x)",
        percentile(&mut topic_rtt, 99.0),
        percentile(&mut topic_rtt, 99.9),
        percentile(&mut floor_rtt, 99.0),
        percentile(&mut floor_rtt, 99.9),
        t50 as f64 / f50 as f64
    );
    c.final_summary();
}
