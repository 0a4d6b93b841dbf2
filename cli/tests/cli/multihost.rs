//! The group across hosts: real managers in network namespaces on a bridge
//! (see `netns.rs`), finding each other over mDNS inside the lab, driven by
//! the real `mgrctl` over each manager's Unix socket, or over TCP with the
//! group key from inside a lab host.

use crate::harness::*;
use crate::netns::{Lab, MGR_PORT, NetDaemon};

/// Starts managers on hosts 1..=k of `lab` with mDNS on eth0 and nothing
/// else; returns them and the moment the last one accepted on its socket.
fn start_all(lab: &Lab, k: usize, extra: &[&str]) -> Result<(Vec<NetDaemon>, Instant)> {
    let mut args = vec!["--iface", "eth0"];
    args.extend(extra);
    let daemons = (1..=k).map(|i| lab.start_mgr(i, &args)).collect::<Result<Vec<_>>>()?;
    Ok((daemons, Instant::now()))
}

/// Waits until every one of `daemons` sees exactly `want` alive.
fn converged(daemons: &[&NetDaemon], want: &[&str]) -> Result<()> {
    wait_until(&format!("every member sees {want:?}"), || {
        daemons.iter().all(|d| d.alive_members().is_ok_and(|names| names == want))
    })
}

#[test]
fn four_managers_find_each_other_by_mdns_within_a_second_of_the_last_start() -> Result<()> {
    let lab = Lab::new(4)?;
    let (daemons, last_start) = start_all(&lab, 4, &[])?;
    let all: Vec<&NetDaemon> = daemons.iter().collect();
    converged(&all, &["h1", "h2", "h3", "h4"])?;
    let took = last_start.elapsed();
    assert!(took <= Duration::from_secs(1), "the group of 4 converged {took:?} after the last start");
    Ok(())
}

#[test]
fn a_spread_launch_runs_one_instance_per_host_and_streams_a_cross_host_delivery() -> Result<()> {
    let lab = Lab::new(4)?;
    let (daemons, _) = start_all(&lab, 4, &[])?;
    let all: Vec<&NetDaemon> = daemons.iter().collect();
    converged(&all, &["h1", "h2", "h3", "h4"])?;

    let h1 = &daemons[0];
    let mut session =
        h1.spawn(&["launch", "FairLossPointToPointLink", "4", "--placement", "spread", "--name", "net"])?;
    session.expect("p4 started on h4", |l| l.starts_with("p4@h4") && l.contains("started"))?;
    for (i, inst) in h1.ps("net")?.iter().enumerate() {
        let host = i + 1;
        assert_eq!(inst["instance"], format!("p{host}"));
        assert_eq!(inst["member"], format!("h{host}"), "spread puts one instance on each member");
        let address = inst["address"].as_str().unwrap_or("");
        assert!(
            address.starts_with(&format!("{}:", lab.ip(host))),
            "p{host} has an address on its own host: {address}"
        );
    }
    // p1 on h1 sends to p4 on h4, across the bridge; the delivery printed
    // on h4 streams back to the CLI on h1.
    session.type_line("@p1 send p4 across-hosts")?;
    session.expect("the delivery at p4", |l| l.starts_with("p4@h4") && l.contains("deliver p1 across-hosts"))?;
    // Acting from another member on an instance elsewhere.
    daemons[2].ok(&["stop", "net"])?;
    let (code, _) = session.finish()?;
    assert_eq!(code, 0);
    Ok(())
}

#[test]
fn a_killed_manager_is_dead_within_2s_its_instance_lost_and_it_rejoins_as_itself() -> Result<()> {
    let lab = Lab::new(3)?;
    let (mut daemons, _) = start_all(&lab, 3, &[])?;
    converged(&daemons.iter().collect::<Vec<_>>(), &["h1", "h2", "h3"])?;
    let id = daemons[2].member_id()?;
    daemons[0].ok(&["launch", "FairLossPointToPointLink", "3", "--name", "crash", "-d"])?;

    daemons[2].kill9();
    let killed = Instant::now();
    let h1 = &daemons[0];
    wait_until("h3 dead at h1", || h1.members().is_ok_and(|m| m.contains(&("h3".into(), "dead".into()))))?;
    let detected = killed.elapsed();
    // The target is 2 s (BENCHMARKS.md reports the median); a loaded 2-core
    // machine gets a little slack in a test.
    assert!(detected < Duration::from_millis(2500), "h3 was declared dead after {detected:?}");
    let p3 = h1.instance("crash", "p3")?;
    assert_eq!((p3["member"].as_str(), p3["state"].as_str()), (Some("h3"), Some("lost")));
    assert_eq!(h1.instance("crash", "p1")?["state"], "running");

    daemons[2].restart()?;
    converged(&daemons.iter().collect::<Vec<_>>(), &["h1", "h2", "h3"])?;
    assert_eq!(daemons[2].member_id()?, id, "a restarted manager is the same member");
    assert_eq!(daemons[0].members()?.len(), 3, "and is not listed twice");
    Ok(())
}

