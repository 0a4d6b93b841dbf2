//! `mgrctl check` on real runs of the registers (chapter 4), consensus
//! (chapter 5) and total-order broadcast (chapter 6): each run is driven,
//! stopped (so that it has quiesced and liveness is decided) and checked.

use super::detectors::lines_starting;
use super::harness::*;

/// Launches `n` instances of `module` as run `run`, with a fast detector
/// and links, and `args` after them.
fn launch(daemon: &Daemon, module: &str, n: usize, run: &str, args: &[&str]) -> Result<()> {
    let n = n.to_string();
    let mut command =
        vec!["launch", module, &n, "--name", run, "--detach", "--", "--delta-ms", "400", "--period-ms", "50"];
    command.extend_from_slice(args);
    daemon.ok(&command)?;
    Ok(())
}

/// One line of `mgrctl check --json`: the property's id, its verdict and
/// the detail (a counterexample, or why it is undecided).
type Line = (String, String, String);

/// Runs `mgrctl check RUN --json` with `extra` arguments: its exit code and
/// each property's (id, verdict, detail).
fn check(daemon: &Daemon, run: &str, extra: &[&str]) -> Result<(i32, Vec<Line>)> {
    let mut args = vec!["check", run, "--json"];
    args.extend_from_slice(extra);
    let out = daemon.ctl(&args)?;
    let code = out.status.code().context("mgrctl check was killed")?;
    let mut verdicts = Vec::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
        verdicts.push((field("property"), field("verdict"), field("detail")));
    }
    Ok((code, verdicts))
}

/// Checks that `run` passes `mgrctl check` with exactly the properties
/// `ids`, each holding.
fn passes(daemon: &Daemon, run: &str, ids: &[&str]) -> Result<()> {
    let (code, verdicts) = check(daemon, run, &[])?;
    let got: Vec<(&str, &str)> = verdicts.iter().map(|(id, verdict, _)| (id.as_str(), verdict.as_str())).collect();
    let want: Vec<(&str, &str)> = ids.iter().map(|id| (*id, "holds")).collect();
    assert_eq!(got, want, "{verdicts:?}");
    assert_eq!(code, 0);
    Ok(())
}

/// Has each process in `proposals` propose and waits for its decision.
fn propose_and_wait(daemon: &Daemon, run: &str, proposals: &[(&str, &str)]) -> Result<()> {
    for (p, v) in proposals {
        daemon.ok(&["send", &format!("{run}/{p}"), "propose", v])?;
    }
    for (p, _) in proposals {
        let target = format!("{run}/{p}");
        wait_until("a decision", || lines_starting(daemon, &target, "decide").is_ok_and(|d| !d.is_empty()))?;
    }
    Ok(())
}

#[test]
fn check_consensus_with_a_killed_process_holds() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "Consensus", 3, "c", &["--algorithm", "flooding"])?;
    daemon.ok(&["kill", "c/p3"])?;
    propose_and_wait(&daemon, "c", &[("p1", "30"), ("p2", "10")])?;
    daemon.ok(&["stop", "c"])?;
    passes(&daemon, "c", &["C1", "C2", "C3", "C4"])?;
    // The killed process decided nothing, so even uniform agreement holds.
    let (code, verdicts) = check(&daemon, "c", &["--property", "UC4"])?;
    assert_eq!((code, verdicts[0].1.as_str()), (0, "holds"), "{verdicts:?}");
    Ok(())
}

#[test]
fn check_uniform_consensus_holds() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "UniformConsensus", 3, "uc", &["--algorithm", "hierarchical"])?;
    propose_and_wait(&daemon, "uc", &[("p1", "b"), ("p2", "a"), ("p3", "c")])?;
    daemon.ok(&["stop", "uc"])?;
    passes(&daemon, "uc", &["UC1", "UC2", "UC3", "UC4"])
}

