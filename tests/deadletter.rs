//! Rejection, redelivery and dead letters in one process (the multi-process cases, consumers
//! SIGKILLed holding or rejecting messages, are in `tests/processes/deadletter.rs`; the crash
//! windows of a move are unit tests of `ring::deadletter`).

use shmq::deadletter::{DeadLetter, RejectError, Rejected};
use shmq::{OpenError, QueueOptions, TryRecvError};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_poison_message_is_dead_after_exactly_n_deliveries_and_good_ones_keep_their_order() {
    let d = dir();
    let q = QueueOptions::new().dir(d.path()).capacity(32).max_deliveries(3).create("work").unwrap();
    assert_eq!(q.max_deliveries(), Some(3));
    assert_eq!(q.dead_letter_link().as_deref(), Some("work.dlq"));
    let mut tx = q.producer().unwrap();
    for i in 0..5u8 {
        tx.send(&[b'g', i]).unwrap();
    }
    tx.send_kind(77, b"poison").unwrap();
    for i in 5..10u8 {
        tx.send(&[b'g', i]).unwrap();
    }
    // Two consumers take turns; whoever gets the poison message rejects it.
    let (mut a, mut b) = (q.consumer().unwrap(), q.consumer().unwrap());
    let (mut good, mut poison_deliveries, mut outcome) = (Vec::new(), Vec::new(), Vec::new());
    for turn in 0.. {
        let c = if turn % 2 == 0 { &mut a } else { &mut b };
        let m = match c.try_recv_ref() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        };
        if &*m == b"poison" {
            assert_eq!(m.kind(), 77);
            poison_deliveries.push(m.delivery().unwrap());
            outcome.push(m.reject(&format!("cannot parse (turn {turn})")).unwrap());
        } else {
            assert_eq!(m.delivery(), Some(1));
            good.push(m[1]);
        }
    }
    assert_eq!(good, (0..10).collect::<Vec<u8>>(), "good messages, once each, in order");
    assert_eq!(poison_deliveries, [1, 2, 3]);
    assert_eq!(outcome[..2], [Rejected::Redelivered { failed: 1 }, Rejected::Redelivered { failed: 2 }]);
    assert!(matches!(outcome[2], Rejected::DeadLettered { .. }));
    // In the dead-letter queue, once, with its reason and count; nothing left in the queue.
    let letters = q.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!((&l.payload[..], l.kind, l.deliveries), (&b"poison"[..], 77, 3));
    assert!(l.reason.starts_with("cannot parse"), "{}", l.reason);
    assert!(l.first_failed_ns > 0 && l.dead_lettered_ns >= l.first_failed_ns);
    assert_eq!(q.dead_letters().unwrap().len(), 1, "listing consumes nothing");
    let dlq = q.dead_letter_queue().unwrap().unwrap();
    assert!(dlq.is_dead_letter_queue());
    assert_eq!(dlq.dead_letter_link().as_deref(), Some("work"));
    let mut rx = dlq.consumer().unwrap();
    let m = rx.try_recv_ref().unwrap();
    assert_eq!(DeadLetter::parse(&m).unwrap().payload, b"poison");
    drop(m);
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
    assert!(matches!(a.try_recv_ref(), Err(TryRecvError::Empty)));
    let c = q.counters();
    assert_eq!(c.lost_by_crash, 0);
}

#[test]
fn without_max_deliveries_a_rejected_message_comes_back_uncounted() {
    let d = dir();
    let q = QueueOptions::new().dir(d.path()).capacity(4).create("plain").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    tx.send(b"a").unwrap();
    tx.send(b"b").unwrap();
    for _ in 0..5 {
        let m = rx.try_recv_ref().unwrap();
        assert_eq!((&*m, m.delivery()), (&b"a"[..], None));
        assert_eq!(m.reject("later").unwrap(), Rejected::Redelivered { failed: 0 });
    }
    assert_eq!(&*rx.try_recv_ref().unwrap(), b"a");
    assert_eq!(&*rx.try_recv_ref().unwrap(), b"b");
    assert!(q.dead_letter_queue().unwrap().is_none());
    assert!(q.dead_letters().unwrap().is_empty());
    // A rejected message is unconsumed: it holds its slot (the queue of 4 takes 3 more).
    tx.send(b"c").unwrap();
    let m = rx.try_recv_ref().unwrap();
    m.reject("x").unwrap();
    for i in 0..3u8 {
        tx.try_send(&[i]).unwrap();
    }
    assert!(tx.try_send(b"full").is_err());
}

