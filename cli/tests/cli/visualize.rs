//! Seeing a run (`mgrctl trace`, `mgrctl diagram`) on real instances.

use super::harness::*;

/// ShiViz's default parsing expression, in Rust's syntax: the description
/// line, then `host {clock}`.
const SHIVIZ: &str = r"(?m)(?<event>.*)\n(?<host>\S*) (?<clock>\{.*\})";

#[test]
fn best_effort_broadcast_of_four_gives_a_shiviz_log_and_a_diagram_of_its_processes_and_arrows() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "4", "--name", "beb", "--detach"])?;
    daemon.ok(&["send", "beb/p1", "broadcast", "from one"])?;
    for p in ["p1", "p2", "p3", "p4"] {
        let target = format!("beb/{p}");
        wait_until("the broadcast", || deliveries(&daemon, &target).is_ok_and(|d| !d.is_empty()))?;
    }
    thread::sleep(Duration::from_millis(300));
    let events = daemon.ok(&["events", "beb", "--json"])?.lines().count();
    let dir = tempfile::tempdir()?;

    // The ShiViz log, read as ShiViz's documentation describes a file: the
    // expression, the delimiter line (empty), then the log.
    let log = dir.path().join("beb.log");
    daemon.ok(&["trace", "beb", "--format", "shiviz", "-o", log.to_str().unwrap()])?;
    let text = std::fs::read_to_string(&log)?;
    let mut parts = text.splitn(3, '\n');
    assert_eq!(parts.next(), Some(r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})"));
    assert_eq!(parts.next(), Some(""));
    let body = parts.next().context("no log")?;
    let re = regex::Regex::new(SHIVIZ)?;
    let mut own = std::collections::BTreeMap::<String, u64>::new();
    let mut parsed = 0;
    let mut end = 0;
    for c in re.captures_iter(body) {
        let whole = c.get(0).unwrap();
        assert!(body[end..whole.start()].trim().is_empty(), "unparsed: {:?}", &body[end..whole.start()]);
        end = whole.end();
        let host = c["host"].to_owned();
        assert!(["p1", "p2", "p3", "p4"].contains(&host.as_str()), "host {host}");
        let clock: Value = serde_json::from_str(&c["clock"]).context("the clock is JSON")?;
        let n = own.entry(host.clone()).or_default();
        *n += 1;
        assert_eq!(clock[&host].as_u64(), Some(*n), "{host}'s own entry in {clock}");
        parsed += 1;
    }
    assert!(body[end..].trim().is_empty());
    assert_eq!(parsed, events, "every event is in the log");
    assert_eq!(own.len(), 4);

    // The JSON lines: the same events.
    assert_eq!(daemon.ok(&["trace", "beb", "--format", "json"])?.lines().count(), events);

    // The diagram: four process lines, four arrows (p1 to each, itself
    // included), nothing lost.
    let svg = dir.path().join("beb.svg");
    daemon.ok(&["diagram", "beb", "-o", svg.to_str().unwrap()])?;
    let text = std::fs::read_to_string(&svg)?;
    let doc = roxmltree::Document::parse(&text).context("the SVG is well-formed")?;
    let count = |class: &str| {
        doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.split(' ').any(|w| w == class))).count()
    };
    assert_eq!(count("process"), 4);
    assert_eq!(count("msg"), 4);
    assert_eq!(count("lost"), 0);
    assert_eq!(count("crash"), 0);
    for p in ["p1", "p2", "p3", "p4"] {
        assert!(text.contains(&format!(">{p}@test<")), "{p}'s label");
    }
    let html = dir.path().join("beb.html");
    daemon.ok(&["diagram", "beb", "-o", html.to_str().unwrap()])?;
    let page = std::fs::read_to_string(&html)?;
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg") && !page.contains("<script"));
    Ok(())
}

