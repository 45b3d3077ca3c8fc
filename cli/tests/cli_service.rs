//! `shmq serve` and `shmq call`: request-response at the command line, and services in `list`
//! and `stat`. Each test has its own segment directory (`SHMQ_DIR`, a temporary directory);
//! every `shmq serve` runs as a background child that is killed and waited for when the test
//! ends, passed or not.

mod cli_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cli_support::*;
use serde_json::Value;

/// Longest wait for something a background process should do soon.
const SOON: Duration = Duration::from_secs(20);

/// A `shmq serve` in the background; its stderr is collected as it comes. Killed and waited
/// for when dropped.
struct Serving {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    what: String,
}

/// Starts `shmq serve NAME args...` and waits for its ready line.
fn serve(dir: &Path, name: &str, args: &[&str]) -> Serving {
    let mut all = vec!["serve", name];
    all.extend_from_slice(args);
    let mut child = command(dir, &all)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmq serve");
    let stderr = child.stderr.take().expect("stderr piped");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let mut s = Serving { child, log, reader: Some(reader), what: all.join(" ") };
    s.wait_for("shmq: serving ");
    s
}

impl Serving {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until its stderr holds `text` (fails the test if it exits first or takes too long).
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + SOON;
        while !self.log().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // the rest of its stderr
                panic!("`shmq {}` exited ({status}) before saying {text:?}: {}", self.what, self.log());
            }
            assert!(Instant::now() < deadline, "`shmq {}` never said {text:?}: {}", self.what, self.log());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for it to exit by itself; its status and all it wrote to stderr.
    fn exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + SOON;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "`shmq {}` still running: {}", self.what, self.log());
            std::thread::sleep(Duration::from_millis(5));
        };
        // Its stderr ends with it (unless a command it ran outlives it: then what came so far).
        let reader = self.reader.take().unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while !reader.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        (status, self.log())
    }

    /// Kills it (SIGKILL) and waits for it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `shmq call` in the background, fed line by line (killed and waited for when dropped).
struct Calling {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
}

fn call_interactively(dir: &Path, args: &[&str]) -> Calling {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    let mut child = command(dir, &all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmq call");
    let stdin = child.stdin.take();
    let stdout = Some(BufReader::new(child.stdout.take().unwrap()));
    Calling { child, stdin, stdout }
}

impl Calling {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The next line it prints (without its newline).
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.as_mut().unwrap().read_line(&mut l).unwrap();
        assert!(l.ends_with('\n'), "call ended instead of answering: {l:?}");
        l.pop();
        l
    }

    /// Closes its stdin and waits for it to end; what it printed after the lines read with
    /// [`line`](Self::line).
    fn finish(mut self) -> std::process::Output {
        self.stdin = None;
        let mut stdout = self.stdout.take().unwrap();
        let mut stderr = self.child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
            v
        });
        let err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
            v
        });
        let deadline = Instant::now() + SOON;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "`shmq call` still running");
            std::thread::sleep(Duration::from_millis(5));
        };
        std::process::Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
    }
}

impl Drop for Calling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `shmq call NAME args...` with `input` on stdin.
fn call(dir: &Path, name: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut all = vec!["call", name];
    all.extend_from_slice(args);
    shmq_in(dir, &all, input.as_bytes())
}

/// `stat NAME --json`'s service object.
fn service_json(dir: &Path, name: &str) -> Value {
    json(shmq(dir, &["stat", name, "--json"]))["service"].clone()
}

/// The entry with `pid` in an array of the service object.
fn by_pid(v: &Value, list: &str, pid: u32) -> Value {
    peer(v, list, pid).unwrap_or_else(|| panic!("pid {pid} is not in {list}: {v}"))
}

/// The entry with `pid` in an array of the service object, if there is one.
fn peer(v: &Value, list: &str, pid: u32) -> Option<Value> {
    v[list].as_array()?.iter().find(|p| p["pid"] == pid).cloned()
}

