//! Records how this binary is built, for the report: the profile directory under `target/`
//! (`release`, `nolto`, `debug`), the opt-level and debuginfo cargo gives build scripts, the
//! extra rustc flags, and the `lto` and `codegen-units` of that profile as this crate's
//! Cargo.toml sets them (cargo does not tell build scripts about LTO or codegen units, so they
//! are read from the manifest, following `inherits`, with `CARGO_PROFILE_<NAME>_LTO` /
//! `_CODEGEN_UNITS` overrides from the environment).

use std::collections::HashMap;

fn main() {
    for var in ["PROFILE", "OPT_LEVEL", "DEBUG"] {
        let v = std::env::var(var).unwrap_or_else(|_| "?".into());
        println!("cargo:rustc-env=PEERS_{var}={v}");
    }
    // OUT_DIR is target/<profile dir>/build/<pkg>-<hash>/out.
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let dir = std::path::Path::new(&out).ancestors().nth(3).and_then(|p| p.file_name()).and_then(|n| n.to_str());
    let dir = dir.unwrap_or("?").to_string();
    println!("cargo:rustc-env=PEERS_PROFILE_DIR={dir}");
    // Flags from RUSTFLAGS or a config file (`-C lto=...` there would reach every crate).
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().replace('\x1f', " ");
    println!("cargo:rustc-env=PEERS_RUSTFLAGS={flags}");

    let manifest = std::fs::read_to_string("Cargo.toml").unwrap_or_default();
    let profiles = profiles(&manifest);
    for (key, var) in [("lto", "LTO"), ("codegen-units", "CODEGEN_UNITS")] {
        let env_name = format!("CARGO_PROFILE_{}_{var}", dir.to_uppercase().replace('-', "_"));
        println!("cargo:rerun-if-env-changed={env_name}");
        let v = std::env::var(&env_name).ok().or_else(|| setting(&profiles, &dir, key)).unwrap_or_else(|| "?".into());
        println!("cargo:rustc-env=PEERS_{var}={v}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
}

/// `[profile.NAME]` tables of a manifest: NAME -> key -> value (quotes removed). A small
/// line-based reader, enough for this crate's own Cargo.toml.
fn profiles(manifest: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in manifest.lines().map(|l| l.split('#').next().unwrap_or("").trim()) {
        if line.starts_with('[') {
            current = line.strip_prefix("[profile.").and_then(|l| l.strip_suffix(']')).map(str::to_string);
        } else if let (Some(name), Some((k, v))) = (&current, line.split_once('=')) {
            let v = v.trim().trim_matches('"').to_string();
            out.entry(name.clone()).or_default().insert(k.trim().to_string(), v);
        }
    }
    out
}

/// `key` of profile `name`, following `inherits`, then Cargo's defaults (release and dev).
fn setting(profiles: &HashMap<String, HashMap<String, String>>, name: &str, key: &str) -> Option<String> {
    let mut name = name.to_string();
    for _ in 0..8 {
        let table = profiles.get(&name);
        if let Some(v) = table.and_then(|t| t.get(key)) {
            return Some(v.clone());
        }
        match table.and_then(|t| t.get("inherits")) {
            Some(parent) => name = parent.clone(),
            None => break,
        }
    }
    match (name.as_str(), key) {
        ("release" | "bench", "lto") | ("dev" | "debug" | "test", "lto") => Some("false".into()),
        ("release" | "bench", "codegen-units") => Some("16".into()),
        ("dev" | "debug" | "test", "codegen-units") => Some("256".into()),
        _ => None,
    }
}
