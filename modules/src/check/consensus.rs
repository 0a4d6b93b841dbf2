//! The properties of the book's consensus chapter (Modules 5.1, 5.2 and
//! 6.1: consensus, uniform consensus and total-order broadcast), checked on
//! a run's events.
//!
//! This file owns the checkers of C1–C4, UC1–UC4 and TOB1–TOB5, reading the
//! `propose` and `decide` events of the consensus modules and the
//! `broadcast` and `deliver` events of total-order broadcast. It must not do
//! I/O and must not guess: a violation is reported only when the events
//! prove it; liveness waits for the run to quiesce ([`not_yet`]), and safety
//! without a violation is undecided while a member's events are missing.
//!
//! The algorithms (flooding or hierarchical) are module arguments, not
//! modules of their own: every variant declares its module's properties.
//! The correct processes are those without a crash record of the manager;
//! a failure detector's `crash` output (an event with a peer) is a
//! suspicion of the peer, not a crash of the process that wrote it.

use std::collections::{BTreeMap, BTreeSet};

use super::registers::faulty;
use super::{Event, Property, RunEvents, Verdict, not_yet};

/// The properties `module` declares, if it is one of this chapter's.
pub fn properties(module: &str) -> Option<Vec<Property>> {
    match module {
        "Consensus" => Some(vec![C1, C2, C3, C4]),
        "UniformConsensus" => Some(vec![UC1, UC2, UC3, UC4]),
        "TotalOrderBroadcast" => Some(vec![TOB1, TOB2, TOB3, TOB4, TOB5]),
        _ => None,
    }
}

/// Module 5.1, C1.
pub const C1: Property = Property {
    id: "C1",
    statement: "Termination: Every correct process eventually decides some value.",
    check: termination,
};

/// Module 5.1, C2.
pub const C2: Property = Property {
    id: "C2",
    statement: "Validity: If a process decides v, then v was proposed by some process.",
    check: validity,
};

/// Module 5.1, C3.
pub const C3: Property = Property { id: "C3", statement: "Integrity: No process decides twice.", check: integrity };

/// Module 5.1, C4.
pub const C4: Property =
    Property { id: "C4", statement: "Agreement: No two correct processes decide differently.", check: agreement };

/// Module 5.2, UC1.
pub const UC1: Property = Property {
    id: "UC1",
    statement: "Termination: Every correct process eventually decides some value.",
    check: termination,
};

/// Module 5.2, UC2.
pub const UC2: Property = Property {
    id: "UC2",
    statement: "Validity: If a process decides v, then v was proposed by some process.",
    check: validity,
};

/// Module 5.2, UC3.
pub const UC3: Property = Property { id: "UC3", statement: "Integrity: No process decides twice.", check: integrity };

/// Module 5.2, UC4.
pub const UC4: Property = Property {
    id: "UC4",
    statement: "Uniform agreement: No two processes decide differently.",
    check: uniform_agreement,
};

/// Module 6.1, TOB1.
pub const TOB1: Property = Property {
    id: "TOB1",
    statement: "Validity: If a correct process p broadcasts a message m, then p eventually delivers m.",
    check: tob_validity,
};

/// Module 6.1, TOB2.
pub const TOB2: Property = Property {
    id: "TOB2",
    statement: "No duplication: No message is delivered more than once.",
    check: tob_no_duplication,
};

/// Module 6.1, TOB3.
pub const TOB3: Property = Property {
    id: "TOB3",
    statement: "No creation: If a process delivers a message m with sender s, then m was previously broadcast by process s.",
    check: tob_no_creation,
};

/// Module 6.1, TOB4.
pub const TOB4: Property = Property {
    id: "TOB4",
    statement: "Agreement: If a message m is delivered by some correct process, then m is eventually delivered by every correct process.",
    check: tob_agreement,
};

/// Module 6.1, TOB5.
pub const TOB5: Property = Property {
    id: "TOB5",
    statement: "Total order: Let m1 and m2 be any two messages and suppose p and q are any two correct processes that deliver m1 and m2. If p delivers m1 before m2, then q delivers m1 before m2.",
    check: tob_total_order,
};

/// "L12", an event's Lamport time, how counterexamples name events.
fn l(e: &Event) -> String {
    format!("L{}", e.lamport)
}

/// The text of an event (a proposal, a decision, a message).
fn text(e: &Event) -> &str {
    e.text.as_deref().unwrap_or("")
}