/// How long `shmq list` takes: what starting a process costs now.
fn startup(dir: &Path) -> Duration {
    let t = Instant::now();
    ok(shmq(dir, &["list"]));
    t.elapsed()
}

/// Waits until `cond` holds (fails the test after [`SOON`]).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + SOON;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn echo_answers_every_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, "echo", &["--echo"]);
    let ready = server.log();
    assert!(
        ready.starts_with(&format!("shmq: serving \"echo\" (pid {}): echoing each request; ", server.pid())),
        "{ready}"
    );
    assert!(ready.contains("requests up to 256 bytes, responses up to 256 bytes, version 0"), "{ready}");
    assert!(ready.contains(&format!("created it in {}", d.display())), "{ready}");
    let input: String = (0..50).map(|i| format!("line {i} {}\n", "x".repeat(i))).chain(["\n".into()]).collect();
    let o = call(d, "echo", &[], &input);
    assert_eq!(stderr(&o), "");
    assert_eq!(ok(o), input, "every line back, in order, the empty one too");
    // Pipelined: the same, in the same order.
    let o = call(d, "echo", &["--pipeline", "8"], &input);
    assert_eq!(ok(o), input);
    // No input, no call.
    assert_eq!(ok(call(d, "echo", &[], "")), "");
    assert_eq!(by_pid(&service_json(d, "echo"), "servers", server.pid())["served"], 102);
}

#[test]
fn exec_pipes_each_request_to_a_command_run_once_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _upper = serve(d, "upper", &["--exec", "tr a-z A-Z"]);
    assert_eq!(ok(call(d, "upper", &[], "hello\nworld\n")), "HELLO\nWORLD\n");
    // One process per request; the request comes with a newline; one trailing newline of the
    // output is removed (not two).
    let _pid = serve(d, "pid", &["--exec", "read x; echo \"$$ $x\"; echo"]);
    let out = ok(call(d, "pid", &[], "a\nb\nc\n"));
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines.len(), 7, "each response ends with the newline kept, then call's: {out:?}");
    let pids: Vec<&str> = (0..3).map(|i| lines[2 * i].split(' ').next().unwrap()).collect();
    assert_eq!((0..3).map(|i| lines[2 * i].split(' ').nth(1).unwrap()).collect::<Vec<_>>(), ["a", "b", "c"], "{out:?}");
    assert!(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2], "one process per request: {out:?}");
    assert_eq!([lines[1], lines[3], lines[5], lines[6]], [""; 4], "{out:?}");
}

#[test]
fn a_failing_command_drops_its_request_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = "read x; [ \"$x\" != fail ] || exit 3; [ \"$x\" != long ] || x=0123456789; echo \"ok $x\"";
    let mut server = serve(d, "picky", &["--exec", script, "--max-response", "8"]);
    let o = call(d, "picky", &[], "a\nfail\nb\n");
    assert_eq!(stdout(&o), "ok a\n", "the answer before the failure is printed, nothing after it");
    let line = one_line_error(&o);
    assert!(line.contains("the server dropped call 2 to service \"picky\" without answering it"), "{line}");
    assert!(line.contains("(1 call answered before it)"), "{line}");
    server.wait_for("the command exited with status 3");
    let log = server.log();
    assert!(log.lines().any(|l| l.starts_with("shmq: dropped request #") && l.contains(" from pid ")), "{log}");
    // An answer over --max-response is dropped too.
    let line = one_line_error(&call(d, "picky", &[], "long\n"));
    assert!(line.contains("dropped call 1") && line.contains("(0 calls answered before it)"), "{line}");
    server.wait_for("the command wrote 14 bytes, over the service's largest response of 8 bytes");
    // And the server still serves.
    assert_eq!(ok(call(d, "picky", &[], "b\n")), "ok b\n");
    let s = by_pid(&service_json(d, "picky"), "servers", server.pid());
    assert_eq!((&s["served"], &s["dropped"], &s["handling"]), (&Value::from(2), &Value::from(2), &Value::from(0)));
    // Each drop is one line on the server's stderr, after the ready line.
    let log = server.log();
    assert_eq!(log.lines().filter(|l| l.starts_with("shmq: dropped request")).count(), 2, "{log}");
    assert_eq!(log.lines().count(), 3, "{log}");
}

