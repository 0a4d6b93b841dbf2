//! The consensus and total-order broadcast (chapters 5 and 6), launched as real instances.

use super::detectors::lines_starting;
use super::harness::*;

/// Launches `n` instances of `module` with `args`, as run `run`.
fn launch(daemon: &Daemon, module: &str, n: usize, run: &str, args: &[&str]) -> Result<()> {
    let n = n.to_string();
    let mut command =
        vec!["launch", module, &n, "--name", run, "--detach", "--", "--delta-ms", "400", "--period-ms", "50"];
    command.extend_from_slice(args);
    daemon.ok(&command)?;
    Ok(())
}

/// Has each process in `proposals` propose its value, waits until every one
/// of them decided, and checks that they all decided `expected`, once.
fn propose_and_expect(daemon: &Daemon, run: &str, proposals: &[(&str, &str)], expected: &str) -> Result<()> {
    for (p, v) in proposals {
        daemon.ok(&["send", &format!("{run}/{p}"), "propose", v])?;
    }
    for (p, _) in proposals {
        let target = format!("{run}/{p}");
        wait_until("a decision", || lines_starting(daemon, &target, "decide").is_ok_and(|d| !d.is_empty()))?;
    }
    // Long enough for a second decision, if there were one, to show (C3).
    thread::sleep(Duration::from_millis(500));
    for (p, _) in proposals {
        assert_eq!(lines_starting(daemon, &format!("{run}/{p}"), "decide")?, [expected], "at {p}");
    }
    Ok(())
}

const PROPOSALS: &[(&str, &str)] = &[("p1", "30"), ("p2", "10"), ("p3", "20"), ("p4", "40")];

#[test]
fn flooding_consensus_decides_the_smallest_proposal_everywhere() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "Consensus", 4, "c", &["--algorithm", "flooding"])?;
    propose_and_expect(&daemon, "c", PROPOSALS, "10")?;
    // One consensus instance per run.
    daemon.ok(&["send", "c/p2", "propose", "5"])?;
    wait_until("the error", || {
        lines_starting(&daemon, "c/p2", "error:").is_ok_and(|e| e.iter().any(|l| l.contains("already decided 10")))
    })?;
    Ok(())
}

#[test]
fn flooding_consensus_decides_without_a_process_killed_before_proposing() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "Consensus", 4, "c", &["--algorithm", "flooding"])?;
    daemon.ok(&["kill", "c/p2"])?;
    propose_and_expect(&daemon, "c", &[("p1", "30"), ("p3", "20"), ("p4", "40")], "20")
}

#[test]
fn hierarchical_consensus_decides_the_first_ranked_proposal_everywhere() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "Consensus", 4, "c", &["--algorithm", "hierarchical"])?;
    propose_and_expect(&daemon, "c", PROPOSALS, "30")
}

#[test]
fn hierarchical_consensus_decides_without_its_first_leader() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "Consensus", 3, "c", &["--algorithm", "hierarchical"])?;
    daemon.ok(&["kill", "c/p1"])?;
    propose_and_expect(&daemon, "c", &[("p2", "b"), ("p3", "a")], "b")
}

#[test]
fn flooding_uniform_consensus_decides_the_smallest_proposal_everywhere() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "UniformConsensus", 4, "uc", &["--algorithm", "flooding"])?;
    propose_and_expect(&daemon, "uc", PROPOSALS, "10")
}

#[test]
fn flooding_uniform_consensus_decides_without_a_process_killed_before_proposing() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "UniformConsensus", 4, "uc", &["--algorithm", "flooding"])?;
    daemon.ok(&["kill", "uc/p2"])?;
    propose_and_expect(&daemon, "uc", &[("p1", "30"), ("p3", "20"), ("p4", "40")], "20")
}

#[test]
fn hierarchical_uniform_consensus_decides_the_first_ranked_proposal_everywhere() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "UniformConsensus", 4, "uc", &["--algorithm", "hierarchical"])?;
    propose_and_expect(&daemon, "uc", PROPOSALS, "30")
}

