//! `mgrctl up FILE` and `mgrctl down RUN`: scenario files run as one run of
//! several roles, with their timeline, end condition, checks and summary,
//! on an embedded manager (`--local`) and on a daemon. The lab examples of
//! `examples/` are run by `examples.rs`.

use crate::harness::*;

/// Writes `text` as a scenario file in a fresh directory.
fn scenario(text: &str) -> Result<(tempfile::TempDir, String)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("lab.toml");
    std::fs::write(&path, text)?;
    Ok((dir, path.display().to_string()))
}

/// Runs `mgrctl --local up FILE ARGS…` to its end (limited to 60 s).
fn up_local(file: &str, args: &[&str]) -> Result<Output> {
    let mut command = mgrctl(&["--local", "up", file]);
    command.args(args);
    run_until(command, Duration::from_secs(60))
}

/// Runs `command` to completion, killing it after `limit`.
pub(crate) fn run_until(mut command: std::process::Command, limit: Duration) -> Result<Output> {
    use std::process::Stdio;
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!("mgrctl did not end within {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Two roles of shell commands: `echo` prints what the contract tells it
/// and answers lines; `sink` counts what it is sent until it is stopped.
const TWO_ROLES: &str = r#"
name = "two"

[[role]]
name = "echo"
command = ["sh", "-c", "echo \"$MGR_SELF role=$MGR_ROLE roles=$MGR_ROLES colour=$COLOUR\"; while read l; do echo \"$MGR_SELF got $l\"; done"]
count = 2
env = { COLOUR = "green" }

[[role]]
name = "sink"
command = ["sh", "-c", "echo \"$MGR_SELF multicast=$MGR_MULTICAST\"; while read l; do echo \"$MGR_SELF sunk $l\"; done"]

[[at]]
time = "300ms"
send = { to = "echo", line = "hello" }

[[at]]
time = "600ms"
send = { to = "p3", line = "into the sink" }

[[at]]
time = "900ms"
stop = "echo"

[end]
exited = "echo"
timeout = "20s"

[check]
expect = [
  { role = "echo", line = "got hello" },
  { role = "sink", line = "sunk into the sink" },
]
"#;

#[test]
fn a_scenario_of_two_roles_runs_its_timeline_and_ends_with_a_passing_summary() -> Result<()> {
    let (_dir, file) = scenario(TWO_ROLES)?;
    let out = up_local(&file, &[])?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Each instance learns its role, every role's instances and its own
    // environment; the run has one multicast group.
    assert!(stdout.contains("p1 role=echo roles=echo=p1,p2;sink=p3 colour=green"), "{stdout}");
    assert!(stdout.contains("p2 role=echo roles=echo=p1,p2;sink=p3 colour=green"), "{stdout}");
    let multicast = stdout.lines().find_map(|l| l.split("multicast=").nth(1)).context("p3 printed its group")?;
    let (ip, port) = multicast.split_once(':').context("ADDR:PORT")?;
    assert!(ip.parse::<std::net::Ipv4Addr>()?.is_multicast() && port.parse::<u16>().is_ok(), "{multicast}");
    // The timeline: a line to a role reaches each of its instances, a line
    // to an instance only that one.
    assert!(stdout.contains("p1 got hello") && stdout.contains("p2 got hello"), "{stdout}");
    assert!(stdout.contains("p3 sunk into the sink") && !stdout.contains("p3 sunk hello"), "{stdout}");
    // The end: every echo stopped, so the run (the sink too) was stopped.
    assert!(stderr.contains("run two: echo × 2 (p1,p2), sink × 1 (p3)"), "{stderr}");
    assert!(stderr.contains("ok   end: every echo exited"), "{stderr}");
    assert!(stderr.contains("ok   expect sink \"sunk into the sink\": printed by p3"), "{stderr}");
    assert!(stderr.trim_end().ends_with("run two: passed"), "{stderr}");

    // A role's environment cannot change the contract: the launch is
    // refused, naming the variable.
    let (_dir, file) = scenario(&TWO_ROLES.replace("COLOUR = \"green\"", "COLOUR = \"green\", MGR_SELF = \"p99\""))?;
    let out = up_local(&file, &[])?;
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("role 'echo': MGR_SELF is set by the manager (the launch contract), not by a role"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_missing_expected_line_or_an_end_not_met_in_time_fails_the_run() -> Result<()> {
    let never = TWO_ROLES
        .replace("{ role = \"echo\", line = \"got hello\" }", "{ role = \"echo\", line = \"got goodbye\" }")
        .replace("stop = \"echo\"", "stop = \"p1\"")
        .replace("timeout = \"20s\"", "timeout = \"2s\"");
    let (_dir, file) = scenario(&never)?;
    let out = up_local(&file, &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAIL end: role echo had not exited after 2s (timeout)"), "{stderr}");
    assert!(stderr.contains("FAIL expect echo \"got goodbye\": printed by no instance of echo"), "{stderr}");
    assert!(stderr.contains("ok   expect sink"), "what passed is still said: {stderr}");
    assert!(stderr.trim_end().ends_with("run two: FAILED"), "{stderr}");
    Ok(())
}

#[test]
fn properties_are_checked_per_module_and_scale_changes_a_count() -> Result<()> {
    // A broadcast role beside a shell role: BEB's properties are checked on
    // the broadcast's processes only (the shell sends nothing, and must not
    // count as a process that failed to deliver).
    let (_dir, file) = scenario(
        r#"
[[role]]
name = "bcast"
module = "BestEffortBroadcast"
count = 2

[[role]]
name = "shell"
command = ["sh", "-c", "read l; echo $l"]

[[at]]
time = "500ms"
send = { to = "p1", line = "broadcast hi" }

[[at]]
time = "1500ms"
kill = "p2"

[[at]]
time = "10s"
send = { to = "shell", line = "too late" }

[end]
after = "3s"

[check]
properties = true
expect = [{ role = "bcast", line = "deliver p1 hi" }]
"#,
    )?;
    let out = up_local(&file, &["--scale", "bcast=3"])?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("bcast × 3 (p1,p2,p3), shell × 1 (p4)"), "{stderr}");
    // p2 is killed at 1.5 s, by the "kill = p2" step (the file's p2).
    assert!(stderr.contains("kill p2"), "{stderr}");
    assert!(stderr.contains("1 crash(es) recorded"), "{stderr}");
    assert!(stderr.contains("timeline: the run ended before its last 1 step(s)"), "{stderr}");
    for id in ["BEB1", "BEB2", "BEB3"] {
        assert!(stderr.contains(&format!("ok   {id:<6} holds")), "{id}: {stderr}");
    }
    assert!(stdout.contains("p3 | deliver p1 hi"), "{stdout}");
    Ok(())
}

#[test]
fn a_bad_scenario_names_its_file_line_and_field_and_starts_nothing() -> Result<()> {
    let (_dir, file) = scenario(
        "[[role]]\nname = \"peer\"\nmodule = \"MulticastPeer\"\n\n[[at]]\ntime = \"1s\"\nkill = \"p9\"\n\n[end]\nafter = \"1s\"\n",
    )?;
    let out = up_local(&file, &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&format!("{file}:5: no role or instance named 'p9'")), "{stderr}");
    assert!(!stderr.contains("run "), "nothing was launched: {stderr}");

    let out = up_local(&file, &["--scale", "peer"])?;
    assert_eq!(out.status.code(), Some(2), "clap rejects a --scale without =");
    assert!(text(&out.stderr).contains("'peer' is not ROLE=N"));
    let out = up_local("/no/such/scenario.toml", &[])?;
    assert!(text(&out.stderr).contains("cannot read /no/such/scenario.toml"));
    Ok(())
}

#[test]
fn down_stops_a_run_that_up_streams_and_a_second_up_takes_the_next_name() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    let (_dir, file) = scenario(
        "name = \"lab\"\n[[role]]\nname = \"idle\"\ncommand = [\"sh\", \"-c\", \"echo up; exec sleep 600\"]\n[end]\nafter = \"10m\"\n",
    )?;
    let mut first = daemon.spawn(&["up", &file])?;
    first.expect("the first run's output", |l| l.contains("up"))?;
    let mut second = daemon.spawn(&["up", &file])?;
    second.expect("the second run's output", |l| l.contains("up"))?;
    let runs = daemon.ok(&["ps"])?;
    assert!(runs.contains("lab ") && runs.contains("lab-2"), "{runs}");
    assert!(runs.contains("exec (idle)"), "ps names each instance's module and role: {runs}");
    let instance = daemon.instance("lab", "p1")?;
    assert_eq!((&instance["role"], &instance["module"]), (&Value::from("idle"), &Value::from("exec")));
    assert!(daemon.ok(&["down", "lab"])?.contains("run lab: 1 instance(s) stopped"));
    let (code, _) = first.finish()?;
    assert_eq!(code, 0, "the run ended by itself before its end: stopped by down");
    daemon.ok(&["down", "lab-2"])?;
    assert_eq!(second.finish()?.0, 0);
    assert!(daemon.err(&["down", "nosuch"])?.contains("unknown run 'nosuch'"));
    Ok(())
}
