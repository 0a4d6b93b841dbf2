//! Students' own modules: programs that bind their own address, manifests
//! that declare what they implement, faults that a program would ignore,
//! restarts as new incarnations, and checks that say what they covered.

use crate::harness::*;

/// A student's first program: binds `MGR_ADDR` itself (no `MGR_UDP_FD`),
/// sends one datagram to every other instance, prints what it receives.
const BINDS_ITSELF: &str = r#"
import os, socket, sys
host, port = os.environ["MGR_ADDR"].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, int(port)))
print("bound", os.environ.get("MGR_UDP_FD", "without a descriptor"), "incarnation", os.environ["MGR_INCARNATION"], flush=True)
peers = dict(e.split("=", 1) for e in os.environ["MGR_PEERS"].split(","))
names = {}
for name, addr in peers.items():
    h, p = addr.rsplit(":", 1)
    names[(h, int(p))] = name
me = os.environ["MGR_SELF"]
for line in sys.stdin:
    for name, addr in peers.items():
        if name != me:
            h, p = addr.rsplit(":", 1)
            s.sendto(line.strip().encode(), (h, int(p)))
    data, src = s.recvfrom(1024)
    print("deliver", names.get(src, src), data.decode(), flush=True)
"#;

/// A manifest folder of the test's own, with `files` in it.
fn manifests(files: &[(&str, &str)]) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text)?;
    }
    Ok(dir)
}

fn last_line_of(daemon: &Daemon, target: &str, start: &str) -> Result<Option<String>> {
    let logs = daemon.ok(&["logs", target])?;
    Ok(logs.lines().rev().find(|l| l.contains(start)).map(str::to_owned))
}

#[test]
fn a_program_that_binds_its_own_address_starts_under_exec_and_under_a_manifest() -> Result<()> {
    let dir = manifests(&[
        ("binder.py", BINDS_ITSELF),
        (
            "binder.toml",
            "name = \"Binder\"\ncommand = \"python3\"\nargs = [\"-u\", \"{dir}/binder.py\"]\ndescription = \"binds MGR_ADDR\"\n",
        ),
    ])?;
    let daemon = Daemon::start(&["--allow-exec", "--modules-dir", dir.path().to_str().context("path")?])?;
    let script = dir.path().join("binder.py");
    let script = script.to_str().context("path")?;
    // Under exec, bind is the default; under a manifest too.
    daemon.ok(&["exec", "2", "--name", "ex", "-d", "--", "python3", "-u", script])?;
    daemon.ok(&["launch", "Binder", "2", "--name", "man", "-d"])?;
    for run in ["ex", "man"] {
        for p in ["p1", "p2"] {
            let target = format!("{run}/{p}");
            wait_until(&format!("{target} to bind"), || {
                last_line_of(&daemon, &target, "bound").is_ok_and(|l| l.is_some())
            })?;
            let line = last_line_of(&daemon, &target, "bound")?.unwrap_or_default();
            assert!(line.ends_with("bound without a descriptor incarnation 1"), "{target}: {line}");
            assert_eq!(daemon.instance(run, p)?["state"], "running", "{target} did not die of EADDRINUSE");
        }
        // They talk: p1's line reaches p2 and p2's reaches p1.
        daemon.ok(&["send", &format!("{run}/p2"), "from p2"])?;
        daemon.ok(&["send", &format!("{run}/p1"), "from p1"])?;
        wait_until("both deliveries", || {
            last_line_of(&daemon, &format!("{run}/p1"), "deliver p2 from p2").is_ok_and(|l| l.is_some())
                && last_line_of(&daemon, &format!("{run}/p2"), "deliver p1 from p1").is_ok_and(|l| l.is_some())
        })?;
    }
    // A restarted instance is its next incarnation.
    daemon.ok(&["restart", "ex/p1"])?;
    wait_until("the second incarnation", || {
        last_line_of(&daemon, "ex/p1", "incarnation 2").is_ok_and(|l| l.is_some())
    })?;
    // The same program asked to inherit finds the port taken, by mgr's
    // socket, which it was given: that is what --udp inherit means.
    daemon.ok(&["exec", "1", "--name", "inh", "-d", "--udp", "inherit", "--", "python3", "-u", script])?;
    wait_until("the inheriting program to fail", || {
        daemon.instance("inh", "p1").is_ok_and(|i| i["state"] == "failed")
    })?;
    assert!(daemon.ok(&["logs", "inh/p1"])?.contains("Address already in use"));
    let bad = daemon.err(&["exec", "1", "--udp", "share", "--", "true"])?;
    assert!(bad.contains("invalid value 'share'"), "{bad}");
    Ok(())
}

