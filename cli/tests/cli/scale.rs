//! `mgrctl scale` on real runs: a live ack lab grows and shrinks while its
//! client keeps getting acks; the live instances learn the new table (the
//! `peers` control line) and the run's stream shows the new ones; the
//! book's modules and bad requests are refused.

use super::apps_ack::{registrations, start_discovery};
use super::harness::*;

fn state(daemon: &Daemon, run: &str, instance: &str) -> Result<(String, String)> {
    let i = daemon.instance(run, instance)?;
    Ok((i["state"].as_str().unwrap_or_default().to_owned(), i["detail"].as_str().unwrap_or_default().to_owned()))
}

#[test]
fn scale_grows_and_shrinks_a_live_ack_lab_while_the_client_gets_every_ack() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let disc = start_discovery(&daemon, "200")?;
    let receiver = ["--", "--discovery", disc.as_str(), "--crash-prob", "0", "--heartbeat-ms", "200"];
    let mut launch = vec!["launch", "AckReceiver", "2", "--name", "recv", "-d"];
    launch.extend_from_slice(&receiver);
    daemon.ok(&launch)?;
    daemon.ok(&[
        "launch",
        "AckClient",
        "1",
        "--name",
        "client",
        "-d",
        "--",
        "--discovery",
        &disc,
        "--requests",
        "0",
    ])?;
    let registered = || registrations(&daemon);
    wait_until("two receivers", || registered() == 2)?;

    // Grown while the client is up: the new receivers get the next names.
    let said = daemon.ok(&["scale", "recv", "4"])?;
    assert!(
        said.starts_with("recv → 4: started p3@test 127.0.0.1:") && said.contains(", p4@test 127.0.0.1:"),
        "{said}"
    );
    wait_until("four receivers", || registered() == 4)?;
    for p in ["p1", "p2", "p3", "p4"] {
        assert_eq!(state(&daemon, "recv", p)?.0, "running", "{p}");
    }
    daemon.ok(&["send", "client/p1", "request --to p4 to the new one"])?;
    wait_until("p4's ack", || logs_of(&daemon, "client").contains("acked request 1 by p4 after 1 attempts"))?;

    // Shrunk: the last ones stop and leave the run's table for good.
    let said = daemon.ok(&["scale", "recv", "1"])?;
    assert_eq!(said.trim(), "recv → 1: stopped p2, p3, p4");
    wait_until("the removed receivers to stop", || {
        ["p2", "p3", "p4"].iter().all(|p| state(&daemon, "recv", p).is_ok_and(|s| s.0 == "stopped"))
    })?;
    assert_eq!(state(&daemon, "recv", "p3")?, ("stopped".to_owned(), "removed by a scale".to_owned()));
    let err = daemon.err(&["restart", "recv/p3"])?;
    assert!(err.contains("recv/p3 was removed from the run by a scale"), "{err}");
    wait_until("discovery to forget them", || logs_of(&daemon, "disc").matches(" | expire p").count() == 3)?;
    for k in 2..=4 {
        daemon.ok(&["send", "client/p1", &format!("request after {k}")])?;
    }
    wait_until("every request acked by p1", || {
        (2..=4).all(|r| logs_of(&daemon, "client").contains(&format!("acked request {r} by p1")))
    })?;
    // Grown again: names go on after the highest ever given.
    let said = daemon.ok(&["scale", "recv", "2"])?;
    assert!(said.starts_with("recv → 2: started p5@test "), "{said}");
    let said = daemon.ok(&["scale", "recv", "2"])?;
    assert_eq!(said.trim(), "recv: already 2 instance(s)");
    Ok(())
}

