//! The foundation: launch, streaming, logs, life cycle, faults, modules from
//! manifests, and every bad input.

use super::harness::*;

#[test]
fn launch_streams_a_delivery_routes_typed_lines_and_keeps_it_in_logs() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut session = daemon.spawn(&["launch", "FairLossPointToPointLink", "3", "--name", "chat"])?;
    session.expect("p3 started", |l| l.starts_with("p3 # started"))?;
    session.type_line("@p1 send p2 hello")?;
    session.expect("p2's delivery", |l| l == "p2 | deliver p1 hello")?;
    // @all reaches every instance: each sends to p3.
    session.type_line("@all send p3 hi")?;
    let mut senders = std::collections::BTreeSet::new();
    while senders.len() < 3 {
        let line = session.expect("p3's deliveries", |l| l.starts_with("p3 | deliver ") && l.ends_with(" hi"))?;
        senders.insert(line.split_whitespace().nth(3).unwrap_or_default().to_owned());
    }
    assert_eq!(senders.into_iter().collect::<Vec<_>>(), ["p1", "p2", "p3"]);
    // A line for an unknown instance is refused, and the session goes on.
    session.type_line("@p9 send p1 lost")?;
    session.type_line("@p2 send p1 still here")?;
    session.expect("p1's delivery", |l| l == "p1 | deliver p2 still here")?;

    let logs = daemon.ok(&["logs", "chat/p2"])?;
    assert!(logs.lines().any(|l| l == "p2 | deliver p1 hello"), "logs:\n{logs}");
    let ps = daemon.ps("chat")?;
    assert_eq!(ps.len(), 3);
    let addresses: Vec<&str> = ps.iter().map(|i| i["address"].as_str().unwrap()).collect();
    assert!(ps.iter().all(|i| i["state"] == "running" && i["member"] == "test"), "{ps:?}");
    assert!(addresses.iter().all(|a| a.starts_with("127.0.0.1:")));

    // Ctrl-C stops the run, as docker compose up does.
    session.signal(nix::sys::signal::Signal::SIGINT);
    let (code, rest) = session.finish()?;
    assert_eq!(code, 130);
    assert!(rest.iter().any(|l| l.starts_with("p1 # killed by SIGTERM (stopped)")), "{rest:?}");
    assert!(daemon.ps("chat")?.iter().all(|i| i["state"] == "stopped"));
    Ok(())
}

#[test]
fn json_output_has_every_field_and_a_failed_instance_fails_the_launch() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    let out =
        daemon.ctl(&["exec", "2", "--json", "--", "sh", "-c", "echo out; echo err >&2; [ \"$MGR_SELF\" = p1 ]"])?;
    assert_eq!(out.status.code(), Some(1), "p2 exits 1, so the launch fails");
    let lines: Vec<Value> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let out_line = lines.iter().find(|l| l["instance"] == "p2" && l["stream"] == "stdout").context("p2 stdout")?;
    for field in ["run", "instance", "member", "stream", "seq", "time", "text"] {
        assert!(!out_line[field].is_null(), "missing {field} in {out_line}");
    }
    assert_eq!(out_line["text"], "out");
    assert!(lines.iter().any(|l| l["instance"] == "p1" && l["stream"] == "stderr" && l["text"] == "err"));
    assert!(String::from_utf8(out.stderr)?.contains("p2 failed (1)"));
    Ok(())
}

#[test]
fn instances_get_their_addresses_and_the_whole_peer_table() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    let out = daemon.ok(&[
        "exec",
        "3",
        "--name",
        "env",
        "--",
        "sh",
        "-c",
        "echo $MGR_RUN $MGR_SELF $MGR_ADDR $MGR_PEERS $MGR_MEMBER",
    ])?;
    let ps = daemon.ps("env")?;
    let peers: Vec<String> =
        ps.iter().map(|i| format!("{}={}", i["instance"].as_str().unwrap(), i["address"].as_str().unwrap())).collect();
    let peers = peers.join(",");
    for i in &ps {
        let (name, address) = (i["instance"].as_str().unwrap(), i["address"].as_str().unwrap());
        let want = format!("{name} | env {name} {address} {peers} test");
        assert!(out.lines().any(|l| l == want), "want {want} in\n{out}");
    }
    Ok(())
}

