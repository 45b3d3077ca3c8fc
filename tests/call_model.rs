//! Model test of a service's call protocol (`ring::call` on heap memory): random sequences of
//! client, server and crash operations, checked step by step against a reference.
//!
//! The reference keeps, per call, what it must be: waiting for a server, handled by server `s`,
//! answered (with the bytes the server wrote), given up while handled, failed with its dead
//! server, or ended. It checks that a server only ever takes a waiting request (so each request
//! is taken once), the oldest of its client; that a client sees exactly its own call's state and
//! its own answer's bytes; that a call given up is never delivered; that a dead server's calls
//! fail and a dead client's calls end; and that every call slot comes back.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::Config;
use shmq::layout::call::{STATUS_DROPPED, STATUS_OK};
use shmq::ring::call::{self, Call, CallMem, Cancelled, Progress};
use shmq::ring::{HeapService, RingMem};

const CLIENTS: [u16; 2] = [1, 2];
const SERVERS: [u16; 2] = [3, 4];
const K: u64 = 2;
const MAX: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Requested,
    Taken(u16),
    /// Answered by the server, with `ok` (false: dropped).
    Answered(bool),
    /// Given up by its client while server `s` handled it.
    Abandoned(u16),
    Failed,
}

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Take(usize),
    Answer(usize, bool),
    Look(usize),
    Cancel(usize),
    KillServer(usize),
    KillClient(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize).prop_map(Op::Send),
        3 => (0..2usize).prop_map(Op::Take),
        3 => (0..8usize, prop::bool::weighted(0.8)).prop_map(|(i, ok)| Op::Answer(i, ok)),
        3 => (0..8usize).prop_map(Op::Look),
        1 => (0..8usize).prop_map(Op::Cancel),
        1 => (0..2usize).prop_map(Op::KillServer),
        1 => (0..2usize).prop_map(Op::KillClient),
    ]
}

/// The reference: every call not yet ended, by (client, slot index), with its number and state.
#[derive(Default)]
struct Model {
    calls: BTreeMap<u64, (u16, Call, State)>,
    next_corr: BTreeMap<u16, u64>,
}

