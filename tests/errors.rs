//! Bad input gives its own error variant, and each message says what to do about it.

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use shmq::layout::{MAGIC, VERSION};
use shmq::{Error, OpenError, QueueKind, QueueOptions, SendError, TryRecvError, TrySendError};

fn opts(dir: &Path) -> QueueOptions {
    QueueOptions::new().dir(dir)
}

/// Asserts that `err`'s message (a per-operation error's, which is the text of the
/// `shmq::Error` it converts into) contains every one of `parts`.
fn says(err: &dyn std::fmt::Display, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not contain {p:?}");
    }
}

/// A per-operation error as the `shmq::Error` it converts into, with its own text.
fn umbrella<E: Into<Error> + std::fmt::Display>(e: E) -> (Error, String) {
    let text = e.to_string();
    (e.into(), text)
}

/// The segment files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A process id that does not exist any more: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn `true`");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn too_large_message_is_rejected_with_both_sizes_and_nothing_is_enqueued() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [QueueKind::Spsc, QueueKind::Mpmc] {
        let name = format!("big-{kind:?}");
        let q = opts(dir.path()).kind(kind).capacity(4).max_msg_size(16).create(&name).unwrap();
        let mut tx = q.producer().unwrap();
        let big = [7u8; 17];
        // Each operation's own error, converted (variant for variant) into `shmq::Error`.
        let results = [
            tx.try_send(&big).map_err(umbrella),
            tx.send(&big).map_err(umbrella),
            tx.send_kind(3, &big).map_err(umbrella),
            tx.try_send_kind(3, &big).map_err(umbrella),
            tx.try_send_batch(&[b"ok", &big]).map(|_| ()).map_err(umbrella),
        ];
        for r in results {
            let (err, text) = r.unwrap_err();
            assert!(matches!(err, Error::MessageTooLarge { len: 17, max: 16 }), "{kind:?}: {err:?}");
            assert_eq!(text, err.to_string(), "the operation's error and shmq::Error say the same");
            says(
                &err,
                &[
                    "17 bytes",
                    "maximum of 16 bytes",
                    "split it, or create the queue or topic with a larger max message size",
                ],
            );
        }
        assert_eq!(q.len(), 0, "{kind:?}: a rejected message was enqueued");
        // A loan committed with more than the maximum is aborted (MPMC: a slot consumers skip).
        let err = tx.loan().unwrap().commit(17).unwrap_err();
        assert!(matches!(err, SendError::MessageTooLarge { len: 17, max: 16 }), "{kind:?} loan: {err:?}");
        let mut rx = q.consumer().unwrap();
        let mut buf = [0u8; 16];
        assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
        // Exactly the maximum is fine.
        tx.try_send(&[1u8; 16]).unwrap();
        assert_eq!(rx.try_recv(&mut buf).unwrap().len, 16);
        q.unlink().unwrap();
    }
}

#[test]
fn too_small_receive_buffer_is_an_error_and_the_message_stays() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [QueueKind::Spsc, QueueKind::Mpmc] {
        let q = opts(dir.path()).kind(kind).capacity(4).max_msg_size(16).create(&format!("small-{kind:?}")).unwrap();
        let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
        tx.send(b"0123456789").unwrap();
        let mut small = [0u8; 4];
        let err = rx.try_recv(&mut small).unwrap_err();
        assert!(matches!(err, TryRecvError::BufferTooSmall { len: 4, needed: 10 }), "{kind:?}: {err:?}");
        says(&err, &["4 bytes", "10 bytes", "not consumed", "retry with a larger buffer"]);
        assert_eq!(q.len(), 1);
        let mut buf = [0u8; 16];
        let got = rx.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"0123456789");
        q.unlink().unwrap();
    }
}