#[test]
fn an_spsc_queue_delivers_a_rejected_message_again_by_not_consuming_it() {
    let d = dir();
    let q = QueueOptions::new().dir(d.path()).spsc().capacity(4).create("s").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    tx.send(b"a").unwrap();
    rx.try_recv_ref().unwrap().reject("again").unwrap();
    assert_eq!(&*rx.try_recv_ref().unwrap(), b"a");
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
    let e = QueueOptions::new().dir(d.path()).spsc().max_deliveries(2).create("s2").unwrap_err();
    assert!(matches!(e, OpenError::InvalidConfig(ref s) if s.contains("MPMC")), "{e}");
}

#[test]
fn a_full_dead_letter_queue_puts_the_message_back_and_it_moves_once_there_is_room() {
    let d = dir();
    let q = QueueOptions::new().dir(d.path()).capacity(2).max_deliveries(1).create("tight").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    for p in [b"p1", b"p2"] {
        tx.send(p).unwrap();
        assert!(matches!(rx.try_recv_ref().unwrap().reject("bad").unwrap(), Rejected::DeadLettered { .. }));
    }
    tx.send(b"p3").unwrap();
    let e = rx.try_recv_ref().unwrap().reject("bad").unwrap_err();
    assert!(matches!(e, RejectError::DeadLetterQueueFull { ref name, .. } if name == "tight.dlq"), "{e}");
    assert!(e.to_string().contains("shmq dlq tight"), "{e}");
    // Still in the queue, not handed out again while the DLQ is full...
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
    // ... and moved as soon as a letter is taken out.
    let dlq = q.dead_letter_queue().unwrap().unwrap();
    let mut letters = dlq.consumer().unwrap();
    drop(letters.try_recv_ref().unwrap());
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
    let names: Vec<_> = q.dead_letters().unwrap().into_iter().map(|l| l.payload).collect();
    assert_eq!(names, [b"p2".to_vec(), b"p3".to_vec()]);
    assert!(q.dead_letters().unwrap()[1].reason.contains("full"), "{:?}", q.dead_letters().unwrap()[1].reason);
}

#[test]
fn dead_letters_go_back_with_requeue_and_producers_cannot_write_a_dead_letter_queue() {
    let d = dir();
    let q = QueueOptions::new().dir(d.path()).capacity(8).max_deliveries(1).create("jobs").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    for i in 0..3u8 {
        tx.send_kind(i as u32, &[i]).unwrap();
        rx.try_recv_ref().unwrap().reject("no").unwrap();
    }
    let dlq = q.dead_letter_queue().unwrap().unwrap();
    let e = dlq.producer().unwrap_err();
    assert!(matches!(e, OpenError::Incompatible { .. }) && e.to_string().contains("requeue"), "{e}");
    assert_eq!(q.requeue_dead_letters(2).unwrap(), 2);
    assert_eq!(q.dead_letters().unwrap().len(), 1);
    assert_eq!(q.requeue_dead_letters(usize::MAX).unwrap(), 1);
    for i in 0..3u8 {
        let m = rx.try_recv_ref().unwrap();
        assert_eq!((&*m, m.kind(), m.delivery()), (&[i][..], i as u32, Some(1)), "requeued in order, counted afresh");
    }
}

#[test]
fn options_and_openers_check_dead_letter_settings() {
    let d = dir();
    let o = || QueueOptions::new().dir(d.path());
    assert!(matches!(o().max_deliveries(0).create("a"), Err(OpenError::InvalidConfig(_))));
    assert!(matches!(o().dead_letter_queue("x").create("a"), Err(OpenError::InvalidConfig(_))));
    assert!(matches!(o().max_deliveries(2).dead_letter_queue("a").create("a"), Err(OpenError::InvalidConfig(_))));
    assert!(matches!(
        o().max_deliveries(2).dead_letter_queue("bad/name").create("a"),
        Err(OpenError::InvalidConfig(_))
    ));
    let long = "x".repeat(199);
    assert!(matches!(o().max_deliveries(2).create(&long), Err(OpenError::InvalidConfig(_))), "NAME.dlq too long");
    o().max_deliveries(2).dead_letter_queue("a.dead").create("a").unwrap();
    assert!(matches!(o().max_deliveries(3).open("a"), Err(OpenError::Incompatible { what: "max deliveries", .. })));
    let q = o().open("a").unwrap();
    assert_eq!((q.max_deliveries(), q.dead_letter_link().as_deref()), (Some(2), Some("a.dead")));
    // A queue already under the dead-letter queue's name that is not its dead-letter queue.
    o().max_deliveries(2).create("b").unwrap();
    o().create("b.dlq").unwrap();
    let e = o().open("b").unwrap().consumer().unwrap_err();
    assert!(matches!(e, OpenError::Incompatible { what: "dead-letter queue", .. }), "{e}");
}