#[test]
fn logs_follow_resumes_after_a_disconnect_without_gap_or_repeat() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    let script = "i=1; while [ $i -le 400 ]; do echo line $i; i=$((i+1)); sleep 0.005; done";
    let run = daemon.ok(&["exec", "1", "--detach", "--name", "count", "--", "sh", "-c", script])?;
    assert_eq!(run.trim(), "count");
    let mut first = daemon.spawn(&["logs", "count/p1", "-f", "--json"])?;
    let mut got: Vec<(u64, String)> = Vec::new();
    while got.len() < 50 {
        let line = first.expect("a json line", |_| true)?;
        let v: Value = serde_json::from_str(&line)?;
        got.push((v["seq"].as_u64().unwrap(), v["text"].as_str().unwrap().to_owned()));
    }
    drop(first); // the disconnect: the viewer is killed mid-stream
    let since = (got.last().unwrap().0 + 1).to_string();
    let out = daemon.ok(&["logs", "count/p1", "-f", "--json", "--since", &since])?;
    for line in out.lines() {
        let v: Value = serde_json::from_str(line)?;
        got.push((v["seq"].as_u64().unwrap(), v["text"].as_str().unwrap().to_owned()));
    }
    // seq 1 is the manager's "started" note; lines follow, then "exited".
    for (i, (seq, _)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "a gap or a repeat at {i}");
    }
    let lines: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).filter(|t| t.starts_with("line ")).collect();
    assert_eq!(lines.len(), 400);
    for (i, text) in lines.iter().enumerate() {
        assert_eq!(*text, format!("line {}", i + 1));
    }
    assert_eq!(got.last().unwrap().1, "exited with code 0");
    // The tail shows the last lines only.
    let tail = daemon.ok(&["logs", "count/p1", "--tail", "2"])?;
    assert_eq!(tail, "p1 | line 400\np1 # exited with code 0\n");
    Ok(())
}

#[test]
fn stop_kill_pause_resume_and_restart() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "PerfectPointToPointLink", "2", "--name", "life", "--detach"])?;
    let p1 = daemon.instance("life", "p1")?;
    let (pid, address) = (p1["pid"].as_i64().unwrap(), p1["address"].clone());

    assert_eq!(daemon.ok(&["pause", "life/p1"])?.trim(), "life/p1: paused");
    let state = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    wait_until("p1 to be stopped by SIGSTOP", || {
        state().rsplit(')').next().unwrap_or("").trim_start().starts_with('T')
    })?;
    assert!(daemon.err(&["resume", "life/p2"])?.contains("life/p2 is not paused"));
    assert_eq!(daemon.ok(&["resume", "life/p1"])?.trim(), "life/p1: running");

    assert_eq!(daemon.ok(&["kill", "life/p1"])?.trim(), "life/p1: killed");
    assert!(!alive(pid));
    let killed = daemon.instance("life", "p1")?;
    assert_eq!(killed["signal"], 9);
    assert!(daemon.err(&["send", "life/p1", "send", "p2", "x"])?.contains("life/p1 is not running"));

    assert_eq!(daemon.ok(&["restart", "life/p1"])?.trim(), "life/p1: running");
    let again = daemon.instance("life", "p1")?;
    assert_eq!(again["address"], address, "a restart keeps the address");
    assert_ne!(again["pid"].as_i64().unwrap(), pid);
    assert_eq!(again["starts"], 2);
    // The restarted p1 works: p2 hears from it.
    daemon.ok(&["send", "life/p1", "send", "p2", "back again"])?;
    wait_until("p2 to deliver from the restarted p1", || {
        daemon.ok(&["logs", "life/p2"]).is_ok_and(|l| l.contains("p2 | deliver p1 back again"))
    })?;
    // Restart of a running instance: a new process on the same address.
    let before = daemon.instance("life", "p2")?["pid"].as_i64().unwrap();
    daemon.ok(&["restart", "life/p2"])?;
    let p2 = daemon.instance("life", "p2")?;
    assert_ne!(p2["pid"].as_i64().unwrap(), before);
    assert!(!alive(before));

    let stopped = daemon.ok(&["stop", "life"])?;
    assert_eq!(stopped.lines().count(), 2, "{stopped}");
    assert!(daemon.ps("life")?.iter().all(|i| i["state"] == "stopped"));
    let logs = daemon.ok(&["logs", "life/p1"])?;
    for note in ["p1 # started", "p1 # paused", "p1 # resumed", "p1 # killed by SIGKILL (killed)", "p1 # restarted"] {
        assert!(logs.contains(note), "{note} missing in\n{logs}");
    }
    // The run's event log records the crashes (the kill, the restart), not
    // the requested stop at the end.
    let crashes = |p: &str| -> Result<Vec<String>> {
        let events = std::fs::read_to_string(daemon.dir.join(format!("runs/life/{p}.events.jsonl")))?;
        let mut found = Vec::new();
        for line in events.lines() {
            let v: Value = serde_json::from_str(line)?;
            if v["event"] == "crash" {
                assert_eq!(v["process"], p);
                found.push(v["text"].as_str().unwrap_or_default().to_owned());
            }
        }
        Ok(found)
    };
    assert_eq!(crashes("p1")?, ["killed by SIGKILL (killed)"]);
    assert_eq!(crashes("p2")?, ["killed by SIGTERM (restarting)"]);
    Ok(())
}

