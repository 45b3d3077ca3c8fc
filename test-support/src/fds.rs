//! A child process with no free file descriptor, as a process that leaks them has: every
//! liveness check it makes on its peers must still judge them right.

use std::fs::File;
use std::io;

/// What a child prints once it has no free descriptor (see [`exhaust_fds`]).
pub const EMFILE_START: &str = "child: out of file descriptors before its role:";
/// What it prints when it checks again at the end (see [`Exhausted::finish`]).
pub const EMFILE_END: &str = "child: still out of file descriptors at the end:";

/// Descriptors held open so that this process has none left.
pub struct Exhausted {
    held: Vec<File>,
    limit: u64,
}

/// How many descriptors this process has open.
fn open_fds() -> u64 {
    let dir = std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd");
    // The listing's own descriptor is among them; it is closed by the time this returns.
    dir.count() as u64 - 1
}

/// Takes every free descriptor: lowers the soft `RLIMIT_NOFILE` to a few above the number of
/// descriptors open (a new descriptor gets the lowest free number, which must be below the
/// limit; open ones above it stay valid), then opens `/dev/null` until `open` fails, which must
/// be with EMFILE. Prints [`EMFILE_START`] with the numbers once [`check_out_of_fds`] agrees.
pub fn exhaust_fds() -> Exhausted {
    let open = open_fds();
    let limit = open + 4;
    // SAFETY: an all-zero rlimit is a valid value; getrlimit fills it.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `rl` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0, "getrlimit(RLIMIT_NOFILE)");
    rl.rlim_cur = limit.min(rl.rlim_max);
    // SAFETY: `rl` is a valid rlimit; lowering the soft limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0, "setrlimit(RLIMIT_NOFILE)");
    let mut held = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open /dev/null while taking every descriptor failed with {e}, not EMFILE"),
        }
        assert!(held.len() < 10_000, "opened 10000 descriptors under a limit of {limit} without EMFILE");
    }
    let ex = Exhausted { held, limit: rl.rlim_cur };
    let why = check_out_of_fds();
    println!(
        "{EMFILE_START} {open} descriptors open, RLIMIT_NOFILE lowered to {}, {} more taken, {why}",
        ex.limit,
        ex.held.len()
    );
    ex
}

/// Panics unless this process has no free descriptor: `open`, `dup` and `socket` must all fail
/// with EMFILE. Returns what it checked, for the child's output.
pub fn check_out_of_fds() -> String {
    let open = File::open("/dev/null").map(drop);
    // SAFETY: dup of stdout (always open); a descriptor it returned is closed at once.
    let dup = unsafe { libc::dup(1) };
    let dup_err = io::Error::last_os_error();
    // SAFETY: socket takes plain integers; a descriptor it returned is closed at once.
    let sock = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    let sock_err = io::Error::last_os_error();
    for fd in [dup, sock] {
        if fd >= 0 {
            // SAFETY: fd was just returned to us and is closed once.
            unsafe { libc::close(fd) };
        }
    }
    let ok = matches!(&open, Err(e) if e.raw_os_error() == Some(libc::EMFILE))
        && dup < 0
        && dup_err.raw_os_error() == Some(libc::EMFILE)
        && sock < 0
        && sock_err.raw_os_error() == Some(libc::EMFILE);
    assert!(
        ok,
        "a descriptor was free in a child that must have none: open {open:?}, dup {dup} ({dup_err}), socket {sock} \
         ({sock_err})"
    );
    "open, dup and socket fail with EMFILE".to_string()
}

impl Exhausted {
    /// How many descriptors it holds.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Checks that no descriptor is free and prints [`EMFILE_END`] with `what` the child did.
    pub fn finish(&self, what: &str) {
        let why = check_out_of_fds();
        println!("{EMFILE_END} {why} (RLIMIT_NOFILE {}, {} taken); {what}", self.limit, self.held.len());
    }
}
