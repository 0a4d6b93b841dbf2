//! The properties of the book's failure detectors and leader election
//! (Modules 2.6–2.9), checked on a run's events: PerfectFailureDetector
//! (PFD1, PFD2), LeaderElection (LE1, LE2), EventuallyPerfectFailureDetector
//! (EPFD1, EPFD2) and EventualLeaderDetector (ELD1, ELD2).
//!
//! It owns the reading of the detectors' indications: `crash p` (P),
//! `suspect p` / `restore p` (◇P), `leader p` (le) and `trust p` (Ω), each
//! an event of the detecting process with the other process as `peer`. Who
//! really crashed is what the manager recorded (`"event":"crash","by":"mgr"`)
//! and nothing else: P's own indications are `crash` events too, and must
//! not make the detecting process look crashed (see [`crash_records`]).
//!
//! Accuracy of P and of leader election compares a process's indication
//! with another process's crash, which no logical clock relates (a crash
//! sends no message), so those two use the wall-clock `time_ms` of the
//! events; on one host, or hosts with synchronised clocks, that is the real
//! order. It must not do I/O, and must not decide a liveness property
//! ("eventually…") before the run has quiesced.

use std::collections::BTreeMap;

use super::{Event, Property, RunEvents, Verdict, is_crash_record, not_yet};

/// The properties `module` declares, if it is one of this chapter's.
pub fn properties(module: &str) -> Option<Vec<Property>> {
    match module {
        "PerfectFailureDetector" => Some(vec![PFD1, PFD2]),
        "LeaderElection" => Some(vec![LE1, LE2]),
        "EventuallyPerfectFailureDetector" => Some(vec![EPFD1, EPFD2]),
        "EventualLeaderDetector" => Some(vec![ELD1, ELD2]),
        _ => None,
    }
}

/// "PFD1: Strong completeness: Eventually, every process that crashes is
/// permanently detected by every correct process."
///
/// P never takes a detection back, so "permanently" holds of any detection:
/// once quiesced, every correct process must have detected every crashed one.
pub const PFD1: Property = Property {
    id: "PFD1",
    statement: "Strong completeness: Eventually, every process that crashes is permanently detected by every correct process.",
    check: pfd_completeness,
};

/// "PFD2: Strong accuracy: If a process p is detected by any process, then p
/// has crashed."
///
/// A detection of a process that has no crash record, or whose crash record
/// is later than the detection, violates it: p had not crashed when it was
/// detected.
pub const PFD2: Property = Property {
    id: "PFD2",
    statement: "Strong accuracy: If a process p is detected by any process, then p has crashed.",
    check: pfd_accuracy,
};

/// "LE1: Eventual detection: Either there is no correct process, or some
/// correct process is eventually elected as the leader."
///
/// Read on a quiesced run as: when some process is correct, the last leader
/// each correct process elected is a correct process (all the same one is
/// LE2's business).
pub const LE1: Property = Property {
    id: "LE1",
    statement: "Eventual detection: Either there is no correct process, or some correct process is eventually elected as the leader.",
    check: le_detection,
};

/// "LE2: Accuracy: If a process is leader, then all previously elected
/// leaders have crashed."
///
/// Every `leader l` indication is compared with every earlier one (earlier
/// in its own process's order, or with an earlier `time_ms` at another
/// process) naming another leader: that one must have a crash record no
/// later than the new election.
pub const LE2: Property = Property {
    id: "LE2",
    statement: "Accuracy: If a process is leader, then all previously elected leaders have crashed.",
    check: le_accuracy,
};

/// "EPFD1: Strong completeness: Eventually, every process that crashes is
/// permanently suspected by every correct process."
///
/// On a quiesced run: each correct process's last suspect/restore about each
/// crashed process is a suspect.
pub const EPFD1: Property = Property {
    id: "EPFD1",
    statement: "Strong completeness: Eventually, every process that crashes is permanently suspected by every correct process.",
    check: epfd_completeness,
};