#[test]
fn stop_escalates_to_sigkill_after_the_grace_period() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    daemon.ok(&[
        "exec",
        "1",
        "--name",
        "stubborn",
        "--detach",
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ])?;
    wait_until("the trap to be set", || daemon.ok(&["logs", "stubborn/p1"]).is_ok_and(|l| l.contains("ready")))?;
    let started = Instant::now();
    daemon.ok(&["stop", "stubborn"])?;
    assert!(started.elapsed() >= Duration::from_millis(900), "stop must wait for the grace period");
    assert_eq!(daemon.instance("stubborn", "p1")?["signal"], 9);
    Ok(())
}

#[test]
fn bad_input_gets_a_clear_error_and_the_daemon_stays_up() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    assert_eq!(
        daemon.err(&["launch", "NoSuchLink", "2"])?,
        "mgrctl: unknown module 'NoSuchLink' (see: mgrctl modules)"
    );
    assert!(daemon.err(&["launch", "FairLossPointToPointLink", "0"])?.contains("between 1 and 256, not 0"));
    assert!(daemon.err(&["launch", "FairLossPointToPointLink", "257"])?.contains("between 1 and 256, not 257"));
    assert!(daemon.err(&["exec", "2", "--", "true"])?.contains("exec is not allowed on this manager"));
    let exec = Daemon::start(&["--allow-exec"])?;
    let err = exec.err(&["exec", "2", "--name", "missing", "--", "/no/such/program"])?;
    assert!(err.contains("cannot start '/no/such/program' for missing/p1"), "{err}");
    assert!(exec.err(&["ps", "missing"])?.contains("unknown run"), "a failed launch leaves no run");
    exec.ok(&["exec", "1", "--name", "missing", "--", "true"])?;
    assert!(daemon.err(&["ps", "nope"])?.contains("unknown run 'nope'"));
    assert!(daemon.err(&["logs", "nope/p1"])?.contains("unknown run 'nope'"));
    daemon.ok(&["launch", "FairLossPointToPointLink", "2", "--name", "ok", "--detach"])?;
    assert!(daemon.err(&["send", "ok/p7", "hello"])?.contains("run 'ok' has no instance 'p7'"));
    assert!(
        daemon
            .err(&["launch", "FairLossPointToPointLink", "1", "--name", "ok"])?
            .contains("a run named 'ok' exists already")
    );
    assert!(daemon.err(&["launch", "FairLossPointToPointLink", "1", "--name", "../x"])?.contains("is not valid"));
    assert!(daemon.err(&["modules", "Nope"])?.contains("unknown module 'Nope'"));
    // Every error above was one line.
    assert_eq!(daemon.err(&["kill", "ok/p9"])?.lines().count(), 1);
    assert_eq!(daemon.ps("ok")?.len(), 2, "the daemon is still up and its run untouched");

    // A port range too small for the launch: refused whole, nothing started.
    let small = Daemon::start_with(&[], &port_range(2))?;
    small.ok(&["launch", "FairLossPointToPointLink", "1", "--name", "one", "--detach"])?;
    let err = small.err(&["launch", "FairLossPointToPointLink", "2", "--name", "two"])?;
    assert!(err.contains("no free port left in the range"), "{err}");
    assert!(small.err(&["ps", "two"])?.contains("unknown run"));

    // A second daemon on the same state dir.
    let out = Command::new(bin("mgr")).args(["start", "--no-mdns", "--state-dir"]).arg(&daemon.dir).output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another mgr is already running on state dir"));
    // A TCP port without the group key is refused before anything is bound.
    let out = Command::new(bin("mgr"))
        .args(["start", "--listen", "0.0.0.0:0", "--no-mdns", "--allow-exec", "--state-dir"])
        .arg(daemon.dir.join("other"))
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("mgr: --listen needs the group key") && err.contains("--key-file") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(daemon.ps("ok")?.len(), 2);

    // No daemon at all.
    let nowhere = daemon.dir.join("nowhere.sock");
    let out = run_with_timeout({
        let mut c = Command::new(bin("mgrctl"));
        c.arg("--socket").arg(&nowhere).arg("ps");
        c
    })?;
    let err = String::from_utf8(out.stderr)?;
    assert!(!out.status.success());
    assert!(err.contains("no mgr daemon at") && err.contains("mgr start") && err.contains("--local"), "{err}");
    Ok(())
}