/// What a safety check found: a violation, or Undecided when events of a
/// dead member are missing (they could hold one), or Holds.
fn safety(run: &RunEvents, violation: Option<String>) -> Verdict {
    match violation {
        Some(why) => Verdict::Violated(why),
        None if !run.missing.is_empty() => Verdict::Undecided(format!(
            "no violation in the events at hand, but those of member(s) {} are missing",
            run.missing.join(", ")
        )),
        None => Verdict::Holds,
    }
}

/// The processes of the run that did not crash, in `p1..pN` order.
fn correct(run: &RunEvents) -> Vec<String> {
    let faulty = faulty(run);
    run.processes.iter().filter(|p| !faulty.contains(*p)).cloned().collect()
}

/// One process's events named `name`.
fn named<'a>(run: &'a RunEvents, process: &str, name: &'a str) -> impl Iterator<Item = &'a Event> + use<'a> {
    run.of(process).iter().filter(move |e| e.event == name)
}

/// C1 / UC1. The book's algorithms presume that every correct process
/// proposes; a correct process that never proposed cannot be held to decide
/// (the modules wait for the user's proposal), so it makes the property
/// undecided rather than violated, unless it decided anyway.
fn termination(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let mut idle = Vec::new();
    for p in correct(run) {
        if named(run, &p, "decide").next().is_some() {
            continue;
        }
        match named(run, &p, "propose").next() {
            Some(proposal) => {
                return Verdict::Violated(format!(
                    "{p} proposed {} at {} and never decided, and {p} did not crash",
                    text(proposal),
                    l(proposal)
                ));
            }
            None => idle.push(p),
        }
    }
    if idle.is_empty() {
        Verdict::Holds
    } else {
        Verdict::Undecided(format!(
            "correct process(es) {} neither proposed nor decided; the book presumes every correct process proposes",
            idle.join(", ")
        ))
    }
}

/// C2 / UC2: every decision is some process's proposal.
fn validity(run: &RunEvents) -> Verdict {
    let proposed: BTreeSet<&str> = run.all().filter(|e| e.event == "propose").map(text).collect();
    let bad = run.all().find(|e| e.event == "decide" && !proposed.contains(text(e)));
    safety(run, bad.map(|d| format!("{} decided {} ({}), which no process proposed", d.process, text(d), l(d))))
}

/// C3 / UC3: one decision per process at most.
fn integrity(run: &RunEvents) -> Verdict {
    let bad = run.by_process.iter().find_map(|(p, events)| {
        let decisions: Vec<&Event> = events.iter().filter(|e| e.event == "decide").collect();
        (decisions.len() > 1).then(|| {
            format!(
                "{p} decided twice: {} ({}) and {} ({})",
                text(decisions[0]),
                l(decisions[0]),
                text(decisions[1]),
                l(decisions[1])
            )
        })
    });
    safety(run, bad)
}

/// The first two decisions that differ among `processes`' decisions.
fn disagreement(run: &RunEvents, processes: &[String]) -> Option<String> {
    let decisions: Vec<&Event> = processes.iter().flat_map(|p| named(run, p, "decide")).collect();
    let first = decisions.first()?;
    let other = decisions.iter().find(|d| text(d) != text(first))?;
    Some(format!(
        "{} decided {} and {} decided {} ({}, {})",
        first.process,
        text(first),
        other.process,
        text(other),
        l(first),
        l(other)
    ))
}

/// C4: the decisions of correct processes agree.
fn agreement(run: &RunEvents) -> Verdict {
    safety(run, disagreement(run, &correct(run)))
}

/// UC4: the decisions of all processes agree, crashed ones' included.
fn uniform_agreement(run: &RunEvents) -> Verdict {
    safety(run, disagreement(run, &run.processes))
}

/// A total-order broadcast message: its sender and the sender's number
/// for it (the `id` of the `broadcast` and of every `deliver`).
type Message = (String, u64);

/// "p2#1 (hello)".
fn name(m: &Message, text: &str) -> String {
    format!("{}#{} ({text})", m.0, m.1)
}

/// Every `broadcast` of the run, by message.
fn broadcasts(run: &RunEvents) -> BTreeMap<Message, &Event> {
    run.all().filter(|e| e.event == "broadcast").filter_map(|e| Some(((e.process.clone(), e.id?), e))).collect()
}

/// One process's deliveries in order, as (message, event).
fn deliveries<'a>(run: &'a RunEvents, p: &str) -> Vec<(Message, &'a Event)> {
    named(run, p, "deliver").filter_map(|e| Some(((e.peer.clone()?, e.id?), e))).collect()
}

