//! The papercuts a pueue or PM2 user hits on day one: a closed pipe ends
//! any command quietly (exit 0, nothing on stderr), tables fit their
//! content, `logs` merges instances in time order (with --timestamps,
//! --since a time, --grep), did-you-mean for names, module names in any
//! case, --local refused where it means nothing, diagram formats, several
//! targets at once, each command's own options first in its help, uptime
//! and restarts in ps, shell completions.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;

use crate::harness::*;

/// How a mgrctl whose output was cut short ended.
struct Cut {
    /// The lines read before the read end was closed.
    lines: Vec<String>,
    code: Option<i32>,
    stderr: String,
    /// From the close of the read end to mgrctl's exit.
    took: Duration,
}

/// Runs `command` with its stdout on a real pipe, reads `lines` lines (as
/// `head -N` does), closes the read end and waits for mgrctl to end
/// (killing it after the harness's timeout).
fn head(mut command: Command, lines: usize) -> Result<Cut> {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let watchdog = kill_after(child.id(), TIMEOUT);
    let mut reader = BufReader::new(child.stdout.take().context("stdout")?);
    let mut read = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        read.push(line.trim_end().to_owned());
    }
    drop(reader);
    let closed = Instant::now();
    let status = child.wait()?;
    let took = closed.elapsed();
    drop(watchdog);
    let mut stderr = String::new();
    child.stderr.take().context("stderr")?.read_to_string(&mut stderr)?;
    Ok(Cut { lines: read, code: status.code(), stderr, took })
}

/// Runs `command` with its stdout on a pipe whose reader is gone before
/// it starts: its first write fails, as when `head` has taken its line.
fn closed_from_start(mut command: Command) -> Result<Cut> {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe()?;
    drop(read);
    let out = run_with_timeout_on(command.stdout(Stdio::from(write)))?;
    Ok(Cut { lines: Vec::new(), code: out.0, stderr: out.1, took: Duration::ZERO })
}

fn run_with_timeout_on(command: &mut Command) -> Result<(Option<i32>, String)> {
    let mut child = command.stdin(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let watchdog = kill_after(child.id(), TIMEOUT);
    let mut stderr = String::new();
    child.stderr.take().context("stderr")?.read_to_string(&mut stderr)?;
    let status = child.wait()?;
    drop(watchdog);
    Ok((status.code(), stderr))
}

/// Kills the process after `limit` unless the returned guard is dropped first.
fn kill_after(pid: u32, limit: Duration) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    thread::spawn(move || {
        if wait.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
    });
    done
}

/// A quiet end: status 0, and nothing on stderr but what `allowed` lets by.
fn assert_quiet(what: &str, cut: &Cut, allowed: impl Fn(&str) -> bool) {
    assert_eq!(cut.code, Some(0), "{what}: status {:?}, stderr:\n{}", cut.code, cut.stderr);
    let said: Vec<&str> = cut.stderr.lines().filter(|l| !allowed(l)).collect();
    assert!(said.is_empty(), "{what} said on stderr:\n{}", cut.stderr);
}

