//! Ack-based group communication (AckDiscovery, AckReceiver, AckClient),
//! each role launched as a run of its own: crashing receivers, a client
//! that retries until every request is acked, and `mgrctl check` on it.

use super::harness::*;

/// Launches the discovery as run `disc` and returns its address.
fn start_discovery(daemon: &Daemon, heartbeat_ms: &str) -> Result<String> {
    daemon.ok(&["launch", "AckDiscovery", "1", "--name", "disc", "--detach", "--", "--heartbeat-ms", heartbeat_ms])?;
    let address = daemon.instance("disc", "p1")?["address"].as_str().context("no address")?.to_owned();
    Ok(address)
}

/// How many receivers the discovery has heard register so far.
fn registrations(daemon: &Daemon) -> usize {
    daemon.ok(&["logs", "disc"]).map_or(0, |logs| logs.lines().filter(|l| l.contains(" | registered ")).count())
}

/// The state of one instance in `ps`.
fn state(daemon: &Daemon, run: &str, instance: &str) -> Result<String> {
    Ok(daemon.instance(run, instance)?["state"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn the_client_retries_past_a_crashed_receiver_until_every_request_is_acked() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let disc = start_discovery(&daemon, "1000")?;
    // With seed 8, p1 crashes on its first request and p2 and p3 ack their
    // first three (a unit test of the module pins these draws).
    daemon.ok(&[
        "launch",
        "AckReceiver",
        "3",
        "--name",
        "recv",
        "--detach",
        "--",
        "--discovery",
        &disc,
        "--crash-prob",
        "0.5",
        "--seed",
        "8",
        "--work-ms",
        "50",
    ])?;
    wait_until("three receivers to register", || registrations(&daemon) == 3)?;
    // With seed 3 the client's first pick among p1, p2, p3 is p1.
    let client = daemon.spawn(&[
        "launch",
        "AckClient",
        "1",
        "--name",
        "client",
        "--",
        "--discovery",
        &disc,
        "--requests",
        "3",
        "--timeout-ms",
        "500",
        "--seed",
        "3",
    ])?;
    let (code, lines) = client.finish()?;
    let output = lines.join("\n");
    assert_eq!(code, 0, "{output}");
    let has = |prefix: &str| lines.iter().any(|l| l.contains(prefix));
    assert!(has("p1 | attempt 1 request 1 → p1 at "), "{output}");
    assert!(has("p1 | timeout request 1: no ack from p1 at ") && has("retrying"), "{output}");
    assert!(has("p1 | attempt 2 request 1 → p"), "{output}");
    for r in 1..=3 {
        assert!(has(&format!("p1 | acked request {r} by p")), "request {r} not acked:\n{output}");
    }
    assert!(has("p1 | summary: 3 requests acked, 4 attempts, 1 timeouts"), "{output}");
    assert_eq!(state(&daemon, "client", "p1")?, "exited");

    // The crash was real: the manager shows p1 failed, the others running.
    let crashed = daemon.instance("recv", "p1")?;
    assert_eq!(crashed["state"], "failed", "{crashed}");
    assert_eq!(crashed["exit_code"], 101, "{crashed}");
    assert_eq!(state(&daemon, "recv", "p2")?, "running");
    let logs = daemon.ok(&["logs", "recv/p1"])?;
    assert!(logs.contains("crash while processing request 1 from 127.0.0.1:"), "{logs}");

    let out = daemon.ctl(&["check", "client"])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for id in ["ACK1", "ACK2"] {
        assert!(stdout.lines().any(|l| l.split_whitespace().take(2).eq([id, "holds"])), "{id}:\n{stdout}");
    }
    Ok(())
}

#[test]
fn restarted_receivers_register_again_and_the_client_gets_its_ack() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let disc = start_discovery(&daemon, "200")?;
    // With seed 7 both receivers crash on their first request, so the
    // client runs out of receivers until they are restarted.
    daemon.ok(&[
        "launch",
        "AckReceiver",
        "2",
        "--name",
        "recv",
        "--detach",
        "--",
        "--discovery",
        &disc,
        "--crash-prob",
        "0.5",
        "--seed",
        "7",
        "--heartbeat-ms",
        "200",
        "--work-ms",
        "10",
    ])?;
    wait_until("two receivers to register", || registrations(&daemon) == 2)?;
    let mut client = daemon.spawn(&[
        "launch",
        "AckClient",
        "1",
        "--name",
        "client",
        "--",
        "--discovery",
        &disc,
        "--requests",
        "1",
        "--timeout-ms",
        "300",
    ])?;
    client.expect("saying no receiver is left", |l| l.contains("no receiver registered for request 1"))?;
    for p in ["p1", "p2"] {
        assert_eq!(state(&daemon, "recv", p)?, "failed");
    }
    let logs = daemon.ok(&["logs", "disc"])?;
    assert!(logs.contains(" | expire p1 ") && logs.contains(" | expire p2 "), "{logs}");

    // The restart policy, by hand: restart whichever receiver is down. A
    // restarted receiver draws afresh (it counts its starts), registers at
    // once, and sooner or later one acks.
    let acked = || daemon.ok(&["logs", "client"]).is_ok_and(|l| l.contains("acked request 1 by p"));
    wait_until("the request to be acked", || {
        for p in ["p1", "p2"] {
            if state(&daemon, "recv", p).is_ok_and(|s| s == "failed") {
                let _ = daemon.ok(&["restart", &format!("recv/{p}")]);
            }
        }
        acked()
    })?;
    let (code, lines) = client.finish()?;
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let out = daemon.ctl(&["check", "client"])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(stdout.lines().any(|l| l.split_whitespace().take(2).eq(["ACK1", "holds"])), "{stdout}");
    Ok(())
}