#[test]
fn a_manifest_declares_what_it_implements_and_a_broken_one_is_listed_with_why() -> Result<()> {
    let fair_loss = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules/python/examples/plain_fair_loss.py");
    let fair_loss = fair_loss.to_str().context("path")?;
    let dir = manifests(&[
        (
            "fll.toml",
            &format!(
                "name = \"StudentLink\"\ncommand = \"python3\"\nargs = [\"-u\", \"{fair_loss}\"]\ndescription = \"a student's link\"\nimplements = \"fairlosspointtopointlink\"\nsocket = \"inherit\"\n"
            ),
        ),
        (
            "typo.toml",
            "name = \"Typo\"\ncommand = \"python3\"\ndescription = \"x\"\nimplements = \"BestEfortBroadcast\"\n",
        ),
        ("props.toml", "name = \"Props\"\ncommand = \"python3\"\ndescription = \"x\"\nproperties = [\"BEB9\"]\n"),
        ("broken.toml", "name = \"Broken\"\ncommand = \n"),
    ])?;
    let daemon = Daemon::start(&["--modules-dir", dir.path().to_str().context("path")?])?;
    let list = daemon.ok(&["modules"])?;
    assert!(list.contains("StudentLink"), "{list}");
    let left_out = |file: &str, why: &str| {
        list.lines().any(|l| l.starts_with("left out: ") && l.contains(file) && l.contains(why))
    };
    assert!(left_out("typo.toml", "BestEfortBroadcast is not an abstraction mgr knows"), "{list}");
    assert!(left_out("props.toml", "BEB9 is not a property mgr can check"), "{list}");
    assert!(left_out("broken.toml", "line 2, column 11"), "{list}");
    // Described with the abstraction's interface, and what it declares.
    let described = daemon.ok(&["modules", "StudentLink"])?;
    assert!(described.contains("Implements: FairLossPointToPointLink"), "{described}");
    assert!(described.contains("Socket: inherit"), "{described}");
    assert!(described.contains("FLL3"), "the interface of what it implements: {described}");

    // Faults on a module that does not apply them are refused, saying why.
    let refused = daemon.err(&["launch", "StudentLink", "2", "--loss", "1.0"])?;
    assert!(refused.contains("module StudentLink does not apply them"), "{refused}");
    assert!(refused.contains("faults = true"), "{refused}");
    daemon.ok(&["launch", "StudentLink", "2", "--name", "s", "-d"])?;
    let refused = daemon.err(&["fault", "s", "--loss", "0.5"])?;
    assert!(refused.contains("does not apply them"), "{refused}");

    // Its properties are the abstraction's: checked, each verdict naming
    // the processes it covered.
    daemon.ok(&["send", "s/p1", "send", "p2", "hi"])?;
    wait_until("the delivery", || daemon.ok(&["logs", "s/p2"]).is_ok_and(|l| l.contains("deliver p1 hi")))?;
    let out = daemon.ctl(&["check", "s", "--quiesce", "0.5"])?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.lines().any(|l| l.starts_with("FLL3") && l.contains("[p1-p2]")), "{said}");
    Ok(())
}

