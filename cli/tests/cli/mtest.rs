//! `mgrctl test MODULE`: a module of each family of the book's
//! abstractions passes its own test under 20 % loss and a crash (links,
//! broadcasts, a register, consensus, a failure detector), on a daemon and
//! with `--local`; the same seed gives the same schedule and verdicts; a
//! module from a manifest is tested with `--as`; usage errors exit 2;
//! Ctrl-C stops and removes the run. Each test runs for 2 s or less, plus
//! the wait for quiescence.

use crate::harness::*;
use crate::scenarios::run_until;

/// The longest a test may take here (each ends in under 10 s on an idle
/// machine; the machines that run the suite are shared and slow).
const LIMIT: Duration = Duration::from_secs(60);

/// What `mgrctl test` said.
struct Tested {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Tested {
    /// The lines of the schedule: `[0.35s] p1: broadcast m7`.
    fn schedule(&self) -> Vec<&str> {
        self.stdout.lines().filter(|l| l.starts_with('[') && !l.contains("end of input")).collect()
    }

    /// Each property's (id, verdict), in order.
    fn verdicts(&self, ids: &[&str]) -> Vec<(String, String)> {
        self.stdout
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let id = words.next().filter(|id| ids.contains(id))?;
                Some((id.to_owned(), words.next()?.to_owned()))
            })
            .collect()
    }

    /// The number after a summary line's label (`requests     12`).
    fn count(&self, label: &str) -> Option<usize> {
        let line = self.stdout.lines().find(|l| l.starts_with(label))?;
        line[label.len()..].split_whitespace().next()?.parse().ok()
    }
}

impl std::fmt::Display for Tested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `mgrctl test` with `command`'s connection and `args`.
fn run(mut command: Command, args: &[&str]) -> Result<Tested> {
    command.arg("test").args(args);
    let out = run_until(command, LIMIT)?;
    Ok(Tested {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
    })
}

/// Tests `module` under 20 % loss and one crash for 2 s and insists that
/// it passes: exit 0, the properties `ids` each hold, one process killed,
/// and answers (`answered`: deliveries, completions…) counted.
fn passes(command: Command, module: &str, answered: &str, ids: &[&str], extra: &[&str]) -> Result<Tested> {
    let mut args = vec![module, "--loss", "0.2", "--crash", "1", "--time", "2s"];
    args.extend(extra);
    let tested = run(command, &args)?;
    assert_eq!(tested.code, 0, "{tested}");
    let verdicts = tested.verdicts(ids);
    let got: Vec<&str> = verdicts.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(got, ids, "{tested}");
    assert!(verdicts.iter().all(|(_, v)| v == "holds"), "{tested}");
    assert_eq!(tested.schedule().iter().filter(|l| l.contains("] kill p")).count(), 1, "{tested}");
    assert!(tested.stdout.lines().any(|l| l.starts_with("crashes      1 (p")), "{tested}");
    assert!(tested.count(answered).is_some_and(|n| n > 0), "no {answered}: {tested}");
    assert!(tested.stdout.lines().any(|l| l.starts_with("latency      p50 ")), "{tested}");
    assert!(tested.stdout.trim_end().ends_with(": passed"), "{tested}");
    Ok(tested)
}

/// Insists that the run of a test is gone (removed at its end).
fn removed(daemon: &Daemon) -> Result<()> {
    let ps = daemon.ok(&["ps"])?;
    assert_eq!(ps.lines().count(), 1, "only the header is left:\n{ps}");
    Ok(())
}

#[test]
fn mtest_links_perfect_link_passes_locally() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut command = mgrctl(&["--local"]);
    command.arg("--socket").arg(dir.path().join("absent.sock"));
    let tested = passes(command, "PerfectPointToPointLink", "deliveries", &["PL1", "PL2", "PL3"], &["--quiesce", "1"])?;
    assert!(tested.count("requests").is_some_and(|n| n > 0), "{tested}");
    assert!(tested.schedule().iter().any(|l| l.contains(": send p")), "{tested}");
    Ok(())
}

#[test]
fn mtest_broadcasts_best_effort_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let tested = passes(
        daemon.command(&[]),
        "BestEffortBroadcast",
        "deliveries",
        &["BEB1", "BEB2", "BEB3"],
        &["--quiesce", "1"],
    )?;
    assert!(tested.schedule().iter().any(|l| l.contains(": broadcast m")), "{tested}");
    removed(&daemon)
}

#[test]
fn mtest_broadcasts_reliable_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    passes(daemon.command(&[]), "ReliableBroadcast", "deliveries", &["RB1", "RB2", "RB3", "RB4"], &["--quiesce", "1"])?;
    removed(&daemon)
}

// The register, consensus and detector below run on a perfect failure
// detector (Δ = 1 s, a crash detected within 2Δ): they keep the default
// wait for quiescence, 2 s, longer than what is left of 2Δ after the last
// crash (at 60 % of the time at the latest).

#[test]
fn mtest_register_atomic_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let tested = passes(daemon.command(&[]), "AtomicRegister", "completions", &["ONAR1", "ONAR2", "ONAR3"], &[])?;
    assert!(tested.schedule().iter().any(|l| l.ends_with(": read")), "{tested}");
    Ok(())
}

#[test]
fn mtest_consensus_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let tested = passes(daemon.command(&[]), "Consensus", "decisions", &["C1", "C2", "C3", "C4"], &[])?;
    let proposals = tested.schedule().iter().filter(|l| l.contains(": propose ")).count();
    assert!((2..=3).contains(&proposals), "one proposal per process alive then: {tested}");
    Ok(())
}