#[test]
fn full_and_empty_say_how_to_wait_instead() {
    let dir = tempfile::tempdir().unwrap();
    let q = opts(dir.path()).capacity(2).create("edges").unwrap();
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    let mut buf = [0u8; 8];
    let empty = rx.try_recv(&mut buf).unwrap_err();
    assert_eq!(empty, TryRecvError::Empty);
    says(&empty, &["nothing to receive", "retry later", "recv", "to wait for a message"]);
    tx.try_send(b"a").unwrap();
    tx.try_send(b"b").unwrap();
    let full = tx.try_send(b"c").unwrap_err();
    assert_eq!(full, TrySendError::Full);
    says(&full, &["full", "retry later", "send", "to wait for space"]);
    q.unlink().unwrap();
}

#[test]
fn invalid_names_are_rejected_by_create_open_and_open_or_create() {
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(201);
    let cases: [(&str, &str); 8] = [
        ("", "empty"),
        (&long, "longer than 200 bytes"),
        (".hidden", "starts with '.'"),
        ("a/b", "outside [A-Za-z0-9._-]"),
        ("../escape", "starts with '.'"),
        ("has space", "outside [A-Za-z0-9._-]"),
        ("caf\u{e9}", "outside [A-Za-z0-9._-]"),
        ("tab\there", "outside [A-Za-z0-9._-]"),
    ];
    for (name, reason) in cases {
        let o = opts(dir.path());
        for (op, r) in [("create", o.create(name)), ("open", o.open(name)), ("open_or_create", o.open_or_create(name))]
        {
            let err = r.unwrap_err();
            match &err {
                OpenError::InvalidName { name: n, reason: why } => {
                    assert_eq!(n, name);
                    assert!(why.contains(reason), "{op}({name:?}): reason {why:?}, expected {reason:?}");
                }
                other => panic!("{op}({name:?}) gave {other:?}, expected InvalidName"),
            }
            says(&err, &["invalid name", "use 1 to 200 bytes of [A-Za-z0-9._-], not starting with '.'"]);
        }
    }
    assert!(files(dir.path()).is_empty(), "an invalid name left a file: {:?}", files(dir.path()));
    // The limits themselves are valid.
    let longest = "b".repeat(200);
    for name in [longest.as_str(), "x", "A-Za-z0-9._-"] {
        opts(dir.path()).capacity(2).create(name).unwrap().unlink().unwrap();
    }
}

#[test]
fn capacities_out_of_1_to_2_pow_30_are_invalid_config_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    for cap in [0usize, (1 << 30) + 1, 1 << 31] {
        for kind in [QueueKind::Spsc, QueueKind::Mpmc] {
            let err = opts(dir.path()).kind(kind).capacity(cap).create("cap").unwrap_err();
            assert!(matches!(err, OpenError::InvalidConfig(_)), "capacity {cap} ({kind:?}): {err:?}");
            says(&err, &["invalid configuration", &format!("capacity {cap}"), "use 1 to 2^30 slots"]);
            let err = opts(dir.path()).kind(kind).capacity(cap).open_or_create("cap").unwrap_err();
            assert!(matches!(err, OpenError::InvalidConfig(_)), "open_or_create, capacity {cap}: {err:?}");
        }
    }
    assert!(files(dir.path()).is_empty(), "an invalid configuration left a file: {:?}", files(dir.path()));
    opts(dir.path()).capacity(1).create("cap").unwrap().unlink().unwrap();
}

