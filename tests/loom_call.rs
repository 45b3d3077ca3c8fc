//! Loom model checks of a service's call protocol (`ring::call`, heap memory: 2 clients with 2
//! call slots each).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_call`
//!
//! Threads make a bounded number of attempts and the main thread finishes the work after
//! joining (see `tests/loom.rs` for why). Payload bytes are checked by value.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmq::layout::call::STATUS_OK;
use shmq::ring::call::{self, CallMem, Cancelled, Progress};
use shmq::ring::{HeapService, RingMem};

const MAX: usize = 2;
const CLIENT: u16 = 1;
const SERVER: u16 = 2;
const OTHER_SERVER: u16 = 3;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

fn service() -> Arc<HeapService> {
    Arc::new(HeapService::new(4, 2, MAX, MAX))
}

/// Client `CLIENT` sends `req` in its slot `k` as call `corr`.
fn send(m: &HeapService, k: u64, corr: u64, req: [u8; MAX]) -> call::Call {
    let c = call::begin(m, CLIENT, k, corr).expect("a free slot");
    // SAFETY: the slot is ours (WRITING); MAX bytes fit.
    unsafe { std::ptr::copy_nonoverlapping(req.as_ptr(), m.payload(c.i), MAX) };
    call::submit(m, CLIENT, c, MAX, 0).unwrap();
    c
}

/// Server `me` takes a request (if one is there) and answers it with each byte + 10.
fn serve_once(m: &HeapService, me: u16) -> Option<call::Call> {
    let t = call::take(m, me, &mut 0).unwrap()?;
    // SAFETY: the call is TAKEN by us: the request is complete (Acquire in take) and its
    // response buffer ours.
    let req = unsafe { std::slice::from_raw_parts(m.payload(t.call.i), t.len).to_vec() };
    let resp: Vec<u8> = req.iter().map(|b| b + 10).collect();
    let (_, out) = m.response(t.call.i);
    // SAFETY: as above; MAX bytes fit.
    unsafe { std::ptr::copy_nonoverlapping(resp.as_ptr(), out, resp.len()) };
    call::answer(m, me, t.call, resp.len(), STATUS_OK).unwrap();
    Some(t.call)
}

/// The response bytes of an answered call.
fn response(m: &HeapService, c: call::Call, len: usize) -> Vec<u8> {
    // SAFETY: the call is ANSWERED (seen with Acquire): its response is complete and no longer
    // written.
    unsafe { std::slice::from_raw_parts(m.response(c.i).1, len).to_vec() }
}

#[test]
fn a_request_is_answered_to_its_client_with_its_bytes() {
    model(|| {
        let m = service();
        let s = {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..3 {
                    if serve_once(&m, SERVER).is_some() {
                        return true;
                    }
                    thread::yield_now();
                }
                false
            })
        };
        let c = send(&m, 0, 1, [1, 2]);
        let served = s.join().unwrap();
        if !served {
            assert_eq!(serve_once(&m, SERVER), Some(c));
        }
        match call::progress(&*m, c).unwrap() {
            Progress::Answered { len, ok: true } => assert_eq!(response(&m, c, len), [11, 12]),
            p => panic!("{p:?}"),
        }
        call::finish(&*m, c);
    });
}

#[test]
fn two_servers_take_one_request_once() {
    model(|| {
        let m = service();
        let c = send(&m, 0, 1, [3, 4]);
        let servers: Vec<_> = [SERVER, OTHER_SERVER]
            .into_iter()
            .map(|me| {
                let m = m.clone();
                thread::spawn(move || call::take(&*m, me, &mut 0).unwrap().map(|t| (me, t.call)))
            })
            .collect();
        let took: Vec<_> = servers.into_iter().filter_map(|h| h.join().unwrap()).collect();
        assert_eq!(took.len(), 1, "taken once: {took:?}");
        assert_eq!(took[0].1, c);
        assert!(matches!(call::progress(&*m, c).unwrap(), Progress::Taken { server, .. } if server == took[0].0));
    });
}

#[test]
fn a_cancel_racing_a_take_ends_the_call_once() {
    model(|| {
        let m = service();
        let c = send(&m, 0, 1, [5, 6]);
        let s = {
            let m = m.clone();
            thread::spawn(move || call::take(&*m, SERVER, &mut 0).unwrap().map(|t| t.call))
        };
        let cancelled = call::cancel(&*m, c);
        let taken = s.join().unwrap();
        match (cancelled, taken) {
            // Withdrawn before the server looked: it found nothing, and never will.
            (Cancelled::Withdrawn, None) => assert_eq!(call::take(&*m, SERVER, &mut 0).unwrap(), None),
            // Taken first: the answer is not delivered, the server frees the slot.
            (Cancelled::Abandoned, Some(t)) => {
                assert!(!call::answer(&*m, SERVER, t, 0, STATUS_OK).unwrap());
            }
            other => panic!("{other:?}"),
        }
        assert!(call::begin(&*m, CLIENT, 0, 2).is_some(), "the slot is free again");
    });
}

#[test]
fn a_dead_server_s_call_ends_once_whoever_notices() {
    model(|| {
        let m = service();
        let c = send(&m, 0, 1, [7, 8]);
        call::take(&*m, SERVER, &mut 0).unwrap().expect("taken");
        // The client judges the server dead while a process taking over its entry scrubs it.
        let scrub = {
            let m = m.clone();
            thread::spawn(move || call::scrub(&*m, SERVER))
        };
        let mut ended_by_client = false;
        if let Progress::Taken { word, .. } = call::progress(&*m, c).unwrap() {
            ended_by_client = call::server_died(&*m, c, word);
        }
        scrub.join().unwrap();
        if !ended_by_client {
            assert_eq!(call::progress(&*m, c).unwrap(), Progress::Failed);
            call::finish(&*m, c);
        }
        assert!(call::begin(&*m, CLIENT, 0, 2).is_some(), "the call ended once and the slot is free");
    });
}

#[test]
fn a_request_published_while_a_server_clears_the_bit_is_never_lost() {
    model(|| {
        let m = service();
        send(&m, 0, 1, [1, 1]);
        let s = {
            let m = m.clone();
            // One look, which clears the client's bit and scans; it may or may not see the
            // second request.
            thread::spawn(move || call::take(&*m, SERVER, &mut 0).unwrap().map(|t| t.call))
        };
        let c2 = send(&m, 1, 2, [2, 2]);
        let first = s.join().unwrap();
        // Whatever the first look took, what is left is found by the next looks.
        let mut taken: Vec<_> = first.into_iter().collect();
        while let Some(t) = call::take(&*m, OTHER_SERVER, &mut 0).unwrap() {
            taken.push(t.call);
        }
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert!(taken.contains(&c2));
    });
}
