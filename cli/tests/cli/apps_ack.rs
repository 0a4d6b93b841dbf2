//! Ack-based group communication (AckDiscovery, AckReceiver, AckClient),
//! each role launched as a run of its own: crashing receivers, a client
//! that retries until every request is acked, and `mgrctl check` on it.

use super::harness::*;

/// Launches the discovery as run `disc` and returns its address.
pub(crate) fn start_discovery(daemon: &Daemon, heartbeat_ms: &str) -> Result<String> {
    daemon.ok(&["launch", "AckDiscovery", "1", "--name", "disc", "--detach", "--", "--heartbeat-ms", heartbeat_ms])?;
    let address = daemon.instance("disc", "p1")?["address"].as_str().context("no address")?.to_owned();
    Ok(address)
}

/// How many receivers the discovery has heard register so far.
pub(crate) fn registrations(daemon: &Daemon) -> usize {
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

/// The report's discovery API, spoken as its students' programs do (from
/// Python's urllib): register, list, heartbeat, and the answers to bad
/// requests. A receiver registered over HTTP is one the Rust client lists
/// and can be chosen with `request --to`.
#[test]
fn discovery_speaks_http_and_the_client_lists_and_sends_to_a_chosen_receiver() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let disc = start_discovery(&daemon, "1000")?;
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
        "0",
    ])?;
    wait_until("two receivers to register", || registrations(&daemon) == 2)?;
    let script = r#"
import json, sys, urllib.request, urllib.error
base = "http://" + sys.argv[1]
def call(method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
print(call("POST", "/register", {"address": "127.0.0.1:9", "id": "brenda"}))
print(call("POST", "/register", {"address": "127.0.0.1:10"}))
print(call("GET", "/receivers"))
print(call("POST", "/heartbeat", {"id": "brenda"}))
print(call("POST", "/heartbeat", {"id": "nobody"}))
print(call("POST", "/register", {"address": "127.0.0.1:11", "id": "brenda"}))
print(call("POST", "/register", {"address": "nowhere"}))
print(call("POST", "/register", raw=b"not json"))
print(call("POST", "/register", {"address": "127.0.0.1:12", "id": "a b"}))
print(call("GET", "/nothing"))
print(call("DELETE", "/receivers"))
"#;
    let out = std::process::Command::new("python3").args(["-c", script, &disc]).output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        answers[0],
        "(200, {'address': '127.0.0.1:9', 'expires_ms': 3000, 'heartbeat_ms': 1000, 'id': 'brenda'})"
    );
    assert_eq!(answers[1], "(200, {'address': '127.0.0.1:10', 'expires_ms': 3000, 'heartbeat_ms': 1000, 'id': 'r1'})");
    let listed = answers[2];
    assert!(listed.starts_with("(200, [{'address': '127.0.0.1:9', 'id': 'brenda'}, "), "{stdout}");
    assert!(
        listed.contains("'id': 'p1'}") && listed.contains("'id': 'p2'}") && listed.contains("'id': 'r1'}"),
        "{stdout}"
    );
    assert_eq!(answers[3], "(200, {'id': 'brenda'})");
    assert!(answers[4].starts_with("(404, {'error': \"receiver 'nobody' is not registered"), "{stdout}");
    assert_eq!(answers[5], "(409, {'error': \"id 'brenda' is registered at 127.0.0.1:9\"})");
    assert!(answers[6].starts_with("(400, {'error': \"address 'nowhere' is not an ip:port"), "{stdout}");
    assert!(answers[7].starts_with("(400, {'error': 'the body is not JSON"), "{stdout}");
    assert!(answers[8].starts_with("(400, ") && answers[8].contains("is not 1 to 64 letters"), "{stdout}");
    assert!(answers[9].starts_with("(404, "), "{stdout}");
    assert!(answers[10].starts_with("(405, "), "{stdout}");
    let logs = daemon.ok(&["logs", "disc"])?;
    assert!(logs.contains("p1 | registered brenda 127.0.0.1:9"), "{logs}");

    // The report's client: list the receivers, then pick one.
    daemon.ok(&[
        "launch",
        "AckClient",
        "1",
        "--name",
        "client",
        "--detach",
        "--",
        "--discovery",
        &disc,
        "--requests",
        "0",
    ])?;
    daemon.ok(&["send", "client/p1", "list"])?;
    let client_logs = || logs_of(&daemon, "client");
    wait_until("the list", || client_logs().contains("| receivers 4"))?;
    let logs = client_logs();
    assert!(logs.contains("|   brenda 127.0.0.1:9") && logs.contains("|   r1 127.0.0.1:10"), "{logs}");
    assert!(logs.contains("|   p2 127.0.0.1:"), "{logs}");
    daemon.ok(&["send", "client/p1", "request --to p2 hello"])?;
    wait_until("the chosen receiver's ack", || client_logs().contains("acked request 1 by p2 after 1 attempts"))?;
    assert!(client_logs().contains("attempt 1 request 1 → p2 at "), "{}", client_logs());
    let recv = daemon.ok(&["logs", "recv/p2"])?;
    assert!(recv.contains("deliver client/p1 hello") || recv.contains("deliver 127.0.0.1:"), "{recv}");
    daemon.ok(&["send", "client/p1", "request --to p9 lost"])?;
    wait_until("the refusal", || client_logs().contains("error: request 2 not sent: no live receiver 'p9' (live: "))?;
    daemon.ok(&["send", "client/p1", "request --to p2"])?;
    wait_until("the usage", || client_logs().contains("error: usage: request --to ID text"))?;
    Ok(())
}

/// Discovery's HTTP port under attack: connections that never send a
/// request are cut after the header timeout, so they cannot lock clients
/// out for good, and a body over the bound is refused.
#[test]
fn discovery_http_is_bounded_against_idle_connections_and_large_bodies() -> Result<()> {
    use std::io::{Read as _, Write as _};
    let daemon = Daemon::start(&[])?;
    let disc = start_discovery(&daemon, "1000")?;
    let get = |path: &str| -> Result<String> {
        let mut stream = std::net::TcpStream::connect(&disc)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    };
    // 100 idle connections: more than the 64 served at once.
    let idle: Vec<std::net::TcpStream> =
        (0..100).map(|_| std::net::TcpStream::connect(&disc)).collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_secs(6));
    for mut conn in idle {
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 256];
        // Closed by discovery: an end of stream (or a reset), not a timeout.
        match conn.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0, "an idle connection got an answer"),
            Err(err) => assert_ne!(err.kind(), std::io::ErrorKind::WouldBlock, "an idle connection is still open"),
        }
    }
    let answer = get("/receivers")?;
    assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("[]\n"), "{answer}");

    let mut stream = std::net::TcpStream::connect(&disc)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = vec![b'x'; 100 * 1024];
    write!(stream, "POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len())?;
    let _ = stream.write_all(&body);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    Ok(())
}