#[test]
fn call_with_no_server_fails_at_once_and_a_server_started_later_sees_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Created by a server that served nothing and left.
    let (status, _) = serve(d, "idle", &["--echo", "--count", "0"]).exit();
    assert!(status.success());
    // Fast: the client looks for a server every 10 ms. (Beyond what starting a process costs on
    // this machine now, as `shmq list` measures it.)
    let fast = Duration::from_millis(900) + startup(d);
    let t = Instant::now();
    let o = call(d, "idle", &[], "anyone?\nelse?\n");
    let took = t.elapsed();
    let line = one_line_error(&o);
    assert!(took < fast, "no server should fail fast, took {took:?}");
    assert!(line.contains("service \"idle\" has no live server, so call 1 was not answered"), "{line}");
    assert!(line.contains("(0 calls answered before it)"), "{line}");
    assert!(line.contains("start one with `shmq serve idle --echo` (or --exec CMD)"), "{line}");
    assert_eq!(stdout(&o), "");
    // The request was withdrawn: a server that starts now gets nothing.
    let (status, log) = serve(d, "idle", &["--echo", "--timeout", "200"]).exit();
    assert!(status.success(), "{log}");
    assert!(log.contains("shmq: no request for 200 ms; exiting (0 requests answered, 0 dropped)"), "{log}");
    // A server that was killed counts as none.
    let mut server = serve(d, "idle", &["--echo"]);
    assert_eq!(ok(call(d, "idle", &[], "x\n")), "x\n");
    server.kill();
    let t = Instant::now();
    let line = one_line_error(&call(d, "idle", &[], "x\n"));
    assert!(t.elapsed() < fast, "took {:?}", t.elapsed());
    assert!(line.contains("has no live server"), "{line}");
}

#[test]
fn call_of_a_missing_name_or_a_queue_and_queue_commands_on_a_service_say_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = one_line_error(&call(d, "nope", &[], "x\n"));
    assert!(
        line.contains(&format!(
            "no service named \"nope\" in {}; start one with `shmq serve nope --echo` (or --exec CMD)",
            d.display()
        )),
        "{line}"
    );
    assert!(segment_files(d).is_empty(), "call creates nothing: {:?}", segment_files(d));

    ok(shmq(d, &["send", "jobs", "--count", "1"]));
    ok(shmq(d, &["pub", "news", "--count", "1"]));
    let line = one_line_error(&call(d, "jobs", &[], "x\n"));
    assert!(line.contains("\"jobs\" is a queue (mpmc), not a service"), "{line}");
    assert!(line.contains("`shmq recv jobs`") && line.contains("`shmq send jobs`"), "{line}");
    let line = one_line_error(&call(d, "news", &[], "x\n"));
    assert!(line.contains("\"news\" is a topic, not a service"), "{line}");
    assert!(line.contains("`shmq sub news`") && line.contains("`shmq pub news`"), "{line}");
    let line = one_line_error(&shmq(d, &["serve", "jobs", "--echo"]));
    assert!(line.contains("\"jobs\" is a queue (mpmc), not a service"), "{line}");
    assert!(line.contains("a service needs a name of its own"), "{line}");

    let (status, _) = serve(d, "svc", &["--echo", "--count", "0"]).exit();
    assert!(status.success());
    for (args, noun) in [
        (&["send", "svc", "--count", "1"][..], "queue"),
        (&["recv", "svc", "--timeout", "10"], "queue"),
        (&["pub", "svc", "--count", "1"], "topic"),
        (&["sub", "svc", "--timeout", "10"], "topic"),
    ] {
        let line = one_line_error(&shmq(d, args));
        assert!(line.contains(&format!("\"svc\" is a service, not a {noun}")), "{args:?}: {line}");
        assert!(line.contains("`shmq call svc`") && line.contains("`shmq serve svc --echo`"), "{args:?}: {line}");
    }
    // Options checked against the service that exists.
    for (args, says) in [
        (&["serve", "svc", "--echo", "--version", "2"][..], "service version is 0, expected 2; leave out --version"),
        (
            &["serve", "svc", "--echo", "--max-request", "64"],
            "max request size is 256, expected 64; leave out --max-request",
        ),
        (
            &["serve", "svc", "--echo", "--max-response", "64"],
            "max response size is 256, expected 64; leave out --max-response",
        ),
        (&["call", "svc", "--version", "1"], "incompatible service \"svc\": service version is 0, expected 1"),
    ] {
        let line = one_line_error(&shmq(d, args));
        assert!(line.contains(says), "{args:?}: {line}");
    }
    assert_eq!(segment_files(d), ["shmq.jobs", "shmq.news", "shmq.svc"], "nothing else was created");
    // Exactly one of --echo and --exec.
    assert_eq!(shmq(d, &["serve", "svc"]).status.code(), Some(2));
    assert_eq!(shmq(d, &["serve", "svc", "--echo", "--exec", "cat"]).status.code(), Some(2));
}