#[test]
fn another_key_and_another_group_on_the_same_bridge_never_become_members() -> Result<()> {
    let lab = Lab::new(4)?;
    let stranger_key = lab.dir().join("stranger.key");
    keygen(&stranger_key)?;
    let stranger_key = stranger_key.to_str().context("path")?.to_owned();
    let h1 = lab.start_mgr(1, &["--iface", "eth0"])?;
    let h2 = lab.start_mgr(2, &["--iface", "eth0"])?;
    let h3 = lab.start_mgr(3, &["--iface", "eth0", "--key-file", &stranger_key])?;
    let h4 = lab.start_mgr(4, &["--iface", "eth0", "--group", "other"])?;
    converged(&[&h1, &h2], &["h1", "h2"])?;
    // mDNS shows h3 to h1 and h2 (same group name, another key): they
    // announce themselves to each other over the membership protocol, and
    // each side drops and counts what the other sends, which it cannot open.
    let dropped = "dropped a membership datagram";
    wait_until("the wrong key dropped on both sides", || {
        (h1.log().contains(dropped) || h2.log().contains(dropped)) && h3.log().contains(dropped)
    })?;
    // Give discovery time to have shown everyone to everyone, then check.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(h1.alive_members()?, ["h1", "h2"]);
    assert_eq!(h2.alive_members()?, ["h1", "h2"]);
    assert_eq!(h3.alive_members()?, ["h3"]);
    assert_eq!(h4.alive_members()?, ["h4"]);
    for host in [&h1, &h2] {
        let listed = host.ok(&["members"])?;
        // Not even as dead: it was never counted.
        assert!(!listed.contains("h3") && !listed.contains("h4"), "{listed}");
    }
    let counted = format!("{}{}", h1.ok(&["members"])?, h2.ok(&["members"])?);
    assert!(counted.contains("membership datagrams dropped: "), "{counted}");

    // mgrctl with the wrong key, from a lab host, gets a clear error.
    let out = run_with_timeout({
        let mut c = lab.command(3, bin("mgrctl"));
        c.args(["--host", &format!("{}:{MGR_PORT}", lab.ip(1)), "--key-file", &stranger_key, "members"]);
        c.env_remove("MGR_SOCKET");
        c
    })?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not hold this group's key") && err.lines().count() == 1, "{err}");
    // And with the right one, from another host, it works.
    let out = run_with_timeout({
        let mut c = lab.command(3, bin("mgrctl"));
        let key = lab.key()?;
        c.args(["--host", &format!("{}:{MGR_PORT}", lab.ip(2)), "members", "--json"]).arg("--key-file").arg(key);
        c
    })?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    Ok(())
}

#[test]
fn managers_with_discovery_off_merge_by_join_and_a_third_is_seen_by_both() -> Result<()> {
    let lab = Lab::new(3)?;
    let at = |i: usize| format!("{}:{MGR_PORT}", lab.ip(i));
    let h1 = lab.start_mgr(1, &["--no-mdns", "--join", &at(2)])?;
    let h2 = lab.start_mgr(2, &["--no-mdns", "--join", &at(1)])?;
    converged(&[&h1, &h2], &["h1", "h2"])?;
    let h3 = lab.start_mgr(3, &["--no-mdns", "--join", &at(2)])?;
    converged(&[&h1, &h2, &h3], &["h1", "h2", "h3"])?;
    Ok(())
}

#[test]
fn a_host_cut_off_for_5s_comes_back_into_one_group() -> Result<()> {
    let lab = Lab::new(3)?;
    let (daemons, _) = start_all(&lab, 3, &[])?;
    let all: Vec<&NetDaemon> = daemons.iter().collect();
    converged(&all, &["h1", "h2", "h3"])?;

    lab.cut(3)?;
    let cut = Instant::now();
    // Each side sees the other dead: two groups for a while.
    converged(&all[..2], &["h1", "h2"])?;
    converged(&all[2..], &["h3"])?;
    thread::sleep(Duration::from_secs(5).saturating_sub(cut.elapsed()));
    lab.restore(3)?;
    let restored = Instant::now();
    converged(&all, &["h1", "h2", "h3"])?;
    eprintln!("one group again {:?} after the link came back", restored.elapsed());
    Ok(())
}