#[test]
fn a_restarted_broadcaster_is_a_new_incarnation_whose_messages_everyone_delivers() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    for (run, module, args) in [
        ("beb", "BestEffortBroadcast", &[][..]),
        ("frb", "FifoReliableBroadcast", &[]),
        ("crbw", "CausalOrderBroadcast", &["--", "--algorithm", "waiting"]),
        ("crbn", "CausalOrderBroadcast", &["--", "--algorithm", "no-waiting"]),
    ] {
        daemon.ok(&[&["launch", module, "3", "--name", run, "-d"], args].concat())?;
        let delivered = |p: &str, text: &str| {
            daemon.ok(&["logs", &format!("{run}/{p}")]).is_ok_and(|l| l.contains(&format!("deliver p2 {text}")))
        };
        daemon.ok(&["send", &format!("{run}/p2"), "broadcast", "first"])?;
        wait_until("everyone to deliver the first", || ["p1", "p2", "p3"].iter().all(|p| delivered(p, "first")))?;
        daemon.ok(&["restart", &format!("{run}/p2")])?;
        wait_until("p2 back", || {
            daemon.instance(run, "p2").is_ok_and(|i| i["state"] == "running" && i["starts"] == 2)
        })?;
        daemon.ok(&["send", &format!("{run}/p2"), "broadcast", "second"])?;
        wait_until(&format!("everyone in {run} to deliver the second"), || {
            ["p1", "p2", "p3"].iter().all(|p| delivered(p, "second"))
        })?;
        // The events say which life sent what; ids never repeat.
        let events = daemon.ok(&["events", run, "--json"])?;
        let events: Vec<Value> = events.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        let broadcasts: Vec<(&Value, &Value)> =
            events.iter().filter(|e| e["event"] == "broadcast").map(|e| (&e["id"], &e["inc"])).collect();
        assert_eq!(
            broadcasts,
            [(&Value::from(1), &Value::from(1)), (&Value::from(1_000_000_001u64), &Value::from(2))],
            "{run}"
        );
        let crash = events.iter().find(|e| e["event"] == "crash" && e["by"] == "mgr").context("p2's crash record")?;
        assert_eq!((&crash["process"], &crash["inc"]), (&Value::from("p2"), &Value::from(1)), "{crash}");
        let out = daemon.ctl(&["check", run, "--quiesce", "0.5"])?;
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{run}: {said}");
        assert!(
            said.lines().any(|l| l.contains("No duplication") && l.contains("holds") && l.contains("[p1-p3]")),
            "{said}"
        );
    }
    Ok(())
}

/// The SDK's examples folder, as a manager's `--modules-dir`.
fn python_examples() -> Result<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules/python/examples").canonicalize()?;
    Ok(dir.to_str().context("path")?.to_owned())
}

/// A scenario file of the test's own.
fn scenario_file(text: &str) -> Result<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::with_suffix(".toml")?;
    std::fs::write(file.path(), text)?;
    Ok(file)
}

fn delivered(daemon: &Daemon, target: &str, line: &str) -> bool {
    daemon.ok(&["logs", target]).is_ok_and(|l| l.lines().any(|l| l.ends_with(line)))
}

#[test]
fn the_seminars_class_runs_unmodified_and_talks_with_the_rust_link() -> Result<()> {
    let daemon = Daemon::start(&["--modules-dir", &python_examples()?])?;
    let scenario = scenario_file(
        "name = \"seminar\"\n[[role]]\nname = \"seminar\"\nmodule = \"PySeminarFairLossLink\"\ncount = 1\n\
         [[role]]\nname = \"rust\"\nmodule = \"FairLossPointToPointLink\"\ncount = 1\n\
         [end]\nafter = \"60s\"\n",
    )?;
    let _up = daemon.spawn(&["up", scenario.path().to_str().context("path")?])?;
    wait_until("the run", || daemon.instance("seminar", "p2").is_ok_and(|i| i["state"] == "running"))?;
    // A fair-loss link may lose the first datagrams (the class binds only
    // once the interpreter is up), so each side sends until one arrives.
    wait_until("the seminar's class to hear Rust", || {
        let _ = daemon.ok(&["send", "seminar/p2", "send", "p1", "from rust"]);
        thread::sleep(Duration::from_millis(100));
        delivered(&daemon, "seminar/p1", "deliver p2 from rust")
    })?;
    wait_until("Rust to hear the seminar's class", || {
        let _ = daemon.ok(&["send", "seminar/p1", "send", "p2", "from python"]);
        thread::sleep(Duration::from_millis(100));
        delivered(&daemon, "seminar/p2", "deliver p1 from python")
    })?;
    Ok(())
}

