//! The group chat (`ChatNode`) on real runs: concurrent messages from every
//! node reach every node under Ricart-Agrawala mutual exclusion, the
//! replica files agree, `mgrctl check` finds ME1 and EC hold, a restarted
//! node gets its history back, `sair` leaves, a node of another run joins
//! the conversation, a user's checkpoint outlives the run and another
//! user's is refused, and the replica check finds extra lines.
//!
//! Each test gives its runs a multicast group port of its own, so that
//! parallel tests (and other copies of them) never hear each other: nodes
//! on one group are one chat, whatever their run.

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

/// The chat lines `instance` (`RUN/pI`) showed, as `user text`: the
/// report's display is `[HH:MM:SS] user: text`.
fn deliveries(daemon: &Daemon, instance: &str) -> Result<Vec<String>> {
    let logs = daemon.ok(&["logs", instance])?;
    let prefix = format!("{} | [", instance.rsplit('/').next().unwrap_or_default());
    Ok(logs
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (time, rest) = l.split_once("] ")?;
            let (user, text) = rest.split_once(": ")?;
            (time.len() == 8).then(|| format!("{user} {text}"))
        })
        .collect())
}

fn wait_deliveries(daemon: &Daemon, run: &str, n: usize) -> Result<()> {
    for p in ["p1", "p2", "p3"] {
        let target = format!("{run}/{p}");
        wait_until(&format!("{n} deliveries at {target}"), || deliveries(daemon, &target).is_ok_and(|d| d.len() >= n))?;
    }
    Ok(())
}

/// `mgrctl check RUN` passes with ME1 (and EC) holding.
fn check_holds(daemon: &Daemon, run: &str) -> Result<()> {
    let out = daemon.ctl(&["check", run, "--quiesce", "0.5"])?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.lines().any(|l| l.starts_with("ME1") && l.contains("holds")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("EC") && l.contains("holds")), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
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
    check_holds(&daemon, "chat")?;
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
    // The history is shown again, as the report's client does at restore:
    // the first life showed the three messages, the second again.
    wait_until("p2 reprinted its history", || deliveries(&daemon, "cp/p2").is_ok_and(|d| d.len() == 6))?;
    let mut shown = deliveries(&daemon, "cp/p2")?[3..].to_vec();
    shown.sort();
    assert_eq!(shown, ["p1 one", "p1 three", "p3 two"]);
    // Killed this time (SIGKILL: no last checkpoint with the new message),
    // then started again: the replicas bring the rest back.
    daemon.ok(&["send", "cp/p3", "four"])?;
    wait_deliveries(&daemon, "cp", 4)?;
    daemon.ok(&["kill", "cp/p2"])?;
    wait_until("p2 killed", || daemon.instance("cp", "p2").is_ok_and(|i| i["state"] == "killed"))?;
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
    check_holds(&daemon, "to")?;
    daemon.ok(&["stop", "to"])?;
    Ok(())
}

