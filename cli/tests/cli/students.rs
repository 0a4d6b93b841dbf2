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
    let fair_loss = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules/examples/python/fair_loss.py");
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
    daemon.ok(&["launch", "BestEffortBroadcast", "3", "--name", "beb", "-d"])?;
    let delivered = |p: &str, text: &str| {
        daemon.ok(&["logs", &format!("beb/{p}")]).is_ok_and(|l| l.contains(&format!("deliver p2 {text}")))
    };
    daemon.ok(&["send", "beb/p2", "broadcast", "first"])?;
    wait_until("everyone to deliver the first", || ["p1", "p2", "p3"].iter().all(|p| delivered(p, "first")))?;
    daemon.ok(&["restart", "beb/p2"])?;
    wait_until("p2 back", || daemon.instance("beb", "p2").is_ok_and(|i| i["state"] == "running" && i["starts"] == 2))?;
    daemon.ok(&["send", "beb/p2", "broadcast", "second"])?;
    wait_until("everyone to deliver the second", || ["p1", "p2", "p3"].iter().all(|p| delivered(p, "second")))?;
    // The events say which life sent what; ids never repeat.
    let events = daemon.ok(&["events", "beb", "--json"])?;
    let events: Vec<Value> = events.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let broadcasts: Vec<(&Value, &Value)> =
        events.iter().filter(|e| e["event"] == "broadcast").map(|e| (&e["id"], &e["inc"])).collect();
    assert_eq!(broadcasts, [(&Value::from(1), &Value::from(1)), (&Value::from(1_000_000_001u64), &Value::from(2))]);
    let crash = events.iter().find(|e| e["event"] == "crash" && e["by"] == "mgr").context("p2's crash record")?;
    assert_eq!((&crash["process"], &crash["inc"]), (&Value::from("p2"), &Value::from(1)), "{crash}");
    let out = daemon.ctl(&["check", "beb", "--quiesce", "0.5"])?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.lines().any(|l| l.starts_with("BEB2") && l.contains("holds") && l.contains("[p1-p3]")), "{said}");
    Ok(())
}
