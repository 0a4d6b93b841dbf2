//! `mgrctl check` on real broadcast runs (chapter 3): runs that keep their
//! promises pass, and a best-effort broadcast whose sender dies half-way
//! fails reliable broadcast's agreement (RB4); a probabilistic run leaves PB1
//! undecided.

use super::harness::*;

/// What `mgrctl check` said: its exit status, each property's (id,
/// verdict) in order, and the whole text for failure messages.
struct Checked {
    code: i32,
    verdicts: Vec<(String, String)>,
    text: String,
}

/// `mgrctl check RUN` after the run has been quiet for half a second, with
/// extra arguments.
fn check(daemon: &Daemon, run: &str, extra: &[&str]) -> Result<Checked> {
    let mut args = vec!["check", run, "--quiesce", "0.5"];
    args.extend(extra);
    let out = daemon.ctl(&args)?;
    let text = String::from_utf8(out.stdout)?;
    let verdicts = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect();
    Ok(Checked { code: out.status.code().unwrap_or(-1), verdicts, text })
}

/// Checks `run` against its module's properties and insists that each of
/// `ids` is there and holds, and the exit status is 0.
fn assert_holds(daemon: &Daemon, run: &str, ids: &[&str]) -> Result<()> {
    let Checked { code, verdicts, text } = check(daemon, run, &[])?;
    assert_eq!(code, 0, "mgrctl check {run}:\n{text}");
    let got: Vec<&str> = verdicts.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(got, ids, "{text}");
    for (id, verdict) in &verdicts {
        assert_eq!(verdict, "holds", "{id} in:\n{text}");
    }
    Ok(())
}

/// Waits until each of `processes` of `run` printed `n` deliveries.
fn wait_deliveries(daemon: &Daemon, run: &str, processes: &[&str], n: usize) -> Result<()> {
    for p in processes {
        let target = format!("{run}/{p}");
        wait_until(&format!("{n} deliveries at {target}"), || deliveries(daemon, &target).is_ok_and(|d| d.len() >= n))?;
    }
    Ok(())
}

const FOUR: [&str; 4] = ["p1", "p2", "p3", "p4"];

#[test]
fn check_broadcast_best_effort_run_of_four_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "4", "--name", "beb", "--detach"])?;
    daemon.ok(&["send", "beb/p1", "broadcast", "from one"])?;
    daemon.ok(&["send", "beb/p4", "broadcast", "from four"])?;
    wait_deliveries(&daemon, "beb", &FOUR, 2)?;
    assert_holds(&daemon, "beb", &["BEB1", "BEB2", "BEB3"])
}

#[test]
fn check_broadcast_reliable_run_under_loss_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "ReliableBroadcast", "3", "--name", "rb", "--detach", "--loss", "0.2"])?;
    daemon.ok(&["send", "rb/p2", "broadcast", "news"])?;
    daemon.ok(&["send", "rb/p3", "broadcast", "more news"])?;
    wait_deliveries(&daemon, "rb", &["p1", "p2", "p3"], 2)?;
    assert_holds(&daemon, "rb", &["RB1", "RB2", "RB3", "RB4"])
}

#[test]
fn check_broadcast_best_effort_sender_killed_mid_broadcast_fails_rb4() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "4", "--name", "half", "--detach"])?;
    // The partition makes "mid-broadcast" deterministic: p1's message
    // reaches p2 and never p3 or p4, because p1 dies before the heal and
    // best-effort broadcast does not relay.
    daemon.ok(&["fault", "half", "--partition", "p1,p2/p3,p4"])?;
    daemon.ok(&["send", "half/p1", "broadcast", "last words"])?;
    wait_deliveries(&daemon, "half", &["p2"], 1)?;
    daemon.ok(&["kill", "half/p1"])?;
    daemon.ok(&["fault", "half", "--heal"])?;
    // Best-effort broadcast itself is not at fault: its validity binds only
    // a correct sender.
    assert_holds(&daemon, "half", &["BEB1", "BEB2", "BEB3"])?;
    let Checked { code, verdicts, text } = check(&daemon, "half", &["--property", "RB4"])?;
    assert_eq!(code, 1, "{text}");
    assert_eq!(verdicts.first().map(|(id, v)| (id.as_str(), v.as_str())), Some(("RB4", "violated")), "{text}");
    assert!(text.contains("m#1 from p1 ('last words'), which p2 delivered"), "{text}");
    assert!(text.contains("p3 never delivered") || text.contains("p4 never delivered"), "{text}");
    Ok(())
}

#[test]
fn check_broadcast_fifo_run_with_several_broadcasts_passes_frb5() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "FifoReliableBroadcast", "3", "--name", "frb", "--detach", "--loss", "0.2"])?;
    for text in ["one", "two", "three"] {
        daemon.ok(&["send", "frb/p1", "broadcast", text])?;
    }
    daemon.ok(&["send", "frb/p2", "broadcast", "other"])?;
    wait_deliveries(&daemon, "frb", &["p1", "p2", "p3"], 4)?;
    assert_holds(&daemon, "frb", &["FRB1", "FRB2", "FRB3", "FRB4", "FRB5"])
}

#[test]
fn check_broadcast_causal_runs_pass_crb5_with_both_algorithms() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    for algorithm in ["no-waiting", "waiting"] {
        let run = format!("crb-{algorithm}");
        daemon.ok(&[
            "launch",
            "CausalOrderBroadcast",
            "3",
            "--name",
            &run,
            "--detach",
            "--loss",
            "0.2",
            "--",
            "--algorithm",
            algorithm,
        ])?;
        // A question, an answer that p2 broadcasts only once it has the
        // question (so question → answer), and p1's follow-up.
        daemon.ok(&["send", &format!("{run}/p1"), "broadcast", "question"])?;
        wait_deliveries(&daemon, &run, &["p2"], 1)?;
        daemon.ok(&["send", &format!("{run}/p2"), "broadcast", "answer"])?;
        daemon.ok(&["send", &format!("{run}/p1"), "broadcast", "follow-up"])?;
        wait_deliveries(&daemon, &run, &["p1", "p2", "p3"], 3)?;
        assert_holds(&daemon, &run, &["CRB1", "CRB2", "CRB3", "CRB4", "CRB5"])?;
    }
    Ok(())
}

#[test]
fn check_broadcast_uniform_run_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "UniformReliableBroadcast", "3", "--name", "urb", "--detach", "--loss", "0.2"])?;
    daemon.ok(&["send", "urb/p1", "broadcast", "everyone or nobody"])?;
    wait_deliveries(&daemon, "urb", &["p1", "p2", "p3"], 1)?;
    assert_holds(&daemon, "urb", &["URB1", "URB2", "URB3", "URB4"])
}

#[test]
fn check_broadcast_probabilistic_validity_stays_undecided() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "ProbabilisticBroadcast", "4", "--name", "pb", "--detach"])?;
    daemon.ok(&["send", "pb/p1", "broadcast", "rumour"])?;
    wait_deliveries(&daemon, "pb", &["p1"], 1)?;
    let Checked { code, verdicts, text } = check(&daemon, "pb", &[])?;
    assert_eq!(code, 0, "{text}");
    let got: Vec<(&str, &str)> = verdicts.iter().map(|(id, v)| (id.as_str(), v.as_str())).collect();
    // One run is one sample of a probability: PB1 is never decided by it.
    assert_eq!(got, [("PB1", "undecided"), ("PB2", "holds"), ("PB3", "holds")], "{text}");
    Ok(())
}