#[test]
fn hierarchical_uniform_consensus_decides_without_its_first_leader() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "UniformConsensus", 4, "uc", &["--algorithm", "hierarchical"])?;
    daemon.ok(&["kill", "uc/p1"])?;
    propose_and_expect(&daemon, "uc", &[("p2", "two words"), ("p3", "20"), ("p4", "40")], "two words")
}

#[test]
fn the_catalog_describes_the_chapter_and_consensus_refuses_an_unknown_algorithm() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let described = [
        (
            "Consensus",
            &["Module 5.1", "Algorithm 5.1: Flooding Consensus", "Hierarchical Consensus", "C4: Agreement"][..],
        ),
        ("UniformConsensus", &["Module 5.2", "Flooding Uniform Consensus", "UC4: Uniform agreement"][..]),
        ("TotalOrderBroadcast", &["Module 6.1", "Consensus-Based Total-Order Broadcast", "TOB5: Total order"][..]),
    ];
    for (module, texts) in described {
        let text = daemon.ok(&["modules", module])?;
        for t in texts {
            assert!(text.contains(t), "{t} missing in\n{text}");
        }
    }
    let out = daemon.ctl(&["launch", "Consensus", "1", "--name", "c", "--", "--algorithm", "paxos"])?;
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("unknown algorithm"), "{all}");
    Ok(())
}

#[test]
fn total_order_broadcast_delivers_concurrent_broadcasts_in_one_order_everywhere() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "TotalOrderBroadcast", 4, "tob", &["--algorithm", "consensus"])?;
    let mut sent = Vec::new();
    for i in 1..=2 {
        for p in ["p1", "p2", "p3", "p4"] {
            let text = format!("m{i} from {p}");
            daemon.ok(&["send", &format!("tob/{p}"), "broadcast", &text])?;
            sent.push(format!("{p} {text}"));
        }
    }
    for p in ["p1", "p2", "p3", "p4"] {
        let target = format!("tob/{p}");
        wait_until("every message", || deliveries(&daemon, &target).is_ok_and(|d| d.len() >= sent.len()))?;
    }
    thread::sleep(Duration::from_millis(300));
    let order = deliveries(&daemon, "tob/p1")?;
    let mut set = order.clone();
    set.sort();
    sent.sort();
    assert_eq!(set, sent, "p1 delivered each message once");
    for p in ["p2", "p3", "p4"] {
        assert_eq!(deliveries(&daemon, &format!("tob/{p}"))?, order, "{p} and p1 deliver in different orders");
    }
    Ok(())
}

#[test]
fn total_order_broadcast_keeps_one_order_when_a_process_crashes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "TotalOrderBroadcast", 4, "tob", &[])?;
    daemon.ok(&["send", "tob/p1", "broadcast", "a1"])?;
    daemon.ok(&["send", "tob/p4", "broadcast", "a4"])?;
    daemon.ok(&["send", "tob/p2", "broadcast", "a2"])?;
    daemon.ok(&["kill", "tob/p4"])?;
    daemon.ok(&["send", "tob/p3", "broadcast", "b3"])?;
    daemon.ok(&["send", "tob/p1", "broadcast", "b1"])?;
    let required = ["p1 a1", "p2 a2", "p3 b3", "p1 b1"];
    let has_all = |d: &Vec<String>| required.iter().all(|m| d.iter().any(|x| x == m));
    for p in ["p1", "p2", "p3"] {
        let target = format!("tob/{p}");
        wait_until("the correct processes' messages", || deliveries(&daemon, &target).is_ok_and(|d| has_all(&d)))?;
    }
    // p4's a4 may or may not be delivered, but by all or none, at one place.
    thread::sleep(Duration::from_millis(500));
    let order = deliveries(&daemon, "tob/p1")?;
    assert!(order.len() == 4 || (order.len() == 5 && order.contains(&"p4 a4".to_owned())), "{order:?}");
    for p in ["p2", "p3"] {
        assert_eq!(deliveries(&daemon, &format!("tob/{p}"))?, order, "{p} and p1 deliver in different orders");
    }
    Ok(())
}
