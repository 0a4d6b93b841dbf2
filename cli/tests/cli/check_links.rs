//! `mgrctl check` on real runs of the links (Modules 2.1–2.3) and of the
//! failure detectors and leader election (Modules 2.6–2.9): a correct module
//! passes its own properties, and a weaker link fails a stronger link's.

use super::detectors::lines_starting;
use super::harness::*;

/// Runs `mgrctl check ARGS`: its exit code and stdout.
fn check(daemon: &Daemon, args: &[&str]) -> Result<(i32, String)> {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = daemon.ctl(&all)?;
    let stdout = String::from_utf8(out.stdout)?;
    let code = out.status.code().context("mgrctl check was killed")?;
    if code > 1 {
        bail!("mgrctl check {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((code, stdout))
}

/// Asserts that `check` passed and that each of `ids` holds.
fn assert_holds(code: i32, stdout: &str, ids: &[&str]) {
    assert_eq!(code, 0, "check failed:\n{stdout}");
    for id in ids {
        let holds = stdout.lines().any(|l| l.split_whitespace().take(2).eq([*id, "holds"]));
        assert!(holds, "{id} does not hold:\n{stdout}");
    }
}

#[test]
fn a_perfect_link_under_loss_passes_its_properties() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        "PerfectPointToPointLink",
        "2",
        "--name",
        "pl",
        "--detach",
        "--loss",
        "0.3",
        "--",
        "--period-ms",
        "50",
    ])?;
    for i in 1..=5 {
        daemon.ok(&["send", "pl/p1", "send", "p2", &format!("m{i}")])?;
    }
    daemon.ok(&["send", "pl/p2", "send", "p1", "back"])?;
    wait_until("every message to be delivered", || {
        deliveries(&daemon, "pl/p2").is_ok_and(|d| d.len() == 5)
            && deliveries(&daemon, "pl/p1").is_ok_and(|d| d.len() == 1)
    })?;
    // The retransmissions go on, but no new event comes once everything is
    // delivered (duplicates are dropped), so the run quiesces.
    let (code, stdout) = check(&daemon, &["pl", "--quiesce", "1"])?;
    assert_holds(code, &stdout, &["PL1", "PL2", "PL3"]);
    Ok(())
}

#[test]
fn a_fair_loss_link_under_loss_fails_reliable_delivery() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "2", "--name", "fll", "--detach", "--loss", "0.5"])?;
    // Twenty messages: all of them arrive with probability 2^-20.
    for i in 1..=20 {
        daemon.ok(&["send", "fll/p1", "send", "p2", &format!("m{i}")])?;
    }
    wait_until("some message to be delivered", || deliveries(&daemon, "fll/p2").is_ok_and(|d| !d.is_empty()))?;
    daemon.ok(&["stop", "fll"])?;
    let (code, stdout) = check(&daemon, &["fll", "--property", "PL1"])?;
    assert_eq!(code, 1, "PL1 should be violated:\n{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("PL1")).context("no PL1 line")?;
    assert!(line.contains("violated"), "{line}");
    assert!(line.contains("p1 sent 'm") && line.contains("p2 (correct) never delivered it"), "{line}");
    // The fair-loss link's own properties hold (FLL1 is undecidable).
    let (code, stdout) = check(&daemon, &["fll"])?;
    assert_holds(code, &stdout, &["FLL2", "FLL3"]);
    assert!(stdout.lines().any(|l| l.starts_with("FLL1") && l.contains("undecided")), "{stdout}");
    Ok(())
}

#[test]
fn a_perfect_failure_detector_with_a_killed_process_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "PerfectFailureDetector", "3", "--name", "pfd", "--detach", "--", "--delta-ms", "300"])?;
    thread::sleep(Duration::from_millis(700));
    daemon.ok(&["kill", "pfd/p3"])?;
    for p in ["p1", "p2"] {
        let target = format!("pfd/{p}");
        wait_until("p3 to be detected", || lines_starting(&daemon, &target, "crash").is_ok_and(|c| !c.is_empty()))?;
    }
    // Heartbeats never stop among the living, so the run is stopped (not a
    // crash) for it to count as quiesced.
    daemon.ok(&["stop", "pfd"])?;
    let (code, stdout) = check(&daemon, &["pfd"])?;
    assert_holds(code, &stdout, &["PFD1", "PFD2"]);
    Ok(())
}

#[test]
fn an_eventually_perfect_failure_detector_with_a_killed_process_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch_detector(&daemon, "EventuallyPerfectFailureDetector", "epfd")?;
    thread::sleep(Duration::from_millis(700));
    daemon.ok(&["kill", "epfd/p3"])?;
    for p in ["p1", "p2"] {
        let target = format!("epfd/{p}");
        wait_until("p3 to be suspected", || {
            lines_starting(&daemon, &target, "suspect").is_ok_and(|s| s.iter().any(|p| p == "p3"))
        })?;
    }
    // A few more rounds, for any false suspicion to be restored.
    thread::sleep(Duration::from_millis(700));
    daemon.ok(&["stop", "epfd"])?;
    let (code, stdout) = check(&daemon, &["epfd"])?;
    assert_holds(code, &stdout, &["EPFD1", "EPFD2"]);
    Ok(())
}

#[test]
fn leader_election_with_the_leader_killed_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch_detector(&daemon, "LeaderElection", "le")?;
    for p in ["p1", "p2", "p3"] {
        let target = format!("le/{p}");
        wait_until("p1 to be elected", || lines_starting(&daemon, &target, "leader").is_ok_and(|l| !l.is_empty()))?;
    }
    daemon.ok(&["kill", "le/p1"])?;
    for p in ["p2", "p3"] {
        let target = format!("le/{p}");
        wait_until("p2 to be elected", || lines_starting(&daemon, &target, "leader").is_ok_and(|l| l.len() > 1))?;
    }
    daemon.ok(&["stop", "le"])?;
    let (code, stdout) = check(&daemon, &["le", "--property", "LE1,LE2"])?;
    assert_holds(code, &stdout, &["LE1", "LE2"]);
    Ok(())
}

#[test]
fn an_eventual_leader_detector_with_the_leader_killed_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch_detector(&daemon, "EventualLeaderDetector", "omega")?;
    thread::sleep(Duration::from_millis(500));
    daemon.ok(&["kill", "omega/p1"])?;
    for p in ["p2", "p3"] {
        let target = format!("omega/{p}");
        wait_until("p2 to be trusted", || {
            lines_starting(&daemon, &target, "trust").is_ok_and(|t| t.last().is_some_and(|l| l == "p2"))
        })?;
    }
    thread::sleep(Duration::from_millis(700));
    daemon.ok(&["stop", "omega"])?;
    let (code, stdout) = check(&daemon, &["omega"])?;
    assert_holds(code, &stdout, &["ELD1", "ELD2"]);
    Ok(())
}

/// Three instances of a failure detector or leader election module, named
/// `name`, with short timeouts (heartbeats every 50 ms, a 300 ms delay), so
/// a crash is detected in well under a second.
fn launch_detector(daemon: &Daemon, module: &str, name: &str) -> Result<()> {
    let args = ["launch", module, "3", "--name", name, "--detach", "--", "--delta-ms", "300", "--period-ms", "50"];
    daemon.ok(&args).map(drop)
}
