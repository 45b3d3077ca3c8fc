//! Where and how the numbers were made: the machine (CPU model, CPUs, kernel, load average),
//! the date, and the build profile facts this binary can detect.

use serde_json::{json, Value};

/// The machine, read at start.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus_online: usize,
    pub cpus_allowed: Vec<usize>,
    pub kernel: String,
    pub loadavg: [f64; 3],
    pub date_utc: String,
}

impl Machine {
    /// Reads the machine's facts now.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().into()))
            .unwrap_or_else(|| "unknown".into());
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        Machine {
            cpu_model,
            cpus_online: usize::try_from(online).unwrap_or(0),
            cpus_allowed: shmq_cli::baseline::allowed_cpus().unwrap_or_default(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().into(),
            loadavg: loadavg(),
            date_utc: now_utc(),
        }
    }

    /// As JSON (see perf/README.md).
    pub fn json(&self) -> Value {
        json!({
            "cpu_model": self.cpu_model,
            "cpus_online": self.cpus_online,
            "cpus_allowed": self.cpus_allowed,
            "kernel": self.kernel,
            "loadavg": self.loadavg,
            "date_utc": self.date_utc,
        })
    }
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`); NaN if unreadable.
pub fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|w| w.parse().unwrap_or(f64::NAN));
    [(); 3].map(|()| it.next().unwrap_or(f64::NAN))
}

/// The current time, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
fn now_utc() -> String {
    // SAFETY: time(NULL) has no preconditions.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: all-zero bytes are a valid tm (plain integers and a null zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `t` and `tm` are valid for the call; gmtime_r is thread-safe.
    if unsafe { libc::gmtime_r(&t, &mut tm) }.is_null() {
        return "unknown".into();
    }
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// How this binary was built, as far as it can tell.
#[derive(Clone, Debug)]
pub struct Build {
    /// Cargo's `PROFILE` for build scripts: `release` for any optimized profile.
    pub profile: &'static str,
    /// The profile directory under `target/` (`release`, `debug`, or a custom profile's name).
    pub profile_dir: &'static str,
    pub opt_level: &'static str,
    pub debuginfo: &'static str,
    pub debug_assertions: bool,
    pub overflow_checks: bool,
    /// Extra rustc flags (RUSTFLAGS or a config file), empty if none.
    pub rustflags: &'static str,
}

impl Build {
    /// This binary's build facts.
    pub fn this() -> Build {
        Build {
            profile: env!("SHMQ_PERF_PROFILE"),
            profile_dir: env!("SHMQ_PERF_PROFILE_DIR"),
            opt_level: env!("SHMQ_PERF_OPT_LEVEL"),
            debuginfo: env!("SHMQ_PERF_DEBUG"),
            debug_assertions: cfg!(debug_assertions),
            overflow_checks: overflow_checks(),
            rustflags: env!("SHMQ_PERF_RUSTFLAGS"),
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        format!(
            "profile {} (target/{}), opt-level {}, debuginfo {}, debug-assertions {}, overflow-checks {}, rustflags {:?}",
            self.profile,
            self.profile_dir,
            self.opt_level,
            self.debuginfo,
            on(self.debug_assertions),
            on(self.overflow_checks),
            self.rustflags,
        )
    }

    /// As JSON (see perf/README.md).
    pub fn json(&self) -> Value {
        json!({
            "profile": self.profile,
            "profile_dir": self.profile_dir,
            "opt_level": self.opt_level,
            "debuginfo": self.debuginfo,
            "debug_assertions": self.debug_assertions,
            "overflow_checks": self.overflow_checks,
            "rustflags": self.rustflags,
        })
    }
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Whether integer overflow panics in this build (an overflowing add, caught, with the panic
/// message silenced).
fn overflow_checks() -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let x = std::hint::black_box(u8::MAX);
    #[allow(arithmetic_overflow, clippy::arithmetic_side_effects)]
    let r = std::panic::catch_unwind(move || std::hint::black_box(x + 1));
    std::panic::set_hook(hook);
    r.is_err()
}