#[test]
fn local_runs_an_embedded_manager_for_one_command() -> Result<()> {
    // The README's main job: no daemon, one command.
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(bin("mgrctl"));
    command
        .arg("--socket")
        .arg(dir.path().join("absent.sock"))
        .args(["--local", "launch", "FairLossPointToPointLink", "2", "--timeout", "3s"])
        .env("NO_COLOR", "1");
    let mut session = Session::spawn(command)?;
    session.expect("p2 started", |l| l.starts_with("p2 # started"))?;
    session.type_line("@p1 send p2 hello")?;
    session.expect("the delivery", |l| l == "p2 | deliver p1 hello")?;
    let (code, _) = session.finish()?;
    assert_eq!(code, 0);
    Ok(())
}

#[test]
fn modules_are_listed_and_described() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let list = daemon.ok(&["modules"])?;
    // Every module the issue asks for, in the book's order.
    let book = [
        "FairLossPointToPointLink",
        "StubbornPointToPointLink",
        "PerfectPointToPointLink",
        "PerfectFailureDetector",
        "LeaderElection",
        "EventuallyPerfectFailureDetector",
        "EventualLeaderDetector",
        "BestEffortBroadcast",
        "ReliableBroadcast",
        "UniformReliableBroadcast",
        "ProbabilisticBroadcast",
        "FifoReliableBroadcast",
        "CausalOrderBroadcast",
        "RegularRegister",
        "AtomicRegister",
        "Consensus",
        "UniformConsensus",
        "TotalOrderBroadcast",
    ];
    assert!(list.starts_with("MODULE "), "a table with its header:\n{list}");
    let listed: Vec<&str> = list.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    // The lab applications (modules/src/apps/) come after the book's modules.
    assert_eq!(listed[..book.len().min(listed.len())], book);
    for app in ["MulticastPeer", "ChatNode", "AckClient"] {
        assert!(listed[book.len()..].contains(&app), "{list}");
    }
    // Each is described with its interface, properties and algorithms.
    for line in daemon.ok(&["modules", "--json"])?.lines() {
        let m: Value = serde_json::from_str(line)?;
        let name = m["name"].as_str().context("name")?;
        let described = daemon.ok(&["modules", name])?;
        for text in ["Events", "Properties", "Commands (stdin)", "Output (stdout)"] {
            assert!(described.contains(text), "{text} missing in the description of {name}");
        }
        for algorithm in m["algorithms"].as_array().context("algorithms")? {
            assert!(described.contains(algorithm.as_str().unwrap_or("?")), "{name}: {algorithm} not described");
        }
    }
    let perfect = daemon.ok(&["modules", "PerfectPointToPointLink"])?;
    for text in ["Module 2.3", "Eliminate Duplicates", "PL1", "PL2", "PL3", "Deliver"] {
        assert!(perfect.contains(text), "{text} missing in\n{perfect}");
    }
    let members = daemon.ok(&["members", "--json"])?;
    let me: Value = serde_json::from_str(members.trim())?;
    assert_eq!(me["name"], "test");
    assert_eq!(me["state"], "alive");
    Ok(())
}