/// A crash and a restart on a real run: the killed instance's line ends in
/// a cross and goes on, marked as restarted, with its new incarnation's
/// events (issue 15's fix of the static diagram).
#[test]
fn a_killed_and_restarted_instance_goes_on_along_its_row_in_the_diagram() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "2", "--name", "again", "--detach"])?;
    daemon.ok(&["send", "again/p1", "broadcast", "before"])?;
    wait_until("the first broadcast", || deliveries(&daemon, "again/p2").is_ok_and(|d| d.len() == 1))?;
    daemon.ok(&["kill", "again/p1"])?;
    wait_until("p1 crashed", || daemon.ok(&["ps", "again"]).is_ok_and(|ps| ps.matches(" running ").count() == 1))?;
    daemon.ok(&["restart", "again/p1"])?;
    wait_until("p1 running again", || {
        daemon.ok(&["ps", "again"]).is_ok_and(|ps| ps.matches(" running ").count() == 2)
    })?;
    daemon.ok(&["send", "again/p1", "broadcast", "after"])?;
    wait_until("the second broadcast", || deliveries(&daemon, "again/p2").is_ok_and(|d| d.len() == 2))?;
    thread::sleep(Duration::from_millis(300));

    let dir = tempfile::tempdir()?;
    let svg = dir.path().join("again.svg");
    daemon.ok(&["diagram", "again", "-o", svg.to_str().unwrap()])?;
    let text = std::fs::read_to_string(&svg)?;
    let doc = roxmltree::Document::parse(&text).context("the SVG is well-formed")?;
    let with = |class: &str| {
        doc.descendants()
            .filter(|n| n.attribute("class").is_some_and(|c| c.split(' ').any(|w| w == class)))
            .collect::<Vec<_>>()
    };
    let x = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap_or("0").parse::<f64>().unwrap_or(0.0);
    assert_eq!(with("crash").len(), 1, "the kill is one crash");
    let restarted = with("restarted");
    assert_eq!(restarted.len(), 1, "p1 goes on after it:\n{text}");
    assert_eq!(with("restart").len(), 1, "and the restart is marked");
    let first_p1 =
        with("process").into_iter().find(|n| n.attribute("class") == Some("process")).context("p1's line")?;
    assert!(x(&restarted[0], "x1") > x(&first_p1, "x2"), "the new segment starts after the old one ends");
    // p1's sends to p1 and p2, before and after: four arrows, the later two
    // leaving from the new segment.
    let sends: Vec<f64> = with("msg").iter().map(|n| x(n, "x1")).collect();
    assert_eq!(sends.len(), 4, "{text}");
    let after = sends.iter().filter(|&&s| s > x(&restarted[0], "x1") && s < x(&restarted[0], "x2")).count();
    assert!(after >= 1, "the broadcast after the restart leaves from the new segment: {sends:?}");
    Ok(())
}

/// Runs an example of `examples/` as `run` on `daemon` and draws it.
fn example_drawn(daemon: &Daemon, file: &str, run: &str) -> Result<String> {
    let out = crate::scenarios::run_until(
        daemon.command(&["up", &crate::examples::example(file), "--name", run]),
        crate::examples::LIMIT,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(": passed"), "{file}: {stderr}");
    let dir = tempfile::tempdir()?;
    let svg = dir.path().join("run.svg");
    daemon.ok(&["diagram", run, "-o", svg.to_str().unwrap()])?;
    Ok(std::fs::read_to_string(&svg)?)
}

/// The arrows of `class` as (x1, y1, x2, y2).
fn arrows(doc: &roxmltree::Document, class: &str) -> Vec<(f64, f64, f64, f64)> {
    let n = |node: &roxmltree::Node, a: &str| node.attribute(a).unwrap_or("0").parse::<f64>().unwrap_or(0.0);
    doc.descendants()
        .filter(|node| {
            node.has_tag_name("line") && node.attribute("class").is_some_and(|c| c.split(' ').any(|w| w == class))
        })
        .map(|node| (n(&node, "x1"), n(&node, "y1"), n(&node, "x2"), n(&node, "y2")))
        .collect()
}

