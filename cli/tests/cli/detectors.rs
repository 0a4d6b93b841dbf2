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

/// The lines an instance printed that start with one of `words`, in order.
fn indications(daemon: &Daemon, instance: &str, words: &[&str]) -> Result<Vec<String>> {
    let logs = daemon.ok(&["logs", instance])?;
    let prefix = format!("{} | ", instance.rsplit('/').next().unwrap_or_default());
    Ok(logs
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| words.contains(&l.split(' ').next().unwrap_or_default()))
        .map(str::to_owned)
        .collect())
}

#[test]
fn the_eventually_perfect_failure_detector_restores_a_paused_process_and_suspects_a_killed_one() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        "EventuallyPerfectFailureDetector",
        "3",
        "--name",
        "epfd",
        "--detach",
        "--",
        "--delta-ms",
        "300",
        "--period-ms",
        "50",
    ])?;
    let watch = ["suspect", "restore"];
    thread::sleep(Duration::from_millis(1000));
    for p in ["p1", "p2", "p3"] {
        assert!(indications(&daemon, &format!("epfd/{p}"), &watch)?.is_empty(), "{p} suspected someone alive");
    }
    // A paused process is suspected, wrongly: once it answers again it is
    // restored, and the timeout grows by Δ (EPFD2).
    daemon.ok(&["pause", "epfd/p3"])?;
    for p in ["p1", "p2"] {
        let target = format!("epfd/{p}");
        wait_until("p3 to be suspected", || indications(&daemon, &target, &watch).is_ok_and(|l| !l.is_empty()))?;
    }
    daemon.ok(&["resume", "epfd/p3"])?;
    for p in ["p1", "p2"] {
        let target = format!("epfd/{p}");
        wait_until("p3 to be restored", || indications(&daemon, &target, &watch).is_ok_and(|l| l.len() > 1))?;
        assert_eq!(indications(&daemon, &target, &watch)?, ["suspect p3", "restore p3"], "at {p}");
        daemon.ok(&["send", &target, "delay"])?;
        wait_until("the delay", || lines_starting(&daemon, &target, "delay").is_ok_and(|l| !l.is_empty()))?;
        assert_eq!(lines_starting(&daemon, &target, "delay")?, ["600ms"], "at {p}");
    }
    // A killed process is suspected for good (EPFD1).
    daemon.ok(&["kill", "epfd/p2"])?;
    for p in ["p1", "p3"] {
        let target = format!("epfd/{p}");
        wait_until("p2 to be suspected", || {
            indications(&daemon, &target, &watch).is_ok_and(|l| l.last().is_some_and(|l| l == "suspect p2"))
        })?;
    }
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(indications(&daemon, "epfd/p1", &watch)?, ["suspect p3", "restore p3", "suspect p2"]);
    assert_eq!(indications(&daemon, "epfd/p3", &watch)?.last().map(String::as_str), Some("suspect p2"));
    daemon.ok(&["send", "epfd/p1", "suspected"])?;
    wait_until("the suspects", || lines_starting(&daemon, "epfd/p1", "suspected").is_ok_and(|l| !l.is_empty()))?;
    assert_eq!(lines_starting(&daemon, "epfd/p1", "suspected")?, ["p2"]);
    Ok(())
}

#[test]
fn the_eventual_leader_detector_trusts_p1_again_after_a_pause_and_p2_once_p1_crashes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        "EventualLeaderDetector",
        "3",
        "--name",
        "omega",
        "--detach",
        "--",
        "--delta-ms",
        "300",
        "--period-ms",
        "50",
    ])?;
    let trusts = |p: &str| lines_starting(&daemon, &format!("omega/{p}"), "trust");
    let wait_for = |what: &str, processes: &[&str], count: usize| -> Result<()> {
        for p in processes {
            wait_until(what, || trusts(p).is_ok_and(|l| l.len() >= count))?;
        }
        Ok(())
    };
    // Everyone trusts p1 at once, and keeps trusting it.
    wait_for("p1 to be trusted", &["p1", "p2", "p3"], 1)?;
    thread::sleep(Duration::from_millis(800));
    for p in ["p1", "p2", "p3"] {
        assert_eq!(trusts(p)?, ["p1"], "at {p}");
    }
    // p1 paused looks crashed: the others trust p2; once it answers again,
    // they trust p1 again (ELD1, ELD2).
    daemon.ok(&["pause", "omega/p1"])?;
    wait_for("p2 to be trusted", &["p2", "p3"], 2)?;
    daemon.ok(&["resume", "omega/p1"])?;
    wait_for("p1 to be trusted again", &["p2", "p3"], 3)?;
    // p1 crashed: the others trust p2 for good.
    daemon.ok(&["kill", "omega/p1"])?;
    wait_for("p2 to be trusted for good", &["p2", "p3"], 4)?;
    thread::sleep(Duration::from_millis(1000));
    for p in ["p2", "p3"] {
        assert_eq!(trusts(p)?, ["p1", "p2", "p1", "p2"], "at {p}");
    }
    Ok(())
}
