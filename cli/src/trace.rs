//! A run's merged events as a trace file: a ShiViz log, or the raw events
//! as JSON lines, for `mgrctl trace`.
//!
//! This module is pure: it turns [`RunEvents`] into text and never does
//! I/O, so the format is tested on events written by hand. It must not
//! change what the events say: it only orders them and rewrites their
//! clocks into the shape ShiViz demands.
//!
//! The ShiViz format follows the documentation of the ShiViz web page
//! (<https://bestchai.bitbucket.io/shiviz/>, "What is the input log
//! format" and "Upload a log"): the first line of a file is the parsing
//! regular expression, the second the delimiter of multiple executions
//! (empty: one execution), and the rest is the log. We use ShiViz's default
//! expression `(?<event>.*)\n(?<host>\S*) (?<clock>{.*})`, so each event is
//! two lines: its description, then `host {"host": n, ...}` where the clock
//! is a JSON object from host names to counts that holds the host itself.

use std::collections::BTreeMap;

use mgr_modules::check::{Event, RunEvents};

/// ShiViz's default parsing expression, the first line of the file.
pub const SHIVIZ_REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";

/// One event of the merged order: which process, which of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The process's index in `RunEvents::processes` (or past its end for a
    /// process that is not listed there).
    pub process: usize,
    /// The event's index in that process's events.
    pub index: usize,
}

