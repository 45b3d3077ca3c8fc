//! `shmq bench`, run as a user would, with small counts: the JSON schema of every pattern, the
//! SVG plot, `--wait block`'s idle report, pinning, and one-line errors for invalid options.
//! Every run gets its own segment directory (`SHMQ_DIR`, a temporary directory) and must leave
//! it empty. No assertion here is about speed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

mod cli_support;

/// Longest a single bench may run before the test fails (a generous watchdog, not a timing check).
const WATCHDOG: Duration = Duration::from_secs(300);

/// Small runs, as the issue asks for tests.
const SMALL: [&str; 4] = ["--count", "20000", "--reps", "2"];

/// Runs `shmq bench ARGS` under the watchdog with its own segment directory; checks that the
/// directory is left empty.
fn bench(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(dir.path(), args);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "`shmq bench {}` left segments behind: {left:?}", args.join(" "));
    out
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .arg("bench")
        .args(args)
        .env("SHMQ_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmq bench");
    cli_support::finish_within(child, &format!("bench {}", args.join(" ")), WATCHDOG)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and parses stdout as exactly one JSON object (nothing before or after).
fn json(o: &Output, what: &str) -> Value {
    assert!(o.status.success(), "{what}: {} ; stderr: {}", o.status, text(&o.stderr));
    assert!(o.stderr.is_empty(), "{what}: --json printed on stderr: {}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not one JSON value ({e}): {}", text(&o.stdout)));
    assert!(v.is_object(), "{what}: not an object: {v}");
    v
}

fn positive(v: &Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!(x > 0.0 && x.is_finite(), "{what}: not positive: {x}");
    x
}

/// Checks the schema the issue fixes: names, keys, nulls where not applicable, positive numbers.
fn check_schema(v: &Value, pattern: &str, size: u64, names: &[&str]) {
    assert_eq!(v["pattern"], pattern, "{v}");
    assert_eq!(v["size"], size, "{v}");
    let results = v["results"].as_array().unwrap_or_else(|| panic!("results is not an array: {v}"));
    let got: Vec<&str> = results.iter().map(|r| r["name"].as_str().expect("name is a string")).collect();
    assert_eq!(got, names, "result names");
    for r in results {
        let name = r["name"].as_str().unwrap();
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["name", "rtt_ns", "throughput_msgs_per_s"], "{name}: keys of a result");
        let rtt = r["rtt_ns"].as_object().unwrap_or_else(|| panic!("{name}: rtt_ns is not an object"));
        let mut keys: Vec<&str> = rtt.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["max", "p50", "p90", "p99", "p999", "p9999"], "{name}: keys of rtt_ns");
        let mut last = 0;
        for k in ["p50", "p90", "p99", "p999", "p9999", "max"] {
            let n = rtt[k].as_u64().unwrap_or_else(|| panic!("{name}.{k}: not a whole number: {}", rtt[k]));
            assert!(n > 0, "{name}.{k} is 0");
            assert!(n >= last, "{name}: {k} = {n} is below the previous percentile {last}");
            last = n;
        }
        let tput = &r["throughput_msgs_per_s"];
        if name == "floor" {
            assert!(tput.is_null(), "the floor only ping-pongs: its throughput must be null, got {tput}");
        } else {
            positive(tput, &format!("{name} throughput"));
        }
    }
}

const ALL: [&str; 4] = ["shmq", "floor", "uds", "pipe"];

#[test]
fn spsc_json_has_the_issue_schema_with_every_baseline() {
    let o = bench(&[&["--pattern", "spsc", "--json"][..], &SMALL].concat());
    let v = json(&o, "spsc");
    check_schema(&v, "spsc", 64, &ALL);
    assert_eq!((v["count"].as_u64(), v["reps"].as_u64(), v["wait"].as_str()), (Some(20000), Some(2), Some("spin")));
    assert!(v["idle_cpu"].is_null(), "idle CPU is measured only with --wait block: {}", v["idle_cpu"]);
    for k in [
        "shmq_over_floor_p50",
        "shmq_over_floor_p999",
        "uds_over_shmq_p50",
        "pipe_over_shmq_p50",
        "throughput_shmq_over_bare_ring",
    ] {
        positive(&v["ratios"][k], k);
    }
    positive(&v["bare_ring_throughput_msgs_per_s"], "bare ring throughput");
    // Each rep's values are reported beside the medians, so the spread is visible.
    for name in ALL {
        let p50 = v["per_rep"][name]["rtt_p50_ns"].as_array().unwrap_or_else(|| panic!("per_rep.{name}: {v}"));
        assert_eq!(p50.len(), 2, "per_rep.{name}.rtt_p50_ns: one value per rep");
    }
    assert_eq!(v["shmq_over_floor_p50_per_rep"].as_array().map(Vec::len), Some(2));
    // The four spin targets of a 64-byte SPSC run are checked against this run (met or not: no
    // speed assertion): p50 and p99.9 against the floor, against the socket pair, throughput
    // against the bare ring.
    let targets = v["targets"].as_array().expect("targets");
    let names: Vec<&str> = targets.iter().filter_map(|t| t["target"].as_str()).collect();
    assert_eq!(names.len(), 4, "{targets:?}");
    assert!(names[0].contains("1.5x of the floor (64 B)") && names[3].contains("bare ring"), "{names:?}");
    assert!(targets.iter().all(|t| t["met"].is_boolean()), "{targets:?}");
}

