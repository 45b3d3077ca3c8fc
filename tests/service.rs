//! Request-response in one process: calls, pipelining, the errors of each failure, bad input.
//! (Servers and clients in other processes, killed or not: `tests/processes/service.rs`.)

use std::time::{Duration, Instant};

use shmq::service::{CallError, ServeError, Server, ServiceOptions};
use shmq::{OpenError, QueueOptions, WaitStrategy};

const LONG: Duration = Duration::from_secs(20);

fn opts(dir: &std::path::Path) -> ServiceOptions {
    ServiceOptions::new().dir(dir)
}

/// A server thread answering each request with its bytes upper-cased and the request's id
/// appended, until `n` requests are served.
fn upper_server(mut server: Server, n: usize) -> std::thread::JoinHandle<Server> {
    std::thread::spawn(move || {
        for _ in 0..n {
            let req = server.recv_timeout(LONG).expect("a request");
            let mut out = req.to_ascii_uppercase();
            out.extend_from_slice(&req.id().value().to_le_bytes());
            req.respond(&out).expect("respond");
        }
        server
    })
}

fn expect_upper(req: &[u8], id: shmq::service::RequestId, resp: &[u8]) {
    let mut want = req.to_ascii_uppercase();
    want.extend_from_slice(&id.value().to_le_bytes());
    assert_eq!(resp, &want[..]);
}

#[test]
fn a_call_gets_its_own_answer_and_calls_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let svc = opts(dir.path()).max_in_flight(8).create("upper").unwrap();
    assert_eq!((svc.max_in_flight(), svc.max_request_size(), svc.max_response_size()), (8, 256, 256));
    let server = upper_server(svc.server().unwrap(), 1000 + 400);
    let mut client = svc.client().unwrap();
    for i in 0..1000 {
        let req = format!("call {i}");
        let resp = client.call(req.as_bytes()).unwrap();
        let id = resp.id();
        expect_upper(req.as_bytes(), id, &resp);
    }
    // Pipelined: up to 8 in flight, answers matched by id.
    let mut sent = std::collections::HashMap::new();
    let mut done = 0;
    let mut i = 0;
    while done < 400 {
        while i < 400 && client.in_flight() < 8 {
            let req = format!("pipelined {i}");
            sent.insert(client.send_request(req.as_bytes()).unwrap(), req);
            i += 1;
        }
        let resp = client.recv_response().unwrap();
        let req = sent.remove(&resp.id()).expect("an answer to a request we sent, once");
        expect_upper(req.as_bytes(), resp.id(), &resp);
        done += 1;
    }
    assert!(sent.is_empty());
    assert_eq!(client.try_recv_response().unwrap_err(), CallError::Empty);
    server.join().unwrap();
}

#[test]
fn a_call_with_no_server_fails_at_once_and_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let svc = opts(dir.path()).create("nobody").unwrap();
    assert!(!svc.has_server());
    let mut client = svc.client().unwrap();
    let t = Instant::now();
    let e = client.call(b"anyone?").unwrap_err();
    assert_eq!(e, CallError::ServiceUnavailable { service: "nobody".into() });
    assert!(t.elapsed() < Duration::from_millis(100), "{:?}", t.elapsed());
    assert!(e.to_string().contains("no live server"), "{e}");
    // The request was withdrawn: a server that starts now finds nothing.
    let mut server = svc.server().unwrap();
    assert_eq!(server.try_recv().unwrap_err(), ServeError::Empty);
    assert_eq!(client.in_flight(), 0);
}

#[test]
fn a_dropped_request_a_timeout_and_full_flight_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let svc = opts(dir.path()).max_in_flight(2).create("picky").unwrap();
    let mut server = svc.server().unwrap();
    let mut client = svc.client().unwrap();
    // Dropped without an answer.
    let id = client.send_request(b"ignore me").unwrap();
    drop(server.recv_timeout(LONG).unwrap());
    assert_eq!(client.recv_response().unwrap_err(), CallError::Dropped { id });
    // A loaned response dropped unsent is dropped too.
    let id = client.send_request(b"again").unwrap();
    let loan = server.recv_timeout(LONG).unwrap().loan_response();
    drop(loan);
    assert_eq!(client.recv_response().unwrap_err(), CallError::Dropped { id });
    // Timeout: the call is given up; its late answer is never delivered, the slot comes back.
    let t = Instant::now();
    assert_eq!(client.call_timeout(b"slow", Duration::from_millis(50)).unwrap_err(), CallError::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(server.try_recv().unwrap_err(), ServeError::Empty, "withdrawn: no server had taken it");
    let id = client.send_request(b"slow, taken").unwrap();
    let req = server.recv_timeout(LONG).unwrap();
    assert_eq!(req.id(), id);
    assert!(client.cancel(id));
    req.respond(b"too late").unwrap();
    assert_eq!(client.try_recv_response().unwrap_err(), CallError::Empty);
    // Two in flight at most per process (all its clients together).
    let mut other = svc.client().unwrap();
    client.send_request(b"1").unwrap();
    other.send_request(b"2").unwrap();
    assert_eq!(client.send_request(b"3").unwrap_err(), CallError::InFlightFull { max: 2 });
    for _ in 0..2 {
        let r = server.recv_timeout(LONG).unwrap();
        let body = r.to_vec();
        r.respond(&body).unwrap();
    }
    assert_eq!(&client.recv_response().unwrap()[..], b"1");
    assert_eq!(&other.recv_response().unwrap()[..], b"2");
}