/// The processes of a run in order: the listed ones first, then any that
/// wrote events without being listed (a stranger's events are shown, not
/// dropped).
pub fn process_names(run: &RunEvents) -> Vec<String> {
    let mut names = run.processes.clone();
    for name in run.by_process.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The Lamport clock of each event of `events` as the order uses it: never
/// lower than the one before (a clock that went back would reorder the
/// process's own events), and one more than the last for the manager's
/// crash records, which have none.
pub fn effective_lamports(events: &[Event]) -> Vec<u64> {
    let mut last = 0;
    events
        .iter()
        .map(|e| {
            last = if is_crash_record(e) || e.lamport == 0 { last + 1 } else { e.lamport.max(last) };
            last
        })
        .collect()
}

/// Whether `e` is a crash record the manager wrote (not a failure
/// detector's `crash` indication, which names the suspected peer).
/// The processes some of whose events carry no vector clock (`vc`): their
/// causality cannot be drawn from the events, and the tools say so rather
/// than draw a picture without it.
pub fn without_vc(run: &RunEvents) -> Vec<String> {
    run.processes.iter().filter(|p| run.of(p).iter().any(|e| !is_crash_record(e) && e.vc.is_empty())).cloned().collect()
}

pub fn is_crash_record(e: &Event) -> bool {
    e.event == "crash" && (e.by.as_deref() == Some("mgr") || e.peer.is_none())
}

/// Every event of the run, each process's in its own order, the processes
/// merged by Lamport clock, then by process.
pub fn merged_order(run: &RunEvents) -> Vec<Slot> {
    let names = process_names(run);
    let mut keyed = Vec::new();
    for (p, name) in names.iter().enumerate() {
        let events = run.of(name);
        for (index, lamport) in effective_lamports(events).into_iter().enumerate() {
            keyed.push((lamport, p, index));
        }
    }
    // The key is non-decreasing along a process and ties break by index, so
    // each process keeps its order.
    keyed.sort();
    keyed.into_iter().map(|(_, process, index)| Slot { process, index }).collect()
}

/// The raw events in the merged order, one JSON object per line.
pub fn json_lines(run: &RunEvents) -> String {
    let names = process_names(run);
    let mut out = String::new();
    for slot in merged_order(run) {
        let event = &run.of(&names[slot.process])[slot.index];
        // An `Event` is plain data: serializing it cannot fail.
        out.push_str(&serde_json::to_string(event).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// A one-line description of an event: `send → p2 #3 "1 hello" (L4)`.
pub fn describe(e: &Event) -> String {
    let mut line = e.event.clone();
    if let Some(peer) = &e.peer {
        let arrow = if e.event == "send" {
            "→"
        } else if e.event == "receive" || e.event == "deliver" {
            "←"
        } else {
            ""
        };
        line.push_str(&format!(" {arrow}{}{peer}", if arrow.is_empty() { "" } else { " " }));
    }
    if let Some(id) = e.id {
        line.push_str(&format!(" #{id}"));
    }
    if let Some(text) = &e.text {
        line.push_str(&format!(" \"{text}\""));
    }
    if e.lamport > 0 {
        line.push_str(&format!(" (L{})", e.lamport));
    }
    line
}

/// The clocks ShiViz reads, one per event of each process, as maps from
/// process index to count, built from the events' `vc`.
///
/// ShiViz wants a host's own entry to count its events in the log, one by
/// one from 1, and every other entry to name an event of that host in the
/// log. The recorded clocks may count events that are not in the log (or
/// none, for crash records), so each entry is renumbered: a count `c` of
/// process `q` becomes the number of `q`'s logged events whose own count is
/// at most `c`. That map is monotone, so it keeps every happens-before
/// relation the recorded clocks state.
pub fn shiviz_clocks(run: &RunEvents) -> Vec<Vec<BTreeMap<usize, u64>>> {
    let names = process_names(run);
    // First the recorded clocks, made monotone along each process: a
    // component never goes back, the own entry always goes up, and an event
    // without a clock (a crash record) is the last clock plus one.
    let raw: Vec<Vec<Vec<u64>>> = names
        .iter()
        .enumerate()
        .map(|(p, name)| {
            let mut last = vec![0u64; names.len()];
            run.of(name)
                .iter()
                .map(|e| {
                    let mut clock = last.clone();
                    for (i, v) in e.vc.iter().enumerate().take(names.len()) {
                        clock[i] = clock[i].max(*v);
                    }
                    let own = if e.vc.len() > p { e.vc[p] } else { 0 };
                    clock[p] = own.max(last[p] + 1);
                    last = clock.clone();
                    clock
                })
                .collect()
        })
        .collect();
    let owns: Vec<Vec<u64>> = raw.iter().enumerate().map(|(p, clocks)| clocks.iter().map(|c| c[p]).collect()).collect();
    raw.iter()
        .map(|clocks| {
            clocks
                .iter()
                .map(|clock| {
                    clock
                        .iter()
                        .enumerate()
                        .filter_map(|(q, &c)| {
                            let n = owns[q].partition_point(|&own| own <= c) as u64;
                            (n > 0).then_some((q, n))
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The run as a ShiViz log (see the module's documentation for the format).
pub fn shiviz(run: &RunEvents) -> String {
    let names = process_names(run);
    let clocks = shiviz_clocks(run);
    let mut out = format!("{SHIVIZ_REGEX}\n\n");
    for slot in merged_order(run) {
        let event = &run.of(&names[slot.process])[slot.index];
        // The description is one line: ShiViz's `.` stops at line breaks.
        let description: String = describe(event)
            .chars()
            .map(|c| if matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}') { ' ' } else { c })
            .collect();
        let clock: serde_json::Map<String, serde_json::Value> =
            clocks[slot.process][slot.index].iter().map(|(q, n)| (host(&names[*q]), (*n).into())).collect();
        out.push_str(&format!("{description}\n{} {}\n", host(&names[slot.process]), serde_json::Value::Object(clock)));
    }
    out
}

/// A process name as a ShiViz host: `\S*` allows no white space.
fn host(name: &str) -> String {
    name.chars().map(|c| if c.is_whitespace() { '_' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(process: &str, event: &str, peer: Option<&str>, id: Option<u64>, lamport: u64, vc: &[u64]) -> Event {
        Event {
            process: process.into(),
            event: event.into(),
            peer: peer.map(Into::into),
            id,
            lamport,
            vc: vc.to_vec(),
            text: Some("hi\nthere".into()),
            ..Default::default()
        }
    }

    /// p1 sends to p2 and p3; p2 receives and answers; p3 crashes.
    fn sample() -> RunEvents {
        let mut crash = ev("p3", "crash", None, None, 0, &[]);
        crash.by = Some("mgr".into());
        RunEvents::from_events(
            3,
            [
                ev("p1", "broadcast", None, Some(1), 1, &[1, 0, 0]),
                ev("p1", "send", Some("p2"), Some(1), 2, &[2, 0, 0]),
                ev("p1", "send", Some("p3"), Some(2), 3, &[3, 0, 0]),
                ev("p1", "receive", Some("p2"), Some(1), 7, &[4, 3, 0]),
                ev("p2", "receive", Some("p1"), Some(1), 3, &[2, 1, 0]),
                ev("p2", "deliver", Some("p1"), Some(1), 4, &[2, 2, 0]),
                ev("p2", "send", Some("p1"), Some(1), 5, &[2, 3, 0]),
                ev("p3", "receive", Some("p1"), Some(2), 4, &[3, 0, 2]),
                crash,
            ],
        )
    }

    /// The events of a ShiViz log as (description, host, clock), parsed as
    /// ShiViz does: the first line is the expression, the second the
    /// delimiter, the rest matched by the expression (in Rust's syntax).
    fn parse_shiviz(text: &str) -> Vec<(String, String, serde_json::Map<String, serde_json::Value>)> {
        let mut lines = text.splitn(3, '\n');
        assert_eq!(lines.next(), Some(SHIVIZ_REGEX), "the first line is ShiViz's default expression");
        assert_eq!(lines.next(), Some(""), "no delimiter: one execution");
        let log = lines.next().expect("a log");
        let re = regex::Regex::new(r"(?m)(?<event>.*)\n(?<host>\S*) (?<clock>\{.*\})").unwrap();
        let mut events = Vec::new();
        let mut end = 0;
        for c in re.captures_iter(log) {
            let whole = c.get(0).unwrap();
            assert!(log[end..whole.start()].trim().is_empty(), "unparsed text {:?}", &log[end..whole.start()]);
            end = whole.end();
            let clock: serde_json::Value = serde_json::from_str(&c["clock"]).expect("the clock is JSON");
            events.push((c["event"].to_owned(), c["host"].to_owned(), clock.as_object().expect("an object").clone()));
        }
        assert!(log[end..].trim().is_empty(), "unparsed tail {:?}", &log[end..]);
        events
    }

    fn entry(clock: &serde_json::Map<String, serde_json::Value>, host: &str) -> u64 {
        clock.get(host).and_then(|v| v.as_u64()).unwrap_or(0)
    }

    #[test]
    fn shiviz_log_parses_with_shiviz_expression_and_clocks_follow_happens_before() {
        let run = sample();
        let events = parse_shiviz(&shiviz(&run));
        assert_eq!(events.len(), 9);
        // Own entries count each host's events 1, 2, 3, … in file order.
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut last: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
        for (description, host, clock) in &events {
            assert!(!description.contains('\n'));
            let n = seen.entry(host.clone()).or_default();
            *n += 1;
            assert_eq!(entry(clock, host), *n, "{host}'s own entry in {clock:?}");
            if let Some(before) = last.get(host) {
                for (h, v) in before {
                    assert!(entry(clock, h) >= v.as_u64().unwrap(), "{host}'s clock went back on {h}");
                }
            }
            for (h, v) in clock {
                assert!(v.as_u64().unwrap() > 0, "zero entries are dropped");
                assert!(["p1", "p2", "p3"].contains(&h.as_str()));
            }
            last.insert(host.clone(), clock.clone());
        }
        // A receive's clock dominates its send's.
        let find = |host: &str, prefix: &str| {
            events.iter().find(|(d, h, _)| h == host && d.starts_with(prefix)).map(|(_, _, c)| c.clone()).unwrap()
        };
        for (send, receive) in [
            (find("p1", "send → p2"), find("p2", "receive")),
            (find("p1", "send → p3"), find("p3", "receive")),
            (find("p2", "send → p1"), find("p1", "receive")),
        ] {
            for (h, v) in &send {
                assert!(entry(&receive, h) >= v.as_u64().unwrap(), "{receive:?} does not dominate {send:?}");
            }
        }
        // The crash record follows p3's receive on its own entry.
        let crash = find("p3", "crash");
        assert_eq!(entry(&crash, "p3"), 2);
        assert_eq!(entry(&crash, "p1"), 3);
    }

    #[test]
    fn shiviz_clocks_renumber_counts_of_unlogged_events() {
        // p1's clock counts events it did not log (own entries 5 and 9);
        // p2 saw p1's count 5.
        let run = RunEvents::from_events(
            2,
            [
                ev("p1", "send", Some("p2"), Some(1), 5, &[5, 0]),
                ev("p1", "send", Some("p2"), Some(2), 9, &[9, 0]),
                ev("p2", "receive", Some("p1"), Some(1), 6, &[5, 1]),
            ],
        );
        let events = parse_shiviz(&shiviz(&run));
        let p2 = &events.iter().find(|(_, h, _)| h == "p2").unwrap().2;
        assert_eq!(entry(p2, "p1"), 1);
        assert_eq!(entry(p2, "p2"), 1);
    }

    #[test]
    fn json_lines_merge_processes_by_lamport_keeping_each_order() {
        let run = sample();
        let lines: Vec<Event> =
            json_lines(&run).lines().map(|l| serde_json::from_str(l).expect("one event per line")).collect();
        assert_eq!(lines.len(), 9);
        let order: Vec<(String, u64)> = lines.iter().map(|e| (e.process.clone(), e.lamport)).collect();
        assert_eq!(order[0], ("p1".into(), 1));
        for p in ["p1", "p2", "p3"] {
            let mine: Vec<&Event> = lines.iter().filter(|e| e.process == p).collect();
            assert_eq!(mine.len(), run.of(p).len());
            assert!(mine.iter().zip(run.of(p)).all(|(a, b)| *a == b), "{p} keeps its order");
        }
        // The crash record (no clock) comes after p3's last event, not first.
        let crash = lines.iter().position(|e| e.event == "crash").unwrap();
        let receive = lines.iter().position(|e| e.process == "p3" && e.event == "receive").unwrap();
        assert!(crash > receive && crash > 0);
    }
}