#[test]
fn check_total_order_broadcast_with_concurrent_broadcasts_holds() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    launch(&daemon, "TotalOrderBroadcast", 3, "tob", &[])?;
    // `send RUN` types the line at every instance at once: three concurrent
    // broadcasts, twice.
    daemon.ok(&["send", "tob", "broadcast", "m1"])?;
    daemon.ok(&["send", "tob", "broadcast", "m2"])?;
    for p in ["p1", "p2", "p3"] {
        let target = format!("tob/{p}");
        wait_until("six deliveries", || deliveries(&daemon, &target).is_ok_and(|d| d.len() >= 6))?;
    }
    daemon.ok(&["stop", "tob"])?;
    passes(&daemon, "tob", &["TOB1", "TOB2", "TOB3", "TOB4", "TOB5"])
}

/// Types `command` at `instance` and waits until it printed a `readreturn`
/// or `writereturn` line more than it had.
fn operate(daemon: &Daemon, instance: &str, command: &[&str]) -> Result<Vec<String>> {
    let returns = || -> Result<Vec<String>> {
        let logs = daemon.ok(&["logs", instance])?;
        let prefix = format!("{} | ", instance.rsplit('/').next().unwrap_or_default());
        Ok(logs
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter(|l| l.starts_with("readreturn") || l.starts_with("writereturn"))
            .map(str::to_owned)
            .collect())
    };
    let before = returns()?.len();
    let mut args = vec!["send", instance];
    args.extend_from_slice(command);
    daemon.ok(&args)?;
    wait_until(&format!("{command:?} at {instance} to return"), || returns().is_ok_and(|r| r.len() > before))?;
    returns()
}

#[test]
fn check_registers_with_writes_and_reads_hold() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    for (module, run, ids) in
        [("RegularRegister", "rr", &["ONRR1", "ONRR2"][..]), ("AtomicRegister", "ar", &["ONAR1", "ONAR2", "ONAR3"])]
    {
        launch(&daemon, module, 3, run, &[])?;
        for p in ["p2", "p3"] {
            operate(&daemon, &format!("{run}/{p}"), &["read"])?;
        }
        for v in ["x", "y"] {
            operate(&daemon, &format!("{run}/p1"), &["write", v])?;
            for p in ["p1", "p2", "p3"] {
                operate(&daemon, &format!("{run}/{p}"), &["read"])?;
            }
        }
        daemon.ok(&["stop", run])?;
        passes(&daemon, run, ids)?;
    }
    Ok(())
}

/// A regular register's new/old inversion, provoked: with p3 cut off from
/// the writer, p1's write of 1 is pending (it waits for p3's
/// acknowledgement until the detector, slow here, detects p3), p2 reads 1,
/// then p3 reads its local ⊥. Each read is valid (both are concurrent with
/// the write), but the pair violates the atomic register's ordering.
#[test]
fn check_a_regular_register_with_a_new_old_inversion_violates_onar3() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        "RegularRegister",
        "3",
        "--name",
        "rr",
        "--detach",
        "--",
        "--delta-ms",
        "10000",
        "--period-ms",
        "50",
    ])?;
    daemon.ok(&["fault", "rr", "--partition", "p1,p2/p3"])?;
    daemon.ok(&["send", "rr/p1", "write", "1"])?;
    wait_until("p2 to read 1", || {
        operate(&daemon, "rr/p2", &["read"]).is_ok_and(|r| r.last().is_some_and(|l| l == "readreturn 1"))
    })?;
    assert_eq!(operate(&daemon, "rr/p3", &["read"])?, ["readreturn ⊥"]);
    daemon.ok(&["stop", "rr"])?;
    let (code, verdicts) = check(&daemon, "rr", &["--property", "ONRR2,ONAR3"])?;
    assert_eq!(code, 1, "{verdicts:?}");
    assert_eq!((verdicts[0].0.as_str(), verdicts[0].1.as_str()), ("ONRR2", "holds"), "{verdicts:?}");
    let (id, verdict, detail) = &verdicts[1];
    assert_eq!((id.as_str(), verdict.as_str()), ("ONAR3", "violated"));
    assert!(detail.starts_with("p2 read 1 (returned at L") && detail.contains("then p3 read ⊥"), "{detail}");
    assert!(detail.ends_with("but the initial ⊥ precedes p1's write of 1 (invoked at L1)"), "{detail}");
    Ok(())
}