#[test]
fn list_shows_services_with_their_live_servers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = serve(d, "svc", &["--echo", "--description", "echoes lines", "--version", "3"]);
    let mut b = serve(d, "svc", &["--echo"]);
    ok(shmq(d, &["send", "q", "--count", "1"]));

    let text = ok(shmq(d, &["list"]));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0][7], "SERVERS", "{text}");
    assert_eq!(lines[0].last(), Some(&"SUBSCRIBERS"), "{text}");
    let row = lines.iter().find(|w| w[0] == "svc").expect("svc is listed");
    assert_eq!((row[1], row[row.len() - 2], row[row.len() - 1]), ("service", "2", "-"), "{text}");
    let q = lines.iter().find(|w| w[0] == "q").expect("q is listed");
    assert_eq!(&q[q.len() - 2..], ["-", "-"], "{text}");
    let expected = format!(
        "service svc: version 3, requests <= 256 bytes, responses <= 256 bytes, live servers: pid {}, pid {}; echoes lines",
        a.pid(),
        b.pid()
    );
    assert!(text.lines().any(|l| l == expected), "{expected:?} in {text}");

    let v = json(shmq(d, &["list", "--json"]));
    let rows = v.as_array().unwrap();
    let svc = rows.iter().find(|r| r["name"] == "svc").unwrap();
    for field in ["name", "kind", "capacity", "max_msg", "depth", "memory_bytes", "attached", "subscribers", "service"]
    {
        assert!(svc.get(field).is_some(), "{field} missing: {svc}");
    }
    assert_eq!((&svc["kind"], &svc["attached"], &svc["subscribers"]), (&"service".into(), &2.into(), &Value::Null));
    let s = &svc["service"];
    assert_eq!(s["version"], 3);
    assert_eq!(s["description"], "echoes lines");
    assert_eq!((&s["max_request"], &s["max_response"], &s["max_in_flight"]), (&256.into(), &256.into(), &16.into()));
    let servers = s["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{s}");
    for p in [a.pid(), b.pid()] {
        assert_eq!(by_pid(s, "servers", p)["alive"], true, "{s}");
    }
    let q = rows.iter().find(|r| r["name"] == "q").unwrap();
    assert_eq!(q["service"], Value::Null);
    assert_eq!(q["depth"], 1);

    // A server that died is no longer live.
    b.kill();
    let text = ok(shmq(d, &["list"]));
    assert!(text.contains(&format!("live servers: pid {}; echoes lines\n", a.pid())), "{text}");
    let v = json(shmq(d, &["list", "--json"]));
    let svc = v.as_array().unwrap().iter().find(|r| r["name"] == "svc").unwrap().clone();
    assert_eq!(by_pid(&svc["service"], "servers", b.pid())["alive"], false, "{svc}");
}