#[test]
fn a_closed_pipe_ends_every_command_quietly_and_streams_at_once() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    // A run with more output than a pipe holds, that then stays quiet.
    let script =
        "i=1; while [ $i -le 3000 ]; do echo \"line $i of a run that prints a lot\"; i=$((i+1)); done; exec sleep 600";
    daemon.ok(&["exec", "2", "--name", "loud", "--detach", "--", "sh", "-c", script])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "3", "--name", "ev", "--detach"])?;
    daemon.ok(&["send", "ev/p1", "broadcast", "hello"])?;
    wait_until("the loud run's lines", || daemon.instance("loud", "p2").is_ok_and(|i| i["last_seq"] == 3001))?;
    wait_until("the broadcast's deliveries", || {
        daemon.ok(&["events", "ev", "--json"]).is_ok_and(|e| e.matches("\"deliver\"").count() == 3)
    })?;

    // `| head -1` of commands that print and end, of the replay of a large
    // log, of the trace: one line, then a quiet end.
    let commands: &[&[&str]] = &[
        &["modules"],
        &["ps"],
        &["members"],
        &["logs", "loud"],
        &["logs", "loud", "--json", "--timestamps"],
        &["events", "ev"],
        &["trace", "ev", "--format", "json"],
        &["trace", "ev"],
        &["completions", "bash"],
    ];
    for args in commands {
        let cut = head(daemon.command(args), 1)?;
        assert_eq!(cut.lines.len(), 1, "{args:?}");
        assert_quiet(&format!("{args:?} | head -1"), &cut, |_| false);
        // The reader gone before the first write: the same.
        assert_quiet(&format!("{args:?} into a closed pipe"), &closed_from_start(daemon.command(args))?, |_| false);
    }

    // Following streams that have nothing more to say notice at once that
    // nobody reads them, without waiting for a line to write.
    for args in [&["logs", "loud", "-f"][..], &["logs", "loud/p1", "-f", "--tail", "1"], &["events", "ev", "-f"]] {
        let cut = head(daemon.command(args), 1)?;
        assert_quiet(&format!("{args:?} | head -1"), &cut, |_| false);
        assert!(cut.took < Duration::from_secs(2), "{args:?} took {:?} to notice", cut.took);
    }
    assert_eq!(daemon.instance("loud", "p1")?["state"], "running", "a viewer's end is not the run's");
    Ok(())
}

#[test]
fn a_closed_pipe_detaches_launch_unless_its_timeout_is_to_be_kept() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let cut = head(daemon.command(&["launch", "FairLossPointToPointLink", "3", "--json", "--name", "viewed"]), 1)?;
    let first: Value = serde_json::from_str(&cut.lines[0])?;
    assert_eq!((&first["run"], &first["stream"]), (&Value::from("viewed"), &Value::from("mgr")));
    assert_quiet("launch --json | head -1", &cut, |l| l == "run viewed: 3 × FairLossPointToPointLink");
    assert!(cut.took < Duration::from_secs(2), "launch took {:?} to end", cut.took);
    // The run goes on, as if launched with --detach.
    for p in ["p1", "p2", "p3"] {
        assert_eq!(daemon.instance("viewed", p)?["state"], "running");
    }
    daemon.ok(&["stop", "viewed"])?;

    // With --timeout, mgrctl keeps its promise: it stays, quietly, until
    // the timeout stops the run.
    let began = Instant::now();
    let cut =
        head(daemon.command(&["launch", "FairLossPointToPointLink", "2", "--name", "timed", "--timeout", "2s"]), 1)?;
    assert!(cut.lines[0].starts_with("p"), "{:?}", cut.lines);
    assert_quiet("launch --timeout | head -1", &cut, |l| l.starts_with("run timed:"));
    assert!(began.elapsed() >= Duration::from_secs(2), "mgrctl left before the timeout");
    assert_eq!(daemon.instance("timed", "p1")?["state"], "stopped", "the timeout stopped the run");
    Ok(())
}

/// (stored time, instance, text) of each line of `logs --json`.
fn json_lines(text: &str) -> Result<Vec<(String, String, String)>> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            Ok((field("time"), field("instance"), field("text")))
        })
        .collect()
}