/// "EPFD2: Eventual strong accuracy: Eventually, no correct process is
/// suspected by any correct process."
///
/// On a quiesced run: no correct process's last suspect/restore about a
/// correct process is a suspect.
pub const EPFD2: Property = Property {
    id: "EPFD2",
    statement: "Eventual strong accuracy: Eventually, no correct process is suspected by any correct process.",
    check: epfd_accuracy,
};

/// "ELD1: Eventual accuracy: There is a time after which every correct
/// process trusts some correct process."
///
/// On a quiesced run: the last process each correct process trusts is
/// correct.
pub const ELD1: Property = Property {
    id: "ELD1",
    statement: "Eventual accuracy: There is a time after which every correct process trusts some correct process.",
    check: eld_accuracy,
};

/// "ELD2: Eventual agreement: There is a time after which no two correct
/// processes trust different correct processes."
///
/// On a quiesced run: the correct processes whose last trusted process is
/// correct all trust the same one.
pub const ELD2: Property = Property {
    id: "ELD2",
    statement: "Eventual agreement: There is a time after which no two correct processes trust different correct processes.",
    check: eld_agreement,
};

/// The manager's crash record of each crashed process (the first, if a
/// restarted instance crashed again), for the time of the crash. A perfect
/// failure detector's own `crash p` indications are not crash records.
pub(crate) fn crash_records(run: &RunEvents) -> BTreeMap<&str, &Event> {
    let mut records = BTreeMap::new();
    for e in run.all().filter(|e| is_crash_record(e)) {
        records.entry(e.process.as_str()).or_insert(e);
    }
    records
}

/// The book's correct processes: those without a crash record.
pub(crate) fn correct(run: &RunEvents) -> Vec<String> {
    run.correct()
}

/// A process's indications named `events` that are about another process
/// (a `peer`), in its order. The manager's records are never indications.
fn indications<'a>(run: &'a RunEvents, process: &str, events: &[&str]) -> Vec<&'a Event> {
    run.of(process)
        .iter()
        .filter(|e| e.by.is_none() && e.peer.is_some() && events.contains(&e.event.as_str()))
        .collect()
}

/// The last of `process`'s indications named `events` about `about`.
fn last_about<'a>(run: &'a RunEvents, process: &str, about: &str, events: &[&str]) -> Option<&'a Event> {
    indications(run, process, events).into_iter().rev().find(|e| e.peer.as_deref() == Some(about))
}

/// The last of `process`'s indications named `event`, whoever it is about.
fn last<'a>(run: &'a RunEvents, process: &str, event: &str) -> Option<&'a Event> {
    indications(run, process, &[event]).pop()
}

/// The verdict of a safety property that found no violation: it holds,
/// unless events of a dead member are missing and could hold one.
fn safe(run: &RunEvents) -> Verdict {
    if run.missing.is_empty() {
        Verdict::Holds
    } else {
        Verdict::Undecided(format!(
            "no violation in the events at hand, but those of member(s) {} are missing",
            run.missing.join(", ")
        ))
    }
}

/// How a crash record reads in a counterexample: "at t=… ('killed by SIGKILL')".
fn crashed_at(record: &Event) -> String {
    match record.text.as_deref() {
        Some(cause) => format!("at t={} ({cause})", record.time_ms),
        None => format!("at t={}", record.time_ms),
    }
}

fn peer(e: &Event) -> &str {
    e.peer.as_deref().unwrap_or("")
}