#[test]
fn stat_shows_calls_in_flight_per_client_and_counters_per_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let go = d.join("go");
    // "hold" waits until the test creates the file `go`.
    let script = format!(
        "read x; if [ \"$x\" = hold ]; then while [ ! -e '{}' ]; do sleep 0.01; done; fi; echo \"$x\"",
        go.display()
    );
    let server = serve(d, "svc", &["--exec", &script, "--description", "holds"]);
    let mut c = call_interactively(d, &["svc", "--pipeline", "2"]);
    c.send("a");
    assert_eq!(c.line(), "a");
    c.send("b");
    assert_eq!(c.line(), "b");
    let client = c.pid();
    // Answered calls, nothing in flight.
    let v = service_json(d, "svc");
    let me = by_pid(&v, "clients", client);
    let counts = |p: &Value, fields: &[&str]| fields.iter().map(|f| p[*f].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(counts(&me, &["calls", "answered", "failed", "waiting", "in_service"]), [2, 2, 0, 0, 0], "{v}");
    assert_eq!(me["alive"], true);
    let srv = by_pid(&v, "servers", server.pid());
    assert_eq!(counts(&srv, &["served", "dropped", "handling"]), [2, 0, 0], "{v}");
    assert_eq!((&v["description"], &v["version"]), (&"holds".into(), &0.into()));

    // One call held by the server, one waiting behind it (a single server).
    c.send("hold");
    c.send("c");
    eventually("a call in service and one waiting", || {
        let v = service_json(d, "svc");
        peer(&v, "clients", client).is_some_and(|c| counts(&c, &["waiting", "in_service"]) == [1, 1])
            && by_pid(&v, "servers", server.pid())["handling"] == 1
    });
    let text = ok(shmq(d, &["stat", "svc"]));
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    let header = |first: &str| rows.iter().position(|r| r.first() == Some(&first) && r.len() > 2).unwrap();
    let servers = header("PID");
    assert_eq!(rows[servers], ["PID", "ALIVE", "SERVED", "DROPPED", "HANDLING"], "{text}");
    assert_eq!(rows[servers + 1], [server.pid().to_string().as_str(), "yes", "2", "0", "1"], "{text}");
    let clients = servers + 2 + rows[servers + 2..].iter().position(|r| r.first() == Some(&"PID")).unwrap();
    assert_eq!(rows[clients], ["PID", "ALIVE", "CALLS", "ANSWERED", "FAILED", "WAITING", "IN_SERVICE"], "{text}");
    assert_eq!(rows[clients + 1], [client.to_string().as_str(), "yes", "4", "2", "0", "1", "1"], "{text}");
    for l in ["description   holds", "version       0", "max_request   256 bytes", "max_response  256 bytes"] {
        assert!(text.contains(&format!("\n{l}\n")), "{l:?} in {text}");
    }
    assert!(text.contains("\nmax_in_flight 16 calls per process\n"), "{text}");
    // The roles of the participants.
    let all = json(shmq(d, &["stat", "svc", "--json"]));
    let roles: Vec<Value> = all["participants"].as_array().unwrap().iter().map(|p| p["roles"].clone()).collect();
    assert!(roles.contains(&serde_json::json!(["server"])) && roles.contains(&serde_json::json!(["client"])), "{all}");
    for field in ["name", "kind", "capacity", "max_msg", "depth", "head", "tail", "participants", "counters"] {
        assert!(all.get(field).is_some(), "{field} missing: {all}");
    }

    std::fs::write(&go, b"").unwrap();
    assert_eq!(c.line(), "hold");
    assert_eq!(c.line(), "c");
    let o = c.finish();
    assert!(o.status.success(), "{}", stderr(&o));
    // A queue's stat has no service.
    ok(shmq(d, &["send", "q", "--count", "1"]));
    assert_eq!(service_json(d, "q"), Value::Null);
}

