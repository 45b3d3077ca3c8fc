//! Permissions, a full segment directory, and names that cannot leave the segment directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shmq::{OpenError, QueueOptions};
use shmq_test_support::{env, report, Role, Spawn};

shmq_test_support::children!(ROLES);

/// The child of the permission tests.
const ROLES: &[Role] = &[("security opens-queue", opens_queue)];

/// Environment of the child: the directory and the queue's name.
const DIR_ENV: &str = "SHMQ_SECURITY_DIR";
const NAME_ENV: &str = "SHMQ_SECURITY_NAME";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Child side of the permission tests: opens the queue named in the environment and reports
/// the outcome.
fn opens_queue() {
    match QueueOptions::new().dir(env(DIR_ENV)).open(&env(NAME_ENV)) {
        Ok(_) => report("OPEN-OK"),
        Err(OpenError::PermissionDenied { .. }) => report("OPEN-DENIED"),
        Err(e) => report(&format!("OPEN-OTHER {e}")),
    }
}

/// Runs the child as uid 65534 from `exe`, a copy of this test binary in a world-readable
/// directory: the checkout (and so the target directory) may be private.
fn open_as_nobody(exe: &Path, dir: &Path, name: &str) -> String {
    let spawn = Spawn::new("security opens-queue").exe(exe).user(65534, 65534).env(DIR_ENV, dir).env(NAME_ENV, name);
    let mut child = match spawn.start() {
        Ok(child) => child,
        Err(e) => {
            println!("cannot run the child as uid 65534: {e}");
            return "NO-RESULT".into();
        }
    };
    let status = child.wait(Instant::now() + Duration::from_secs(60));
    match child.marked().into_iter().find(|l| l.starts_with("OPEN-")) {
        Some(l) if status.success() => l,
        _ => {
            println!("child as uid 65534 gave no result: {status}{}", child.transcript());
            "NO-RESULT".into()
        }
    }
}

#[test]
fn segment_with_mode_0600_cannot_be_opened_by_another_user() {
    if !is_root() {
        println!("skipped: needs root to run a child as another uid (running as uid {})", unsafe { libc::geteuid() });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // uid 65534 must be able to run the test binary, whose checkout may be private: run a
    // copy from this (0755) directory. If even that fails, say so instead of a wrong result.
    let exe = dir.path().join("security-test-child");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = QueueOptions::new().dir(dir.path()).create("private").unwrap();
    let shared = QueueOptions::new().dir(dir.path()).mode(0o666).create("shared").unwrap();
    let control = open_as_nobody(&exe, dir.path(), "shared");
    if control == "NO-RESULT" {
        println!("skipped: the test binary cannot run as uid 65534 here");
        return;
    }
    assert_eq!(control, "OPEN-OK", "a 0666 segment opens for another user");
    assert_eq!(open_as_nobody(&exe, dir.path(), "private"), "OPEN-DENIED");
    let mode = std::fs::metadata(private.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop((private, shared));
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn creating_a_queue_larger_than_the_free_space_returns_no_space() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
    let _mount = mounted.then(|| Mount(dir.path().to_path_buf()));
    let (target, big) = if mounted {
        // 1 MiB of room: 8192 slots of 256 bytes (2.2 MiB) cannot fit.
        (dir.path().to_path_buf(), 8192)
    } else {
        // Without root: ask /dev/shm for more than its whole size, which tmpfs refuses at once.
        println!("no tmpfs mount (not root or not permitted): asking /dev/shm for more than its size");
        let total = {
            // SAFETY: a zeroed statvfs is a valid out-value; the path is a NUL-terminated literal.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::statvfs(c"/dev/shm".as_ptr(), &mut st) }, 0);
            st.f_blocks * st.f_frsize
        };
        ("/dev/shm".into(), usize::try_from(total / 1088 + 1).expect("slots fit in usize").next_power_of_two())
    };
    let name = format!("nospace-{}", std::process::id());
    let r = QueueOptions::new().dir(&target).capacity(big).max_msg_size(1024).create(&name);
    match r {
        Err(e @ OpenError::NoSpace { .. }) => assert!(e.to_string().contains("not enough space"), "{e}"),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(!target.join(format!("shmq.{name}")).exists(), "a failed create leaves no file");
    if mounted {
        // A queue that fits is still created in the same directory.
        let q = QueueOptions::new().dir(&target).capacity(64).create("fits").unwrap();
        q.unlink().unwrap();
    }
}

#[test]
fn names_cannot_escape_the_segment_directory() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../escape", "a/b", "/abs", ".hidden", "..", "", "tab\tname", "ünï"] {
        match QueueOptions::new().dir(dir.path()).create(bad) {
            Err(OpenError::InvalidName { .. }) => {}
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        }
    }
    let q = QueueOptions::new().dir(dir.path()).create("ok.name-1_x").unwrap();
    assert_eq!(q.path(), dir.path().join("shmq.ok.name-1_x"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
