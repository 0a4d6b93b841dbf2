//! Runs the real `mgr-modules` binary as two processes on loopback, with the
//! launch contract set by hand, and checks that a message typed at p1 is
//! delivered at p2 by each link.

use crate::{BIN, free_addrs};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running instance. Dropping it kills the process, so that a failing
/// test does not leave modules running (they never exit on their own).
struct Instance {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Launch<'a> {
    module: &'a str,
    args: &'a [&'a str],
    name: &'a str,
    addrs: &'a [SocketAddr],
    events: Option<&'a Path>,
    /// Whether the test types commands; otherwise stdin is at end of file
    /// from the start, which the module must survive.
    with_stdin: bool,
    /// `MGR_INCARNATION`, unless 1.
    incarnation: u64,
}

fn launch(l: Launch<'_>) -> Instance {
    let index: usize = l.name[1..].parse().unwrap();
    let peers: Vec<String> = l.addrs.iter().enumerate().map(|(i, addr)| format!("p{}={addr}", i + 1)).collect();
    let mut command = Command::new(BIN);
    command
        .arg(l.module)
        .args(l.args)
        .env_clear()
        .env("MGR_RUN", "test")
        .env("MGR_SELF", l.name)
        .env("MGR_ADDR", l.addrs[index - 1].to_string())
        .env("MGR_PEERS", peers.join(","))
        .env("MGR_MEMBER", "m1")
        .stdin(if l.with_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(events) = l.events {
        command.env("MGR_EVENTS", events);
    }
    if l.incarnation != 1 {
        command.env("MGR_INCARNATION", l.incarnation.to_string());
    }
    let mut child = command.spawn().unwrap();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Instance { child, stdin, stdout: rx }
}

impl Instance {
    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits up to `timeout` for the line `want`, returning the lines seen before it.
    fn wait_for(&self, want: &str, timeout: Duration) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line == want => return Ok(seen),
                Ok(line) => seen.push(line),
                Err(_) => return Err(seen),
            }
        }
    }

    /// All lines printed during the next `period`.
    fn lines_during(&self, period: Duration) -> Vec<String> {
        let deadline = Instant::now() + period;
        let mut seen = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            seen.push(line);
        }
        seen
    }
}

fn pair(module: &str, args: &[&str], events: [Option<&Path>; 2]) -> (Instance, Instance) {
    let addrs = free_addrs(2);
    // p2 starts first and is never given commands: its stdin is closed.
    let launch_one = |name, events, with_stdin| {
        launch(Launch { module, args, name, addrs: &addrs, events, with_stdin, incarnation: 1 })
    };
    let p2 = launch_one("p2", events[1], false);
    let p1 = launch_one("p1", events[0], true);
    (p1, p2)
}

fn temp_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mgr-modules-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn read_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn fair_loss_link_delivers() {
    let (mut p1, p2) = pair("FairLossPointToPointLink", &[], [None, None]);
    p1.type_line("bogus");
    p1.wait_for("error: unknown command 'bogus' (try: send, help)", Duration::from_secs(5))
        .expect("p1 reports the unknown command");
    // A fair-loss link may lose a datagram (e.g. if p2 has not bound its port
    // yet), so the test sends until delivery, as FLL1 promises it will come.
    for _ in 0..25 {
        p1.type_line("send p2 hello");
        if p2.wait_for("deliver p1 hello", Duration::from_millis(200)).is_ok() {
            return;
        }
    }
    panic!("p2 never printed 'deliver p1 hello'");
}

#[test]
fn stubborn_link_delivers_again_and_again() {
    let (mut p1, p2) = pair("StubbornPointToPointLink", &["--period-ms", "100"], [None, None]);
    p1.type_line("send p2 hello");
    let seen = p2.wait_for("deliver p1 hello", Duration::from_secs(5));
    assert!(seen.is_ok(), "no delivery; p2 printed {seen:?}");
    let again = p2.lines_during(Duration::from_millis(1500));
    let duplicates = again.iter().filter(|l| *l == "deliver p1 hello").count();
    assert!(duplicates >= 2, "expected retransmissions, got {again:?}");
}

#[test]
fn perfect_link_delivers_once() {
    let events = [temp_file("p1.jsonl"), temp_file("p2.jsonl")];
    let (mut p1, p2) = pair("PerfectPointToPointLink", &["--period-ms", "100"], [Some(&events[0]), Some(&events[1])]);
    p1.type_line("send p2 hello");
    let seen = p2.wait_for("deliver p1 hello", Duration::from_secs(5));
    assert!(seen.is_ok(), "no delivery; p2 printed {seen:?}");
    p1.type_line("send p2 world");
    // The stubborn link below retransmits both messages about 15 times in
    // this window; each must still be delivered exactly once.
    let after = p2.lines_during(Duration::from_millis(1500));
    assert_eq!(after, ["deliver p1 world"]);

    let sent = read_events(&events[0]);
    let delivered = read_events(&events[1]);
    for path in &events {
        let _ = std::fs::remove_file(path);
    }
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["event"], "send");
    assert_eq!(sent[0]["process"], "p1");
    assert_eq!(sent[0]["peer"], "p2");
    assert_eq!(sent[0]["id"], 1);
    assert_eq!(sent[0]["lamport"], 1);
    assert_eq!(sent[0]["text"], "hello");
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_eq!(delivered[0]["event"], "deliver");
    assert_eq!(delivered[0]["process"], "p2");
    assert_eq!(delivered[0]["peer"], "p1");
    assert_eq!(delivered[0]["id"], 1);
    assert_eq!(delivered[0]["lamport"], 2);
    assert_eq!(delivered[1]["id"], 2);
    assert_eq!(delivered[1]["lamport"], 3);
}