#[test]
fn a_request_over_max_request_stops_call_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, "small", &["--echo", "--max-request", "8"]);
    let o = call(d, "small", &[], "short\nthis is too long\nafter\n");
    assert_eq!(stdout(&o), "short\n");
    let line = one_line_error(&o);
    assert!(
        line.contains(
            "line 2 is 16 bytes, over the largest request of service \"small\" (8 bytes), so it was not sent"
        ),
        "{line}"
    );
    assert!(line.contains("(1 call answered before it)") && line.contains("--max-request"), "{line}");
    // Pipelined: the calls before it are answered and printed first.
    let o = call(d, "small", &["--pipeline", "4"], "1\n2\n3\nthis is too long\n5\n");
    assert_eq!(stdout(&o), "1\n2\n3\n");
    let line = one_line_error(&o);
    assert!(line.contains("line 4 is 16 bytes") && line.contains("(3 calls answered before it)"), "{line}");
    let s = by_pid(&service_json(d, "small"), "servers", server.pid());
    assert_eq!(s["served"], 4, "nothing after the long line was sent: {s}");
}

#[test]
fn pipelined_calls_are_answered_by_several_servers_and_printed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let go = d.join("go");
    // "hold" waits until the test creates `go`: the other server answers everything after it.
    let script = format!(
        "read x; if [ \"$x\" = hold ]; then while [ ! -e '{}' ]; do sleep 0.01; done; fi; echo \"$x\"",
        go.display()
    );
    let a = serve(d, "svc", &["--exec", &script]);
    let b = serve(d, "svc", &["--exec", &script]);
    let mut c = call_interactively(d, &["svc", "--pipeline", "4"]);
    for l in ["hold", "x", "y", "z"] {
        c.send(l);
    }
    // x, y and z are answered while hold is held, but wait for it.
    eventually("three calls answered by the other server", || {
        let v = service_json(d, "svc");
        let served = [a.pid(), b.pid()].map(|p| by_pid(&v, "servers", p)["served"].as_u64().unwrap());
        served == [0, 3] || served == [3, 0]
    });
    std::fs::write(&go, b"").unwrap();
    let o = c.finish();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "hold\nx\ny\nz\n");
}

#[test]
fn a_server_killed_mid_request_and_a_timeout_fail_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = serve(d, "slow", &["--exec", "sleep 2; cat"]);
    let line = one_line_error(&call(d, "slow", &["--timeout", "100"], "x\n"));
    assert!(line.contains("call 1 to service \"slow\" timed out after 100 ms (0 calls answered before it)"), "{line}");

    let mut c = call_interactively(d, &["slow"]);
    c.send("y");
    let client = c.pid();
    eventually("the call in service", || {
        peer(&service_json(d, "slow"), "clients", client).is_some_and(|c| c["in_service"] == 1)
    });
    server.kill();
    let t = Instant::now();
    let o = c.finish();
    assert!(t.elapsed() < Duration::from_millis(1500), "took {:?}", t.elapsed());
    let line = one_line_error(&o);
    assert!(line.contains("the server handling call 1 to service \"slow\" died before answering"), "{line}");
    assert!(line.contains("may or may not have been carried out"), "{line}");
}

#[test]
fn serve_ends_after_count_or_timeout_and_help_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, "svc", &["--echo", "--count", "2"]);
    assert_eq!(ok(call(d, "svc", &[], "1\n2\n")), "1\n2\n");
    let (status, log) = server.exit();
    assert!(status.success(), "{log}");
    let (status, log) = serve(d, "svc", &["--echo", "--timeout", "50"]).exit();
    assert!(status.success(), "{log}");
    assert!(log.ends_with("shmq: no request for 50 ms; exiting (0 requests answered, 0 dropped)\n"), "{log}");
    let (status, log) = serve(d, "svc", &["--echo", "--count", "3", "--timeout", "50"]).exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("timed out after 50 ms waiting for a request on service \"svc\" (0 of 3 taken"), "{log}");

    let help = ok(shmq(d, &["--help"]));
    for cmd in ["serve", "call"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(&format!("{cmd} "))), "{cmd} missing: {help}");
    }
    let help = ok(shmq(d, &["serve", "--help"]));
    assert!(help.contains("CMD runs once per request"), "{help}");
    let help = ok(shmq(d, &["call", "--help"]));
    assert!(help.contains("print each response as a line, in order"), "{help}");
}