/// A hostile writer scribbles on everything dead letters add (slot states RETRY and MOVING,
/// delivery counts, the move lock and its record, the retry hint, the dead-letter queue's
/// slots) while a producer sends and a consumer rejects and moves: every call ends with a
/// result or a typed error in time; nothing panics or hangs.
#[test]
fn hostile_bytes_in_dead_letter_parts_give_errors_never_a_panic_or_a_hang() {
    use shmq::layout::{slot, CONTROL_OFFSET, LINE};
    use shmq_test_support::{RawMap, Rng};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let d = dir();
    let q = QueueOptions::new().dir(d.path()).capacity(8).max_msg_size(16).max_deliveries(2).create("hostile").unwrap();
    let dlq = q.dead_letter_queue().unwrap().unwrap();
    let open =
        |name: &str| shmq::segment::Segment::open(d.path(), name, &Default::default(), Duration::from_secs(1)).unwrap();
    let (seg, dseg) = (open("hostile"), open("hostile.dlq"));
    let (o, od) = (seg.offsets(), dseg.offsets());
    let dl = o.dead_letters.unwrap();
    let map = Arc::new(RawMap::open(q.path()));
    let dmap = Arc::new(RawMap::open(dlq.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, map, dmap, written) = (stop.clone(), map.clone(), dmap.clone(), written.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(0xdead);
            let tags = [slot::IDLE, slot::READING, slot::RETRY, slot::MOVING, slot::WRITING, 15];
            let retry_hint = CONTROL_OFFSET as u64 + 4 * LINE as u64 + 48;
            while !stop.load(Relaxed) {
                let i = rng.below(8);
                let any = rng.next_u64();
                match rng.below(9) {
                    0 => map.store(
                        o.slots + i * o.stride,
                        8,
                        slot::pack(rng.below(40), *rng.pick(&tags), rng.below(8) as u16),
                    ),
                    1 => map.store(dl.deliveries.unwrap() + i * 32 + rng.below(4) * 8, 8, any),
                    2 => map.store(dl.info, 8, *rng.pick(&[0, any, 0xFFFF, (1 << 16) | 3])),
                    3 => map.store(dl.info + 8 + rng.below(5) * 8, 8, any),
                    4 => map.store(dl.info + 40, 8, *rng.pick(&[0, 200, 201, u32::MAX as u64, any])),
                    5 => map.store(retry_hint, 8, *rng.pick(&[0, 1 << 32, any])),
                    6 => dmap.store(od.slots + i * od.stride, 8, slot::pack(rng.below(40), *rng.pick(&tags), 0)),
                    7 => dmap.store(od.slots + i * od.stride + 8, 4, *rng.pick(&[0, 255, 300, u32::MAX as u64])),
                    _ => dmap.store(od.payloads + i * od.payload_stride, 8, any),
                }
                let n = written.fetch_add(1, Relaxed) + 1;
                if n % 4 == 0 {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
        })
    };
    let producer = {
        let (q, stop) = (q.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut tx = q.producer().unwrap();
            let (mut sent, mut errors) = (0u64, 0u64);
            for i in 0u64.. {
                if stop.load(Relaxed) {
                    break;
                }
                match tx.send_timeout(&i.to_le_bytes(), Duration::from_millis(5)) {
                    Ok(()) => sent += 1,
                    Err(_) => errors += 1,
                }
            }
            (sent, errors)
        })
    };
    let mut rx = q.consumer().unwrap();
    let mut letters = dlq.consumer().unwrap();
    let started = Instant::now();
    let (mut got, mut errors) = (0u64, std::collections::BTreeMap::<String, u64>::new());
    let mut count = |e: String| *errors.entry(e.split([' ', '{', '(']).next().unwrap().to_string()).or_default() += 1;
    let mut round = 0u64;
    while round < 3000 || written.load(Relaxed) < 20_000 {
        round += 1;
        match rx.recv_ref_timeout(Duration::from_millis(5)) {
            Ok(m) => {
                got += 1;
                assert!(m.len() <= 16);
                if m.first().is_some_and(|b| b % 2 == 1) {
                    if let Err(e) = m.reject("odd") {
                        count(format!("{e:?}"));
                    }
                }
            }
            Err(e) => count(format!("{e:?}")),
        }
        if round % 16 == 0 {
            if let Ok(l) = letters.try_recv_ref() {
                let _ = DeadLetter::parse(&l); // may be garbage: an error, never a panic
            }
            if let Err(e) = q.dead_letters() {
                count(format!("{e:?}"));
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "hung at round {round}");
    }
    let st = shmq::status::Status::read(d.path(), "hostile").unwrap();
    assert_eq!(st.max_deliveries, 2);
    stop.store(true, Relaxed);
    let (sent, send_errors) = producer.join().expect("the producer never panicked");
    writer.join().unwrap();
    eprintln!(
        "hostile dead letters: {} writes; sent {sent} ({send_errors} send errors), received {got}, errors {errors:?}",
        written.load(Relaxed)
    );
    assert!(got > 0, "some messages still get through");
}