#[test]
fn opening_a_missing_queue_is_not_found_and_says_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = opts(dir.path()).open("nobody").unwrap_err();
    match &err {
        OpenError::NotFound { name, dir: d } => {
            assert_eq!(name, "nobody");
            assert_eq!(Path::new(d), dir.path());
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    says(&err, &["nobody", "create it first (or use open_or_create)"]);
    assert!(files(dir.path()).is_empty());
}

#[test]
fn creating_an_existing_queue_is_already_exists_and_says_to_open_it() {
    let dir = tempfile::tempdir().unwrap();
    let q = opts(dir.path()).capacity(4).create("twice").unwrap();
    let err = opts(dir.path()).capacity(4).create("twice").unwrap_err();
    assert!(matches!(&err, OpenError::AlreadyExists { name } if name == "twice"), "{err:?}");
    says(&err, &["\"twice\" already exists", "open it instead", "or remove it first"]);
    // The existing queue is untouched.
    let mut tx = q.producer().unwrap();
    tx.send(b"still here").unwrap();
    assert_eq!(opts(dir.path()).open("twice").unwrap().len(), 1);
    q.unlink().unwrap();
}

fn expect_incompatible(r: Result<shmq::Queue, OpenError>, want_what: &str, want_expected: &str, want_found: &str) {
    let err = r.unwrap_err();
    match &err {
        OpenError::Incompatible { what, expected, found } => {
            assert_eq!(*what, want_what, "{err}");
            assert!(expected.contains(want_expected), "expected {expected:?}, wanted {want_expected:?}");
            assert!(found.contains(want_found), "found {found:?}, wanted {want_found:?}");
        }
        other => panic!("expected Incompatible {{ what: {want_what:?} }}, got {other:?}"),
    }
    says(
        &err,
        &["incompatible segment", want_what, "open it with matching settings", "or remove it and create it again"],
    );
}

#[test]
fn opening_with_other_explicit_settings_is_incompatible_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let q = opts(dir.path()).spsc().capacity(4).max_msg_size(16).create("settings").unwrap();
    expect_incompatible(opts(dir.path()).kind(QueueKind::Mpmc).open("settings"), "kind", "mpmc", "spsc");
    expect_incompatible(opts(dir.path()).kind(QueueKind::Mpmc).open_or_create("settings"), "kind", "mpmc", "spsc");
    expect_incompatible(opts(dir.path()).capacity(8).open("settings"), "capacity", "8", "4");
    expect_incompatible(opts(dir.path()).max_msg_size(32).open("settings"), "max message size", "32", "16");
    // Matching or unspecified settings open it.
    let same = opts(dir.path()).spsc().capacity(4).max_msg_size(16).open("settings").unwrap();
    let any = opts(dir.path()).open("settings").unwrap();
    assert_eq!((any.kind(), any.capacity(), any.max_msg_size()), (QueueKind::Spsc, 4, 16));
    drop((same, any));
    q.unlink().unwrap();

    let m = opts(dir.path()).capacity(4).create("mpmc").unwrap();
    expect_incompatible(opts(dir.path()).spsc().open("mpmc"), "kind", "spsc", "mpmc");
    m.unlink().unwrap();
}

#[test]
fn a_file_with_garbage_is_incompatible_magic_and_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shmq.garbage");
    let mut junk: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    junk[..8].copy_from_slice(b"NOTSHMQ!");
    fs::write(&path, &junk).unwrap();
    let magic = format!("{:#x}", u64::from_le_bytes(*b"NOTSHMQ!"));
    expect_incompatible(opts(dir.path()).open("garbage"), "magic", &format!("{MAGIC:#x}"), &magic);
    expect_incompatible(opts(dir.path()).open_or_create("garbage"), "magic", "a shmq segment", &magic);
    assert_eq!(fs::read(&path).unwrap(), junk, "someone else's file was changed");
}

#[test]
fn a_segment_of_another_layout_version_is_incompatible() {
    let dir = tempfile::tempdir().unwrap();
    let q = opts(dir.path()).capacity(4).create("versioned").unwrap();
    let path = q.path().to_path_buf();
    drop(q);
    let file = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut v = [0u8; 4];
    file.read_exact_at(&mut v, 8).unwrap();
    assert_eq!(u32::from_le_bytes(v), VERSION, "the version field is at offset 8");
    file.write_all_at(&(VERSION + 1).to_le_bytes(), 8).unwrap();
    expect_incompatible(
        opts(dir.path()).open("versioned"),
        "layout version",
        &VERSION.to_string(),
        &(VERSION + 1).to_string(),
    );
    expect_incompatible(opts(dir.path()).open_or_create("versioned"), "layout version", "", "");
    fs::remove_file(&path).unwrap();
}