#[test]
fn logs_of_a_run_merge_its_instances_in_the_order_of_their_stored_times() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    // Two instances taking turns: p2 starts 30 ms after p1, each prints
    // every 60 ms.
    let script = "[ $MGR_SELF = p2 ] && sleep 0.03; i=1; while [ $i -le 8 ]; do echo \"$MGR_SELF says $i\"; i=$((i+1)); sleep 0.06; done";
    daemon.ok(&["exec", "2", "--name", "turns", "--", "sh", "-c", script])?;
    let lines = json_lines(&daemon.ok(&["logs", "turns", "--json"])?)?;
    let said: Vec<&(String, String, String)> = lines.iter().filter(|(_, _, t)| t.contains(" says ")).collect();
    assert_eq!(said.len(), 16);
    let times: Vec<&String> = lines.iter().map(|(t, _, _)| t).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order: {lines:#?}");
    let turns = said.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(turns >= 8, "the instances' lines are grouped, not merged: {said:#?}");

    // The text form shows the same order, and --timestamps each line's time.
    let text = daemon.ok(&["logs", "turns", "--timestamps"])?;
    let stamped = regex::Regex::new(r"^\d\d:\d\d:\d\d\.\d{3} p[12] [|#] ")?;
    assert!(text.lines().all(|l| stamped.is_match(l)), "{text}");
    let order: Vec<String> = said.iter().map(|(_, i, t)| format!("{i} | {t}")).collect();
    let shown: Vec<String> =
        text.lines().filter(|l| l.contains(" says ")).map(|l| l.split_once(' ').unwrap().1.to_owned()).collect();
    assert_eq!(shown, order);

    // One instance's lines are its own, in order.
    let p2 = daemon.ok(&["logs", "turns/p2"])?;
    let p2: Vec<&str> = p2.lines().filter(|l| l.contains(" says ")).collect();
    assert_eq!(p2, (1..=8).map(|i| format!("p2 | p2 says {i}")).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn a_large_run_replays_merged_with_its_memory_bounded_by_its_instances() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    // Four instances of 3 MB each, one after the other: the merge reads p1
    // to its end while the streams of p2, p3 and p4 wait unread. Together
    // they are more than an HTTP/2 connection's default window, which they
    // filled, stalling p1 for good, before the client's windows were set.
    let script = "sleep $(( ${MGR_SELF#p} - 1 )); yes 0123456789012345678901234567890123456789012345678901234567 | head -n 50000; echo end";
    daemon.ok(&["exec", "4", "--name", "big", "--", "sh", "-c", script])?;
    let took = Instant::now();
    let text = daemon.ok(&["logs", "big"])?;
    let ends: Vec<&str> = text.lines().filter(|l| l.ends_with(" | end")).collect();
    assert_eq!(ends, ["p1 | end", "p2 | end", "p3 | end", "p4 | end"], "in time order");
    assert_eq!(text.lines().count(), 4 * (50_000 + 1 + 2), "every line, once");
    eprintln!("merged 12 MB of 4 instances in {:?}", took.elapsed());
    Ok(())
}

#[test]
fn a_run_on_another_member_replays_merged_through_the_forwarding_member() -> Result<()> {
    use crate::group::{free_port, join_arg, member};
    let (pa, pb) = (free_port(), free_port());
    let a = member("a", pa, &[])?;
    let b = member("b", pb, &["--allow-exec", "--join", &join_arg(pa)])?;
    wait_until("a group of two", || a.alive_members().is_ok_and(|m| m == ["a", "b"]))?;
    // Four instances on b, one after the other: a forwards four streams
    // from b on one connection, each read only when its lines are the
    // oldest, so the others wait, unread. (With 30 MB each, and HTTP/2's
    // default windows on peer connections, this stalled for good.)
    let script = "sleep $(( ${MGR_SELF#p} - 1 )); yes 0123456789012345678901234567890123456789012345678901234567 | head -n 50000; echo end";
    b.ok(&["exec", "4", "--on", "b", "--name", "far", "--", "sh", "-c", script])?;
    let text = a.ok(&["logs", "far"])?;
    assert_eq!(text.lines().count(), 4 * (50_000 + 1 + 2), "every line, once");
    let ends: Vec<&str> = text.lines().filter(|l| l.ends_with(" | end")).collect();
    assert_eq!(ends, ["p1@b | end", "p2@b | end", "p3@b | end", "p4@b | end"], "in time order");
    Ok(())
}

#[test]
fn since_takes_a_time_ago_or_a_time_today_and_grep_keeps_matching_lines() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    let script = "echo early; sleep 3; echo late; echo later; exec sleep 600";
    daemon.ok(&["exec", "1", "--name", "slow", "--detach", "--", "sh", "-c", script])?;
    wait_until("the late lines", || daemon.ok(&["logs", "slow"]).is_ok_and(|l| l.contains("later")))?;
    let texts = |args: &[&str]| -> Result<Vec<String>> {
        let mut all = vec!["logs", "slow", "--json"];
        all.extend(args);
        Ok(json_lines(&daemon.ok(&all)?)?.into_iter().map(|(_, _, t)| t).collect())
    };
    // Both late lines were stored within the last two seconds, 3 s after
    // the early ones.
    assert_eq!(texts(&["--since", "2s"])?, ["late", "later"]);
    assert_eq!(texts(&["--since", "2s", "--grep", "r$"])?, ["later"]);
    assert_eq!(texts(&["--since", "1h"])?.len(), 4, "the started note, early, late, later");
    assert_eq!(texts(&["--since", "3"])?, ["late", "later"], "a number is still a line number");
    assert_eq!(texts(&["--grep", "^lat"])?, ["late", "later"]);
    assert_eq!(texts(&["--grep", "(?i)EARLY|pid"])?.len(), 2);

    // A time today: from the second `late` was stored, or a minute ahead.
    let all = json_lines(&daemon.ok(&["logs", "slow", "--json"])?)?;
    let late = all.iter().find(|(_, _, t)| t == "late").context("late")?;
    let stored: jiff::Timestamp = late.0.parse()?;
    let local = stored.to_zoned_datetime(jiff::tz::TimeZone::system());
    let second = local.strftime("%H:%M:%S").to_string();
    assert_eq!(texts(&["--since", &second])?, ["late", "later"], "--since {second}");
    let ahead = local.checked_add(jiff::SignedDuration::from_secs(60))?;
    if ahead.date() == local.date() {
        assert!(texts(&["--since", &ahead.strftime("%H:%M").to_string()])?.is_empty());
    }
    let err = daemon.err(&["logs", "slow", "--since", "yesterday"])?;
    assert!(err.contains("neither a line number (120), a time ago (30s, 5m, 2h) nor a time today"), "{err}");
    Ok(())
}