#[test]
fn a_viewer_that_does_not_read_never_blocks_an_instance_nor_loses_a_line() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    // A viewer whose stdout nobody reads: its pipe fills within the first
    // few thousand lines and it stops reading from the daemon.
    let mut stuck = daemon.command(&["exec", "1", "--name", "flood", "--", "seq", "1", "500000"]);
    let stuck = stuck.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stuck = Reap(stuck);
    wait_until("the instance to finish although its viewer is stuck", || {
        daemon.instance("flood", "p1").is_ok_and(|p1| p1["state"] == "exited")
    })?;
    // Every line is in the log, in order.
    let logs = daemon.ok(&["logs", "flood/p1"])?;
    let lines: Vec<&str> = logs.lines().filter_map(|l| l.strip_prefix("p1 | ")).collect();
    assert_eq!(lines.len(), 500_000);
    assert!(lines.iter().enumerate().all(|(i, l)| *l == (i + 1).to_string()));
    drop(stuck);
    Ok(())
}

#[test]
fn the_perfect_link_delivers_everything_once_through_loss_duplication_and_delay() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let launch = ["launch", "PerfectPointToPointLink", "2", "--name", "lossy", "--detach"];
    daemon
        .ok(&[&launch[..], &["--loss", "0.3", "--dup", "0.3", "--delay", "0-20", "--", "--period-ms", "50"]].concat())?;
    for i in 1..=20 {
        daemon.ok(&["send", "lossy/p1", "send", "p2", &format!("m{i}")])?;
    }
    wait_until("p2 to deliver all 20", || deliveries(&daemon, "lossy/p2").is_ok_and(|d| d.len() >= 20))?;
    // Retransmissions go on; none may be delivered again.
    thread::sleep(Duration::from_millis(500));
    let mut got = deliveries(&daemon, "lossy/p2")?;
    got.sort();
    let mut want: Vec<String> = (1..=20).map(|i| format!("p1 m{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn faults_change_while_a_run_is_live_and_a_partition_heals() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "3", "--name", "split", "--detach"])?;
    let told = daemon.ok(&["fault", "split", "--partition", "p1,p2/p3"])?;
    assert_eq!(told.trim(), "split: faults partition=p1,p2/p3 (told 3 instances)");
    daemon.ok(&["send", "split/p1", "send", "p3", "across"])?;
    daemon.ok(&["send", "split/p3", "send", "p1", "back"])?;
    daemon.ok(&["send", "split/p1", "send", "p2", "inside"])?;
    wait_until("the delivery inside the block", || deliveries(&daemon, "split/p2").is_ok_and(|d| d.len() == 1))?;
    thread::sleep(Duration::from_millis(300));
    assert!(deliveries(&daemon, "split/p3")?.is_empty(), "nothing crosses the partition");
    assert!(deliveries(&daemon, "split/p1")?.is_empty(), "in either direction");

    daemon.ok(&["fault", "split", "--heal", "--loss", "1"])?;
    daemon.ok(&["send", "split/p1", "send", "p3", "lost"])?;
    thread::sleep(Duration::from_millis(300));
    assert!(deliveries(&daemon, "split/p3")?.is_empty(), "loss 1 drops everything");

    assert_eq!(daemon.ok(&["fault", "split", "--loss", "0"])?.trim(), "split: faults none (told 3 instances)");
    daemon.ok(&["send", "split/p1", "send", "p3", "healed"])?;
    wait_until("the delivery after the heal", || deliveries(&daemon, "split/p3").is_ok_and(|d| d == ["p1 healed"]))?;
    // The log says when the faults changed.
    assert!(daemon.ok(&["logs", "split/p3"])?.contains("p3 # faults: partition=p1,p2/p3"));
    // What a user types is never taken for the manager's control (which
    // comes on a pipe of its own): p1 answers it as an unknown command and
    // still sends.
    daemon.ok(&["send", "split/p1", "#mgr", "faults", "loss=1"])?;
    wait_until("p1's answer", || {
        daemon.ok(&["logs", "split/p1"]).is_ok_and(|l| l.contains("error: unknown command '#mgr'"))
    })?;
    daemon.ok(&["send", "split/p1", "send", "p3", "typed"])?;
    wait_until("the delivery after the typed line", || {
        deliveries(&daemon, "split/p3").is_ok_and(|d| d.contains(&"p1 typed".to_owned()))
    })?;

    // Bad fault requests are refused and change nothing.
    assert!(daemon.err(&["fault", "split", "--loss", "2"])?.contains("loss must be a probability between 0 and 1"));
    assert!(daemon.err(&["fault", "split", "--partition", "p1/p9"])?.contains("'p9', which is not an instance"));
    assert!(daemon.err(&["fault", "split", "--delay", "9-1"])?.contains("delay must be MIN-MAX"));
    assert!(daemon.err(&["fault", "nope", "--loss", "0.1"])?.contains("unknown run 'nope'"));
    assert!(
        daemon.err(&["launch", "FairLossPointToPointLink", "2", "--dup", "1.5"])?.contains("dup must be a probability")
    );
    Ok(())
}

#[test]
fn faults_need_the_module_runtime() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    daemon.ok(&["exec", "1", "--name", "plain", "--detach", "--", "sleep", "30"])?;
    let err = daemon.err(&["fault", "plain", "--loss", "0.5"])?;
    assert!(
        err.contains("run 'plain' cannot take network faults: faults are applied by the module runtime, and it runs a command (exec)"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_stubborn_link_gets_through_once_the_partition_heals() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "StubbornPointToPointLink", "2", "--name", "wait", "--detach", "--", "--period-ms", "50"])?;
    daemon.ok(&["fault", "wait", "--partition", "p1/p2"])?;
    daemon.ok(&["send", "wait/p1", "send", "p2", "patience"])?;
    thread::sleep(Duration::from_millis(400));
    assert!(deliveries(&daemon, "wait/p2")?.is_empty());
    daemon.ok(&["fault", "wait", "--heal"])?;
    wait_until("the retransmission after the heal", || deliveries(&daemon, "wait/p2").is_ok_and(|d| !d.is_empty()))?;
    assert!(deliveries(&daemon, "wait/p2")?.iter().all(|d| d == "p1 patience"));
    Ok(())
}