#[test]
fn mpmc_json_with_two_producers_and_two_consumers_has_the_issue_schema() {
    let o = bench(
        &[&["--pattern", "mpmc", "--producers", "2", "--consumers", "2", "--size", "100", "--json"][..], &SMALL]
            .concat(),
    );
    let v = json(&o, "mpmc");
    check_schema(&v, "mpmc", 100, &ALL);
    assert_eq!((v["producers"].as_u64(), v["consumers"].as_u64()), (Some(2), Some(2)));
    assert!(v["subscribers"].is_null(), "subscribers do not apply to mpmc: {}", v["subscribers"]);
}

#[test]
fn topic_json_with_two_subscribers_has_the_issue_schema() {
    let o = bench(&[&["--pattern", "topic", "--subscribers", "2", "--json"][..], &SMALL].concat());
    let v = json(&o, "topic");
    check_schema(&v, "topic", 64, &ALL);
    assert_eq!(v["subscribers"].as_u64(), Some(2));
    // Two subscribers: the 1-subscriber throughput target does not apply; the round-trip ones do.
    let targets = v["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert!(v["producers"].is_null() && v["consumers"].is_null(), "{v}");
}

#[test]
fn wait_block_reports_the_cpu_time_of_the_idle_blocked_echo() {
    let o = bench(&[&["--wait", "block", "--no-baselines", "--json"][..], &SMALL].concat());
    let v = json(&o, "block");
    check_schema(&v, "spsc", 64, &["shmq"]);
    assert!(v["ratios"].is_null(), "no baselines, no ratios: {}", v["ratios"]);
    let idle = &v["idle_cpu"];
    assert_eq!(idle["process"], "echo", "{idle}");
    assert_eq!(idle["window_ms"], 200, "{idle}");
    let cpu = idle["cpu_ms"].as_f64().unwrap_or_else(|| panic!("cpu_ms is not a number: {idle}"));
    assert!((0.0..=200.0 * 2.0).contains(&cpu), "CPU time out of range: {cpu}");
    positive(&idle["wake_rtt_ns"], "wake-up round trip");
}

#[test]
fn plot_writes_an_svg_with_a_curve_for_shmq_and_each_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("latency.svg");
    let o = bench(&[&["--plot", svg.to_str().unwrap()][..], &SMALL].concat());
    assert!(o.status.success(), "{}; stderr: {}", o.status, text(&o.stderr));
    let out = text(&o.stdout);
    for want in ["p99.99", "shmq/floor", "uds/shmq", "median across 2 reps", "latency.svg"] {
        assert!(out.contains(want), "the table lacks {want:?}:\n{out}");
    }
    let body = std::fs::read_to_string(&svg).expect("the plot file exists");
    assert!(body.starts_with("<svg") && body.trim_end().ends_with("</svg>"), "not an SVG document: {}", &body[..100]);
    let texts = svg_texts(&body);
    for name in ALL {
        assert!(texts.iter().any(|t| t == name), "the legend lacks {name}: {texts:?}");
    }
    assert!(body.matches("<polyline").count() >= ALL.len(), "fewer curves than series");
    assert!(texts.iter().any(|t| t == "99.9"), "the percentile axis is not labelled in nines: {texts:?}");
}

/// The trimmed contents of every `<text>` element of an SVG document.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// The first and last CPU this process may run on (from /proc/self/status).
fn allowed_cpus() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list").trim();
    let nums: Vec<usize> = list.split([',', '-']).map(|n| n.parse().expect("CPU number")).collect();
    (nums[0], *nums.last().unwrap())
}

#[test]
fn pinned_run_reports_its_cpus() {
    let (a, b) = allowed_cpus();
    let pin = format!("{a},{b}");
    // yield: correct even if both processes share one CPU.
    let o = bench(&[&["--pin", &pin, "--wait", "yield", "--json"][..], &SMALL].concat());
    let v = json(&o, "pinned");
    check_schema(&v, "spsc", 64, &ALL);
    assert_eq!(v["pin"], serde_json::json!([a, b]));
}

#[test]
fn invalid_options_give_a_one_line_error() {
    let cases: &[(&[&str], &str)] = &[
        (&["--pattern", "fanout"], "--pattern"),
        (&["--wait", "nap"], "--wait"),
        (&["--size", "4"], "--size"),
        (&["--size", "big"], "--size"),
        (&["--count", "0"], "--count"),
        (&["--reps", "0"], "--reps"),
        (&["--capacity", "0"], "--capacity"),
        (&["--pattern", "spsc", "--producers", "2"], "spsc"),
        (&["--pattern", "mpmc", "--subscribers", "2"], "--subscribers"),
        (&["--pattern", "topic", "--consumers", "2"], "topic"),
        (&["--pattern", "mpmc", "--consumers", "0"], "--consumers"),
        (&["--pin", "0"], "--pin"),
        (&["--pin", "0,x"], "--pin"),
        (&["--pin", "0,99999"], "99999"),
        (&["--plot", "latency.png"], ".svg"),
        (&["--plot", "/nonexistent-shmq-dir/latency.svg"], "does not exist"),
    ];
    for (args, mention) in cases {
        let o = bench(args);
        let err = text(&o.stderr);
        let what = format!("`shmq bench {}`", args.join(" "));
        assert_eq!(o.status.code(), Some(1), "{what}: {}; stderr: {err}", o.status);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: expected one line on stderr, got {err:?}");
        assert!(lines[0].starts_with("shmq: "), "{what}: {err:?}");
        assert!(lines[0].contains(mention), "{what}: the error does not mention {mention:?}: {err:?}");
        assert!(o.stdout.is_empty(), "{what}: printed on stdout: {}", text(&o.stdout));
    }
}