#[test]
fn a_misspelled_name_gets_a_did_you_mean_and_module_names_take_any_case() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let err = daemon.err(&["launch", "FairLossPointToPointLnk", "2"])?;
    assert_eq!(err, "mgrctl: unknown module 'FairLossPointToPointLnk': did you mean FairLossPointToPointLink?");
    assert!(daemon.err(&["modules", "ReliableBroadcst"])?.ends_with("did you mean ReliableBroadcast?"));
    assert!(daemon.err(&["modules", "Zzz"])?.contains("unknown module 'Zzz' (see: mgrctl modules)"));

    // Any case launches the module; the run carries the catalog's name.
    daemon.ok(&["launch", "fairlosspointtopointlink", "2", "--name", "demo", "--detach"])?;
    assert_eq!(daemon.instance("demo", "p1")?["module"], "FairLossPointToPointLink");
    assert!(daemon.ok(&["modules", "PERFECTPOINTTOPOINTLINK"])?.starts_with("PerfectPointToPointLink (Module 2.3)"));

    assert_eq!(daemon.err(&["logs", "dmeo"])?, "mgrctl: unknown run 'dmeo': did you mean demo?");
    assert_eq!(daemon.err(&["stop", "demo/P2"])?, "mgrctl: run 'demo' has no instance 'P2': did you mean p2?");
    assert_eq!(daemon.err(&["logs", "demo/p9"])?, "mgrctl: run 'demo' has no instance 'p9' (it has p1, p2)");
    assert!(daemon.err(&["send", "deom/p1", "hi"])?.ends_with("did you mean demo?"));
    assert!(daemon.err(&["events", "demos"])?.ends_with("did you mean demo?"));
    assert!(daemon.err(&["ps", "r7"])?.contains("unknown run 'r7' (see: mgrctl ps)"), "nothing alike: as before");
    // Commands are clap's to suggest.
    let out = daemon.ctl(&["lgos", "demo"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("a similar subcommand exists: 'logs'"));
    Ok(())
}

