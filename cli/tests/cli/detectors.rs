//! The failure detectors and leader election (chapter 2), launched as real instances.

use super::harness::*;

/// The lines an instance printed that start with `word `.
pub(crate) fn lines_starting(daemon: &Daemon, instance: &str, word: &str) -> Result<Vec<String>> {
    let logs = daemon.ok(&["logs", instance])?;
    let prefix = format!("{} | {word} ", instance.rsplit('/').next().unwrap_or_default());
    Ok(logs.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect())
}

#[test]
fn the_perfect_failure_detector_detects_a_killed_process_and_only_it() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "PerfectFailureDetector", "3", "--name", "pfd", "--detach", "--", "--delta-ms", "300"])?;
    // A few rounds with everyone alive: nobody is detected (PFD2).
    thread::sleep(Duration::from_millis(1000));
    for p in ["p1", "p2", "p3"] {
        assert!(lines_starting(&daemon, &format!("pfd/{p}"), "crash")?.is_empty(), "{p} detected someone alive");
    }
    daemon.ok(&["kill", "pfd/p3"])?;
    // Every correct process detects p3 (PFD1), and only p3.
    for p in ["p1", "p2"] {
        let target = format!("pfd/{p}");
        wait_until("p3 to be detected", || lines_starting(&daemon, &target, "crash").is_ok_and(|c| !c.is_empty()))?;
    }
    thread::sleep(Duration::from_millis(700));
    for p in ["p1", "p2"] {
        assert_eq!(lines_starting(&daemon, &format!("pfd/{p}"), "crash")?, ["p3"], "at {p}");
    }
    Ok(())
}

#[test]
fn leader_election_elects_p1_then_p2_when_p1_crashes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        "LeaderElection",
        "3",
        "--name",
        "le",
        "--detach",
        "--",
        "--delta-ms",
        "300",
        "--period-ms",
        "50",
    ])?;
    // p1 is elected at once by everyone, and stays leader while it lives (LE2).
    for p in ["p1", "p2", "p3"] {
        let target = format!("le/{p}");
        wait_until("p1 to be elected", || lines_starting(&daemon, &target, "leader").is_ok_and(|l| !l.is_empty()))?;
    }
    thread::sleep(Duration::from_millis(1000));
    for p in ["p1", "p2", "p3"] {
        assert_eq!(lines_starting(&daemon, &format!("le/{p}"), "leader")?, ["p1"], "at {p}");
    }
    daemon.ok(&["kill", "le/p1"])?;
    // The correct processes elect p2 (LE1), once, after p1 (LE2).
    for p in ["p2", "p3"] {
        let target = format!("le/{p}");
        wait_until("p2 to be elected", || lines_starting(&daemon, &target, "leader").is_ok_and(|l| l.len() > 1))?;
    }
    thread::sleep(Duration::from_millis(700));
    for p in ["p2", "p3"] {
        assert_eq!(lines_starting(&daemon, &format!("le/{p}"), "leader")?, ["p1", "p2"], "at {p}");
    }
    Ok(())
}