/// The y of process `name`'s line.
fn row_of(doc: &roxmltree::Document, name: &str) -> Option<f64> {
    doc.descendants()
        .find(|n| {
            n.attribute("class") == Some("process")
                && n.children().any(|c| c.text().is_some_and(|t| t.starts_with(&format!("{name}@"))))
        })
        .and_then(|n| n.attribute("y1")?.parse().ok())
}

#[test]
fn the_multicast_example_is_drawn_narrower_with_no_label_over_another_and_its_reports_reach_the_comparator()
-> Result<()> {
    let daemon = Daemon::start(&[])?;
    let text = example_drawn(&daemon, "multicast.toml", "mc")?;
    let doc = roxmltree::Document::parse(&text)?;
    let width: f64 = doc.root_element().attribute("width").context("a width")?.parse()?;
    // The renderer of one column per event, 18 px each, drew this example
    // 9,446 px wide (10,274 in a run here); bursts of sends now share a
    // column and columns of arrow ends only are narrow.
    assert!(width < 8000.0, "{width} px");
    // Labels on one row are at least a label's height apart (rotated and
    // parallel, they never cover each other).
    let mut rows: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for g in doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("mark"))) {
        let label = g.children().find(|c| c.has_tag_name("text")).context("a label")?;
        let (x, y): (f64, f64) = (label.attribute("x").unwrap().parse()?, label.attribute("y").unwrap().parse()?);
        rows.entry(y as i64).or_default().push(x);
    }
    assert!(rows.values().map(Vec::len).sum::<usize>() >= 160, "the 160 multicasts are labelled");
    for xs in rows.values() {
        for pair in xs.windows(2) {
            assert!(pair[1] - pair[0] >= 21.9, "labels at {pair:?} overlap");
        }
    }
    // Each peer's report is an arrow into the comparator (p5), and its
    // verdict comes after them all, not at the start of its line.
    let p5 = row_of(&doc, "p5").context("p5's line")?;
    let reports: Vec<_> = arrows(&doc, "reply").into_iter().filter(|a| a.3 == p5).collect();
    assert_eq!(reports.len(), 4, "{reports:?}");
    let verdict = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("mark verdict"))
        .and_then(|g| g.children().find(|c| c.has_tag_name("circle")))
        .and_then(|c| c.attribute("cx")?.parse::<f64>().ok())
        .context("the verdict")?;
    assert!(reports.iter().all(|a| a.2 < verdict && a.0 < a.2), "{reports:?} then the verdict at {verdict}");
    Ok(())
}

#[test]
fn the_ack_example_draws_registrations_and_acks_as_arrows() -> Result<()> {
    // --allow-exec: the example's Python receiver is a command.
    let daemon = Daemon::start(&["--allow-exec"])?;
    let text = example_drawn(&daemon, "ack.toml", "ack")?;
    let doc = roxmltree::Document::parse(&text)?;
    let replies = arrows(&doc, "reply");
    let (discovery, client) = (row_of(&doc, "p1").context("p1")?, row_of(&doc, "p5").context("p5")?);
    let registrations = replies.iter().filter(|a| a.3 == discovery).count();
    let acks = replies.iter().filter(|a| a.3 == client).count();
    assert!(registrations >= 3, "the three receivers register with discovery: {replies:?}");
    // The Python receiver (p6) writes no events: its acks have no arrow.
    let client_log = daemon.ok(&["logs", "ack/p5"])?;
    let by_rust = client_log.lines().filter(|l| l.contains("| acked request ") && !l.contains(" by p6 ")).count();
    assert_eq!(acks, by_rust, "one arrow per request acked by a Rust receiver: {replies:?}\n{client_log}");
    assert_eq!(client_log.matches("| acked request ").count(), 5, "{client_log}");
    assert!(replies.iter().all(|a| a.2 > a.0), "every arrow points right: {replies:?}");
    Ok(())
}
