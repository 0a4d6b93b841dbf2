//! The restart policy: `--restart on-failure` starts an instance that fails
//! by itself again, up to a limit, after a backoff, with its viewers still
//! attached; a stop cancels a pending restart; a clean exit is not a failure.

use crate::harness::*;

#[test]
fn a_failing_instance_is_restarted_up_to_the_limit_and_viewers_follow_it() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    let out = daemon.ctl(&[
        "exec",
        "1",
        "--name",
        "flaky",
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--restart-backoff",
        "100ms",
        "--",
        "sh",
        "-c",
        "echo try; exit 3",
    ])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(1), "the run failed in the end:\n{stdout}");
    assert_eq!(stdout.matches("| try").count(), 3, "one start and two restarts, all in one stream:\n{stdout}");
    assert!(stdout.contains("automatic restart 2 of 2"), "{stdout}");
    let p1 = daemon.instance("flaky", "p1")?;
    assert_eq!((p1["starts"].as_u64(), p1["state"].as_str()), (Some(3), Some("failed")));
    // Every failure is a crash in the run's events.
    let events = daemon.ok(&["events", "flaky", "--json"])?;
    assert_eq!(events.matches("\"event\":\"crash\"").count(), 3, "{events}");

    // A clean exit is not a failure: no restart.
    daemon.ok(&["exec", "1", "--name", "clean", "--restart", "on-failure", "--", "true"])?;
    assert_eq!(daemon.instance("clean", "p1")?["starts"], 1);
    Ok(())
}

#[test]
fn a_stop_during_the_backoff_cancels_the_restart() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    let mut session = daemon.spawn(&[
        "exec",
        "1",
        "--name",
        "later",
        "--restart",
        "on-failure",
        "--restart-backoff",
        "30s",
        "--",
        "sh",
        "-c",
        "exit 4",
    ])?;
    session.expect("the pending restart", |l| l.contains("restarting in 30000 ms"))?;
    // Waiting out its backoff, it is neither running nor ended for good.
    assert_eq!(daemon.instance("later", "p1")?["state"], "restarting");
    daemon.ok(&["stop", "later/p1"])?;
    session.expect("the cancellation", |l| l.contains("automatic restart cancelled"))?;
    let (code, _) = session.finish()?;
    assert_eq!(code, 1, "the instance failed and stays failed");
    assert_eq!(daemon.instance("later", "p1")?["starts"], 1);
    assert_eq!(daemon.instance("later", "p1")?["state"], "failed");
    Ok(())
}