#[test]
fn a_python_module_from_a_manifest_talks_with_the_rust_fair_loss_link() -> Result<()> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules/python/examples");
    let examples = examples.to_str().context("path")?;
    let daemon = Daemon::start(&["--modules-dir", examples])?;
    let list = daemon.ok(&["modules"])?;
    assert!(list.lines().any(|l| l.starts_with("PyPlainFairLossLink") && l.ends_with("[manifest]")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("FairLossPointToPointLink")));
    let described = daemon.ok(&["modules", "PyPlainFairLossLink"])?;
    assert!(described.contains("FLL3 No creation") && described.contains("plain_fair_loss.toml"), "{described}");

    daemon.ok(&["launch", "PyPlainFairLossLink", "2", "--name", "py", "--detach"])?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "1", "--name", "rs", "--detach"])?;
    let py1 = daemon.instance("py", "p1")?["address"].as_str().context("address")?.to_owned();
    let rs1 = daemon.instance("rs", "p1")?["address"].as_str().context("address")?.to_owned();
    // Within the Python run, by name; then across languages, by address. The
    // first datagrams may reach an interpreter still starting: its socket was
    // bound by mgr beforehand, so they wait for it.
    daemon.ok(&["send", "py/p1", "send", "p2", "hello from p1"])?;
    wait_until("the Python delivery", || deliveries(&daemon, "py/p2").is_ok_and(|d| d == ["p1 hello from p1"]))?;
    daemon.ok(&["send", "py/p1", "send", &rs1, "hello Rust"])?;
    wait_until("Rust to hear Python", || {
        deliveries(&daemon, "rs/p1").is_ok_and(|d| d == [format!("{py1} hello Rust")])
    })?;
    daemon.ok(&["send", "rs/p1", "send", &py1, "hello Python"])?;
    wait_until("Python to hear Rust", || {
        deliveries(&daemon, "py/p1").is_ok_and(|d| d == [format!("{rs1} hello Python")])
    })?;
    Ok(())
}

#[test]
fn the_stubborn_link_delivers_every_message_through_loss_and_duplication() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        "StubbornPointToPointLink",
        "2",
        "--name",
        "sl",
        "--detach",
        "--loss",
        "0.2",
        "--dup",
        "0.1",
        "--",
        "--period-ms",
        "50",
    ])?;
    for i in 1..=10 {
        daemon.ok(&["send", "sl/p1", "send", "p2", &format!("m{i}")])?;
    }
    // SL1: every message is delivered (again and again: it is stubborn).
    wait_until("every message at least once", || {
        deliveries(&daemon, "sl/p2").is_ok_and(|d| (1..=10).all(|i| d.contains(&format!("p1 m{i}"))))
    })?;
    // SL2: nothing that was not sent.
    assert!(deliveries(&daemon, "sl/p2")?.iter().all(|d| (1..=10).any(|i| *d == format!("p1 m{i}"))));
    Ok(())
}