/// `sair` (the report's quit) and `quit` leave alike: the checkpoint is
/// saved, the others are told, the node exits 0; SIGTERM (`mgrctl stop`)
/// saves and tells too, and so does the end of stdin for a node run by hand.
#[test]
fn apps_chat_sair_quit_stop_and_end_of_input_leave_with_a_checkpoint() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = group(14);
    daemon.ok(&["launch", "ChatNode", "3", "--name", "sair", "--detach", "--", "--group", &g])?;
    wait_until("3 nodes started", || logs_of(&daemon, "sair").matches("restored 0 messages").count() == 3)?;
    daemon.ok(&["send", "sair/p1", "oi"])?;
    wait_deliveries(&daemon, "sair", 1)?;
    daemon.ok(&["send", "sair/p2", "sair"])?;
    wait_until("p2 to exit", || daemon.instance("sair", "p2").is_ok_and(|i| i["state"] == "exited"))?;
    assert_eq!(daemon.instance("sair", "p2")?["exit_code"], 0);
    assert!(logs_of(&daemon, "sair/p2").contains("p2 | checkpoint saved (1 messages); bye"));
    assert!(!deliveries(&daemon, "sair/p1")?.iter().any(|d| d.ends_with("sair")), "sair is no chat message");
    wait_until("the others to see p2 leave", || {
        ["sair/p1", "sair/p3"].iter().all(|t| logs_of(&daemon, t).contains("| p2 left (p2)"))
    })?;
    // Without p2, the section needs p3's reply only: the next message goes at once.
    daemon.ok(&["send", "sair/p3", "still here"])?;
    wait_until("p1 to get it", || {
        deliveries(&daemon, "sair/p1").is_ok_and(|d| d.contains(&"p3 still here".to_owned()))
    })?;
    assert!(!logs_of(&daemon, "sair").contains("mutex timeout"));
    daemon.ok(&["stop", "sair/p3"])?;
    wait_until("p3 saved on SIGTERM", || logs_of(&daemon, "sair/p3").contains("checkpoint saved (2 messages); bye"))?;
    wait_until("p1 to see p3 leave", || logs_of(&daemon, "sair/p1").contains("| p3 left (p3)"))?;
    let saved = std::fs::read_to_string(daemon.dir.join("runs/sair/p3.checkpoint.json"))?;
    assert!(saved.contains("\"still here\""), "{saved}");
    daemon.ok(&["stop", "sair"])?;

    // By hand, with stdin at its end at once: the node leaves at once.
    let dir = tempfile::tempdir()?;
    let port = free_udp_port()?;
    let out = std::process::Command::new(bin("mgr-modules"))
        .arg("ChatNode")
        .args(["--group", &group(15), "--user", "hand"])
        .env("MGR_RUN", "byhand")
        .env("MGR_SELF", "p1")
        .env("MGR_ADDR", format!("127.0.0.1:{port}"))
        .env("MGR_PEERS", format!("p1=127.0.0.1:{port}"))
        .env("MGR_MEMBER", "by-hand")
        .env("MGR_DIR", dir.path())
        .env("MGR_DATA", dir.path())
        .stdin(std::process::Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("checkpoint saved (0 messages); bye\n"), "{stdout}");
    assert!(dir.path().join("ChatNode/hand.checkpoint.json").exists(), "the user's checkpoint is in MGR_DATA");
    Ok(())
}

fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A node started later, in a run of its own on the same group, joins the
/// conversation: it announces itself, the others add it to the members the
/// mutual exclusion asks, its messages reach every node and theirs reach
/// it; sections of the two runs never overlap in time.
#[test]
fn apps_chat_a_node_of_another_run_joins_and_mutual_exclusion_still_holds() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = group(16);
    daemon.ok(&["launch", "ChatNode", "3", "--name", "room", "--detach", "--", "--group", &g, "--delay-ms", "0"])?;
    wait_until("3 nodes started", || logs_of(&daemon, "room").matches("restored 0 messages").count() == 3)?;
    daemon.ok(&["send", "room", "before dave"])?;
    wait_deliveries(&daemon, "room", 3)?;
    daemon.ok(&[
        "launch",
        "ChatNode",
        "1",
        "--name",
        "late",
        "--detach",
        "--",
        "--group",
        &g,
        "--user",
        "dave",
        "--delay-ms",
        "0",
    ])?;
    wait_until("the room to see dave join", || {
        logs_of(&daemon, "room").matches("| dave joined (late/p1 at ").count() == 3
    })?;
    wait_until("dave to know the room", || logs_of(&daemon, "late").matches(" joined (room/p").count() == 3)?;
    daemon.ok(&["send", "late/p1", "peers"])?;
    wait_until("dave's peers", || logs_of(&daemon, "late").contains("| peers p1="))?;
    let peers = logs_of(&daemon, "late");
    assert!(peers.contains("(me, dave) room/p1=") && peers.contains("(p3) group "), "{peers}");
    // Everyone at once, dave included, three times: concurrent requests
    // across the two runs.
    for i in 1..=3 {
        daemon.ok(&["send", "room", &format!("round {i}")])?;
        daemon.ok(&["send", "late/p1", &format!("dave {i}")])?;
    }
    let all = 3 + 12;
    wait_deliveries(&daemon, "room", all)?;
    wait_until("dave to hold the rounds", || deliveries(&daemon, "late/p1").is_ok_and(|d| d.len() >= 12))?;
    for p in ["p1", "p2", "p3"] {
        let got = deliveries(&daemon, &format!("room/{p}"))?;
        for i in 1..=3 {
            assert!(got.contains(&format!("dave dave {i}")), "room/{p} lacks dave's message {i}: {got:?}");
        }
    }
    let dave = deliveries(&daemon, "late/p1")?;
    for i in 1..=3 {
        for p in ["p1", "p2", "p3"] {
            assert!(dave.contains(&format!("{p} round {i}")), "dave lacks {p}'s round {i}: {dave:?}");
        }
    }
    assert!(!logs_of(&daemon, "room").contains("mutex timeout") && !logs_of(&daemon, "late").contains("mutex timeout"));
    check_holds(&daemon, "room")?;
    // ME1 across the runs: on one machine the wall clock orders the sections.
    let mut sections = Vec::new();
    for run in ["room", "late"] {
        let events = daemon.ok(&["events", run, "--json"])?;
        let mut open: std::collections::BTreeMap<String, u64> = Default::default();
        for line in events.lines() {
            let e: Value = serde_json::from_str(line)?;
            let (who, at) =
                (format!("{run}/{}", e["process"].as_str().unwrap_or("?")), e["time_ms"].as_u64().unwrap_or(0));
            match e["event"].as_str() {
                Some("enter") => {
                    open.insert(who, at);
                }
                Some("exit") => sections.push((open.remove(&who).context("exit without enter")?, at, who)),
                _ => {}
            }
        }
    }
    sections.sort();
    assert_eq!(sections.len(), all, "{sections:?}");
    for pair in sections.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two sections overlap: {pair:?}");
    }
    // Dave leaves: the room drops him and goes on without waiting for him.
    daemon.ok(&["send", "late/p1", "sair"])?;
    wait_until("the room to see dave leave", || {
        logs_of(&daemon, "room").matches("| dave left (late/p1)").count() == 3
    })?;
    daemon.ok(&["send", "room/p1", "after dave"])?;
    wait_deliveries(&daemon, "room", all + 1)?;
    daemon.ok(&["stop", "room"])?;
    Ok(())
}