/// A segment whose creator died after sizing the file and writing its pid, before `init`.
fn write_half_initialised(path: &Path, pid: u32) {
    let mut seg = vec![0u8; 64 * 1024];
    seg[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    seg[16..20].copy_from_slice(&0u32.to_le_bytes()); // init: still busy
    seg[24..28].copy_from_slice(&pid.to_le_bytes()); // creator_pid
    fs::write(path, &seg).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_segment_left_half_initialised_by_a_dead_creator_is_stale_and_open_or_create_recovers_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shmq.halfway");
    write_half_initialised(&path, dead_pid());
    let err = opts(dir.path()).open("halfway").unwrap_err();
    assert!(matches!(&err, OpenError::Stale { name } if name == "halfway"), "expected Stale, got {err:?}");
    says(&err, &["half-initialised by a dead creator", "open_or_create replaces it", "or remove it"]);
    // create does not touch it either.
    assert!(matches!(opts(dir.path()).create("halfway"), Err(OpenError::AlreadyExists { .. })));

    let q = opts(dir.path()).capacity(4).max_msg_size(8).open_or_create("halfway").expect("recover");
    assert_eq!((q.capacity(), q.max_msg_size()), (4, 8));
    let (mut tx, mut rx) = (q.producer().unwrap(), q.consumer().unwrap());
    tx.send(b"revived").unwrap();
    let mut buf = [0u8; 8];
    let got = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"revived");
    // The new segment opens normally.
    assert_eq!(opts(dir.path()).open("halfway").unwrap().capacity(), 4);
    q.unlink().unwrap();
}

#[test]
fn a_second_spsc_producer_or_consumer_is_role_taken_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let q = opts(dir.path()).spsc().capacity(4).create("roles").unwrap();
    let other = opts(dir.path()).open("roles").unwrap(); // another attachment, same process
    let me = std::process::id();

    let tx = q.producer().unwrap();
    for (i, r) in [q.producer(), other.producer()].into_iter().enumerate() {
        let err = r.unwrap_err();
        assert!(matches!(err, OpenError::RoleTaken { role: "producer", pid } if pid == me), "attempt {i}: {err:?}");
        says(&err, &["producer role", &format!("live process {me}"), "use an MPMC queue for several producers"]);
    }
    let rx = other.consumer().unwrap();
    for r in [q.consumer(), other.consumer()] {
        let err = r.unwrap_err();
        assert!(matches!(err, OpenError::RoleTaken { role: "consumer", pid } if pid == me), "{err:?}");
        says(&err, &["consumer role", "use an MPMC queue for several consumers"]);
    }

    drop(tx);
    let mut tx2 = other.producer().expect("the producer role is free once the first producer is dropped");
    drop(rx);
    let mut rx2 = q.consumer().expect("the consumer role is free once the first consumer is dropped");
    tx2.send(b"hi").unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(rx2.try_recv(&mut buf).unwrap().len, 2);

    // MPMC queues have no exclusive roles.
    let m = opts(dir.path()).capacity(4).create("shared").unwrap();
    let _several = (m.producer().unwrap(), m.producer().unwrap(), m.consumer().unwrap(), m.consumer().unwrap());
    m.unlink().unwrap();
    q.unlink().unwrap();
}

#[test]
fn new_segments_get_exactly_the_requested_mode_and_0600_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let mode = |q: &shmq::Queue| fs::metadata(q.path()).unwrap().permissions().mode() & 0o7777;
    let q = opts(dir.path()).capacity(2).create("default-mode").unwrap();
    assert_eq!(mode(&q), 0o600, "default mode is {:o}", mode(&q));
    q.unlink().unwrap();
    for want in [0o640, 0o660, 0o644] {
        let q = opts(dir.path()).capacity(2).mode(want).create("moded").unwrap();
        assert_eq!(mode(&q), want, "asked for {want:o}, got {:o}", mode(&q));
        q.unlink().unwrap();
    }
}
