//! The group chat (`ChatNode`) on real runs: concurrent messages from every
//! node reach every node under Ricart-Agrawala mutual exclusion, the
//! replica files agree, `mgrctl check` finds ME1 and EC hold, and a
//! restarted node gets its history back.
//!
//! Each test gives its run a multicast port of its own, so that parallel
//! tests (and other copies of them) never hear each other's groups; the
//! nodes also ignore messages of other runs.

use super::harness::*;

/// A multicast group for one test, on a port near the test port base.
fn group(offset: u16) -> String {
    let base = std::env::var("MGR_TEST_PORT_BASE").ok().and_then(|b| b.parse().ok()).unwrap_or(25000u16);
    format!("224.1.1.1:{}", base.saturating_sub(1000) + offset)
}

/// The messages of a replica file, as sorted `sender#id text` lines.
fn replica(dir: &Path, file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, '\t');
            let (sender, id, _lamport, text) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            Some(format!("{sender}#{id} {text}"))
        })
        .collect();
    lines.sort();
    lines
}

fn wait_deliveries(daemon: &Daemon, run: &str, n: usize) -> Result<()> {
    for p in ["p1", "p2", "p3"] {
        let target = format!("{run}/{p}");
        wait_until(&format!("{n} deliveries at {target}"), || deliveries(daemon, &target).is_ok_and(|d| d.len() >= n))?;
    }
    Ok(())
}

#[test]
fn apps_chat_concurrent_messages_reach_everyone_under_mutual_exclusion() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = group(11);
    daemon.ok(&["launch", "ChatNode", "3", "--name", "chat", "--detach", "--", "--group", &g, "--check-secs", "1"])?;
    wait_until("3 nodes started", || {
        daemon.ok(&["logs", "chat"]).is_ok_and(|l| l.matches("restored 0 messages").count() == 3)
    })?;
    // `send RUN` types the line at every node at once: three concurrent
    // requests for the section, three times.
    for i in 1..=3 {
        daemon.ok(&["send", "chat", &format!("round {i}")])?;
    }
    wait_deliveries(&daemon, "chat", 9)?;
    for p in ["p1", "p2", "p3"] {
        let mut got = deliveries(&daemon, &format!("chat/{p}"))?;
        got.sort();
        let mut want: Vec<String> =
            (1..=3).flat_map(|i| ["p1", "p2", "p3"].map(|s| format!("{s} round {i}"))).collect();
        want.sort();
        assert_eq!(got, want, "deliveries at {p}");
    }
    let logs = daemon.ok(&["logs", "chat"])?;
    assert!(!logs.contains("mutex timeout"), "{logs}");
    // Every replica of every node holds the same nine messages.
    let run_dir = daemon.dir.join("runs").join("chat");
    let reference = replica(&run_dir, "p1.replica1.log");
    assert_eq!(reference.len(), 9, "{reference:?}");
    for p in ["p1", "p2", "p3"] {
        for i in 1..=3 {
            let file = format!("{p}.replica{i}.log");
            assert_eq!(replica(&run_dir, &file), reference, "{file}");
        }
    }
    let out = daemon.ctl(&["check", "chat", "--quiesce", "0.5"])?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.lines().any(|l| l.starts_with("ME1") && l.contains("holds")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("EC") && l.contains("holds")), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    daemon.ok(&["stop", "chat"])?;
    Ok(())
}

#[test]
fn apps_chat_restart_restores_the_history() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = group(12);
    daemon.ok(&["launch", "ChatNode", "3", "--name", "cp", "--detach", "--", "--group", &g])?;
    wait_until("3 nodes started", || {
        daemon.ok(&["logs", "cp"]).is_ok_and(|l| l.matches("restored 0 messages").count() == 3)
    })?;
    for (p, text) in [("p1", "one"), ("p3", "two"), ("p1", "three")] {
        daemon.ok(&["send", &format!("cp/{p}"), text])?;
    }
    wait_deliveries(&daemon, "cp", 3)?;
    // p2 saves a checkpoint on quit; the restart then finds it.
    daemon.ok(&["send", "cp/p2", "quit"])?;
    wait_until("p2 saved its checkpoint", || {
        daemon.ok(&["logs", "cp/p2"]).is_ok_and(|l| l.contains("checkpoint saved (3 messages)"))
    })?;
    assert!(daemon.dir.join("runs").join("cp").join("p2.checkpoint.json").exists());
    daemon.ok(&["restart", "cp/p2"])?;
    wait_until("p2 restored its history", || {
        daemon.ok(&["logs", "cp/p2"]).is_ok_and(|l| l.contains("restored 3 messages (3 from the checkpoint"))
    })?;
    // A second restart, by signal this time (no checkpoint of the new
    // message): the replicas bring the rest back.
    daemon.ok(&["send", "cp/p3", "four"])?;
    wait_deliveries(&daemon, "cp", 4)?;
    daemon.ok(&["restart", "cp/p2"])?;
    wait_until("p2 restored four messages", || {
        daemon.ok(&["logs", "cp/p2"]).is_ok_and(|l| l.contains("restored 4 messages (3 from the checkpoint, 1 more"))
    })?;
    daemon.ok(&["send", "cp/p2", "history"])?;
    wait_until("p2 lists its history", || {
        daemon.ok(&["logs", "cp/p2"]).is_ok_and(|l| l.contains("history 4 messages"))
    })?;
    daemon.ok(&["stop", "cp"])?;
    Ok(())
}

#[test]
fn apps_chat_mutex_timeout_gives_up_cleanly() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = group(13);
    daemon.ok(&[
        "launch",
        "ChatNode",
        "2",
        "--name",
        "to",
        "--detach",
        "--",
        "--group",
        &g,
        "--mutex-timeout-ms",
        "300",
    ])?;
    wait_until("2 nodes started", || {
        daemon.ok(&["logs", "to"]).is_ok_and(|l| l.matches("restored 0 messages").count() == 2)
    })?;
    // A paused p2 cannot reply: p1 gives the message up.
    daemon.ok(&["pause", "to/p2"])?;
    daemon.ok(&["send", "to/p1", "lost"])?;
    wait_until("p1 gave up", || {
        daemon
            .ok(&["logs", "to/p1"])
            .is_ok_and(|l| l.contains("error: mutex timeout after 300 ms (no reply from p2): message not sent: lost"))
    })?;
    // Resumed, p2 answers the abandoned request (p1 ignores that reply),
    // and the next message goes through.
    daemon.ok(&["resume", "to/p2"])?;
    daemon.ok(&["send", "to/p1", "kept"])?;
    wait_until("p2 delivered the next message", || deliveries(&daemon, "to/p2").is_ok_and(|d| d == ["p1 kept"]))?;
    assert_eq!(deliveries(&daemon, "to/p1")?, ["p1 kept"]);
    let out = daemon.ctl(&["check", "to", "--quiesce", "0.5"])?;
    let text = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{text}");
    daemon.ok(&["stop", "to"])?;
    Ok(())
}
