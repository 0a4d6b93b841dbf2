//! The properties of the applications ([`crate::apps`]), checked on a
//! run's events: for ChatNode, mutual exclusion of the critical section
//! (ME1) and eventual consistency of the histories (EC).
//!
//! It owns the pairing of a process's `enter` and `exit` events into
//! critical-section intervals and the comparison of the delivered sets.
//! It must not do I/O (see [`super`]), and must not decide a liveness
//! property before the run has quiesced.

use std::collections::{BTreeMap, BTreeSet};

use super::{Event, Property, RunEvents, Verdict, not_yet};

/// The properties `module` declares, if it is one of the applications.
pub fn properties(module: &str) -> Option<Vec<Property>> {
    match module {
        "ChatNode" => Some(vec![ME1, EC]),
        _ => None,
    }
}

/// "ME1: Mutual exclusion: no two processes are in the critical section
/// at the same time."
///
/// Each process's `enter` and the next `exit` make an interval. Two
/// intervals of different processes are apart when the vector clocks show
/// one's exit happened before the other's enter (Ricart-Agrawala orders
/// them so: the second enters on the reply the first sent when it
/// exited); when the clocks do not order them (a restarted process starts
/// its clocks anew) the wall-clock times decide, and only intervals that
/// overlap in time are a violation. An `enter` without its `exit` (a
/// process stopped inside) lasts until the process's last event.
pub const ME1: Property = Property {
    id: "ME1",
    statement: "Mutual exclusion: no two processes are in the critical section at the same time.",
    check: mutual_exclusion,
};

/// "EC: Eventual consistency: once the run is quiet, every correct process
/// holds the same messages."
///
/// A process holds what it delivered (live, or through `sync`), over all
/// its incarnations: a restarted process restores its history from its
/// checkpoint and replicas, and delivered those messages before.
pub const EC: Property = Property {
    id: "EC",
    statement: "Eventual consistency: once the run is quiet, every correct process holds the same messages.",
    check: eventual_consistency,
};

/// One stay in the critical section.
#[derive(Debug, Clone)]
struct Interval<'a> {
    process: &'a str,
    enter: &'a Event,
    exit: &'a Event,
}

fn intervals(run: &RunEvents) -> Vec<Interval<'_>> {
    let mut out = Vec::new();
    for (process, events) in &run.by_process {
        let mut open: Option<&Event> = None;
        for e in events {
            match e.event.as_str() {
                "enter" => {
                    // An enter after an enter: the process restarted inside
                    // the section, and the first stay ended with it.
                    if let Some(enter) = open.take() {
                        out.push(Interval { process, enter, exit: e });
                    }
                    open = Some(e);
                }
                "exit" => {
                    if let Some(enter) = open.take() {
                        out.push(Interval { process, enter, exit: e });
                    }
                }
                _ => {}
            }
        }
        if let (Some(enter), Some(last)) = (open, events.last()) {
            out.push(Interval { process, enter, exit: last });
        }
    }
    out
}

/// Whether `a` happened before (or is) `b` by their vector clocks.
fn vc_before(a: &Event, b: &Event) -> bool {
    !a.vc.is_empty() && a.vc.len() == b.vc.len() && a.vc.iter().zip(&b.vc).all(|(x, y)| x <= y)
}

fn mutual_exclusion(run: &RunEvents) -> Verdict {
    let all = intervals(run);
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.process == b.process || vc_before(a.exit, b.enter) || vc_before(b.exit, a.enter) {
                continue;
            }
            if a.enter.time_ms < b.exit.time_ms && b.enter.time_ms < a.exit.time_ms {
                return Verdict::Violated(format!(
                    "{} (enter seq {:?} at lamport {}) and {} (enter seq {:?} at lamport {}) were in the critical section at the same time ({}..{} ms and {}..{} ms), unordered by their clocks",
                    a.process,
                    a.enter.id,
                    a.enter.lamport,
                    b.process,
                    b.enter.id,
                    b.enter.lamport,
                    a.enter.time_ms,
                    a.exit.time_ms,
                    b.enter.time_ms,
                    b.exit.time_ms
                ));
            }
        }
    }
    Verdict::Holds
}

fn eventual_consistency(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let held: BTreeMap<String, BTreeSet<(String, u64)>> = run
        .correct()
        .into_iter()
        .map(|p| {
            let set = run
                .of(&p)
                .iter()
                .filter(|e| e.event == "deliver")
                .filter_map(|e| Some((e.peer.clone()?, e.id?)))
                .collect();
            (p, set)
        })
        .collect();
    let union: BTreeSet<&(String, u64)> = held.values().flatten().collect();
    for (p, set) in &held {
        if let Some((sender, id)) = union.iter().find(|m| !set.contains(**m)) {
            return Verdict::Violated(format!(
                "{p} never delivered message {id} of {sender}, which another correct process holds ({p} holds {} of {})",
                set.len(),
                union.len()
            ));
        }
    }
    Verdict::Holds
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;

    fn at(mut e: Event, time_ms: u64, vc: &[u64]) -> Event {
        e.time_ms = time_ms;
        e.vc = vc.to_vec();
        e
    }

    #[test]
    fn ordered_sections_hold_and_overlapping_concurrent_ones_do_not() {
        let ordered = RunEvents::from_events(
            2,
            [
                at(ev("p1", "enter", None, Some(1), None), 10, &[1, 0]),
                at(ev("p1", "exit", None, Some(1), None), 20, &[2, 0]),
                at(ev("p2", "enter", None, Some(2), None), 15, &[2, 3]),
                at(ev("p2", "exit", None, Some(2), None), 25, &[2, 4]),
            ],
        );
        // The times overlap (clocks of two machines may disagree) but the
        // vector clocks order the sections.
        assert_eq!(mutual_exclusion(&ordered), Verdict::Holds);
        let concurrent = RunEvents::from_events(
            2,
            [
                at(ev("p1", "enter", None, Some(1), None), 10, &[1, 0]),
                at(ev("p1", "exit", None, Some(1), None), 20, &[2, 0]),
                at(ev("p2", "enter", None, Some(1), None), 15, &[0, 1]),
                at(ev("p2", "exit", None, Some(1), None), 25, &[0, 2]),
            ],
        );
        assert!(matches!(mutual_exclusion(&concurrent), Verdict::Violated(_)));
        let apart = RunEvents::from_events(
            2,
            [
                at(ev("p1", "enter", None, Some(1), None), 10, &[1, 0]),
                at(ev("p1", "exit", None, Some(1), None), 20, &[2, 0]),
                at(ev("p2", "enter", None, Some(1), None), 30, &[0, 1]),
                at(ev("p2", "exit", None, Some(1), None), 40, &[0, 2]),
            ],
        );
        assert_eq!(mutual_exclusion(&apart), Verdict::Holds);
    }

    #[test]
    fn every_correct_process_must_hold_every_message() {
        let d = |p, s, id| ev(p, "deliver", Some(s), Some(id), Some("x"));
        let same = RunEvents::from_events(2, [d("p1", "p1", 1), d("p2", "p1", 1), d("p2", "p2", 1), d("p1", "p2", 1)]);
        assert_eq!(eventual_consistency(&same), Verdict::Holds);
        let missing = RunEvents::from_events(2, [d("p1", "p1", 1), d("p2", "p1", 1), d("p2", "p2", 1)]);
        assert!(
            matches!(eventual_consistency(&missing), Verdict::Violated(m) if m.contains("p1 never delivered message 1 of p2"))
        );
        let mut early = same.clone();
        early.quiesced = false;
        assert!(matches!(eventual_consistency(&early), Verdict::Undecided(_)));
    }
}
