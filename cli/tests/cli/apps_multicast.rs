//! The multicast lab (`apps/multicast.rs`): four MulticastPeer instances
//! report their delivery orders to a MulticastComparator launched as a run
//! of its own, without coordination and with Lamport total order.

use super::harness::*;

/// The lines of `instance`'s output (`RUN/pI`) that start with `word`, without the prefix.
fn lines_with(daemon: &Daemon, instance: &str, word: &str) -> Result<Vec<String>> {
    let logs = daemon.ok(&["logs", instance])?;
    let prefix = format!("{} | {word}", instance.rsplit('/').next().unwrap_or_default());
    Ok(logs.lines().filter_map(|l| l.strip_prefix(&prefix)).map(|l| l.trim().to_owned()).collect())
}

/// Launches a comparator expecting 4 orders and 4 peers (launch options
/// `faults`, module arguments `peer_args`, 40 messages each) that report to
/// it; returns the comparator's verdict and its report.
fn multicast(daemon: &Daemon, name: &str, faults: &[&str], peer_args: &[&str]) -> Result<(String, Vec<String>)> {
    let cmp = format!("{name}-cmp");
    daemon.ok(&["launch", "MulticastComparator", "1", "--name", &cmp, "-d", "--", "--peers", "4"])?;
    let address = daemon.instance(&cmp, "p1")?["address"].as_str().context("no address in ps")?.to_owned();
    let mut launch = vec!["launch", "MulticastPeer", "4", "--name", name, "-d"];
    launch.extend_from_slice(faults);
    launch.extend_from_slice(&["--", "--msgs", "40", "--comparator", &address]);
    launch.extend_from_slice(peer_args);
    daemon.ok(&launch)?;
    let instance = format!("{cmp}/p1");
    wait_until("the comparator's verdict", || lines_with(daemon, &instance, "verdict").is_ok_and(|v| !v.is_empty()))?;
    let verdict = lines_with(daemon, &instance, "verdict")?.remove(0);
    let mut report = lines_with(daemon, &instance, "agree:")?;
    report.extend(lines_with(daemon, &instance, "diverge:")?);
    // Every peer exits 0 once its order is acknowledged.
    wait_until("the peers to exit", || {
        daemon.ps(name).is_ok_and(|ps| ps.iter().all(|i| i["state"] == "exited" && i["exit_code"] == 0))
    })?;
    // Each peer delivered every message once, whatever the order.
    let mut want: Vec<String> = (1..=4).flat_map(|p| (1..=40).map(move |k| format!("p{p}:{k}"))).collect();
    want.sort();
    for p in ["p1", "p2", "p3", "p4"] {
        let mut got: Vec<String> = lines_with(daemon, &format!("{name}/{p}"), "order")?
            .first()
            .context("no order line")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        got.sort();
        assert_eq!(got, want, "at {p}");
    }
    Ok((verdict, report))
}

/// Without coordination the orders differ. Each peer delivers its own
/// messages at once and the others' a loopback hop later, so two messages
/// sent by different peers within that hop of each other are seen in
/// opposite orders by their senders; with 160 messages spread by the jitter
/// over about 100 ms, the chance that no two come that close is far below
/// one in a million (runs on a loaded machine only widen the hop).
#[test]
fn uncoordinated_multicast_peers_deliver_in_different_orders() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let (verdict, report) = multicast(&daemon, "mc", &[], &["--jitter", "5"])?;
    assert_eq!(verdict, "diverge", "{report:?}");
    assert!(!report.is_empty() && report.iter().all(|l| l.contains("first differ at position")), "{report:?}");
    Ok(())
}

#[test]
fn ordered_multicast_peers_agree_on_one_order_even_through_loss() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let (verdict, report) =
        multicast(&daemon, "omc", &["--loss", "0.1", "--dup", "0.05"], &["--jitter", "5", "--ordered"])?;
    assert_eq!(verdict, "agree", "{report:?}");
    assert_eq!(report, ["all 4 peers delivered the same 160 messages in the same order"]);
    // The peers print the very order the comparator compared.
    let first = lines_with(&daemon, "omc/p1", "order")?;
    for p in ["p2", "p3", "p4"] {
        assert_eq!(lines_with(&daemon, &format!("omc/{p}"), "order")?, first, "at {p}");
    }
    Ok(())
}

/// A peer written as in the report connects to the comparison server over
/// TCP and writes its order; the comparator takes it beside UDP orders,
/// and refuses a connection that does not say whose order it is.
#[test]
fn peers_report_to_the_comparator_over_tcp() -> Result<()> {
    use std::io::Write as _;
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "MulticastComparator", "1", "--name", "tcmp", "-d", "--", "--peers", "2"])?;
    let address = daemon.instance("tcmp", "p1")?["address"].as_str().context("no address in ps")?.to_owned();
    let report = |lines: &str| -> Result<()> {
        let mut stream = std::net::TcpStream::connect(&address)?;
        stream.write_all(lines.as_bytes())?;
        Ok(())
    };
    report("p1:1 p2:1\n")?;
    wait_until("the refusal", || lines_with(&daemon, "tcmp/p1", "error:").is_ok_and(|l| !l.is_empty()))?;
    let refusal = lines_with(&daemon, "tcmp/p1", "error:")?.remove(0);
    assert!(refusal.contains("the first line must be 'ORDER <peer>'"), "{refusal}");
    report("ORDER a\na:1\nb:1\na:2\n")?;
    report("ORDER b\nb:1 a:1\na:2\n")?;
    wait_until("the comparator's verdict", || lines_with(&daemon, "tcmp/p1", "verdict").is_ok_and(|v| !v.is_empty()))?;
    assert_eq!(lines_with(&daemon, "tcmp/p1", "verdict")?, ["diverge"]);
    assert_eq!(lines_with(&daemon, "tcmp/p1", "diverge:")?, ["a and b first differ at position 1 (a: a:1, b: b:1)"]);
    assert_eq!(lines_with(&daemon, "tcmp/p1", "order")?, ["a a:1 b:1 a:2", "b b:1 a:1 a:2"]);
    Ok(())
}