#[test]
fn loans_write_requests_and_responses_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let svc = opts(dir.path()).max_request_size(64).max_response_size(32).create("loans").unwrap();
    let mut server = svc.server().unwrap();
    let mut client = svc.client().unwrap();
    let mut loan = client.loan_request().unwrap();
    assert_eq!(loan.len(), 64);
    loan[..5].copy_from_slice(b"hello");
    let id = loan.send_kind(9, 5).unwrap();
    let req = server.recv_timeout(LONG).unwrap();
    assert_eq!((&req[..], req.kind(), req.id(), req.client_pid()), (&b"hello"[..], 9, id, std::process::id()));
    let mut out = req.loan_response();
    assert_eq!(out.len(), 32);
    out[..3].copy_from_slice(b"hi!");
    out.send(3).unwrap();
    let resp = client.recv_response().unwrap();
    assert_eq!((&resp[..], resp.id()), (&b"hi!"[..], id));
    drop(resp);
    // A loan dropped unsent sends nothing and gives its slot back.
    drop(client.loan_request().unwrap());
    assert_eq!(server.try_recv().unwrap_err(), ServeError::Empty);
    assert_eq!(client.in_flight(), 0);
}

#[test]
fn bad_input_gets_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let svc = opts(dir.path())
        .max_request_size(8)
        .max_response_size(4)
        .version(3)
        .description("tiny")
        .create("tiny")
        .unwrap();
    assert_eq!((svc.version(), svc.description()), (3, "tiny"));
    let mut client = svc.client().unwrap();
    let mut server = svc.server().unwrap();
    assert_eq!(client.call(b"123456789").unwrap_err(), CallError::RequestTooLarge { len: 9, max: 8 });
    let id = client.send_request(b"12345678").unwrap();
    let req = server.recv_timeout(LONG).unwrap();
    let loan = req.loan_response();
    assert_eq!(loan.send(5).unwrap_err(), ServeError::ResponseTooLarge { len: 5, max: 4 });
    assert_eq!(client.recv_response().unwrap_err(), CallError::Dropped { id });
    // Unknown service, another version, another kind of segment, a bad description.
    match opts(dir.path()).open("nope").unwrap_err() {
        OpenError::NotFound { name, .. } => assert_eq!(name, "nope"),
        e => panic!("{e}"),
    }
    match opts(dir.path()).version(4).open("tiny").unwrap_err() {
        OpenError::Incompatible { what, expected, found } => {
            assert_eq!((what, expected.as_str(), found.as_str()), ("service version", "4", "3"))
        }
        e => panic!("{e}"),
    }
    assert!(opts(dir.path()).version(3).open("tiny").is_ok());
    match opts(dir.path()).max_in_flight(3).open("tiny").unwrap_err() {
        OpenError::Incompatible { what, expected, found } => {
            assert_eq!((what, expected.as_str(), found.as_str()), ("max in flight", "4", "16"))
        }
        e => panic!("{e}"),
    }
    QueueOptions::new().dir(dir.path()).create("a-queue").unwrap();
    match opts(dir.path()).open("a-queue").unwrap_err() {
        OpenError::Incompatible { what: "kind", found, .. } => assert_eq!(found, "mpmc"),
        e => panic!("{e}"),
    }
    assert!(matches!(opts(dir.path()).description("x".repeat(257)).create("long"), Err(OpenError::InvalidConfig(_))));
    assert!(matches!(opts(dir.path()).max_in_flight(65).create("wide"), Err(OpenError::InvalidConfig(_))));
}