#[test]
fn local_is_refused_where_it_means_nothing_and_serves_modules() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nowhere = dir.path().join("none.sock");
    let nowhere = nowhere.to_str().context("path")?;
    for args in
        [&["ps"][..], &["logs", "r1"], &["stop", "r1"], &["members"], &["events", "r1"], &["completions", "zsh"]]
    {
        let mut all = vec!["--socket", nowhere, "--local"];
        all.extend(args);
        let out = run_with_timeout(mgrctl(&all))?;
        let err = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let verb = args[0];
        assert_eq!(
            err.trim(),
            format!(
                "mgrctl: --local means nothing for `{verb}`: an embedded manager lives for one command and has no runs nor group; it serves launch, exec, up, test and modules"
            )
        );
    }
    let out = run_with_timeout(mgrctl(&["--socket", nowhere, "--local", "modules"]))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout)?.lines().any(|l| l.starts_with("FairLossPointToPointLink ")));
    Ok(())
}

#[test]
fn a_diagram_is_written_only_as_svg_or_html() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    daemon.ok(&["exec", "1", "--name", "one", "--", "true"])?;
    let dir = tempfile::tempdir()?;
    let png = dir.path().join("one.png");
    let err = daemon.err(&["diagram", "one", "-o", png.to_str().context("path")?])?;
    assert_eq!(
        err,
        format!("mgrctl: cannot write a diagram as .png ({}): name the file FILE.svg or FILE.html", png.display())
    );
    assert!(!png.exists());
    let svg = dir.path().join("one.SVG");
    daemon.ok(&["diagram", "one", "-o", svg.to_str().context("path")?])?;
    assert!(std::fs::read_to_string(&svg)?.starts_with("<svg"));
    // `up --diagram` refuses before it launches anything.
    let file = dir.path().join("lab.toml");
    std::fs::write(&file, "[[role]]\nname = \"idle\"\ncommand = [\"true\"]\n")?;
    let err = daemon.err(&["up", file.to_str().context("path")?, "--diagram", "lab.pdf"])?;
    assert!(err.contains("cannot write a diagram as .pdf"), "{err}");
    assert_eq!(daemon.ok(&["ps", "--json"])?.lines().count(), 1, "only the run `one`");
    Ok(())
}

#[test]
fn stop_and_its_kin_take_several_targets_and_tell_every_failure() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    for run in ["r1", "r2"] {
        daemon.ok(&["exec", "2", "--name", run, "--detach", "--", "sleep", "600"])?;
    }
    let out = daemon.ctl(&["stop", "r1", "nope", "r2/p1", "r2/p9"])?;
    assert_eq!(out.status.code(), Some(1), "a target failed");
    assert_eq!(String::from_utf8(out.stdout)?, "r1/p1: stopped\nr1/p2: stopped\nr2/p1: stopped\n");
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        ["mgrctl: unknown run 'nope' (see: mgrctl ps)", "mgrctl: run 'r2' has no instance 'p9' (it has p1, p2)"]
    );
    assert_eq!(daemon.instance("r2", "p2")?["state"], "running", "only what was named");
    daemon.ok(&["pause", "r2/p2", "r2/p2"]).err().context("pausing twice fails the second")?;
    assert_eq!(daemon.ok(&["resume", "r2/p2"])?, "r2/p2: running\n");
    assert!(daemon.ok(&["kill", "r2", "r1"])?.contains("r2/p2: killed"));
    Ok(())
}