#[test]
fn scale_tells_the_live_instances_their_new_table_and_the_run_stream_shows_the_new_ones() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let g = format!(
        "224.1.1.1:{}",
        std::env::var("MGR_TEST_PORT_BASE").ok().and_then(|b| b.parse::<u16>().ok()).unwrap_or(25000) - 900
    );
    let mut stream = daemon.spawn(&["launch", "ChatNode", "2", "--name", "room", "--", "--group", &g])?;
    let started = std::cell::RefCell::new(0);
    while *started.borrow() < 2 {
        stream.expect("both nodes started", |l| {
            let hit = l.contains(" | restored 0 messages");
            *started.borrow_mut() += usize::from(hit);
            hit
        })?;
    }
    let mut follower = daemon.spawn(&["logs", "-f", "room"])?;
    follower.expect("the follower caught up", |l| l.starts_with("p2 | restored 0 messages"))?;
    let said = daemon.ok(&["scale", "room", "3"])?;
    assert!(said.starts_with("room → 3: started p3@test "), "{said}");
    // The stream of the launch, and `logs -f RUN`, follow the new instance
    // from its first line.
    stream.expect("p3 in the stream", |l| l.starts_with("p3 | restored 0 messages"))?;
    follower.expect("p3 in logs -f", |l| l.starts_with("p3 | restored 0 messages"))?;
    // p1 got the new table on its control pipe: p3 is a member at once.
    let p3 = daemon.instance("room", "p3")?["address"].as_str().context("address")?.to_owned();
    daemon.ok(&["send", "room/p1", "peers"])?;
    let peers = stream.expect("p1's peers", |l| l.starts_with("p1 | peers "))?;
    assert!(peers.contains(&format!("p3={p3}")), "{peers}");
    daemon.ok(&["send", "room/p3", "oi"])?;
    let shown = std::cell::RefCell::new(std::collections::BTreeSet::new());
    while shown.borrow().len() < 3 {
        stream.expect("every node showing p3's message", |l| {
            let at = l.split(" | ").next().unwrap_or_default().to_owned();
            l.ends_with("] p3: oi") && shown.borrow_mut().insert(at)
        })?;
    }
    // Shrunk: p3 leaves as a stopped node does, and the others see it go.
    daemon.ok(&["scale", "room", "2"])?;
    // In either order: p3 says goodbye, and p1 sees it leave. (Whether p3
    // reads its new table, `removed from the run by a scale`, before the
    // SIGTERM that follows it is a race.)
    let want = ["p3 | checkpoint saved (1 messages); bye", "p1 | p3 left (p3)"];
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    while seen.borrow().len() < want.len() {
        stream.expect("p3 removed, its goodbye, p1 seeing it leave", |l| {
            want.contains(&l) && seen.borrow_mut().insert(l.to_owned())
        })?;
    }
    let out = daemon.ctl(&["check", "room", "--quiesce", "0.5"])?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.lines().any(|l| l.starts_with("ME1") && l.contains("holds")), "{text}");
    daemon.ok(&["stop", "room"])?;
    let (code, _) = stream.finish()?;
    assert_eq!(code, 0);
    let (code, _) = follower.finish()?;
    assert_eq!(code, 0, "logs -f ends with the run");
    Ok(())
}

#[test]
fn scale_is_refused_for_the_books_modules_ended_runs_and_bad_requests() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "2", "--name", "beb", "-d"])?;
    let err = daemon.err(&["scale", "beb", "3"])?;
    assert!(err.contains("BestEffortBroadcast cannot be scaled: its set of processes is fixed"), "{err}");
    assert!(err.contains("ChatNode, AckDiscovery, AckReceiver, AckClient"), "{err}");
    assert_eq!(daemon.ps("beb")?.len(), 2, "nothing started");
    let err = daemon.err(&["scale", "beb", "peer=3"])?;
    assert!(err.contains("run 'beb' was launched without roles: give a count alone (mgrctl scale beb N)"), "{err}");
    let err = daemon.err(&["scale", "beb", "0"])?;
    assert!(err.contains("'0' is not a count of at least 1"), "{err}");
    let err = daemon.err(&["scale", "nope", "2"])?;
    assert!(err.contains("unknown run 'nope'"), "{err}");
    daemon.ok(&["stop", "beb"])?;
    let err = daemon.err(&["scale", "beb", "3"])?;
    assert!(err.contains("run 'beb' has ended: there is nothing to scale"), "{err}");
    // A scenario's run: a role is named, and a count alone is refused.
    let file = daemon.dir.join("lab.toml");
    std::fs::write(
        &file,
        "[[role]]\nname = \"disc\"\nmodule = \"AckDiscovery\"\n[[role]]\nname = \"recv\"\nmodule = \"AckReceiver\"\ncount = 2\nargs = [\"--crash-prob\", \"0\", \"--discovery\", \"127.0.0.1:9\"]\n[end]\nafter = \"60s\"\n",
    )?;
    let mut up = daemon.spawn(&["up", file.to_str().context("path")?, "--name", "lab"])?;
    wait_until("the lab to run", || daemon.ps("lab").is_ok_and(|ps| ps.len() == 3))?;
    let err = daemon.err(&["scale", "lab", "3"])?;
    assert!(err.contains("run 'lab' has roles: give ROLE=N (roles: disc, recv)"), "{err}");
    let err = daemon.err(&["scale", "lab", "nope=3"])?;
    assert!(err.contains("run 'lab' has no role 'nope' (roles: disc, recv)"), "{err}");
    let said = daemon.ok(&["scale", "lab", "recv=3"])?;
    assert!(said.starts_with("lab: recv → 3: started p4@test "), "{said}");
    up.expect("p4 in up's stream", |l| l.starts_with("p4 # started"))?;
    daemon.ok(&["down", "lab"])?;
    let (_, _) = up.finish()?;
    Ok(())
}