#[test]
fn two_servers_share_the_requests_and_each_is_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    let svc = opts(dir.path()).wait(WaitStrategy::Block).create("shared").unwrap();
    const N: u64 = 20_000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let servers: Vec<_> = (0..2)
        .map(|_| {
            let mut server = svc.server().unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut served = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match server.recv_timeout(Duration::from_millis(20)) {
                        Ok(req) => {
                            let v = u64::from_le_bytes(req[..8].try_into().unwrap());
                            req.respond(&(v * 2).to_le_bytes()).unwrap();
                            served += 1;
                        }
                        Err(ServeError::Timeout) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                served
            })
        })
        .collect();
    let clients: Vec<_> = (0..2u64)
        .map(|c| {
            let mut client = svc.client().unwrap();
            std::thread::spawn(move || {
                for i in 0..N / 2 {
                    let v = c << 32 | i;
                    let r = client.call(&v.to_le_bytes()).unwrap();
                    assert_eq!(u64::from_le_bytes(r[..8].try_into().unwrap()), v * 2);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served: Vec<u64> = servers.into_iter().map(|s| s.join().unwrap()).collect();
    assert_eq!(served.iter().sum::<u64>(), N, "{served:?}");
}

/// A process writes garbage into a service's memory (call states, lengths, responses, the
/// pending bitmap, the description) while a client calls and a server serves (20,000 writes):
/// every call ends
/// with a result or a typed error in time, and nothing panics or hangs.
#[test]
fn hostile_bytes_in_a_service_give_errors_never_a_panic_or_a_hang() {
    use shmq::layout::{call, slot};
    use shmq_test_support::{RawMap, Rng};
    let dir = tempfile::tempdir().unwrap();
    let svc = opts(dir.path()).max_in_flight(4).max_request_size(16).max_response_size(16).create("hostile").unwrap();
    let seg = shmq::segment::Segment::open(dir.path(), "hostile", &Default::default(), Duration::from_secs(1)).unwrap();
    let o = seg.offsets();
    let sv = o.service.unwrap();
    let map = std::sync::Arc::new(RawMap::open(svc.path()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let mut server = svc.server().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answered = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(req) = server.recv_timeout(Duration::from_millis(5)) {
                    let n = req.len().min(16);
                    if req
                        .respond_with(|r, out| {
                            out[..n].copy_from_slice(&r[..n]);
                            n
                        })
                        .is_ok()
                    {
                        answered += 1;
                    }
                }
            }
            answered
        })
    };
    // The hostile writer: one or two writes among the service's parts, then a pause.
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, map, written) = (stop.clone(), map.clone(), written.clone());
        let slots = seg.config().capacity;
        std::thread::spawn(move || {
            let mut rng = Rng::new(0x5eed);
            let mut writes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = rng.below(slots);
                match rng.below(6) {
                    0 => {
                        let tags = [call::FREE, call::WRITING, call::REQUESTED, call::TAKEN, call::ANSWERED, 13, 15];
                        let w = slot::pack(rng.below(8), *rng.pick(&tags), rng.below(4096) as u16);
                        map.store(o.slots + i * o.stride, 8, w);
                    }
                    1 => map.store(o.slots + i * o.stride + 8, 4, *rng.pick(&[0, 16, 17, u32::MAX as u64])),
                    2 => map.store(sv.responses + i * sv.response_stride, 4, *rng.pick(&[0, 16, 17, u32::MAX as u64])),
                    3 => map.store(sv.responses + i * sv.response_stride + 4, 4, rng.below(4)),
                    4 => map.store(sv.pending, 8, rng.next_u64()),
                    _ => map.store(sv.info + 4, 4, *rng.pick(&[0, 256, 257, u32::MAX as u64])),
                }
                writes += 1;
                written.store(writes, std::sync::atomic::Ordering::Relaxed);
                if writes % 4 == 0 {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
            writes
        })
    };
    let mut client = svc.client().unwrap();
    let started = Instant::now();
    let (mut ok, mut errors) = (0u64, std::collections::BTreeMap::<String, u64>::new());
    // At least 3,000 calls, and on until 20,000 hostile writes were made.
    let mut round = 0u64;
    while round < 3000 || written.load(std::sync::atomic::Ordering::Relaxed) < 20_000 {
        round += 1;
        let body = round.to_le_bytes();
        match client.call_timeout(&body, Duration::from_millis(20)) {
            Ok(r) => {
                assert!(r.len() <= 16);
                ok += 1;
            }
            Err(e) => {
                *errors.entry(format!("{e:?}").split([' ', '{', '(']).next().unwrap().to_string()).or_default() += 1
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "hung at round {round}");
    }
    // Status and listing read the garbage too.
    let st = shmq::status::Status::read(dir.path(), "hostile").unwrap();
    assert!(st.service.is_some());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = server.join().expect("the server never panicked");
    let writes = writer.join().unwrap();
    eprintln!(
        "hostile: {writes} hostile writes; {ok} calls answered, errors {errors:?}; the server answered {answered}"
    );
    assert!(ok > 0, "some calls still get through");
}
