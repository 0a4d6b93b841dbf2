//! The lab exercises of `examples/`, run as a user runs them: `mgrctl up
//! FILE --local` on this machine, and `mgrctl up FILE` on a group of three
//! managers in network namespaces (`netns.rs`). Each must end with its
//! checks passed: the uncoordinated multicast shows divergence, the
//! ordered one agreement, the chat mutual exclusion and consistent
//! replicas, the ack lab every request acked despite crashing receivers.

use crate::harness::*;
use crate::netns::{Lab, NetDaemon};
use crate::scenarios::run_until;

/// The longest an example may take here (each ends in well under 30 s on
/// an idle machine; CI machines are shared and slow).
pub(crate) const LIMIT: Duration = Duration::from_secs(120);

pub(crate) fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name).display().to_string()
}

/// Runs `mgrctl up` with `command`'s connection; insists that it passes.
/// Returns stdout and stderr.
fn passes(mut command: Command, name: &str) -> Result<(String, String)> {
    command.args(["up", &example(name)]);
    let out = run_until(command, LIMIT)?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() != Some(0) || !stderr.contains(": passed") {
        bail!("{name} did not pass ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    }
    Ok((stdout.into_owned(), stderr.into_owned()))
}

fn local(name: &str) -> Result<(String, String)> {
    passes(mgrctl(&["--local"]), name)
}

#[test]
fn multicast_without_coordination_diverges_locally() -> Result<()> {
    let (stdout, stderr) = local("multicast.toml")?;
    assert!(stdout.contains("verdict diverge"), "{stdout}");
    assert!(stderr.contains("ok   expect comparator \"verdict diverge\""), "{stderr}");
    Ok(())
}

#[test]
fn ordered_multicast_agrees_locally() -> Result<()> {
    let (stdout, _) = local("multicast-ordered.toml")?;
    assert!(stdout.contains("verdict agree") && !stdout.contains("verdict diverge"), "{stdout}");
    Ok(())
}

#[test]
fn the_chat_keeps_mutual_exclusion_and_consistent_replicas_locally() -> Result<()> {
    let (_, stderr) = local("chat.toml")?;
    for id in ["ME1", "EC"] {
        assert!(stderr.contains(&format!("ok   {id:<6} holds")), "{id}: {stderr}");
    }
    Ok(())
}

#[test]
fn the_ack_client_gets_every_request_acked_locally() -> Result<()> {
    let (stdout, stderr) = local("ack.toml")?;
    // The Python receiver registered over HTTP, under its instance name.
    assert!(stdout.contains("p6 | registered as p6 with 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("p1 | registered p6 127.0.0.1:"), "{stdout}");
    for id in ["ACK1", "ACK2"] {
        assert!(stderr.contains(&format!("ok   {id:<6} holds")), "{id}: {stderr}");
    }
    Ok(())
}

/// Every example on a group of three managers in network namespaces, found
/// by mDNS inside the lab, driven from h1: instances spread over the three
/// hosts, the same verdicts.
#[test]
fn every_example_passes_on_a_group_of_three_hosts() -> Result<()> {
    let lab = Lab::new(3)?;
    // --allow-exec: the ack example's Python receiver is a command.
    let daemons =
        (1..=3).map(|i| lab.start_mgr(i, &["--iface", "eth0", "--allow-exec"])).collect::<Result<Vec<NetDaemon>>>()?;
    wait_until("the three managers form one group", || {
        daemons.iter().all(|d| d.alive_members().is_ok_and(|names| names == ["h1", "h2", "h3"]))
    })?;
    let h1 = &daemons[0];
    for (name, verdict) in [
        ("multicast.toml", "verdict diverge"),
        ("multicast-ordered.toml", "verdict agree"),
        ("chat.toml", ""),
        ("ack.toml", ""),
    ] {
        let (stdout, _) = passes(h1.command(&[]), name)?;
        assert!(stdout.contains(verdict), "{name}: {stdout}");
        for host in ["h1", "h2", "h3"] {
            assert!(stdout.contains(&format!("@{host} ")), "{name}: an instance ran on {host}:\n{stdout}");
        }
    }
    Ok(())
}

/// A member that dies during a scenario is not passed over: its events are
/// missing, so the summary fails and names it.
#[test]
fn a_member_lost_during_a_scenario_fails_the_summary_and_is_named() -> Result<()> {
    let lab = Lab::new(2)?;
    let mut daemons = (1..=2).map(|i| lab.start_mgr(i, &["--iface", "eth0"])).collect::<Result<Vec<NetDaemon>>>()?;
    wait_until("the two managers form one group", || {
        daemons.iter().all(|d| d.alive_members().is_ok_and(|names| names == ["h1", "h2"]))
    })?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("lost.toml");
    std::fs::write(
        &file,
        "[[role]]\nname = \"b\"\nmodule = \"BestEffortBroadcast\"\ncount = 2\n\n[[at]]\ntime = \"300ms\"\nsend = { to = \"p1\", line = \"broadcast hi\" }\n\n[end]\nafter = \"4s\"\n\n[check]\nproperties = true\n",
    )?;
    let errors = dir.path().join("stderr");
    let mut command = daemons[0].command(&["up", &file.display().to_string()]);
    command.stderr(std::fs::File::create(&errors)?);
    let mut up = command.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
    let mut stdout = std::io::BufReader::new(up.stdout.take().context("stdout")?);
    let mut line = String::new();
    while !(line.starts_with("p2@h2") && line.contains("deliver p1 hi")) {
        line.clear();
        if std::io::BufRead::read_line(&mut stdout, &mut line)? == 0 {
            bail!("up ended before p2 on h2 delivered; stderr:\n{}", std::fs::read_to_string(&errors)?);
        }
    }
    daemons[1].kill9();
    std::io::copy(&mut stdout, &mut std::io::sink())?;
    let status = up.wait()?;
    let stderr = std::fs::read_to_string(&errors)?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAIL events: member h2's are missing"), "{stderr}");
    assert!(stderr.contains("1 lost with their member"), "{stderr}");
    assert!(stderr.trim_end().ends_with("FAILED"), "{stderr}");
    Ok(())
}
