//! Permissions, a full segment directory, and names that cannot leave the segment directory.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use shmq::{Error, QueueOptions};

const CHILD_ENV: &str = "SHMQ_SECURITY_CHILD";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Child side of the permission tests: opens the queue named in the env and prints the outcome.
#[test]
fn child_opens_queue_as_other_user() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (dir, name) = spec.split_once('|').expect("dir|name");
    match QueueOptions::new().dir(dir).open(name) {
        Ok(_) => println!("OPEN-OK"),
        Err(Error::PermissionDenied { .. }) => println!("OPEN-DENIED"),
        Err(e) => println!("OPEN-OTHER {e}"),
    }
}

/// Runs this test binary's child test as uid 65534. The binary is run from `exe`, a copy in a
/// world-readable directory: the checkout (and so the target directory) may be private.
fn open_as_nobody(exe: &Path, dir: &Path, name: &str) -> String {
    let out = match Command::new(exe)
        .args(["--exact", "child_opens_queue_as_other_user", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{name}", dir.display()))
        .uid(65534)
        .gid(65534)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            println!("cannot run the child as uid 65534: {e}");
            return "NO-RESULT".into();
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    // libtest prints the child's line after "test <name> ... ".
    match stdout.lines().find_map(|l| l.find("OPEN-").map(|i| &l[i..])) {
        Some(l) => l.to_string(),
        None => {
            println!(
                "child as uid 65534 gave no result: {:?} {stdout} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
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
        ("/dev/shm".into(), (total / 1088 + 1).next_power_of_two())
    };
    let name = format!("nospace-{}", std::process::id());
    let r = QueueOptions::new().dir(&target).capacity(big).max_msg_size(1024).create(&name);
    match r {
        Err(e @ Error::NoSpace { .. }) => assert!(e.to_string().contains("not enough space"), "{e}"),
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
            Err(Error::InvalidName { .. }) => {}
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        }
    }
    let q = QueueOptions::new().dir(dir.path()).create("ok.name-1_x").unwrap();
    assert_eq!(q.path(), dir.path().join("shmq.ok.name-1_x"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
