//! Event sourcing with a journal: an account service keeps balances by applying the events of
//! `accounts.events`; after a restart it rebuilds them by replaying the topic's journal from the
//! beginning, then goes on with the live events, and ends with the same balances as a process
//! that saw every event live.
//!
//! ```text
//!  this process --[accounts.events]--> recorder   (journal on disk, ./DIR/accounts.events/)
//!                                  +--> ledger    (every event live, from the start)
//!                                  +--> service   (killed halfway; restarted: journal, then live)
//! ```
//!
//! Run: `cargo run --release --example event_sourcing -- --events 200000`
//!
//! The example re-executes itself for the recorder, the ledger and the service. The service is
//! SIGKILLed after it applied some events (its balances are lost with it) and started again: it
//! replays the journal (`ReplayThenLive`, from the start) and continues live. Segments and the
//! journal live in a private directory that is removed at the end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmq::bytemuck::{self, Pod, Zeroable};
use shmq::journal::{Fsync, JournalOptions, Recorder, ReplayFrom, ReplayThenLive};
use shmq::{RecvError, TopicOptions, WaitStrategy};

/// A deposit (positive) or withdrawal (negative) on an account.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmq::bytemuck")]
struct Event {
    account: u32,
    _pad: u32,
    cents: i64,
}

const ACCOUNTS: usize = 16;
const TOPIC: &str = "accounts.events";

fn topic() -> Result<shmq::Topic, shmq::OpenError> {
    TopicOptions::new()
        .capacity(4096)
        .max_msg_size(std::mem::size_of::<Event>())
        .wait(WaitStrategy::Block)
        .open_or_create(TOPIC)
}

fn journal_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("SHMQ_DIR").expect("SHMQ_DIR")).join("journal")
}

fn apply(balances: &mut [i64; ACCOUNTS], bytes: &[u8]) {
    let e: Event = bytemuck::pod_read_unaligned(bytes);
    balances[e.account as usize % ACCOUNTS] += e.cents;
}

fn print_balances(who: &str, events: u64, balances: &[i64; ACCOUNTS]) {
    let list: Vec<String> = balances.iter().map(i64::to_string).collect();
    println!("balances {who} {events} {}", list.join(","));
}

fn run_role(role: &str) -> Result<(), Box<dyn std::error::Error>> {
    let t = topic()?;
    match role {
        "recorder" => {
            let opts = JournalOptions::new(journal_dir()).fsync(Fsync::Interval(Duration::from_millis(10)));
            let (mut r, _) = Recorder::new(&t, &opts)?;
            println!("ready");
            loop {
                match r.record_for(Duration::from_millis(50)) {
                    Ok(_) => {}
                    Err(shmq::Error::Disconnected) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            println!("done recorder {}", r.writer().last_seq().map_or(0, |s| s + 1));
        }
        "ledger" => {
            // Sees every event live, from the first.
            let mut sub = t.subscriber().start(shmq::Start::Earliest).build()?;
            println!("ready");
            let (mut balances, mut n) = ([0i64; ACCOUNTS], 0u64);
            let mut buf = [0u8; 64];
            loop {
                match sub.recv_into(&mut buf) {
                    Ok(m) => {
                        apply(&mut balances, &buf[..m.len]);
                        n += 1;
                    }
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            print_balances("ledger", n, &balances);
        }
        "service" => {
            // Balances from nothing: the journal first, then live events.
            let mut stream = ReplayThenLive::new(&t, journal_dir(), ReplayFrom::Start)?;
            println!("ready");
            let (mut balances, mut n, mut replayed) = ([0i64; ACCOUNTS], 0u64, 0u64);
            let mut buf = [0u8; 64];
            loop {
                match stream.recv_into(&mut buf) {
                    Ok(m) => {
                        apply(&mut balances, &buf[..m.len]);
                        n += 1;
                        replayed += m.from_journal as u64;
                        if n % 10_000 == 0 {
                            println!("applied {n}");
                        }
                    }
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            println!("replayed {replayed}");
            print_balances("service", n, &balances);
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

fn start(role: &str, events: u64, dir: &std::path::Path, kids: &mut Kids) -> Result<Lines, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--role", role, "--events", &events.to_string()])
        .env("SHMQ_DIR", dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    kids.0.push(child);
    match lines.next().transpose()? {
        Some(l) if l == "ready" => Ok(lines),
        other => Err(format!("{role} did not start: {other:?}").into()),
    }
}

/// The line starting with `prefix`, read from `lines`.
fn line_with(lines: &mut Lines, prefix: &str) -> Result<String, Box<dyn std::error::Error>> {
    for l in lines.by_ref() {
        let l = l?;
        if let Some(rest) = l.strip_prefix(prefix) {
            return Ok(rest.trim().to_string());
        }
    }
    Err(format!("no line {prefix:?}").into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let events: u64 = arg("--events").map(|n| n.parse()).transpose()?.unwrap_or(200_000);
    if let Some(role) = arg("--role") {
        return run_role(role);
    }
    let dir = tempfile::tempdir()?;
    std::env::set_var("SHMQ_DIR", dir.path());
    let started = Instant::now();
    let t = topic()?;
    let mut kids = Kids(Vec::new());
    let mut recorder = start("recorder", events, dir.path(), &mut kids)?;
    let mut ledger = start("ledger", events, dir.path(), &mut kids)?;
    let mut service = start("service", events, dir.path(), &mut kids)?;
    let mut publisher = t.publisher()?;
    let mut killed_after = None;
    for i in 0..events {
        let e = Event { account: (i * 7 % ACCOUNTS as u64) as u32, _pad: 0, cents: (i as i64 % 1000) - 400 };
        publisher.send_value(&e)?;
        if i == events / 2 {
            // The service has applied some events by now: kill it, losing its balances, and
            // start it again; it rebuilds them from the journal and goes on live.
            let applied = line_with(&mut service, "applied")?;
            kids.0[2].kill()?;
            kids.0[2].wait()?;
            killed_after = Some(applied);
            service = start("service", events, dir.path(), &mut kids)?;
        }
    }
    drop(publisher); // the last publisher leaves: every reader ends once it has everything
    let ledger_line = line_with(&mut ledger, "balances ledger")?;
    let replayed = line_with(&mut service, "replayed")?;
    let service_line = line_with(&mut service, "balances service")?;
    let recorded = line_with(&mut recorder, "done recorder")?;
    println!(
        "service killed after applying {} events, restarted, replayed {replayed} from the journal",
        killed_after.unwrap_or_default()
    );
    println!("ledger  (every event live):        {ledger_line}");
    println!("service (journal, then live):      {service_line}");
    println!("journal: {recorded} events recorded");
    assert_eq!(ledger_line, service_line, "the rebuilt balances differ from the live ones");
    assert_eq!(recorded, events.to_string());
    println!(
        "{events} events in {:.2} s; the restarted service's balances equal the ledger's",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