#[test]
fn mtest_failure_detector_perfect_passes() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let tested = passes(daemon.command(&[]), "PerfectFailureDetector", "detections", &["PFD1", "PFD2"], &[])?;
    // Its workload is the crash: two correct processes detect it.
    assert_eq!(tested.count("detections"), Some(2), "{tested}");
    Ok(())
}

#[test]
fn mtest_the_same_seed_gives_the_same_schedule_and_verdicts() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let args =
        ["BestEffortBroadcast", "--loss", "0.2", "--crash", "1", "--partition", "--time", "1s", "--quiesce", "0.5"];
    let mut seeded = args.to_vec();
    seeded.extend(["--seed", "42"]);
    let (one, two) = (run(daemon.command(&[]), &seeded)?, run(daemon.command(&[]), &seeded)?);
    assert_eq!(one.code, 0, "{one}");
    assert!(one.stdout.lines().next().is_some_and(|l| l.ends_with(", seed 42")), "{one}");
    assert!(one.schedule().iter().any(|l| l.contains("] partition ")), "{one}");
    assert_eq!(one.schedule(), two.schedule(), "{one}\n{two}");
    let ids = ["BEB1", "BEB2", "BEB3"];
    assert_eq!(one.verdicts(&ids), two.verdicts(&ids), "{one}\n{two}");
    assert_eq!(two.code, 0, "{two}");
    // Without --seed, the seed is drawn and said, so the run can be repeated.
    let random = run(daemon.command(&[]), &args)?;
    let header = random.stdout.lines().next().unwrap_or_default().to_owned();
    let seed = header.split("--seed ").nth(1).and_then(|s| s.strip_suffix(')')).context(header.clone())?;
    assert!(seed.parse::<u64>().is_ok(), "{header}");
    removed(&daemon)
}

#[test]
fn mtest_a_manifest_module_is_tested_as_the_abstraction_it_names() -> Result<()> {
    // A module "of the student's": best-effort broadcast, as a manifest.
    let modules = tempfile::tempdir()?;
    let manifest = format!(
        "name = \"MyBroadcast\"\ncommand = \"{}\"\nargs = [\"BestEffortBroadcast\"]\ndescription = \"a broadcast of my own\"\nfaults = true\nsocket = \"inherit\"\n",
        bin("mgr-modules").display()
    );
    std::fs::write(modules.path().join("mine.toml"), &manifest)?;
    // The same, saying what it implements: tested as that without --as.
    let declared = manifest.replace("MyBroadcast", "MyDeclaredBroadcast") + "implements = \"BestEffortBroadcast\"\n";
    std::fs::write(modules.path().join("declared.toml"), declared)?;
    let dir = modules.path().to_str().context("a UTF-8 path")?;
    let daemon = Daemon::start(&["--modules-dir", dir])?;
    let without = run(daemon.command(&[]), &["MyBroadcast"])?;
    assert_eq!(without.code, 2, "{without}");
    assert!(without.stderr.contains("comes from a manifest") && without.stderr.contains("--as"), "{without}");
    let tested = passes(
        daemon.command(&[]),
        "mybroadcast",
        "deliveries",
        &["BEB1", "BEB2", "BEB3"],
        &["--as", "besteffortbroadcast", "--quiesce", "1"],
    )?;
    assert!(tested.stdout.starts_with("test r1: 3 × MyBroadcast as BestEffortBroadcast (broadcasts)"), "{tested}");
    let tested = passes(
        daemon.command(&[]),
        "MyDeclaredBroadcast",
        "deliveries",
        &["BEB1", "BEB2", "BEB3"],
        &["--quiesce", "1"],
    )?;
    assert!(
        tested.stdout.starts_with("test r2: 3 × MyDeclaredBroadcast as BestEffortBroadcast (broadcasts)"),
        "{tested}"
    );
    removed(&daemon)
}

#[test]
fn mtest_usage_errors_exit_2_before_any_run() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    for (args, error) in [
        (&["BestEffortBroadcast", "--crash", "3"][..], "--crash 3 would kill every one of the 3 processes"),
        (&["BestEfortBroadcast"], "did you mean BestEffortBroadcast?"),
        (&["BestEffortBroadcast", "--as", "Broadcast"], "no built-in abstraction"),
        (&["MulticastPeer"], "no workload for MulticastPeer"),
        (&["BestEffortBroadcast", "--loss", "2"], "loss must be a probability"),
        (&["BestEffortBroadcast", "--diagram", "run.png"], "name the file FILE.svg or FILE.html"),
        (&["BestEffortBroadcast", "--bogus"], "unexpected argument"),
    ] {
        let tested = run(daemon.command(&[]), args)?;
        assert_eq!(tested.code, 2, "{args:?}: {tested}");
        assert!(tested.stderr.contains(error), "{args:?}: {tested}");
    }
    removed(&daemon)
}

#[test]
fn mtest_ctrl_c_stops_and_removes_the_run() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut session = daemon.spawn(&["test", "BestEffortBroadcast", "--time", "60s", "--name", "long"])?;
    session.expect("a first step", |l| l.starts_with('['))?;
    session.signal(nix::sys::signal::Signal::SIGINT);
    let (code, _) = session.finish()?;
    assert_eq!(code, 130);
    removed(&daemon)
}