/// TOB1: a correct broadcaster delivers its own message.
fn tob_validity(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    for p in correct(run) {
        let delivered: BTreeSet<Message> = deliveries(run, &p).into_iter().map(|(m, _)| m).collect();
        for b in named(run, &p, "broadcast") {
            let Some(id) = b.id else { continue };
            let m = (p.clone(), id);
            if !delivered.contains(&m) {
                return Verdict::Violated(format!(
                    "{p} broadcast {} at {} and never delivered it, and {p} did not crash",
                    name(&m, text(b)),
                    l(b)
                ));
            }
        }
    }
    Verdict::Holds
}

/// TOB2: no process delivers a message twice.
fn tob_no_duplication(run: &RunEvents) -> Verdict {
    let bad = run.processes.iter().find_map(|p| {
        let mut seen: BTreeMap<Message, &Event> = BTreeMap::new();
        deliveries(run, p).into_iter().find_map(|(m, e)| {
            seen.insert(m.clone(), e)
                .map(|first| format!("{p} delivered {} twice ({}, {})", name(&m, text(e)), l(first), l(e)))
        })
    });
    safety(run, bad)
}

/// TOB3: a delivered message was broadcast by its sender, with that text.
/// The module records its `broadcast` after handing the message down, so
/// the sender's own delivery may come first in its file: only the
/// broadcast's existence is checked, not that it came before.
fn tob_no_creation(run: &RunEvents) -> Verdict {
    let sent = broadcasts(run);
    let bad = run.processes.iter().find_map(|p| {
        deliveries(run, p).into_iter().find_map(|(m, e)| match sent.get(&m) {
            None if !run.missing_processes.contains(&m.0) => Some(format!(
                "{p} delivered {} from {} at {}, which {} never broadcast",
                name(&m, text(e)),
                m.0,
                l(e),
                m.0
            )),
            Some(b) if text(b) != text(e) => Some(format!(
                "{p} delivered {} at {}, but {} broadcast {} as #{}",
                name(&m, text(e)),
                l(e),
                m.0,
                text(b),
                m.1
            )),
            _ => None,
        })
    });
    safety(run, bad)
}

/// TOB4: what one correct process delivers, every correct process delivers.
fn tob_agreement(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let correct = correct(run);
    let delivered: Vec<(String, BTreeSet<Message>)> =
        correct.iter().map(|p| (p.clone(), deliveries(run, p).into_iter().map(|(m, _)| m).collect())).collect();
    for (p, events) in correct.iter().map(|p| (p, deliveries(run, p))) {
        for (m, e) in events {
            if let Some((q, _)) = delivered.iter().find(|(_, set)| !set.contains(&m)) {
                return Verdict::Violated(format!(
                    "{p} delivered {} at {}, but {q} never did, and neither crashed",
                    name(&m, text(e)),
                    l(e)
                ));
            }
        }
    }
    Verdict::Holds
}