#[test]
fn events_of_a_run_spread_over_hosts_are_merged_and_a_dead_member_is_missing() -> Result<()> {
    let lab = Lab::new(3)?;
    let (mut daemons, _) = start_all(&lab, 3, &[])?;
    converged(&daemons.iter().collect::<Vec<_>>(), &["h1", "h2", "h3"])?;
    let h1 = &daemons[0];
    h1.ok(&["launch", "BestEffortBroadcast", "3", "--name", "spread", "-d"])?;
    h1.ok(&["send", "spread/p2", "broadcast from-h2"])?;
    wait_until("every process delivered", || {
        h1.ok(&["events", "spread", "--json"]).is_ok_and(|out| out.matches("\"event\":\"deliver\"").count() == 3)
    })?;
    // Every member's events, in one stream: the broadcast at p2 (on h2) and
    // the deliveries at p1, p2, p3 (one per host).
    let out = h1.ok(&["events", "spread"])?;
    assert!(out.lines().any(|l| l.starts_with("p2@h2") && l.contains("broadcast")), "{out}");
    for host in 1..=3 {
        assert!(out.lines().any(|l| l.starts_with(&format!("p{host}@h{host}")) && l.contains("deliver")), "{out}");
    }
    // The checkers see the merged events: best-effort broadcast holds.
    h1.ok(&["stop", "spread"])?;
    let checked = h1.ctl(&["check", "spread"])?;
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success() && text.contains("BEB1") && !text.contains("violated"), "{text}");

    // A dead member's events are missing, and said to be.
    daemons[2].kill9();
    let h1 = &daemons[0];
    wait_until("h3 dead", || h1.alive_members().is_ok_and(|a| a == ["h1", "h2"]))?;
    let out = h1.ctl(&["events", "spread"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("events of member h3 are missing"), "{err}");
    Ok(())
}

/// The group at 24 hosts (issue 14's test for CI; `bench/group.sh` goes to
/// 128): all find each other by mDNS, a `kill -9` is seen by every other
/// member, a 12 | 12 partition makes two groups, and the heal one again.
/// The bounds are the benchmark's targets with room for a busy 2-core
/// machine running 24 managers and this test's polling.
#[test]
fn twenty_four_managers_converge_see_a_kill_split_in_two_and_heal() -> Result<()> {
    const K: usize = 24;
    let lab = Lab::new(K)?;
    let (mut daemons, last_start) = start_all(&lab, K, &[])?;
    let sorted = |hosts: std::ops::RangeInclusive<usize>| {
        let mut names: Vec<String> = hosts.map(|i| format!("h{i}")).collect();
        names.sort();
        names
    };
    let sees = |daemons: &[NetDaemon], which: std::ops::RangeInclusive<usize>, want: &[String]| {
        daemons[which.start() - 1..*which.end()].iter().all(|d| d.alive_members().is_ok_and(|n| n == want))
    };
    let everyone = sorted(1..=K);
    wait_until("24 managers converge", || sees(&daemons, 1..=K, &everyone))?;
    let took = last_start.elapsed();
    assert!(took <= Duration::from_secs(5), "24 managers converged {took:?} after the last start");

    // A kill -9: every other member lists it dead.
    daemons[K - 1].kill9();
    let killed = Instant::now();
    let without_last = sorted(1..=K - 1);
    wait_until("every other member lists h24 dead", || sees(&daemons, 1..=K - 1, &without_last))?;
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(6), "the last of 23 members saw h24 dead after {took:?}");
    assert!(daemons[0].members()?.contains(&("h24".to_owned(), "dead".to_owned())), "listed dead, not gone");
    daemons[K - 1].restart()?;
    wait_until("h24 back", || sees(&daemons, 1..=K, &everyone))?;

    // Two halves on two bridges: two groups, then one again.
    lab.split(13..=K)?;
    let cut = Instant::now();
    let (left, right) = (sorted(1..=12), sorted(13..=K));
    wait_until("two groups", || sees(&daemons, 1..=12, &left) && sees(&daemons, 13..=K, &right))?;
    let split = cut.elapsed();
    lab.unsplit()?;
    let healed = Instant::now();
    wait_until("one group again", || sees(&daemons, 1..=K, &everyone))?;
    let heal = healed.elapsed();
    assert!(split <= Duration::from_secs(8) && heal <= Duration::from_secs(8), "split {split:?}, heal {heal:?}");
    for d in &daemons {
        let log = d.log();
        assert!(!log.contains("dropped a membership datagram"), "nothing of this group is ever dropped:\n{log}");
    }
    Ok(())
}