/// A user's checkpoint is the user's, not the run's: a later run of the
/// same user gets the history back (and shows it); a checkpoint of another
/// user, or a damaged one, is refused and the node starts clean, saying why.
#[test]
fn apps_chat_a_users_checkpoint_outlives_the_run_and_another_users_is_refused() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = group(17);
    let brenda = ["--", "--group", g.as_str(), "--user", "brenda"];
    let mut launch = vec!["launch", "ChatNode", "1", "--name", "first", "--detach"];
    launch.extend_from_slice(&brenda);
    daemon.ok(&launch)?;
    wait_until("brenda started", || logs_of(&daemon, "first").contains("restored 0 messages"))?;
    daemon.ok(&["send", "first/p1", "oi gente"])?;
    daemon.ok(&["send", "first/p1", "tudo bem?"])?;
    wait_until("two messages", || deliveries(&daemon, "first/p1").is_ok_and(|d| d.len() == 2))?;
    daemon.ok(&["send", "first/p1", "sair"])?;
    wait_until("brenda left", || logs_of(&daemon, "first").contains("checkpoint saved (2 messages); bye"))?;
    let data = daemon.dir.join("data/ChatNode");
    assert!(data.join("brenda.checkpoint.json").exists(), "the checkpoint is the user's, under the manager's data");

    let mut launch = vec!["launch", "ChatNode", "1", "--name", "second", "--detach"];
    launch.extend_from_slice(&brenda);
    daemon.ok(&launch)?;
    wait_until("brenda's history back", || {
        logs_of(&daemon, "second").contains("restored 2 messages (2 from the checkpoint, 0 more from the replicas)")
    })?;
    wait_until("the history shown", || deliveries(&daemon, "second/p1").is_ok_and(|d| d.len() == 2))?;
    assert_eq!(deliveries(&daemon, "second/p1")?, ["brenda oi gente", "brenda tudo bem?"]);
    // Her numbers go on where they stopped.
    daemon.ok(&["send", "second/p1", "voltei"])?;
    wait_until("the new message", || deliveries(&daemon, "second/p1").is_ok_and(|d| d.len() == 3))?;
    daemon.ok(&["stop", "second"])?;
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(data.join("brenda.checkpoint.json"))?)?;
    assert_eq!(saved["next_id"], 4, "{saved}");

    // Brenda's file at carl's place: refused, carl starts clean.
    std::fs::copy(data.join("brenda.checkpoint.json"), data.join("carl.checkpoint.json"))?;
    daemon.ok(&["launch", "ChatNode", "1", "--name", "third", "--detach", "--", "--group", &g, "--user", "carl"])?;
    wait_until("carl started", || logs_of(&daemon, "third").contains("restored 0 messages"))?;
    let logs = logs_of(&daemon, "third");
    assert!(
        logs.contains("error: checkpoint refused: ")
            && logs.contains("carl.checkpoint.json is the checkpoint of user 'brenda', not of 'carl'; starting clean from the replicas"),
        "{logs}"
    );
    daemon.ok(&["stop", "third"])?;
    std::fs::write(data.join("carl.checkpoint.json"), "{\"user\": \"carl\", \"messages\": [")?;
    daemon.ok(&["launch", "ChatNode", "1", "--name", "fourth", "--detach", "--", "--group", &g, "--user", "carl"])?;
    wait_until("carl started again", || logs_of(&daemon, "fourth").contains("restored 0 messages"))?;
    assert!(logs_of(&daemon, "fourth").contains("carl.checkpoint.json is damaged ("), "{}", logs_of(&daemon, "fourth"));
    daemon.ok(&["stop", "fourth"])?;
    Ok(())
}

/// The replica check finds what a replica lacks and what it has too many
/// (a garbage line, a message written twice), and repairs it.
#[test]
fn apps_chat_the_replica_check_reports_extra_lines_as_well_as_missing_ones() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = group(18);
    daemon.ok(&["launch", "ChatNode", "1", "--name", "rep", "--detach", "--", "--group", &g, "--check-secs", "1"])?;
    wait_until("the node started", || logs_of(&daemon, "rep").contains("restored 0 messages"))?;
    daemon.ok(&["send", "rep/p1", "um"])?;
    daemon.ok(&["send", "rep/p1", "dois"])?;
    wait_until("two messages", || deliveries(&daemon, "rep/p1").is_ok_and(|d| d.len() == 2))?;
    let dir = daemon.dir.join("runs/rep");
    let first = std::fs::read_to_string(dir.join("p1.replica1.log"))?;
    std::fs::write(dir.join("p1.replica1.log"), format!("{first}garbage\n"))?;
    std::fs::write(dir.join("p1.replica2.log"), first.lines().next().unwrap_or_default().to_owned() + "\n")?;
    wait_until("the repairs", || {
        let logs = logs_of(&daemon, "rep");
        logs.contains("replicas: replica1 repaired (2 messages; it lacked 0 and had 1 extra lines)")
            && logs.contains("replicas: replica2 repaired (2 messages; it lacked 1 and had 0 extra lines)")
    })?;
    for i in 1..=3 {
        assert_eq!(std::fs::read_to_string(dir.join(format!("p1.replica{i}.log")))?, first, "replica{i}");
    }
    daemon.ok(&["stop", "rep"])?;
    Ok(())
}
