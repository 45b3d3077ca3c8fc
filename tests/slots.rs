//! Every slot layout (inline slots of 32 and 64 bytes, whole-line inline slots, split header and
//! payload arrays) carries full-size messages intact, lap after lap, in every kind of ring: a
//! payload written at the wrong offset would overwrite a neighbour's header or payload.

use shmq::status::Status;
use shmq::{QueueKind, QueueOptions, Start, TopicOptions};

/// Maximum message sizes and whether their slots are split (see `layout::slot_layout`).
const SIZES: [(usize, bool); 7] =
    [(8, false), (48, false), (49, true), (64, true), (100, false), (112, false), (256, true)];
const CAPACITY: usize = 4;
const LAPS: usize = 5;

/// Message `i` of size `max`: every byte depends on `i` and its offset.
fn message(i: usize, max: usize) -> Vec<u8> {
    (0..max).map(|b| (i * 31 + b * 7 + 1) as u8).collect()
}

#[test]
fn full_size_messages_survive_every_slot_layout_in_queues_and_topics() {
    for (max, split) in SIZES {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [("spsc", QueueKind::Spsc), ("mpmc", QueueKind::Mpmc)] {
            let q = QueueOptions::new()
                .dir(dir.path())
                .capacity(CAPACITY)
                .max_msg_size(max)
                .kind(kind)
                .create(name)
                .unwrap();
            let st = Status::read(dir.path(), name).unwrap();
            assert_eq!(st.split_slots, split, "max_msg {max}");
            assert!(st.slot_stride as usize >= max + 16, "max_msg {max}: {} bytes per slot", st.slot_stride);
            let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
            let mut buf = vec![0u8; max];
            for lap in 0..LAPS {
                // Fill the ring, then drain it: every slot holds a full message at once.
                for k in 0..CAPACITY {
                    let i = lap * CAPACITY + k;
                    tx.try_send_kind(i as u32, &message(i, max)).unwrap();
                }
                for k in 0..CAPACITY {
                    let i = lap * CAPACITY + k;
                    let m = rx.try_recv(&mut buf).unwrap();
                    assert_eq!((m.len, m.kind), (max, i as u32), "{name} max_msg {max} message {i}");
                    assert_eq!(buf, message(i, max), "{name} max_msg {max} message {i}");
                }
            }
        }
        let t = TopicOptions::new().dir(dir.path()).capacity(CAPACITY).max_msg_size(max).create("t").unwrap();
        assert_eq!(Status::read(dir.path(), "t").unwrap().split_slots, split);
        let mut p = t.publisher().unwrap();
        let mut subs: Vec<_> = (0..2).map(|_| t.subscriber().start(Start::Earliest).build().unwrap()).collect();
        let mut buf = vec![0u8; max];
        for lap in 0..LAPS {
            for k in 0..CAPACITY {
                let i = lap * CAPACITY + k;
                p.try_send_kind(i as u32, &message(i, max)).unwrap();
            }
            for s in &mut subs {
                for k in 0..CAPACITY {
                    let i = lap * CAPACITY + k;
                    let m = s.try_recv(&mut buf).unwrap();
                    assert_eq!((m.len, m.kind), (max, i as u32), "topic max_msg {max} message {i}");
                    assert_eq!(buf, message(i, max), "topic max_msg {max} message {i}");
                }
            }
        }
    }
}
