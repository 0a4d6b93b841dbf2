//! `mgrctl events`: a run's structured events, listed, as JSON, and
//! followed until the run ends (across hosts: `multihost.rs`).

use crate::harness::*;

#[test]
fn events_are_listed_as_json_and_followed_until_the_run_ends() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "2", "--name", "ev", "-d"])?;
    let mut follow = daemon.spawn(&["events", "ev", "--follow"])?;
    daemon.ok(&["send", "ev/p1", "broadcast hello"])?;
    follow.expect("p2's delivery", |l| l.starts_with("p2@") && l.contains("deliver") && l.contains("hello"))?;

    let json = daemon.ok(&["events", "ev", "--json"])?;
    let events: Vec<Value> = json.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let broadcast = events.iter().find(|e| e["event"] == "broadcast").context("no broadcast event")?;
    assert_eq!(broadcast["process"], "p1");
    assert_eq!(broadcast["run"], "ev");
    assert!(
        broadcast["lamport"].as_u64().is_some_and(|l| l > 0)
            && broadcast["vc"].as_array().is_some_and(|v| v.len() == 2)
    );

    // A killed instance gets its crash record; the follower ends with the run.
    daemon.ok(&["kill", "ev/p2"])?;
    follow.expect("p2's crash record", |l| l.starts_with("p2@") && l.contains("crash"))?;
    daemon.ok(&["stop", "ev"])?;
    let (code, _) = follow.finish()?;
    assert_eq!(code, 0, "a followed run that ended ends the command");

    let err = daemon.err(&["events", "nosuchrun"])?;
    assert!(err.contains("unknown run 'nosuchrun'"), "{err}");
    Ok(())
}