#[test]
fn python_examples_hold_their_properties_through_loss_and_the_broken_one_is_caught() -> Result<()> {
    let daemon = Daemon::start(&["--modules-dir", &python_examples()?])?;
    // The perfect link delivers everything, once, through 30 % loss.
    daemon.ok(&["launch", "PyPerfectPointToPointLink", "2", "--name", "pl", "-d", "--loss", "0.3"])?;
    for i in 1..=10 {
        daemon.ok(&["send", "pl/p1", "send", "p2", &format!("m{i}")])?;
    }
    wait_until("all ten through the loss", || {
        (1..=10).all(|i| delivered(&daemon, "pl/p2", &format!("deliver p1 m{i}")))
    })?;
    let out = daemon.ctl(&["check", "pl", "--quiesce", "1"])?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    for id in ["PL1", "PL2", "PL3"] {
        assert!(said.lines().any(|l| l.starts_with(id) && l.contains("holds") && l.contains("[p1-p2]")), "{said}");
    }
    // The broadcasts.
    for module in ["PyBestEffortBroadcast", "PyReliableBroadcast", "PyBrokenBroadcast"] {
        let run = module.to_lowercase();
        daemon.ok(&["launch", module, "3", "--name", &run, "-d"])?;
        for i in 1..=3 {
            daemon.ok(&["send", &format!("{run}/p1"), "broadcast", &format!("b{i}")])?;
        }
        wait_until("the deliveries", || {
            (1..=3).all(|i| delivered(&daemon, &format!("{run}/p3"), &format!("deliver p1 b{i}")))
        })?;
        let out = daemon.ctl(&["check", &run, "--quiesce", "1"])?;
        let said = String::from_utf8_lossy(&out.stdout);
        if module == "PyBrokenBroadcast" {
            assert_eq!(out.status.code(), Some(1), "{said}");
            let beb2 = said.lines().find(|l| l.starts_with("BEB2")).context("a BEB2 verdict")?;
            assert!(beb2.contains("violated") && beb2.contains("delivered") && beb2.contains("twice"), "{said}");
        } else {
            assert!(out.status.success(), "{module}: {said}");
        }
    }
    Ok(())
}

#[test]
fn python_and_rust_links_in_one_run_deliver_each_others_messages_and_check_together() -> Result<()> {
    let daemon = Daemon::start(&["--modules-dir", &python_examples()?])?;
    let scenario = scenario_file(
        "name = \"mixed\"\n[[role]]\nname = \"py\"\nmodule = \"PyPerfectPointToPointLink\"\ncount = 2\n\
         [[role]]\nname = \"rs\"\nmodule = \"PerfectPointToPointLink\"\ncount = 2\n\
         [end]\nafter = \"60s\"\n",
    )?;
    let _up = daemon.spawn(&["up", scenario.path().to_str().context("path")?])?;
    wait_until("the run", || daemon.instance("mixed", "p4").is_ok_and(|i| i["state"] == "running"))?;
    daemon.ok(&["send", "mixed/p1", "send", "p3", "python to rust"])?;
    daemon.ok(&["send", "mixed/p4", "send", "p2", "rust to python"])?;
    wait_until("both ways", || {
        delivered(&daemon, "mixed/p3", "deliver p1 python to rust")
            && delivered(&daemon, "mixed/p2", "deliver p4 rust to python")
    })?;
    // Checked as one group, across the languages.
    let out = daemon.ctl(&["check", "mixed", "--quiesce", "1", "--role", "py,rs"])?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.lines().any(|l| l.starts_with("PL1") && l.contains("holds") && l.contains("[p1-p4]")), "{said}");
    Ok(())
}

#[test]
fn a_buggy_role_beside_a_correct_one_fails_the_scenario_naming_its_processes() -> Result<()> {
    let daemon = Daemon::start(&["--modules-dir", &python_examples()?])?;
    // The false pass of before: a named property was checked only on the
    // processes of modules that declared it, and the summary did not say
    // which processes it covered.
    let scenario = scenario_file(
        "name = \"beside\"\n[[role]]\nname = \"rust\"\nmodule = \"BestEffortBroadcast\"\ncount = 2\n\
         [[role]]\nname = \"student\"\nmodule = \"PyBrokenBroadcast\"\ncount = 3\n\
         [[at]]\ntime = \"1s\"\nsend = { to = \"rust\", line = \"broadcast r\" }\n\
         [[at]]\ntime = \"1s\"\nsend = { to = \"student\", line = \"broadcast s1\" }\n\
         [[at]]\ntime = \"1200ms\"\nsend = { to = \"student\", line = \"broadcast s2\" }\n\
         [[at]]\ntime = \"1400ms\"\nsend = { to = \"student\", line = \"broadcast s3\" }\n\
         [end]\nafter = \"4s\"\n[check]\nproperties = [\"BEB1\", \"BEB2\", \"BEB3\"]\n",
    )?;
    let out = daemon.ctl(&["up", scenario.path().to_str().context("path")?])?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.lines().any(|l| l.contains("BEB2") && l.contains("violated") && l.contains("[p3-p5]")), "{said}");
    assert!(said.lines().any(|l| l.contains("BEB2") && l.contains("holds") && l.contains("[p1-p2]")), "{said}");
    Ok(())
}

