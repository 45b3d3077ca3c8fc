//! Records the build profile facts cargo gives build scripts, for the report: the profile's
//! name, its opt-level and debuginfo, the profile directory the binary is built in, and the
//! extra rustc flags.
//! (Cargo does not tell build scripts about LTO or codegen units; see perf/README.md.)

fn main() {
    for var in ["PROFILE", "OPT_LEVEL", "DEBUG"] {
        let v = std::env::var(var).unwrap_or_else(|_| "?".into());
        println!("cargo:rustc-env=SHMQ_PERF_{var}={v}");
    }
    // OUT_DIR is target/<profile dir>/build/<pkg>-<hash>/out.
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let dir = std::path::Path::new(&out).ancestors().nth(3).and_then(|p| p.file_name()).and_then(|n| n.to_str());
    println!("cargo:rustc-env=SHMQ_PERF_PROFILE_DIR={}", dir.unwrap_or("?"));
    // Flags from RUSTFLAGS or a config file (`-C lto=...` there would reach every crate).
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().replace('\x1f', " ");
    println!("cargo:rustc-env=SHMQ_PERF_RUSTFLAGS={flags}");
    println!("cargo:rerun-if-changed=build.rs");
}