/// The request bytes of call number `corr` of `client`, and the answer to them.
fn request(client: u16, corr: u64) -> [u8; MAX] {
    (corr << 8 | client as u64).to_le_bytes()
}
fn answer_of(req: [u8; MAX]) -> [u8; MAX] {
    (u64::from_le_bytes(req) ^ 0xA5A5).to_le_bytes()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let m = HeapService::new(4, K, MAX, MAX);
    let mut model = Model::default();
    let mut cursors = [0usize; 2];
    for op in ops {
        match op {
            Op::Send(c) => {
                let client = CLIENTS[c];
                let free =
                    (0..K).find(|&k| !model.calls.values().any(|(cl, call, _)| *cl == client && call.i % K == k));
                let corr = model.next_corr.entry(client).or_insert(call::last_corr(&m, client) + 1);
                let Some(k) = free else { continue };
                let began = call::begin(&m, client, k, *corr);
                // A slot a server still holds for a call given up is not free yet.
                let held = model
                    .calls
                    .values()
                    .any(|(cl, c, s)| *cl == client && c.i % K == k && matches!(s, State::Abandoned(_)));
                prop_assert_eq!(began.is_some(), !held);
                let Some(c) = began else { continue };
                *corr += 1;
                let req = request(client, c.corr);
                // SAFETY: the slot is ours (WRITING); MAX bytes fit.
                unsafe { std::ptr::copy_nonoverlapping(req.as_ptr(), m.payload(c.i), MAX) };
                call::submit(&m, client, c, MAX, 0).unwrap();
                model.calls.insert(c.i, (client, c, State::Requested));
            }
            Op::Take(s) => {
                let server = SERVERS[s];
                let t = call::take(&m, server, &mut cursors[s]).unwrap();
                let waiting: Vec<_> = model
                    .calls
                    .values()
                    .filter(|(_, _, st)| *st == State::Requested)
                    .map(|(cl, c, _)| (*cl, *c))
                    .collect();
                match t {
                    None => prop_assert!(waiting.is_empty(), "a waiting request was not found: {waiting:?}"),
                    Some(t) => {
                        let Some(&(client, c, st)) = model.calls.get(&t.call.i) else {
                            return Err(TestCaseError::fail(format!("took a call nobody made: {t:?}")));
                        };
                        prop_assert_eq!(
                            (t.call, t.client, st),
                            (c, client, State::Requested),
                            "took a request that does not wait"
                        );
                        let oldest = waiting.iter().filter(|(cl, _)| *cl == client).map(|(_, c)| c.corr).min();
                        prop_assert_eq!(Some(c.corr), oldest, "not the client's oldest request");
                        // SAFETY: taken by us: the request is complete.
                        let got = unsafe { std::slice::from_raw_parts(m.payload(t.call.i), t.len).to_vec() };
                        prop_assert_eq!(got, request(client, c.corr).to_vec());
                        model.calls.insert(c.i, (client, c, State::Taken(server)));
                    }
                }
            }
            Op::Answer(n, ok) => {
                let Some((&i, &(client, c, st))) = model
                    .calls
                    .iter()
                    .filter(|(_, (_, _, st))| matches!(st, State::Taken(_) | State::Abandoned(_)))
                    .nth(n % 8)
                else {
                    continue;
                };
                let server = match st {
                    State::Taken(s) | State::Abandoned(s) => s,
                    _ => unreachable!(),
                };
                let resp = answer_of(request(client, c.corr));
                let (_, out) = m.response(c.i);
                // SAFETY: the call is TAKEN (or CANCELLED) by this server: its response buffer
                // is the server's.
                unsafe { std::ptr::copy_nonoverlapping(resp.as_ptr(), out, MAX) };
                let delivered = call::answer(&m, server, c, MAX, if ok { STATUS_OK } else { STATUS_DROPPED }).unwrap();
                match st {
                    State::Taken(_) => {
                        prop_assert!(delivered);
                        model.calls.insert(i, (client, c, State::Answered(ok)));
                    }
                    _ => {
                        prop_assert!(!delivered, "a call given up was delivered");
                        model.calls.remove(&i);
                    }
                }
            }
            Op::Look(n) => {
                let Some((&i, &(client, c, st))) =
                    model.calls.iter().filter(|(_, (_, _, st))| !matches!(st, State::Abandoned(_))).nth(n % 8)
                else {
                    continue;
                };
                let p = call::progress(&m, c).unwrap();
                match (st, p) {
                    (State::Requested, Progress::Requested) => {}
                    (State::Taken(s), Progress::Taken { server, .. }) => prop_assert_eq!(s, server),
                    (State::Answered(true), Progress::Answered { len, ok: true }) => {
                        // SAFETY: answered: the response is complete and ours to read.
                        let got = unsafe { std::slice::from_raw_parts(m.response(c.i).1, len).to_vec() };
                        prop_assert_eq!(got, answer_of(request(client, c.corr)).to_vec(), "another call's answer");
                        call::finish(&m, c);
                        model.calls.remove(&i);
                    }
                    (State::Answered(false), Progress::Answered { ok: false, .. })
                    | (State::Failed, Progress::Failed) => {
                        call::finish(&m, c);
                        model.calls.remove(&i);
                    }
                    (st, p) => return Err(TestCaseError::fail(format!("call {c:?}: model {st:?}, found {p:?}"))),
                }
            }
            Op::Cancel(n) => {
                let Some((&i, &(client, c, st))) =
                    model.calls.iter().filter(|(_, (_, _, st))| !matches!(st, State::Abandoned(_))).nth(n % 8)
                else {
                    continue;
                };
                let r = call::cancel(&m, c);
                match st {
                    State::Requested => {
                        prop_assert_eq!(r, Cancelled::Withdrawn);
                        model.calls.remove(&i);
                    }
                    State::Taken(s) => {
                        prop_assert_eq!(r, Cancelled::Abandoned);
                        model.calls.insert(i, (client, c, State::Abandoned(s)));
                    }
                    _ => {
                        prop_assert_eq!(r, Cancelled::Ended);
                        model.calls.remove(&i);
                    }
                }
            }
            Op::KillServer(s) => {
                let server = SERVERS[s];
                call::scrub(&m, server);
                for (client, c, st) in model.calls.values_mut() {
                    let _ = (client, c);
                    match *st {
                        State::Taken(x) if x == server => *st = State::Failed,
                        _ => {}
                    }
                }
                model.calls.retain(|_, (_, _, st)| *st != State::Abandoned(server));
            }
            Op::KillClient(c) => {
                let client = CLIENTS[c];
                call::scrub(&m, client);
                for (cl, _, st) in model.calls.values_mut() {
                    if *cl == client {
                        if let State::Taken(s) = *st {
                            *st = State::Abandoned(s);
                        }
                    }
                }
                model.calls.retain(|_, (cl, _, st)| *cl != client || matches!(st, State::Abandoned(_)));
                // A new process takes the entry: it numbers its calls after the old ones.
                model.next_corr.remove(&client);
            }
        }
    }
    // Everything ends: servers answer what they hold, clients collect, and every slot is free.
    let held: Vec<_> = model.calls.iter().map(|(&i, &v)| (i, v)).collect();
    for (i, (client, c, st)) in held {
        match st {
            State::Taken(s) | State::Abandoned(s) => {
                call::answer(&m, s, c, 0, STATUS_OK).unwrap();
                if matches!(st, State::Taken(_)) {
                    call::finish(&m, c);
                }
            }
            State::Requested => prop_assert_eq!(call::cancel(&m, c), Cancelled::Withdrawn),
            _ => call::finish(&m, c),
        }
        model.calls.remove(&i);
        let _ = client;
    }
    for client in CLIENTS {
        for k in 0..K {
            prop_assert!(
                call::begin(&m, client, k, call::last_corr(&m, client) + 1).is_some(),
                "slot {k} of {client} not free"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn calls_match_the_reference(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