#[test]
fn mgrctl_test_passes_a_correct_python_broadcast_and_fails_the_broken_one() -> Result<()> {
    let daemon = Daemon::start(&["--modules-dir", &python_examples()?])?;
    let args = ["--time", "2s", "--loss", "0.2", "--crash", "1", "--seed", "7", "--quiesce", "1"];
    let out = daemon.ctl(&[&["test", "PyBestEffortBroadcast"], &args[..]].concat())?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("passed"), "{said}");
    let out = daemon.ctl(&["test", "PyBrokenBroadcast", "--time", "2s", "--seed", "7", "--quiesce", "1"])?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.lines().any(|l| l.starts_with("BEB2") && l.contains("violated") && l.contains("twice")), "{said}");
    Ok(())
}

#[test]
fn trace_and_diagram_say_which_processes_wrote_events_without_a_vector_clock() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    // A program that writes the events the checkers need, but no `vc`.
    let write = r#"echo "{\"time_ms\":1,\"run\":\"$MGR_RUN\",\"process\":\"$MGR_SELF\",\"event\":\"broadcast\",\"id\":1,\"lamport\":1,\"text\":\"x\"}" >> "$MGR_EVENTS"; sleep 30"#;
    daemon.ok(&["exec", "2", "--name", "novc", "-d", "--", "sh", "-c", write])?;
    wait_until("the events", || daemon.ok(&["events", "novc", "--json"]).is_ok_and(|e| e.lines().count() == 2))?;
    let out = daemon.ctl(&["trace", "novc"])?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the events of p1,p2 carry no vector clock (vc): ShiViz shows no causal links"), "{said}");
    let svg = tempfile::NamedTempFile::with_suffix(".svg")?;
    let out = daemon.ctl(&["diagram", "novc", "-o", svg.path().to_str().context("path")?])?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the events of p1,p2 carry no vector clock (vc)"), "{said}");
    Ok(())
}

#[test]
fn local_finds_the_modules_registered_in_the_users_state_dir() -> Result<()> {
    // No daemon: the embedded manager of --local reads STATE_DIR/modules,
    // where a student registers a manifest, and tests the module there.
    let state = tempfile::tempdir()?;
    std::fs::create_dir(state.path().join("modules"))?;
    let examples = python_examples()?;
    let manifest = std::fs::read_to_string(Path::new(&examples).join("best_effort.toml"))?
        .replace("{dir}", &examples)
        .replace("PyBestEffortBroadcast", "MyLocalBroadcast");
    std::fs::write(state.path().join("modules/mine.toml"), manifest)?;
    let local = |args: &[&str]| -> Result<Output> {
        let mut command = Command::new(bin("mgrctl"));
        command
            .arg("--socket")
            .arg(state.path().join("absent.sock"))
            .arg("--local")
            .args(args)
            .env("MGR_STATE_DIR", state.path())
            .stdin(Stdio::null());
        run_with_timeout(command)
    };
    let listed = local(&["modules"])?;
    let said = String::from_utf8_lossy(&listed.stdout);
    assert!(said.lines().any(|l| l.starts_with("MyLocalBroadcast") && l.ends_with("[manifest]")), "{said}");
    let tested = local(&["test", "MyLocalBroadcast", "--time", "1s", "--seed", "3", "--quiesce", "1"])?;
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{said}{}", String::from_utf8_lossy(&tested.stderr));
    assert!(said.starts_with("test r1: 3 × MyLocalBroadcast as BestEffortBroadcast"), "{said}");
    Ok(())
}