/// TOB5: any two correct processes deliver the messages they both
/// delivered in the same order. Restricted to those common messages, the
/// two sequences must be equal; at their first difference, p delivered a
/// before b and q delivered b before a.
fn tob_total_order(run: &RunEvents) -> Verdict {
    let correct = correct(run);
    let all: Vec<(String, Vec<(Message, &Event)>)> = correct.iter().map(|p| (p.clone(), deliveries(run, p))).collect();
    for (i, (p, ps)) in all.iter().enumerate() {
        for (q, qs) in &all[i + 1..] {
            let p_set: BTreeSet<&Message> = ps.iter().map(|(m, _)| m).collect();
            let q_set: BTreeSet<&Message> = qs.iter().map(|(m, _)| m).collect();
            let pc = ps.iter().filter(|(m, _)| q_set.contains(m));
            let qc = qs.iter().filter(|(m, _)| p_set.contains(m));
            if let Some(((a, pa), (b, qb))) = pc.zip(qc).find(|((a, _), (b, _))| a != b) {
                let pb = ps.iter().find(|(m, _)| m == b).map_or(String::new(), |(_, e)| l(e));
                let qa = qs.iter().find(|(m, _)| m == a).map_or(String::new(), |(_, e)| l(e));
                return safety(
                    run,
                    Some(format!(
                        "{p} delivered {} ({}) before {} ({pb}), but {q} delivered {} ({}) before {} ({qa})",
                        name(a, text(pa)),
                        l(pa),
                        name(b, text(qb)),
                        name(b, text(qb)),
                        l(qb),
                        name(a, text(pa)),
                    )),
                );
            }
        }
    }
    safety(run, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::ev;

    /// An event at Lamport time `l`.
    fn at(process: &str, event: &str, text: &str, l: u64) -> Event {
        Event { lamport: l, ..ev(process, event, None, None, Some(text)) }
    }

    fn crash(process: &str) -> Event {
        Event { by: Some("mgr".into()), ..ev(process, "crash", None, None, Some("killed by SIGKILL")) }
    }

    fn violated(verdict: Verdict) -> String {
        match verdict {
            Verdict::Violated(why) => why,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    /// Three processes propose; p3 crashes after deciding differently
    /// (allowed for regular consensus, not for uniform consensus).
    fn run_with_crash() -> RunEvents {
        RunEvents::from_events(
            3,
            [
                at("p1", "propose", "5", 1),
                at("p2", "propose", "7", 1),
                at("p3", "propose", "3", 1),
                at("p3", "decide", "3", 2),
                crash("p3"),
                at("p1", "decide", "5", 12),
                at("p2", "decide", "5", 15),
            ],
        )
    }

    #[test]
    fn the_chapter_declares_its_modules_properties_in_the_books_order() {
        let ids = |m| properties(m).unwrap().iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids("Consensus"), ["C1", "C2", "C3", "C4"]);
        assert_eq!(ids("UniformConsensus"), ["UC1", "UC2", "UC3", "UC4"]);
        assert_eq!(ids("TotalOrderBroadcast"), ["TOB1", "TOB2", "TOB3", "TOB4", "TOB5"]);
        assert!(properties("AtomicRegister").is_none());
    }

    #[test]
    fn termination_holds_fails_and_waits() {
        let mut r = run_with_crash();
        assert_eq!(termination(&r), Verdict::Holds);
        r.by_process.get_mut("p2").unwrap().pop();
        assert_eq!(violated(termination(&r)), "p2 proposed 7 at L1 and never decided, and p2 did not crash");
        r.quiesced = false;
        assert!(matches!(termination(&r), Verdict::Undecided(_)));
        // A correct process that never proposed leaves it undecided.
        let r = RunEvents::from_events(2, [at("p1", "propose", "1", 1), at("p1", "decide", "1", 2)]);
        assert!(matches!(termination(&r), Verdict::Undecided(why) if why.contains("p2")));
        // A detector's crash output is not a crash of its writer.
        let r = RunEvents::from_events(2, [at("p1", "propose", "1", 1), ev("p1", "crash", Some("p2"), None, None)]);
        assert!(matches!(termination(&r), Verdict::Violated(_)));
    }

    #[test]
    fn validity_holds_and_fails() {
        let mut r = run_with_crash();
        assert_eq!(validity(&r), Verdict::Holds);
        r.by_process.get_mut("p2").unwrap().push(at("p2", "decide", "9", 20));
        assert_eq!(violated(validity(&r)), "p2 decided 9 (L20), which no process proposed");
        let mut r = run_with_crash();
        r.missing = vec!["m2".into()];
        assert!(matches!(validity(&r), Verdict::Undecided(_)));
    }

    #[test]
    fn integrity_holds_and_fails() {
        let mut r = run_with_crash();
        assert_eq!(integrity(&r), Verdict::Holds);
        r.by_process.get_mut("p1").unwrap().push(at("p1", "decide", "5", 20));
        assert_eq!(violated(integrity(&r)), "p1 decided twice: 5 (L12) and 5 (L20)");
    }

    #[test]
    fn agreement_counts_correct_processes_and_uniform_agreement_all() {
        let r = run_with_crash();
        assert_eq!(agreement(&r), Verdict::Holds);
        assert_eq!(violated(uniform_agreement(&r)), "p1 decided 5 and p3 decided 3 (L12, L2)");
        let mut r = run_with_crash();
        r.by_process.get_mut("p2").unwrap().last_mut().unwrap().text = Some("7".into());
        assert_eq!(violated(agreement(&r)), "p1 decided 5 and p2 decided 7 (L12, L15)");
        let mut r = run_with_crash();
        r.by_process.get_mut("p3").unwrap().clear();
        assert_eq!(uniform_agreement(&r), Verdict::Holds);
        r.missing = vec!["m3".into()];
        assert!(matches!(uniform_agreement(&r), Verdict::Undecided(_)));
    }

    fn bcast(p: &str, id: u64, m: &str, l: u64) -> Event {
        Event { lamport: l, ..ev(p, "broadcast", None, Some(id), Some(m)) }
    }

    fn deliver(p: &str, from: &str, id: u64, m: &str, l: u64) -> Event {
        Event { lamport: l, ..ev(p, "deliver", Some(from), Some(id), Some(m)) }
    }

    /// p1 and p2 broadcast concurrently; all three deliver p2#1 then p1#1;
    /// p3 crashes after delivering only the first.
    fn tob_run() -> Vec<Event> {
        vec![
            bcast("p1", 1, "a", 1),
            bcast("p2", 1, "b", 1),
            deliver("p1", "p2", 1, "b", 10),
            deliver("p1", "p1", 1, "a", 11),
            deliver("p2", "p2", 1, "b", 10),
            deliver("p2", "p1", 1, "a", 11),
            deliver("p3", "p2", 1, "b", 10),
            crash("p3"),
        ]
    }

    fn tob(events: Vec<Event>) -> RunEvents {
        RunEvents::from_events(3, events)
    }

    #[test]
    fn tob_validity_holds_fails_and_waits() {
        assert_eq!(tob_validity(&tob(tob_run())), Verdict::Holds);
        let mut events = tob_run();
        events.remove(3);
        assert_eq!(
            violated(tob_validity(&tob(events))),
            "p1 broadcast p1#1 (a) at L1 and never delivered it, and p1 did not crash"
        );
        let mut r = tob(tob_run());
        r.quiesced = false;
        assert!(matches!(tob_validity(&r), Verdict::Undecided(_)));
    }

    #[test]
    fn tob_no_duplication_holds_and_fails() {
        assert_eq!(tob_no_duplication(&tob(tob_run())), Verdict::Holds);
        let mut events = tob_run();
        events.push(deliver("p2", "p2", 1, "b", 14));
        assert_eq!(violated(tob_no_duplication(&tob(events))), "p2 delivered p2#1 (b) twice (L10, L14)");
    }

    #[test]
    fn tob_no_creation_holds_and_fails() {
        assert_eq!(tob_no_creation(&tob(tob_run())), Verdict::Holds);
        let mut events = tob_run();
        events.push(deliver("p2", "p3", 4, "x", 14));
        assert_eq!(
            violated(tob_no_creation(&tob(events))),
            "p2 delivered p3#4 (x) from p3 at L14, which p3 never broadcast"
        );
        let mut events = tob_run();
        events[2].text = Some("forged".into());
        assert_eq!(
            violated(tob_no_creation(&tob(events))),
            "p1 delivered p2#1 (forged) at L10, but p2 broadcast b as #1"
        );
        let mut r = tob(tob_run());
        r.missing = vec!["m1".into()];
        assert!(matches!(tob_no_creation(&r), Verdict::Undecided(_)));
    }

    #[test]
    fn tob_agreement_holds_fails_and_waits() {
        // p3 crashed: it owes nothing.
        assert_eq!(tob_agreement(&tob(tob_run())), Verdict::Holds);
        let mut events = tob_run();
        events.remove(5);
        assert_eq!(
            violated(tob_agreement(&tob(events))),
            "p1 delivered p1#1 (a) at L11, but p2 never did, and neither crashed"
        );
        let mut r = tob(tob_run());
        r.missing = vec!["m2".into()];
        assert!(matches!(tob_agreement(&r), Verdict::Undecided(_)));
    }

    #[test]
    fn tob_total_order_holds_and_fails() {
        assert_eq!(tob_total_order(&tob(tob_run())), Verdict::Holds);
        let mut events = tob_run();
        events.swap(4, 5);
        events[4].lamport = 10;
        events[5].lamport = 11;
        assert_eq!(
            violated(tob_total_order(&tob(events))),
            "p1 delivered p2#1 (b) (L10) before p1#1 (a) (L11), but p2 delivered p1#1 (a) (L10) before p2#1 (b) (L11)"
        );
        // A crashed process's order is not constrained (regular TOB).
        let mut events = tob_run();
        events.insert(6, deliver("p3", "p1", 1, "a", 9));
        assert_eq!(tob_total_order(&tob(events)), Verdict::Holds);
        let mut r = tob(tob_run());
        r.missing = vec!["m2".into()];
        assert!(matches!(tob_total_order(&r), Verdict::Undecided(_)));
    }
}