#[test]
fn each_command_lists_its_own_options_first_then_the_global_ones_and_an_example() -> Result<()> {
    for command in ["logs", "launch", "stop", "ps", "diagram"] {
        let out = run_with_timeout(mgrctl(&[command, "--help"]))?;
        let help = String::from_utf8(out.stdout)?;
        let own = help.find("\nOptions:").context("own options")?;
        let global = help.find("\nGlobal options:").context("global options")?;
        let socket = help.find("--socket").context("--socket")?;
        let examples = help.find("Example").context("an example")?;
        assert!(own < global && global < socket && socket < examples, "{command} --help:\n{help}");
        assert!(help[..global].contains("-h, --help"), "{help}");
    }
    let logs = String::from_utf8(run_with_timeout(mgrctl(&["logs", "--help"]))?.stdout)?;
    let own = &logs[..logs.find("\nGlobal options:").context("global")?];
    for option in ["--follow", "--since", "--timestamps", "--grep", "--tail", "--json"] {
        assert!(own.contains(option), "{option} in its own options:\n{logs}");
    }
    Ok(())
}

#[test]
fn ps_shows_uptime_and_restarts_in_columns_as_wide_as_their_names() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    daemon.ok(&["exec", "2", "--name", "a-run-with-a-long-name", "--detach", "--", "sleep", "600"])?;
    daemon.ok(&["exec", "1", "--name", "r1", "--", "true"])?;
    daemon.ok(&["restart", "a-run-with-a-long-name/p1"])?;
    let table = daemon.ok(&["ps"])?;
    let lines: Vec<&str> = table.lines().collect();
    let header = lines[0];
    for column in ["RUN", "INSTANCE", "PID", "STATE", "UPTIME", "RESTARTS", "EXIT", "MODULE"] {
        assert!(header.contains(column), "{table}");
    }
    // Every column starts at the same place on every line.
    let state = header.find("STATE").context("STATE")?;
    let module = header.find("MODULE").context("MODULE")?;
    for line in &lines[1..] {
        assert!(line[state..].starts_with("running ") || line[state..].starts_with("exited "), "{table}");
        assert!(line[module..].starts_with("exec"), "{table}");
        assert!(!line.ends_with(' '));
    }
    let row = |run: &str, instance: &str| -> Vec<String> {
        let line = lines.iter().find(|l| l.starts_with(&format!("{run} ")) && l.contains(&format!(" {instance} ")));
        line.map(|l| l.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
    };
    let uptime = regex::Regex::new(r"^\d+s$")?;
    let (restarted, other, ended) =
        (row("a-run-with-a-long-name", "p1"), row("a-run-with-a-long-name", "p2"), row("r1", "p1"));
    // RUN INSTANCE MEMBER ADDRESS PID STATE UPTIME RESTARTS EXIT MODULE
    assert!(uptime.is_match(&restarted[6]) && restarted[7] == "1", "{table}");
    assert!(uptime.is_match(&other[6]) && other[7] == "0", "{table}");
    assert_eq!((&ended[5][..], &ended[6][..], &ended[7][..], &ended[8][..]), ("exited", "-", "0", "0"), "{table}");
    let json = daemon.instance("a-run-with-a-long-name", "p1")?;
    assert_eq!(json["restarts"], 1);
    assert!(json["started_ms"].as_u64().is_some_and(|ms| ms > 1_600_000_000_000));
    Ok(())
}

#[test]
fn completions_are_printed_for_each_shell() -> Result<()> {
    for (shell, mark) in [("bash", "_mgrctl()"), ("zsh", "#compdef mgrctl"), ("fish", "complete -c mgrctl")] {
        let out = run_with_timeout(mgrctl(&["completions", shell]))?;
        let script = String::from_utf8(out.stdout)?;
        assert!(out.status.success() && script.contains(mark), "{shell}:\n{script}");
        assert!(script.contains("timestamps"), "{shell} completes the options of logs");
    }
    Ok(())
}