#[test]
fn command_line_errors_exit_with_status_2() {
    let list = Command::new(BIN).arg("--list").output().unwrap();
    assert!(list.status.success());
    let names = String::from_utf8(list.stdout).unwrap();
    let catalog: Vec<&str> = mgr_modules::catalog::all().map(|m| m.name).collect();
    assert_eq!(names.lines().collect::<Vec<_>>(), catalog);
    assert_eq!(catalog[..3], ["FairLossPointToPointLink", "StubbornPointToPointLink", "PerfectPointToPointLink"]);

    let unknown = Command::new(BIN).arg("Nope").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8(unknown.stderr).unwrap();
    assert!(stderr.starts_with("error: unknown module 'Nope' (known: FairLossPointToPointLink, "), "{stderr}");

    let no_env = Command::new(BIN).arg("FairLossPointToPointLink").env_clear().output().unwrap();
    assert_eq!(no_env.status.code(), Some(2));
    assert_eq!(String::from_utf8(no_env.stderr).unwrap(), "error: MGR_RUN: not set\n");
}

/// The events file's schema, `modules/events.schema.json`.
fn schema() -> (boon::Schemas, boon::SchemaIndex) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events.schema.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let url = "file:///mgr/events.schema.json";
    compiler.add_resource(url, serde_json::from_str(&text).unwrap()).unwrap();
    let index = compiler.compile(url, &mut schemas).unwrap();
    (schemas, index)
}

/// Every line of the events files at `paths` is valid under the schema;
/// returns them.
pub(crate) fn valid_events(paths: &[PathBuf]) -> Vec<serde_json::Value> {
    let (schemas, index) = schema();
    let mut all = Vec::new();
    for path in paths {
        for event in read_events(path) {
            if let Err(err) = schemas.validate(&event, index) {
                panic!("{} breaks the events schema: {err}", event);
            }
            all.push(event);
        }
    }
    all
}

#[test]
fn the_events_of_links_and_broadcasts_follow_the_schema_and_a_restart_is_a_new_incarnation() {
    // A link and a broadcast, each with sends, receives and deliveries.
    let link = [temp_file("schema-pl1.jsonl"), temp_file("schema-pl2.jsonl")];
    let (mut p1, p2) = pair("PerfectPointToPointLink", &["--period-ms", "100"], [Some(&link[0]), Some(&link[1])]);
    p1.type_line("send p2 hello");
    p2.wait_for("deliver p1 hello", Duration::from_secs(5)).expect("the link delivers");
    drop((p1, p2));
    let events = valid_events(&link);
    assert!(events.iter().all(|e| e["inc"] == 1 && e["vc"].as_array().is_some_and(|vc| vc.len() == 2)));

    // p1 in its second life: its messages are numbered past its first's,
    // and every event says which life wrote it.
    let addrs = free_addrs(2);
    let beb = [temp_file("schema-beb1.jsonl"), temp_file("schema-beb2.jsonl")];
    let start = |name, events, with_stdin, incarnation| {
        launch(Launch {
            module: "BestEffortBroadcast",
            args: &[],
            name,
            addrs: &addrs,
            events,
            with_stdin,
            incarnation,
        })
    };
    let p2 = start("p2", Some(beb[1].as_path()), false, 1);
    let mut p1 = start("p1", Some(beb[0].as_path()), true, 2);
    p1.type_line("broadcast again");
    p2.wait_for("deliver p1 again", Duration::from_secs(5)).expect("the broadcast is delivered");
    drop((p1, p2));
    let events = valid_events(&beb);
    let broadcast = events.iter().find(|e| e["event"] == "broadcast").expect("a broadcast event");
    assert_eq!(broadcast["inc"], 2, "{broadcast}");
    assert_eq!(broadcast["id"], 1_000_000_001u64, "incarnation 2 numbers from 1000000001: {broadcast}");
    let delivered = events.iter().find(|e| e["event"] == "deliver" && e["process"] == "p2").expect("p2 delivers");
    assert_eq!((&delivered["id"], &delivered["inc"]), (&broadcast["id"], &serde_json::json!(1)), "{delivered}");

    // The manager's crash record, as it writes it, follows it too.
    let (schemas, index) = schema();
    let crash = serde_json::json!({"time_ms": 1, "run": "r", "process": "p2", "event": "crash", "by": "mgr", "inc": 1, "text": "killed by SIGKILL (killed)"});
    schemas.validate(&crash, index).expect("a crash record is valid");
    // And a line that lacks its clocks does not.
    let bare = serde_json::json!({"time_ms": 1, "run": "r", "process": "p2", "event": "deliver", "peer": "p1"});
    assert!(schemas.validate(&bare, index).is_err(), "an event without lamport, vc and inc is refused");
    for path in link.iter().chain(&beb) {
        let _ = std::fs::remove_file(path);
    }
}
