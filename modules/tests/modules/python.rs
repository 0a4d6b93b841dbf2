//! The Python SDK (`modules/python`, package `mgr_module`): its own unit
//! and end-to-end tests run under `cargo test`, with the built binary for
//! the tests where Python and Rust instances share a run; and the example
//! modules' events, from real processes on 127.0.0.1, judged by the same
//! checkers `mgrctl check` uses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mgr_modules::check::{self, RunEvents, Verdict};

use crate::{BIN, free_addrs};

/// `modules/python`, where the package, its examples and its tests live.
fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// The Python tests start their own processes and wait for them; this bounds
/// the whole run, so that a hung test fails instead of hanging `cargo test`.
const UNITTEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Fails with a clear message when there is no `python3`, rather than with a
/// spawn error deep in a test.
fn python3() -> Command {
    let probe = Command::new("python3").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        matches!(probe, Ok(status) if status.success()),
        "python3 is needed for the Python SDK's tests (apt-get install python3)"
    );
    let mut command = Command::new("python3");
    // No __pycache__ folders in the source tree.
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

#[test]
fn the_python_sdk_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf();
    let mut child = python3()
        .args(["-m", "unittest", "discover", "-s", "modules/python/tests", "-t", "modules/python"])
        .current_dir(&root)
        // The interoperability tests run Python and Rust instances together.
        .env("MGR_MODULES_BIN", BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    // unittest reports on stderr; both pipes are drained on threads so that
    // neither fills up while the other is read.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > UNITTEST_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("the Python SDK's tests failed ({status}):\n{stderr}\n{stdout}"),
        None => panic!("the Python SDK's tests took more than {UNITTEST_TIMEOUT:?}:\n{stderr}\n{stdout}"),
    }
}

/// An example module running as one process. Dropping it kills the process,
/// so that a failing test leaves nothing running.
struct Example {
    child: Child,
    stdin: ChildStdin,
    stdout: mpsc::Receiver<String>,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    fn start(script: &str, name: &str, addrs: &[SocketAddr], events: &Path, faults: &str) -> Example {
        let index: usize = name[1..].parse().unwrap();
        let peers: Vec<String> = addrs.iter().enumerate().map(|(i, addr)| format!("p{}={addr}", i + 1)).collect();
        let mut child = python3()
            .arg("-u")
            .arg(python_dir().join("examples").join(script))
            .args(["--period-ms", "50"])
            .env("MGR_RUN", "test")
            .env("MGR_SELF", name)
            .env("MGR_ADDR", addrs[index - 1].to_string())
            .env("MGR_PEERS", peers.join(","))
            .env("MGR_MEMBER", "m1")
            .env("MGR_EVENTS", events)
            .env("MGR_FAULTS", faults)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().unwrap();
        let pipe = child.stdout.take().unwrap();
        let (tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Example { child, stdin, stdout }
    }

    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits until every line of `want` was printed, in any order.
    fn wait_all(&self, want: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut missing: Vec<&String> = want.iter().collect();
        let mut seen = Vec::new();
        while !missing.is_empty() {
            match self.stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    missing.retain(|w| **w != line);
                    seen.push(line);
                }
                Err(_) => panic!("never printed {missing:?}; printed {seen:?}"),
            }
        }
    }
}

/// Runs `script` as three processes sharing one events file, has each
/// broadcast `rounds` messages, waits until every process printed every
/// delivery, lets the links settle, and returns the run's events as
/// `mgrctl check` would see them (quiesced, no crash).
fn broadcast_run(script: &str, faults: &str, rounds: usize) -> RunEvents {
    let dir = std::env::temp_dir().join(format!("mgr-modules-python-{}-{script}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&events);
    let addrs = free_addrs(3);
    let mut procs: Vec<Example> =
        ["p1", "p2", "p3"].iter().map(|name| Example::start(script, name, &addrs, &events, faults)).collect();
    let mut want = Vec::new();
    for round in 0..rounds {
        for (i, p) in procs.iter_mut().enumerate() {
            p.type_line(&format!("broadcast m{round} of p{}", i + 1));
            want.push(format!("deliver p{} m{round} of p{}", i + 1, i + 1));
        }
    }
    for p in &procs {
        p.wait_all(&want);
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(procs);
    let mut run = RunEvents {
        run: "test".into(),
        processes: vec!["p1".into(), "p2".into(), "p3".into()],
        quiesced: true,
        ..Default::default()
    };
    // Every line follows the events schema, as the Rust runtime's do.
    let valid = crate::links::valid_events(std::slice::from_ref(&events));
    assert!(valid.iter().all(|e| e["inc"] == 1 && e["vc"].as_array().is_some_and(|vc| vc.len() == 3)));
    run.add_lines(&std::fs::read_to_string(&events).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.bad_lines, 0, "every line of the events file is an event");
    run
}

fn verdicts(run: &RunEvents, module: &str) -> Vec<(&'static str, Verdict)> {
    let properties = check::properties_of(module);
    assert!(!properties.is_empty(), "{module} declares properties");
    check::check(run, &properties).into_iter().map(|(p, v)| (p.id, v)).collect()
}

#[test]
fn python_broadcasts_hold_the_books_properties() {
    let run = broadcast_run("best_effort.py", "loss=0.2 dup=0.2 seed=7", 2);
    for (id, verdict) in verdicts(&run, "BestEffortBroadcast") {
        assert_eq!(verdict, Verdict::Holds, "{id} on the Python best-effort broadcast");
    }
    let run = broadcast_run("reliable.py", "loss=0.2", 2);
    for (id, verdict) in verdicts(&run, "ReliableBroadcast") {
        assert_eq!(verdict, Verdict::Holds, "{id} on the Python reliable broadcast");
    }
}

#[test]
fn the_broken_python_broadcast_is_caught() {
    let run = broadcast_run("broken.py", "", 1);
    let verdicts = verdicts(&run, "BestEffortBroadcast");
    let beb2 = verdicts.iter().find(|(id, _)| *id == "BEB2").map(|(_, v)| v.clone());
    match beb2 {
        Some(Verdict::Violated(why)) => assert!(why.contains("twice"), "{why}"),
        other => panic!("BEB2 should be violated, got {other:?}"),
    }
    // It breaks only no duplication: everything is delivered, nothing made up.
    for (id, verdict) in verdicts {
        if id != "BEB2" {
            assert_eq!(verdict, Verdict::Holds, "{id}");
        }
    }
}
