//! The registers (chapter 4), launched as real instances.

use super::harness::*;

/// What an instance printed for its user so far: its `readreturn`,
/// `writereturn` and `error:` lines, in order.
fn outputs(daemon: &Daemon, instance: &str) -> Result<Vec<String>> {
    let logs = daemon.ok(&["logs", instance])?;
    let prefix = format!("{} | ", instance.rsplit('/').next().unwrap_or_default());
    Ok(logs
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| l.starts_with("readreturn") || l.starts_with("writereturn") || l.starts_with("error:"))
        .map(str::to_owned)
        .collect())
}

/// Types `command` at `instance` and waits until it printed `count` lines
/// in all (see [`outputs`]).
fn invoke(daemon: &Daemon, instance: &str, command: &[&str], count: usize) -> Result<()> {
    let mut args = vec!["send", instance];
    args.extend_from_slice(command);
    daemon.ok(&args)?;
    wait_until(&format!("{command:?} at {instance} to return"), || {
        outputs(daemon, instance).is_ok_and(|o| o.len() >= count)
    })
}

/// The run's processes, p1 … pn.
fn processes(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("p{i}")).collect()
}

/// A read before any write returns ⊥; p2 may not write; p1 writes x then y,
/// each write returning; then every process reads y.
fn write_then_read_everywhere(module: &str, algorithm: &str, n: usize, faults: &[&str]) -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let count = n.to_string();
    let mut launch = vec!["launch", module, &count, "--name", "r", "--detach"];
    launch.extend_from_slice(faults);
    launch.extend_from_slice(&["--", "--algorithm", algorithm, "--period-ms", "50"]);
    daemon.ok(&launch)?;
    invoke(&daemon, "r/p2", &["read"], 1)?;
    invoke(&daemon, "r/p2", &["write", "z"], 2)?;
    invoke(&daemon, "r/p1", &["write", "x"], 1)?;
    invoke(&daemon, "r/p1", &["write", "y"], 2)?;
    for p in processes(n) {
        let target = format!("r/{p}");
        let before = outputs(&daemon, &target)?.len();
        invoke(&daemon, &target, &["read"], before + 1)?;
    }
    assert_eq!(outputs(&daemon, "r/p1")?, ["writereturn", "writereturn", "readreturn y"]);
    assert_eq!(outputs(&daemon, "r/p2")?, ["readreturn ⊥", "error: only p1 writes (this is p2)", "readreturn y"]);
    for p in &processes(n)[2..] {
        assert_eq!(outputs(&daemon, &format!("r/{p}"))?, ["readreturn y"], "at {p}");
    }
    Ok(())
}

/// With 5 processes and 2 of them (not p1) killed, a majority is still
/// alive: writes and reads complete, and reads return the last value written.
fn survives_a_minority_of_crashes(module: &str, algorithm: &str) -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        module,
        "5",
        "--name",
        "r",
        "--detach",
        "--",
        "--algorithm",
        algorithm,
        "--period-ms",
        "50",
    ])?;
    daemon.ok(&["kill", "r/p4"])?;
    daemon.ok(&["kill", "r/p5"])?;
    invoke(&daemon, "r/p1", &["write", "x"], 1)?;
    invoke(&daemon, "r/p2", &["read"], 1)?;
    invoke(&daemon, "r/p1", &["write", "y"], 2)?;
    invoke(&daemon, "r/p3", &["read"], 1)?;
    invoke(&daemon, "r/p1", &["read"], 3)?;
    assert_eq!(outputs(&daemon, "r/p1")?, ["writereturn", "writereturn", "readreturn y"]);
    assert_eq!(outputs(&daemon, "r/p2")?, ["readreturn x"]);
    assert_eq!(outputs(&daemon, "r/p3")?, ["readreturn y"]);
    Ok(())
}

/// A killed process never acknowledges, but once the perfect failure
/// detector detects it, writes (and reads) no longer wait for it.
fn a_crash_does_not_block_a_write(module: &str, algorithm: &str) -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&[
        "launch",
        module,
        "3",
        "--name",
        "r",
        "--detach",
        "--",
        "--algorithm",
        algorithm,
        "--delta-ms",
        "300",
        "--period-ms",
        "50",
    ])?;
    daemon.ok(&["kill", "r/p3"])?;
    invoke(&daemon, "r/p1", &["write", "x"], 1)?;
    invoke(&daemon, "r/p2", &["read"], 1)?;
    invoke(&daemon, "r/p1", &["write", "y"], 2)?;
    invoke(&daemon, "r/p2", &["read"], 2)?;
    assert_eq!(outputs(&daemon, "r/p1")?, ["writereturn", "writereturn"]);
    assert_eq!(outputs(&daemon, "r/p2")?, ["readreturn x", "readreturn y"]);
    Ok(())
}

#[test]
fn read_one_write_all_reads_the_last_write_everywhere() -> Result<()> {
    write_then_read_everywhere("RegularRegister", "read-one-write-all", 3, &["--loss", "0.1", "--dup", "0.1"])
}

#[test]
fn read_one_write_all_is_not_blocked_by_a_detected_crash() -> Result<()> {
    a_crash_does_not_block_a_write("RegularRegister", "read-one-write-all")
}

#[test]
fn majority_voting_reads_the_last_write_everywhere() -> Result<()> {
    write_then_read_everywhere("RegularRegister", "majority-voting", 4, &["--loss", "0.1", "--dup", "0.1"])
}

#[test]
fn majority_voting_survives_a_minority_of_crashes() -> Result<()> {
    survives_a_minority_of_crashes("RegularRegister", "majority-voting")
}

#[test]
fn read_impose_write_all_reads_the_last_write_everywhere() -> Result<()> {
    write_then_read_everywhere("AtomicRegister", "read-impose-write-all", 3, &["--loss", "0.1", "--dup", "0.1"])
}

#[test]
fn read_impose_write_all_is_not_blocked_by_a_detected_crash() -> Result<()> {
    a_crash_does_not_block_a_write("AtomicRegister", "read-impose-write-all")
}

#[test]
fn read_impose_write_majority_reads_the_last_write_everywhere() -> Result<()> {
    write_then_read_everywhere("AtomicRegister", "read-impose-write-majority", 5, &["--loss", "0.1", "--dup", "0.1"])
}

#[test]
fn read_impose_write_majority_survives_a_minority_of_crashes() -> Result<()> {
    survives_a_minority_of_crashes("AtomicRegister", "read-impose-write-majority")
}