/// Completeness for P (`crash`) and ◇P (`suspect`/`restore`): every correct
/// process's last word about every crashed process is `word`.
fn completeness(run: &RunEvents, events: &[&str], word: &str, verb: &str) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let records = crash_records(run);
    for q in correct(run) {
        for (p, record) in &records {
            match last_about(run, &q, p, events) {
                Some(e) if e.event == word => {}
                Some(e) => {
                    return Verdict::Violated(format!(
                        "{q} (correct) does not {verb} {p}, which crashed {}: its last word about {p} is {} at L{}",
                        crashed_at(record),
                        e.event,
                        e.lamport
                    ));
                }
                None => {
                    return Verdict::Violated(format!(
                        "{q} (correct) never {verb}ed {p}, which crashed {}",
                        crashed_at(record)
                    ));
                }
            }
        }
    }
    Verdict::Holds
}

fn pfd_completeness(run: &RunEvents) -> Verdict {
    completeness(run, &["crash"], "crash", "detect")
}

fn pfd_accuracy(run: &RunEvents) -> Verdict {
    let records = crash_records(run);
    for q in &run.processes {
        for e in indications(run, q, &["crash"]) {
            let p = peer(e);
            match records.get(p) {
                Some(record) if record.time_ms <= e.time_ms => {}
                Some(record) => {
                    return Verdict::Violated(format!(
                        "{q} detected {p} at L{} (t={}) before {p} crashed {}",
                        e.lamport,
                        e.time_ms,
                        crashed_at(record)
                    ));
                }
                // The crash record may be on the dead member with p's events.
                None if run.missing_processes.contains(p) => {}
                None => {
                    return Verdict::Violated(format!(
                        "{q} detected {p} at L{} (t={}), but {p} never crashed",
                        e.lamport, e.time_ms
                    ));
                }
            }
        }
    }
    safe(run)
}

fn epfd_completeness(run: &RunEvents) -> Verdict {
    completeness(run, &["suspect", "restore"], "suspect", "suspect")
}

fn epfd_accuracy(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let correct = correct(run);
    for q in &correct {
        for p in &correct {
            if let Some(e) = last_about(run, q, p, &["suspect", "restore"]).filter(|e| e.event == "suspect") {
                return Verdict::Violated(format!(
                    "{q} still suspects {p}, though both are correct: suspected at L{} and never restored",
                    e.lamport
                ));
            }
        }
    }
    Verdict::Holds
}

/// ELD1 and LE1: each correct process's last `event` names a correct
/// process.
fn last_is_correct(run: &RunEvents, event: &str) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let correct = correct(run);
    let records = crash_records(run);
    for q in &correct {
        match last(run, q, event) {
            None => return Verdict::Violated(format!("{q} (correct) never indicated {event} of any process")),
            Some(e) => {
                let p = peer(e);
                if !correct.iter().any(|c| c == p) {
                    let how = records.get(p).map_or_else(
                        || "is not a process of the run".to_owned(),
                        |r| format!("crashed {}", crashed_at(r)),
                    );
                    return Verdict::Violated(format!(
                        "{q} (correct) ends with {event} {p} at L{}, but {p} {how}",
                        e.lamport
                    ));
                }
            }
        }
    }
    Verdict::Holds
}

fn le_detection(run: &RunEvents) -> Verdict {
    if correct(run).is_empty() && not_yet(run).is_none() {
        return Verdict::Holds;
    }
    last_is_correct(run, "leader")
}

fn le_accuracy(run: &RunEvents) -> Verdict {
    let records = crash_records(run);
    // Every election: (process, its position in the process's order, event).
    let elections: Vec<(&str, usize, &Event)> = run
        .processes
        .iter()
        .flat_map(|q| indications(run, q, &["leader"]).into_iter().enumerate().map(move |(i, e)| (q.as_str(), i, e)))
        .collect();
    for &(q, i, e) in &elections {
        let leader = peer(e);
        for &(q2, i2, e2) in &elections {
            let previous = if q2 == q { i2 < i } else { e2.time_ms < e.time_ms };
            let other = peer(e2);
            if !previous || other == leader {
                continue;
            }
            match records.get(other) {
                Some(record) if record.time_ms <= e.time_ms => {}
                None if run.missing_processes.contains(other) => {}
                record => {
                    let state = match record {
                        Some(r) => format!("had not crashed yet (it crashed {})", crashed_at(r)),
                        None => "never crashed".to_owned(),
                    };
                    return Verdict::Violated(format!(
                        "{q} elected {leader} at L{} (t={}), but {other}, elected before by {q2} at L{} (t={}), {state}",
                        e.lamport, e.time_ms, e2.lamport, e2.time_ms
                    ));
                }
            }
        }
    }
    safe(run)
}

