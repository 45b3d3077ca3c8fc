//! Request-response across processes: 4 client processes call 2 server processes; one server
//! is SIGKILLed holding a request, one extra client is SIGKILLed with calls in flight.
//!
//! Every answer must match its request (a response carries its request's value, transformed,
//! so a crossed or lost answer shows); the killed server's request fails with `ServerGone`,
//! soon; every other call succeeds, on the surviving server; nobody hangs.

use std::time::{Duration, Instant};

use shmq::service::{CallError, ServiceOptions};
use shmq_test_support::{report, sleep_until_killed, ChildProc, Role, Scene};

use crate::{DIR_ENV, NAME_ENV};

/// The roles of this module's children.
pub const ROLES: &[Role] = &[("service server", server), ("service client", client), ("service hog", hog)];

const LIMIT: Duration = Duration::from_secs(240);
const WATCHDOG: Duration = Duration::from_secs(300);
const CLIENTS: u64 = 4;
/// Calls per client.
const CALLS: u64 = 250_000;
/// A request with this bit makes the server that takes it hold it and never answer.
const POISON: u64 = 1 << 63;
const CLIENT_ENV: &str = "SHMQ_TEST_CLIENT";
const CALLS_ENV: &str = "SHMQ_TEST_CALLS";

/// The answer to request value `v`.
fn answer(v: u64) -> u64 {
    v.rotate_left(17) ^ 0x5A5A_5A5A_5A5A_5A5A
}

fn open() -> shmq::service::Service {
    let dir = shmq_test_support::env(DIR_ENV);
    let name = shmq_test_support::env(NAME_ENV);
    ServiceOptions::new().dir(dir).open(&name).expect("open the service")
}

/// Answers every request with `answer(value)`; holds a poisoned one forever (until killed).
fn server() {
    let svc = open();
    let mut server = svc.server().expect("server");
    report("ready");
    loop {
        let req = server.recv().expect("recv");
        let v = u64::from_le_bytes(req[..8].try_into().expect("8 bytes"));
        if v & POISON != 0 {
            // Tell the parent which of us holds it (a file: the parent cannot wait on two
            // children's output at once).
            let dir = shmq_test_support::env(DIR_ENV);
            std::fs::write(format!("{dir}/holding.tmp"), std::process::id().to_string()).expect("write");
            std::fs::rename(format!("{dir}/holding.tmp"), format!("{dir}/holding")).expect("rename");
            sleep_until_killed(LIMIT);
        }
        req.respond(&answer(v).to_le_bytes()).expect("respond");
    }
}

/// Makes `CALLS` calls of values `client << 40 | i`, checking each answer; client 0 sends a
/// poisoned request after a quarter of them and expects it to fail with `ServerGone`.
fn client() {
    let c: u64 = shmq_test_support::env_u64(CLIENT_ENV);
    let calls: u64 = shmq_test_support::env_u64(CALLS_ENV);
    let svc = open();
    let mut client = svc.client().expect("client");
    report("ready");
    let (mut ok, mut gone) = (0u64, 0u64);
    for i in 0..calls {
        if c == 0 && i == calls / 4 {
            let t = Instant::now();
            match client.call_timeout(&(POISON | i).to_le_bytes(), LIMIT) {
                Err(CallError::ServerGone { .. }) => {
                    gone += 1;
                    report(&format!("poison failed after {} ms", t.elapsed().as_millis()));
                }
                other => panic!("the poisoned call: {other:?}"),
            }
        }
        let v = c << 40 | i;
        let r = client.call_timeout(&v.to_le_bytes(), LIMIT).unwrap_or_else(|e| panic!("call {i}: {e}"));
        let got = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
        assert_eq!(got, answer(v), "client {c} call {i}: an answer to another request");
        ok += 1;
    }
    report(&format!("done ok={ok} gone={gone}"));
}

/// Fills its call slots with requests and never collects the answers, until killed.
fn hog() {
    let svc = open();
    let mut client = svc.client().expect("client");
    let mut sent = 0;
    while client.send_request(&(7u64 << 40).to_le_bytes()).is_ok() {
        sent += 1;
    }
    report(&format!("ready {sent}"));
    sleep_until_killed(LIMIT);
}

#[test]
fn four_clients_two_servers_one_killed_holding_a_request() {
    let _heavy = shmq_test_support::heavy();
    let scene = Scene::new("service", LIMIT, WATCHDOG);
    let svc = ServiceOptions::new().dir(scene.path()).description("test").create(scene.name()).unwrap();
    let envs = |extra: Vec<(&'static str, String)>| {
        let mut e = vec![(DIR_ENV, scene.path().display().to_string()), (NAME_ENV, scene.name().to_string())];
        e.extend(extra);
        e
    };
    let mut servers: Vec<ChildProc> = (0..2).map(|_| ChildProc::spawn("service server", &envs(vec![]))).collect();
    for s in &mut servers {
        s.wait_line("ready", scene.deadline());
    }
    // A client that dies with calls in flight must not block the servers.
    let mut hog = ChildProc::spawn("service hog", &envs(vec![]));
    let held: u64 = hog.wait_line("ready", scene.deadline()).parse().unwrap();
    assert_eq!(held as usize, svc.max_in_flight());
    hog.kill();
    let started = Instant::now();
    let mut clients: Vec<ChildProc> = (0..CLIENTS)
        .map(|c| {
            ChildProc::spawn("service client", &envs(vec![(CLIENT_ENV, c.to_string()), (CALLS_ENV, CALLS.to_string())]))
        })
        .collect();
    // Whichever server takes the poisoned request holds it: kill it there.
    let holder = poll_holder(&servers, &scene);
    let killed_at = Instant::now();
    servers[holder].kill();
    let line = clients[0].wait_line("poison failed after", scene.deadline());
    let noticed = killed_at.elapsed();
    // The library checks every 10 ms; allow for a loaded CI machine.
    assert!(noticed < Duration::from_secs(2), "ServerGone {noticed:?} after the kill ({line} ms after the call)");
    let mut total = 0;
    for (c, cp) in clients.iter_mut().enumerate() {
        let done = cp.wait_line("done", scene.deadline());
        let want_gone = if c == 0 { 1 } else { 0 };
        assert_eq!(done, format!("ok={CALLS} gone={want_gone}"), "client {c}");
        total += CALLS;
        cp.expect_success(scene.deadline());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "service: {total} calls from {CLIENTS} client processes in {elapsed:?} ({:.1} us per call, 2 servers, one killed holding a request; ServerGone {noticed:?} after the kill)",
        elapsed.as_secs_f64() * 1e6 / total as f64
    );
    for s in &mut servers {
        s.kill();
    }
}

/// Waits until one of the servers says it holds the poisoned request; its index.
fn poll_holder(servers: &[ChildProc], scene: &Scene) -> usize {
    let file = scene.join("holding");
    loop {
        if let Ok(pid) = std::fs::read_to_string(&file) {
            let pid: u32 = pid.parse().expect("a pid");
            return servers.iter().position(|s| s.pid() == pid).expect("one of our servers");
        }
        assert!(Instant::now() < scene.deadline(), "no server took the poisoned request");
        std::thread::sleep(Duration::from_millis(1));
    }
}
