//! Races of the topic's tables and claims, driven through internals a test in `tests/` cannot
//! reach (a second process's view of the locks, a publisher's stale gate).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::layout::lock;
use crate::os::Holder;
use crate::ring::{broadcast, Poll};
use crate::segment::{Expect, Segment};
use crate::{Start, TopicOptions};

/// Threads of one process build subscribers from one `Topic` handle, whose entry locks share one
/// open file description: none of them may take, or give back, a lock a sibling holds. Seen from
/// another description (as another process sees it), every live subscriber holds its lock, and
/// no entry has two owners.
#[test]
fn sibling_subscribers_of_one_handle_never_drop_each_others_locks() {
    let dir = tempfile::tempdir().unwrap();
    let topic = TopicOptions::new().dir(dir.path()).max_subscribers(2).capacity(4).create("t").unwrap();
    let other = Arc::new(Segment::open(dir.path(), "t", &Expect::default(), Duration::from_secs(1)).unwrap());
    let (lost, double) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let owned: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (topic, other, lost, double, owned) =
                (topic.clone(), other.clone(), lost.clone(), double.clone(), owned.clone());
            std::thread::spawn(move || {
                for _ in 0..5000 {
                    let s = match topic.subscriber().build() {
                        Ok(s) => s,
                        Err(crate::OpenError::TooManySubscribers { .. }) => continue,
                        Err(e) => panic!("join: {e}"),
                    };
                    if owned[s.index].swap(true, Ordering::SeqCst) {
                        double.fetch_add(1, Ordering::SeqCst);
                    }
                    let at = lock::subscriber(&other.offsets, s.index);
                    if (0..20).any(|_| other.files.holder(at) == Holder::Free) {
                        lost.fetch_add(1, Ordering::SeqCst);
                    }
                    owned[s.index].store(false, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (lost, double) = (lost.load(Ordering::SeqCst), double.load(Ordering::SeqCst));
    assert_eq!((lost, double), (0, 0), "live subscribers seen without their lock, entries owned twice");
}

/// A publisher that computed its gate before a reliable `Start::Earliest` subscriber joined
/// claims the slot of a history message the subscriber has not read yet; it sees the new epoch
/// and waits (PENDING) without touching the slot. The subscriber must get that message, intact,
/// not a `Lagged` report, and only then may the publisher write.
#[test]
fn an_earliest_subscriber_gets_the_history_message_a_waiting_publisher_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let topic = TopicOptions::new().dir(dir.path()).capacity(4).create("t").unwrap();
    let mut p = topic.publisher().unwrap();
    for i in 0..4u8 {
        p.send(&[i]).unwrap();
    }
    let stale_gate = 4; // computed with nobody subscribed: the tail
    let mut j = topic.subscriber().start(Start::Earliest).build().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!((j.try_recv(&mut buf).unwrap().len, buf[0]), (1, 0));
    let (ring, id) = (&topic.shared.att.ring, topic.shared.att.id);
    // A stale publisher claims 4 (message 0's slot, read already): fine, it writes.
    let Poll::Ready(s) = broadcast::claim(ring, id, stale_gate).unwrap() else { panic!("claim 4") };
    broadcast::commit(ring, s, id, 1, 0).unwrap();
    // Another claims 5, message 1's slot, unread; it has seen the epoch and waits.
    let Poll::Ready(s2) = broadcast::claim(ring, id, stale_gate).unwrap() else { panic!("claim 5") };
    assert_eq!(s2, 5);
    let mut waiting = j.try_recv(&mut buf);
    assert!(
        matches!(waiting, Err(crate::TryRecvError::Empty)),
        "a claim being written: wait to learn which way it goes"
    );
    broadcast::pend(ring, s2, id, crate::layout::slot::WRITING).unwrap();
    waiting = j.try_recv(&mut buf);
    assert!(matches!(waiting, Ok(r) if r.len == 1 && buf[0] == 1), "got {waiting:?}: message 1 is intact");
    broadcast::resume(ring, s2, id, crate::layout::slot::WRITING).unwrap();
    broadcast::commit(ring, s2, id, 1, 5).unwrap();
    assert_eq!((j.try_recv(&mut buf).unwrap().len, buf[0]), (1, 2));
}