fn eld_accuracy(run: &RunEvents) -> Verdict {
    last_is_correct(run, "trust")
}

fn eld_agreement(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let correct = correct(run);
    let mut first: Option<(&str, &Event)> = None;
    for q in &correct {
        let Some(e) = last(run, q, "trust") else { continue };
        // Trusting a crashed process is ELD1's business.
        if !correct.iter().any(|c| c == peer(e)) {
            continue;
        }
        match first {
            None => first = Some((q, e)),
            Some((q1, e1)) if peer(e1) != peer(e) => {
                return Verdict::Violated(format!(
                    "{q1} ends trusting {} (L{}) and {q} ends trusting {} (L{}), both correct",
                    peer(e1),
                    e1.lamport,
                    peer(e),
                    e.lamport
                ));
            }
            Some(_) => {}
        }
    }
    Verdict::Holds
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;

    /// An indication of `q` about `p` at Lamport `l` and time `t`.
    fn ind(q: &str, event: &str, p: &str, l: u64, t: u64) -> Event {
        Event { lamport: l, time_ms: t, ..ev(q, event, Some(p), None, None) }
    }

    /// The manager's crash record of `p` at time `t`.
    fn crash(p: &str, t: u64) -> Event {
        Event { time_ms: t, by: Some("mgr".into()), ..ev(p, "crash", None, None, Some("killed by SIGKILL")) }
    }

    fn run(n: usize, events: impl IntoIterator<Item = Event>) -> RunEvents {
        RunEvents::from_events(n, events)
    }

    fn violated(v: Verdict) -> String {
        match v {
            Verdict::Violated(why) => why,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn undecided(v: Verdict) -> String {
        match v {
            Verdict::Undecided(why) => why,
            other => panic!("expected undecided, got {other:?}"),
        }
    }

    fn not_quiesced(mut run: RunEvents) -> RunEvents {
        run.quiesced = false;
        run
    }

    fn with_missing(mut run: RunEvents, process: &str) -> RunEvents {
        run.missing = vec!["m2".into()];
        run.missing_processes.insert(process.into());
        run
    }

    #[test]
    fn modules_declare_the_books_properties_in_order() {
        let ids = |m| properties(m).unwrap().iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids("PerfectFailureDetector"), ["PFD1", "PFD2"]);
        assert_eq!(ids("LeaderElection"), ["LE1", "LE2"]);
        assert_eq!(ids("EventuallyPerfectFailureDetector"), ["EPFD1", "EPFD2"]);
        assert_eq!(ids("EventualLeaderDetector"), ["ELD1", "ELD2"]);
        for m in crate::detectors::MODULES {
            assert!(properties(m.name).is_some(), "{}", m.name);
        }
        assert!(properties("PerfectPointToPointLink").is_none());
    }

    #[test]
    fn detections_do_not_make_the_detector_crashed() {
        let r = run(3, [crash("p3", 100), ind("p1", "crash", "p3", 4, 1200)]);
        assert_eq!(correct(&r), ["p1", "p2"]);
        assert_eq!(crash_records(&r).keys().copied().collect::<Vec<_>>(), ["p3"]);
    }

    #[test]
    fn pfd1_strong_completeness() {
        let events = vec![crash("p3", 100), ind("p1", "crash", "p3", 4, 1200), ind("p2", "crash", "p3", 5, 1210)];
        assert_eq!((PFD1.check)(&run(3, events.clone())), Verdict::Holds);
        let short = run(3, events[..2].to_vec());
        assert_eq!(
            violated((PFD1.check)(&short)),
            "p2 (correct) never detected p3, which crashed at t=100 (killed by SIGKILL)"
        );
        assert!(undecided((PFD1.check)(&not_quiesced(short.clone()))).contains("quiesced"));
        assert!(undecided((PFD1.check)(&with_missing(short, "p2"))).contains("m2"));
    }

    #[test]
    fn pfd2_strong_accuracy() {
        let ok = run(3, [crash("p3", 100), ind("p1", "crash", "p3", 4, 1200)]);
        assert_eq!((PFD2.check)(&ok), Verdict::Holds);
        let never = run(3, [ind("p1", "crash", "p2", 4, 1200)]);
        assert_eq!(violated((PFD2.check)(&never)), "p1 detected p2 at L4 (t=1200), but p2 never crashed");
        let early = run(3, [ind("p1", "crash", "p3", 4, 90), crash("p3", 100)]);
        assert_eq!(
            violated((PFD2.check)(&early)),
            "p1 detected p3 at L4 (t=90) before p3 crashed at t=100 (killed by SIGKILL)"
        );
        // Safety is decided while running, too.
        assert!(matches!((PFD2.check)(&not_quiesced(early)), Verdict::Violated(_)));
        // p2's crash record may be on the missing member.
        assert!(undecided((PFD2.check)(&with_missing(never, "p2"))).contains("m2"));
    }

    #[test]
    fn epfd1_strong_completeness() {
        let events = vec![
            crash("p3", 100),
            ind("p1", "suspect", "p3", 4, 1200),
            ind("p2", "suspect", "p3", 3, 1200),
            ind("p2", "restore", "p3", 6, 1300),
            ind("p2", "suspect", "p3", 9, 2500),
        ];
        assert_eq!((EPFD1.check)(&run(3, events.clone())), Verdict::Holds);
        let restored = run(3, events[..4].to_vec());
        assert_eq!(
            violated((EPFD1.check)(&restored)),
            "p2 (correct) does not suspect p3, which crashed at t=100 (killed by SIGKILL): its last word about p3 is restore at L6"
        );
        let never = run(3, events[..2].to_vec());
        assert!(violated((EPFD1.check)(&never)).starts_with("p2 (correct) never suspected p3"));
        assert!(undecided((EPFD1.check)(&not_quiesced(never.clone()))).contains("quiesced"));
        assert!(undecided((EPFD1.check)(&with_missing(never, "p2"))).contains("m2"));
    }

    #[test]
    fn epfd2_eventual_strong_accuracy() {
        let mut events = vec![ind("p1", "suspect", "p2", 4, 1200), ind("p1", "restore", "p2", 7, 2200)];
        assert_eq!((EPFD2.check)(&run(2, events.clone())), Verdict::Holds);
        events.push(ind("p1", "suspect", "p2", 12, 3200));
        let why = violated((EPFD2.check)(&run(2, events.clone())));
        assert_eq!(why, "p1 still suspects p2, though both are correct: suspected at L12 and never restored");
        // Suspecting a crashed process is accurate.
        events.push(crash("p2", 3000));
        assert_eq!((EPFD2.check)(&run(2, events.clone())), Verdict::Holds);
        assert!(undecided((EPFD2.check)(&not_quiesced(run(2, events.clone())))).contains("quiesced"));
        assert!(undecided((EPFD2.check)(&with_missing(run(2, events), "p2"))).contains("m2"));
    }

    #[test]
    fn le1_eventual_detection() {
        let events = vec![
            ind("p1", "leader", "p1", 1, 10),
            ind("p2", "leader", "p1", 1, 10),
            ind("p3", "leader", "p1", 1, 10),
            crash("p1", 100),
            ind("p2", "leader", "p2", 5, 1200),
            ind("p3", "leader", "p2", 5, 1200),
        ];
        assert_eq!((LE1.check)(&run(3, events.clone())), Verdict::Holds);
        let stuck = run(3, events[..5].to_vec());
        assert_eq!(
            violated((LE1.check)(&stuck)),
            "p3 (correct) ends with leader p1 at L1, but p1 crashed at t=100 (killed by SIGKILL)"
        );
        let silent = run(2, [ind("p1", "leader", "p1", 1, 10)]);
        assert_eq!(violated((LE1.check)(&silent)), "p2 (correct) never indicated leader of any process");
        // No correct process: nothing to elect.
        assert_eq!((LE1.check)(&run(1, [crash("p1", 5)])), Verdict::Holds);
        assert!(undecided((LE1.check)(&not_quiesced(stuck.clone()))).contains("quiesced"));
        assert!(undecided((LE1.check)(&with_missing(stuck, "p3"))).contains("m2"));
    }

    #[test]
    fn le2_accuracy() {
        let events = vec![
            ind("p1", "leader", "p1", 1, 10),
            ind("p2", "leader", "p1", 1, 10),
            crash("p1", 100),
            ind("p2", "leader", "p2", 5, 1200),
        ];
        assert_eq!((LE2.check)(&run(2, events.clone())), Verdict::Holds);
        // p2 elects itself while p1 is alive.
        let early = run(2, [ind("p1", "leader", "p1", 1, 10), ind("p2", "leader", "p2", 3, 50), crash("p1", 100)]);
        assert_eq!(
            violated((LE2.check)(&early)),
            "p2 elected p2 at L3 (t=50), but p1, elected before by p1 at L1 (t=10), had not crashed yet (it crashed at t=100 (killed by SIGKILL))"
        );
        // Two leaders at once, neither crashed, decided while running.
        let two = not_quiesced(run(3, [ind("p1", "leader", "p1", 1, 10), ind("p3", "leader", "p3", 2, 20)]));
        assert!(violated((LE2.check)(&two)).contains("p1, elected before by p1 at L1 (t=10), never crashed"));
        assert!(undecided((LE2.check)(&with_missing(run(2, events), "p2"))).contains("m2"));
    }

    #[test]
    fn eld1_eventual_accuracy() {
        let events = vec![
            ind("p1", "trust", "p1", 1, 10),
            ind("p2", "trust", "p1", 1, 10),
            crash("p1", 100),
            ind("p2", "trust", "p2", 6, 1500),
        ];
        assert_eq!((ELD1.check)(&run(2, events.clone())), Verdict::Holds);
        let stuck = run(2, events[..3].to_vec());
        assert_eq!(
            violated((ELD1.check)(&stuck)),
            "p2 (correct) ends with trust p1 at L1, but p1 crashed at t=100 (killed by SIGKILL)"
        );
        assert!(undecided((ELD1.check)(&not_quiesced(stuck.clone()))).contains("quiesced"));
        assert!(undecided((ELD1.check)(&with_missing(stuck, "p2"))).contains("m2"));
    }

    #[test]
    fn eld2_eventual_agreement() {
        let mut events = vec![
            ind("p1", "trust", "p1", 1, 10),
            ind("p2", "trust", "p2", 1, 10),
            ind("p3", "trust", "p1", 1, 10),
            ind("p2", "trust", "p1", 4, 900),
        ];
        assert_eq!((ELD2.check)(&run(3, events.clone())), Verdict::Holds);
        events.push(ind("p3", "trust", "p3", 8, 2000));
        assert_eq!(
            violated((ELD2.check)(&run(3, events.clone()))),
            "p1 ends trusting p1 (L1) and p3 ends trusting p3 (L8), both correct"
        );
        assert!(undecided((ELD2.check)(&not_quiesced(run(3, events.clone())))).contains("quiesced"));
        assert!(undecided((ELD2.check)(&with_missing(run(3, events), "p3"))).contains("m2"));
    }
}
