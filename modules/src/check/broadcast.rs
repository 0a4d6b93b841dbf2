//! The properties of the book's broadcast chapter (chapter 3), checked on a
//! run's events: best-effort (BEB1–BEB3), reliable (RB1–RB4), uniform
//! reliable (URB1–URB4), probabilistic (PB1–PB3), FIFO-order (FRB1–FRB5) and
//! causal-order (CRB1–CRB5) broadcast.
//!
//! It owns the reading of a broadcast's interface events: `broadcast` (at
//! the sender, `id` = the message's number there, `text` = m) and
//! `deliver` (`peer` = the original sender, the same `id`). A message is
//! identified by (original sender, number). The links' `send` and `receive`
//! events below the broadcast are in the same files and are never read
//! here: they are not the broadcast's indications. It also offers
//! [`order_disagreement`], the "same relative order" test that total-order
//! broadcast's checker reuses.
//!
//! It must not do I/O or decide anything about a run's lifetime: liveness
//! waits for [`not_yet`], and which processes are correct is
//! [`RunEvents::correct`]'s answer (no crash record), not this file's.

use std::collections::{BTreeMap, BTreeSet};

use super::{Event, Property, RunEvents, Verdict, not_yet};

/// The properties `module` declares, if it is one of this chapter's.
///
/// The catalog's names come first; the book's own spellings of the FIFO and
/// causal modules are accepted too, so a user who types the book's name gets
/// the same answer.
pub fn properties(module: &str) -> Option<Vec<Property>> {
    let props = match module {
        "BestEffortBroadcast" => vec![
            Property {
                id: "BEB1",
                statement: "Validity: If a correct process broadcasts a message m, then every correct process eventually delivers m.",
                check: beb_validity,
            },
            Property { id: "BEB2", statement: NO_DUPLICATION, check: no_duplication },
            Property { id: "BEB3", statement: NO_CREATION, check: no_creation },
        ],
        "ReliableBroadcast" => reliable("RB1", "RB2", "RB3", "RB4"),
        "UniformReliableBroadcast" => vec![
            Property { id: "URB1", statement: RB_VALIDITY, check: rb_validity },
            Property { id: "URB2", statement: NO_DUPLICATION, check: no_duplication },
            Property { id: "URB3", statement: NO_CREATION, check: no_creation },
            Property {
                id: "URB4",
                statement: "Uniform agreement: If a message m is delivered by some process (whether correct or faulty), then m is eventually delivered by every correct process.",
                check: uniform_agreement,
            },
        ],
        "ProbabilisticBroadcast" => vec![
            Property {
                id: "PB1",
                statement: "Probabilistic validity: There is a positive value ε such that when a correct process broadcasts a message m, the probability that every correct process eventually delivers m is at least 1 − ε.",
                check: probabilistic_validity,
            },
            Property { id: "PB2", statement: NO_DUPLICATION, check: no_duplication },
            Property { id: "PB3", statement: NO_CREATION, check: no_creation },
        ],
        "FifoReliableBroadcast" | "FIFOReliableBroadcast" => {
            let mut props = reliable("FRB1", "FRB2", "FRB3", "FRB4");
            props.push(Property {
                id: "FRB5",
                statement: "FIFO delivery: If some process broadcasts message m1 before it broadcasts message m2, then no correct process delivers m2 unless it has already delivered m1.",
                check: fifo_delivery,
            });
            props
        }
        "CausalOrderBroadcast" | "CausalOrderReliableBroadcast" => {
            let mut props = reliable("CRB1", "CRB2", "CRB3", "CRB4");
            props.push(Property {
                id: "CRB5",
                statement: "Causal delivery: For any message m1 that potentially caused a message m2, i.e., m1 → m2, no process delivers m2 unless it has already delivered m1.",
                check: causal_delivery,
            });
            props
        }
        _ => return None,
    };
    Some(props)
}

const RB_VALIDITY: &str = "Validity: If a correct process p broadcasts a message m, then p eventually delivers m.";
const NO_DUPLICATION: &str = "No duplication: No message is delivered more than once.";
const NO_CREATION: &str =
    "No creation: If a process delivers a message m with sender s, then m was previously broadcast by process s.";
const RB_AGREEMENT: &str = "Agreement: If a message m is delivered by some correct process, then m is eventually delivered by every correct process.";

/// The four properties of (regular) reliable broadcast under the labels of
/// the abstraction that inherits them (RB, FRB, CRB).
fn reliable(
    validity: &'static str,
    dup: &'static str,
    creation: &'static str,
    agree_id: &'static str,
) -> Vec<Property> {
    vec![
        Property { id: validity, statement: RB_VALIDITY, check: rb_validity },
        Property { id: dup, statement: NO_DUPLICATION, check: no_duplication },
        Property { id: creation, statement: NO_CREATION, check: no_creation },
        Property { id: agree_id, statement: RB_AGREEMENT, check: agreement },
    ]
}

/// A broadcast message: its original sender and its number there.
type Msg = (String, u64);

/// "m#2 from p1 ('hello')": how counterexamples name a message.
fn name(m: &Msg, text: Option<&str>) -> String {
    match text {
        Some(text) => format!("m#{} from {} ('{text}')", m.1, m.0),
        None => format!("m#{} from {}", m.1, m.0),
    }
}

/// " at L7": where an event is on the Lamport clock, when the run has clocks
/// (hand-written events may have none, and "at L0" would mislead).
fn at(e: &Event) -> String {
    if e.lamport > 0 { format!(" at L{}", e.lamport) } else { String::new() }
}

/// The `broadcast` events of one process, in its order.
fn broadcasts_of<'a>(run: &'a RunEvents, p: &str) -> Vec<&'a Event> {
    run.of(p).iter().filter(|e| e.event == "broadcast" && e.id.is_some()).collect()
}

/// Every broadcast of the run by message, with the sender's event.
fn all_broadcasts(run: &RunEvents) -> BTreeMap<Msg, &Event> {
    let mut all = BTreeMap::new();
    for (p, events) in &run.by_process {
        for e in events.iter().filter(|e| e.event == "broadcast") {
            if let Some(id) = e.id {
                // The first broadcast with a number is the one that counts; a
                // second with the same number is the module's bug, which no
                // creation cannot see but duplication of deliveries will.
                all.entry((p.clone(), id)).or_insert(e);
            }
        }
    }
    all
}

/// The `deliver` events of one process, in its order, each with the message
/// it delivers. A delivery without a sender or a number names no broadcast
/// message; it is left out here and reported by no creation.
fn deliveries_of<'a>(run: &'a RunEvents, p: &str) -> Vec<(Msg, &'a Event)> {
    run.of(p).iter().filter(|e| e.event == "deliver").filter_map(|e| Some(((e.peer.clone()?, e.id?), e))).collect()
}

/// Each process's first delivery of each message.
fn first_deliveries<'a>(run: &'a RunEvents, p: &str) -> BTreeMap<Msg, (usize, &'a Event)> {
    let mut first = BTreeMap::new();
    for (i, (m, e)) in deliveries_of(run, p).into_iter().enumerate() {
        first.entry(m).or_insert((i, e));
    }
    first
}

/// The verdict of a safety property that found no violation: it holds,
/// unless some member's events are missing (a violation may hide there).
fn safe(run: &RunEvents) -> Verdict {
    if run.missing.is_empty() {
        Verdict::Holds
    } else {
        Verdict::Undecided(format!(
            "no violation in the events at hand, but the events of member(s) {} are missing",
            run.missing.join(", ")
        ))
    }
}

/// BEB1. "Validity: If a correct process broadcasts a message m, then every
/// correct process eventually delivers m."
fn beb_validity(run: &RunEvents) -> Verdict {
    if let Some(v) = not_yet(run) {
        return v;
    }
    let correct = run.correct();
    let delivered: BTreeMap<&String, BTreeMap<Msg, (usize, &Event)>> =
        correct.iter().map(|q| (q, first_deliveries(run, q))).collect();
    for s in &correct {
        for b in broadcasts_of(run, s) {
            let m = (s.clone(), b.id.unwrap_or_default());
            for q in &correct {
                if !delivered[q].contains_key(&m) {
                    return Verdict::Violated(format!(
                        "{q} never delivered {}, which {s} broadcast{}; {s} and {q} are correct",
                        name(&m, b.text.as_deref()),
                        at(b)
                    ));
                }
            }
        }
    }
    Verdict::Holds
}

/// RB1, URB1, FRB1, CRB1. "Validity: If a correct process p broadcasts a
/// message m, then p eventually delivers m."
fn rb_validity(run: &RunEvents) -> Verdict {
    if let Some(v) = not_yet(run) {
        return v;
    }
    for p in run.correct() {
        let delivered = first_deliveries(run, &p);
        for b in broadcasts_of(run, &p) {
            let m = (p.clone(), b.id.unwrap_or_default());
            if !delivered.contains_key(&m) {
                return Verdict::Violated(format!(
                    "{p} broadcast {}{} but never delivered it; {p} is correct",
                    name(&m, b.text.as_deref()),
                    at(b)
                ));
            }
        }
    }
    Verdict::Holds
}

/// BEB2, RB2, URB2, PB2, FRB2, CRB2. "No duplication: No message is
/// delivered more than once."
///
/// Once per incarnation: a process that crashed and was restarted is a new
/// process of the crash-recovery model, with no memory of what its earlier
/// life delivered, so delivering a message again there is no duplication.
fn no_duplication(run: &RunEvents) -> Verdict {
    for p in &run.processes {
        let mut seen: BTreeMap<(Option<u64>, Msg), &Event> = BTreeMap::new();
        for (m, e) in deliveries_of(run, p) {
            let m = (e.inc, m);
            if let Some(first) = seen.get(&m) {
                let (_, m) = m;
                return Verdict::Violated(format!(
                    "{p} delivered {} twice:{} and again{}",
                    name(&m, e.text.as_deref()),
                    if first.lamport > 0 { format!(" at L{}", first.lamport) } else { " once".into() },
                    if e.lamport > 0 { format!(" at L{}", e.lamport) } else { String::new() }
                ));
            }
            seen.insert(m, e);
        }
    }
    safe(run)
}

/// BEB3, RB3, URB3, PB3, FRB3, CRB3. "No creation: If a process delivers a
/// message m with sender s, then m was previously broadcast by process s."
///
/// "Previously" is read from the clocks: at the sender itself the broadcast
/// comes earlier in its events; elsewhere, when the events carry Lamport
/// clocks, the broadcast's is smaller than the delivery's (the broadcast is
/// logged before its messages leave, so every delivery it causes comes
/// later). The text delivered must be the text broadcast: a message with the
/// right number and another content was not broadcast.
fn no_creation(run: &RunEvents) -> Verdict {
    let broadcasts = all_broadcasts(run);
    let mut unknown = None;
    for p in &run.processes {
        for (i, e) in run.of(p).iter().enumerate() {
            if e.event != "deliver" {
                continue;
            }
            let (Some(s), Some(id)) = (&e.peer, e.id) else {
                return Verdict::Violated(format!(
                    "{p} delivered {}{} with no {}, so no broadcast can account for it",
                    e.text.as_deref().map_or("a message".into(), |t| format!("'{t}'")),
                    at(e),
                    if e.peer.is_none() { "sender" } else { "message number" }
                ));
            };
            let m = (s.clone(), id);
            let Some(b) = broadcasts.get(&m) else {
                if run.missing_processes.contains(s) {
                    // The broadcast may be in the events we do not have.
                    unknown.get_or_insert(m);
                    continue;
                }
                return Verdict::Violated(format!(
                    "{p} delivered {}{}, which {s} never broadcast",
                    name(&m, e.text.as_deref()),
                    at(e)
                ));
            };
            if let (Some(sent), Some(got)) = (&b.text, &e.text)
                && sent != got
            {
                return Verdict::Violated(format!(
                    "{p} delivered {}{}, but {s} broadcast m#{id} as '{sent}'",
                    name(&m, Some(got)),
                    at(e)
                ));
            }
            let later = if p == s {
                run.of(p)[..i].iter().any(|x| std::ptr::eq(x, *b))
            } else {
                b.lamport == 0 || e.lamport == 0 || b.lamport < e.lamport
            };
            if !later {
                return Verdict::Violated(format!(
                    "{p} delivered {}{} before {s} broadcast it{}",
                    name(&m, e.text.as_deref()),
                    at(e),
                    at(b)
                ));
            }
        }
    }
    match unknown {
        Some(m) if run.missing.is_empty() => {
            Verdict::Undecided(format!("the events of {} (hosting the sender of {}) are missing", m.0, name(&m, None)))
        }
        _ => safe(run),
    }
}

/// Agreement over the messages delivered by `witnesses` (the correct
/// processes for RB4, every process for URB4): each correct process must
/// deliver each of them.
fn agree(run: &RunEvents, witnesses: &[String]) -> Verdict {
    if let Some(v) = not_yet(run) {
        return v;
    }
    let correct = run.correct();
    let crashed = run.crashed();
    let delivered: BTreeMap<&String, BTreeMap<Msg, (usize, &Event)>> =
        run.processes.iter().map(|q| (q, first_deliveries(run, q))).collect();
    for w in witnesses {
        for (m, (_, e)) in &delivered[w] {
            for q in &correct {
                if !delivered[q].contains_key(m) {
                    let status = if crashed.contains(w) {
                        format!("{w} crashed, {q} is correct")
                    } else if w == q {
                        format!("{q} is correct")
                    } else {
                        format!("{w} and {q} are correct")
                    };
                    return Verdict::Violated(format!(
                        "{q} never delivered {}, which {w} delivered{}; {status}",
                        name(m, e.text.as_deref()),
                        at(e)
                    ));
                }
            }
        }
    }
    Verdict::Holds
}

/// RB4, FRB4, CRB4. "Agreement: If a message m is delivered by some correct
/// process, then m is eventually delivered by every correct process."
fn agreement(run: &RunEvents) -> Verdict {
    agree(run, &run.correct())
}

/// URB4. "Uniform agreement: If a message m is delivered by some process
/// (whether correct or faulty), then m is eventually delivered by every
/// correct process." Deliveries by crashed processes count.
fn uniform_agreement(run: &RunEvents) -> Verdict {
    agree(run, &run.processes)
}

/// PB1. "Probabilistic validity: There is a positive value ε such that when
/// a correct process broadcasts a message m, the probability that every
/// correct process eventually delivers m is at least 1 − ε."
///
/// A probability is not a property of one run: a run where some correct
/// process missed m is allowed (that is the ε), and a run where all got it
/// says nothing about ε. So this is always undecided; it says how many of
/// the correct processes' broadcasts reached every correct process, which is
/// one sample of the probability over many runs.
fn probabilistic_validity(run: &RunEvents) -> Verdict {
    let correct = run.correct();
    let delivered: Vec<BTreeMap<Msg, (usize, &Event)>> = correct.iter().map(|q| first_deliveries(run, q)).collect();
    let (mut total, mut everywhere) = (0, 0);
    for s in &correct {
        for b in broadcasts_of(run, s) {
            let m = (s.clone(), b.id.unwrap_or_default());
            total += 1;
            if delivered.iter().all(|d| d.contains_key(&m)) {
                everywhere += 1;
            }
        }
    }
    Verdict::Undecided(format!(
        "a probability is not decided by one run ({everywhere} of {total} broadcasts by correct processes reached every correct process in this one)"
    ))
}

/// FRB5. "FIFO delivery: If some process broadcasts message m1 before it
/// broadcasts message m2, then no correct process delivers m2 unless it has
/// already delivered m1."
///
/// The sender's order is that of its `broadcast` events. A sender whose
/// events are missing cannot say what it broadcast first, so deliveries of
/// its messages leave the verdict undecided when nothing else is violated.
fn fifo_delivery(run: &RunEvents) -> Verdict {
    let order: BTreeMap<String, Vec<&Event>> =
        run.processes.iter().map(|s| (s.clone(), broadcasts_of(run, s))).collect();
    let mut unknown = false;
    for q in run.correct() {
        let mut done: BTreeSet<Msg> = BTreeSet::new();
        for (m2, e2) in deliveries_of(run, &q) {
            let sent = order.get(&m2.0).map_or(&[][..], Vec::as_slice);
            match sent.iter().position(|b| b.id == Some(m2.1)) {
                Some(k) => {
                    for b1 in &sent[..k] {
                        let m1 = (m2.0.clone(), b1.id.unwrap_or_default());
                        if !done.contains(&m1) {
                            return Verdict::Violated(format!(
                                "{q} delivered {}{} before {}, which {} broadcast before it; {q} is correct",
                                name(&m2, e2.text.as_deref()),
                                at(e2),
                                name(&m1, b1.text.as_deref()),
                                m2.0
                            ));
                        }
                    }
                }
                None => unknown |= run.missing_processes.contains(&m2.0),
            }
            done.insert(m2);
        }
    }
    if unknown && run.missing.is_empty() {
        return Verdict::Undecided("a sender's events are missing, so its broadcast order is unknown".into());
    }
    safe(run)
}

/// The messages that directly potentially caused each broadcast message:
/// those its sender broadcast before it, and those its sender delivered
/// before broadcasting it. Causality (→) is the transitive closure of this.
fn direct_causes(run: &RunEvents) -> BTreeMap<Msg, Vec<Msg>> {
    let mut causes = BTreeMap::new();
    for s in &run.processes {
        let mut before: Vec<Msg> = Vec::new();
        for e in run.of(s) {
            match (e.event.as_str(), &e.peer, e.id) {
                ("broadcast", _, Some(id)) => {
                    let m = (s.clone(), id);
                    causes.insert(m.clone(), before.clone());
                    before.push(m);
                }
                ("deliver", Some(from), Some(id)) => {
                    let m = (from.clone(), id);
                    // The sender's own messages are already there, as broadcast.
                    if !before.contains(&m) {
                        before.push(m);
                    }
                }
                _ => {}
            }
        }
    }
    causes
}

/// CRB5. "Causal delivery: For any message m1 that potentially caused a
/// message m2, i.e., m1 → m2, no process delivers m2 unless it has already
/// delivered m1."
///
/// m1 → m2 when the same process broadcast m1 before m2, or the broadcaster
/// of m2 delivered m1 before broadcasting m2, or transitively. Checking the
/// direct causes of every delivery is enough: if q delivered m2 without
/// some m1 → m2, walk the chain m1 → … → m′ → m2 back from m2; the first
/// link whose cause q had not delivered before its effect is a direct
/// violation, and it is the most concrete counterexample. Every process's
/// deliveries count, the faulty ones' too.
fn causal_delivery(run: &RunEvents) -> Verdict {
    let causes = direct_causes(run);
    let texts: BTreeMap<Msg, Option<&str>> =
        all_broadcasts(run).into_iter().map(|(m, b)| (m, b.text.as_deref())).collect();
    let mut unknown = false;
    for q in &run.processes {
        let mut done: BTreeSet<Msg> = BTreeSet::new();
        for (m2, e2) in deliveries_of(run, q) {
            match causes.get(&m2) {
                Some(direct) => {
                    if let Some(m1) = direct.iter().find(|m1| !done.contains(*m1)) {
                        let how = if m1.0 == m2.0 {
                            format!("{} broadcast it before", m2.0)
                        } else {
                            format!("{} delivered it before broadcasting", m2.0)
                        };
                        return Verdict::Violated(format!(
                            "{q} delivered {}{} before {} ({how} m#{}, so it potentially caused it)",
                            name(&m2, e2.text.as_deref()),
                            at(e2),
                            name(m1, texts.get(m1).copied().flatten()),
                            m2.1
                        ));
                    }
                }
                None => unknown |= run.missing_processes.contains(&m2.0),
            }
            done.insert(m2);
        }
    }
    if unknown && run.missing.is_empty() {
        return Verdict::Undecided("a sender's events are missing, so the causes of its messages are unknown".into());
    }
    safe(run)
}

/// Whether `p` and `q` delivered the messages they both delivered in the
/// same relative order; if not, the first pair they disagree on, as a
/// counterexample ("p1 delivered m#1 from p2 ('a') before m#1 from p3
/// ('b'), p4 the other way round"). For total-order broadcast's TOB5 and
/// anything else that needs a common delivery order; only each process's
/// first delivery of a message counts.
// Its user, the consensus chapter's TOB5, lands separately; until then only
// the tests here call it, and the warning would fail the build's -D warnings.
#[allow(dead_code)]
pub(crate) fn order_disagreement(run: &RunEvents, p: &str, q: &str) -> Option<String> {
    let at_q = first_deliveries(run, q);
    let mut seen: BTreeSet<Msg> = BTreeSet::new();
    // The latest (in q's order) of the common messages p delivered so far.
    let mut latest: Option<(usize, Msg, &Event)> = None;
    for (m, e) in deliveries_of(run, p) {
        if !seen.insert(m.clone()) {
            continue;
        }
        let Some(&(k, _)) = at_q.get(&m) else { continue };
        match &latest {
            Some((j, m1, e1)) if k < *j => {
                return Some(format!(
                    "{p} delivered {} before {}, {q} the other way round",
                    name(m1, e1.text.as_deref()),
                    name(&m, e.text.as_deref())
                ));
            }
            _ => latest = Some((k, m, e)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::super::{Event, RunEvents, Verdict, check};
    use super::*;

    fn bc(p: &str, id: u64, text: &str) -> Event {
        ev(p, "broadcast", None, Some(id), Some(text))
    }

    fn dl(p: &str, from: &str, id: u64, text: &str) -> Event {
        ev(p, "deliver", Some(from), Some(id), Some(text))
    }

    fn crash(p: &str) -> Event {
        Event { by: Some("mgr".into()), ..ev(p, "crash", None, None, Some("killed by SIGKILL")) }
    }

    fn prop(module: &str, id: &str) -> Property {
        properties(module).unwrap().into_iter().find(|p| p.id == id).unwrap()
    }

    fn verdict(module: &str, id: &str, run: &RunEvents) -> Verdict {
        (prop(module, id).check)(run)
    }

    fn violated(v: Verdict) -> String {
        match v {
            Verdict::Violated(why) => why,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn undecided(v: &Verdict) -> bool {
        matches!(v, Verdict::Undecided(_))
    }

    /// p1 broadcasts "hello" and every one of `n` processes delivers it,
    /// with the links' events in between that must not count.
    fn everyone_delivers(n: usize) -> Vec<Event> {
        let mut events = vec![bc("p1", 1, "hello")];
        for i in 1..=n {
            let p = format!("p{i}");
            events.push(ev("p1", "send", Some(&p), Some(1), Some("hello")));
            events.push(ev(&p, "receive", Some("p1"), Some(1), Some("hello")));
            events.push(dl(&p, "p1", 1, "hello"));
        }
        events
    }

    #[test]
    fn each_module_declares_its_properties_in_the_books_order() {
        let ids = |m: &str| properties(m).unwrap().iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids("BestEffortBroadcast"), ["BEB1", "BEB2", "BEB3"]);
        assert_eq!(ids("ReliableBroadcast"), ["RB1", "RB2", "RB3", "RB4"]);
        assert_eq!(ids("UniformReliableBroadcast"), ["URB1", "URB2", "URB3", "URB4"]);
        assert_eq!(ids("ProbabilisticBroadcast"), ["PB1", "PB2", "PB3"]);
        assert_eq!(ids("FifoReliableBroadcast"), ["FRB1", "FRB2", "FRB3", "FRB4", "FRB5"]);
        assert_eq!(ids("CausalOrderBroadcast"), ["CRB1", "CRB2", "CRB3", "CRB4", "CRB5"]);
        assert!(properties("PerfectPointToPointLink").is_none());
        // Every module of the chapter's catalog has its properties here.
        for m in crate::broadcast::MODULES {
            assert!(properties(m.name).is_some(), "{}", m.name);
        }
        assert_eq!(super::super::property("rb4").unwrap().id, "RB4");
    }

    #[test]
    fn a_clean_run_satisfies_every_property_of_every_reliable_module() {
        let run = RunEvents::from_events(3, everyone_delivers(3));
        for module in ["BestEffortBroadcast", "ReliableBroadcast", "UniformReliableBroadcast"] {
            for (p, v) in check(&run, &properties(module).unwrap()) {
                assert_eq!(v, Verdict::Holds, "{module} {}", p.id);
            }
        }
        for module in ["FifoReliableBroadcast", "CausalOrderBroadcast"] {
            for (p, v) in check(&run, &properties(module).unwrap()) {
                assert_eq!(v, Verdict::Holds, "{module} {}", p.id);
            }
        }
    }

    #[test]
    fn beb1_a_correct_process_that_never_delivers_violates_validity() {
        let mut events = everyone_delivers(3);
        events.retain(|e| !(e.process == "p3" && e.event == "deliver"));
        let run = RunEvents::from_events(3, events.clone());
        let why = violated(verdict("BestEffortBroadcast", "BEB1", &run));
        assert!(why.starts_with("p3 never delivered m#1 from p1 ('hello')"), "{why}");
        // A crashed p3 need not deliver; a crashed sender's message need not
        // arrive anywhere.
        let mut with_crash = events.clone();
        with_crash.push(crash("p3"));
        assert_eq!(verdict("BestEffortBroadcast", "BEB1", &RunEvents::from_events(3, with_crash)), Verdict::Holds);
        let mut sender_crashed = events;
        sender_crashed.push(crash("p1"));
        assert_eq!(verdict("BestEffortBroadcast", "BEB1", &RunEvents::from_events(3, sender_crashed)), Verdict::Holds);
    }

    #[test]
    fn liveness_is_undecided_before_quiescence_or_with_a_member_missing() {
        let mut events = everyone_delivers(3);
        events.retain(|e| !(e.process == "p3" && e.event == "deliver"));
        let mut run = RunEvents::from_events(3, events);
        run.quiesced = false;
        for (module, id) in [
            ("BestEffortBroadcast", "BEB1"),
            ("ReliableBroadcast", "RB1"),
            ("ReliableBroadcast", "RB4"),
            ("UniformReliableBroadcast", "URB4"),
        ] {
            assert!(undecided(&verdict(module, id, &run)), "{id}");
        }
        run.quiesced = true;
        run.missing = vec!["host-b".into()];
        assert!(undecided(&verdict("ReliableBroadcast", "RB4", &run)));
    }

    #[test]
    fn rb1_the_sender_must_deliver_its_own_message() {
        let run = RunEvents::from_events(2, [bc("p1", 1, "a"), dl("p1", "p1", 1, "a"), bc("p2", 1, "b")]);
        let why = violated(verdict("ReliableBroadcast", "RB1", &run));
        assert_eq!(why, "p2 broadcast m#1 from p2 ('b') but never delivered it; p2 is correct");
        let run = RunEvents::from_events(2, [bc("p1", 1, "a"), dl("p1", "p1", 1, "a"), bc("p2", 1, "b"), crash("p2")]);
        assert_eq!(verdict("UniformReliableBroadcast", "URB1", &run), Verdict::Holds);
        assert_eq!(verdict("FifoReliableBroadcast", "FRB1", &run), Verdict::Holds);
    }

    #[test]
    fn no_duplication_counts_deliveries_of_one_message_at_one_process() {
        let mut events = everyone_delivers(2);
        let again = Event { lamport: 9, ..dl("p2", "p1", 1, "hello") };
        events.push(again);
        let run = RunEvents::from_events(2, events);
        for (module, id) in
            [("BestEffortBroadcast", "BEB2"), ("ProbabilisticBroadcast", "PB2"), ("CausalOrderBroadcast", "CRB2")]
        {
            let why = violated(verdict(module, id, &run));
            assert_eq!(why, "p2 delivered m#1 from p1 ('hello') twice: once and again at L9", "{id}");
        }
        // The same number from two senders is two messages; a link's
        // receive of a retransmission is not a delivery.
        let mut events = everyone_delivers(2);
        events.extend([
            bc("p2", 1, "other"),
            dl("p2", "p2", 1, "other"),
            ev("p2", "receive", Some("p1"), Some(1), None),
        ]);
        let mut run = RunEvents::from_events(2, events);
        assert_eq!(verdict("ReliableBroadcast", "RB2", &run), Verdict::Holds);
        run.missing = vec!["host-b".into()];
        assert!(undecided(&verdict("ReliableBroadcast", "RB2", &run)));
    }

    #[test]
    fn no_creation_needs_an_earlier_broadcast_of_the_same_text_by_the_sender() {
        let never = RunEvents::from_events(2, [dl("p2", "p1", 4, "ghost")]);
        assert_eq!(
            violated(verdict("BestEffortBroadcast", "BEB3", &never)),
            "p2 delivered m#4 from p1 ('ghost'), which p1 never broadcast"
        );
        let changed = RunEvents::from_events(2, [bc("p1", 1, "a"), dl("p2", "p1", 1, "b")]);
        assert_eq!(
            violated(verdict("ReliableBroadcast", "RB3", &changed)),
            "p2 delivered m#1 from p1 ('b'), but p1 broadcast m#1 as 'a'"
        );
        let self_early = RunEvents::from_events(1, [dl("p1", "p1", 1, "a"), bc("p1", 1, "a")]);
        assert!(violated(verdict("UniformReliableBroadcast", "URB3", &self_early)).contains("before p1 broadcast it"));
        let clocked = RunEvents::from_events(
            2,
            [Event { lamport: 5, ..bc("p1", 1, "a") }, Event { lamport: 3, ..dl("p2", "p1", 1, "a") }],
        );
        assert_eq!(
            violated(verdict("ProbabilisticBroadcast", "PB3", &clocked)),
            "p2 delivered m#1 from p1 ('a') at L3 before p1 broadcast it at L5"
        );
        let anonymous = RunEvents::from_events(2, [ev("p2", "deliver", Some("p1"), None, Some("x"))]);
        assert!(violated(verdict("FifoReliableBroadcast", "FRB3", &anonymous)).contains("no message number"));
        let ok = RunEvents::from_events(
            2,
            [Event { lamport: 1, ..bc("p1", 1, "a") }, Event { lamport: 3, ..dl("p2", "p1", 1, "a") }],
        );
        assert_eq!(verdict("CausalOrderBroadcast", "CRB3", &ok), Verdict::Holds);
        // p1's events are on a dead member: its broadcast may be there.
        let mut hidden = RunEvents::from_events(2, [dl("p2", "p1", 1, "a")]);
        hidden.missing = vec!["host-a".into()];
        hidden.missing_processes.insert("p1".into());
        assert!(undecided(&verdict("ReliableBroadcast", "RB3", &hidden)));
    }

    /// p1 broadcasts "last words", p2 delivers it, p3 does not.
    fn half_delivered() -> Vec<Event> {
        vec![
            bc("p1", 1, "last words"),
            dl("p1", "p1", 1, "last words"),
            Event { lamport: 7, ..dl("p2", "p1", 1, "last words") },
        ]
    }

    #[test]
    fn rb4_agreement_is_about_deliveries_by_correct_processes() {
        let run = RunEvents::from_events(3, half_delivered());
        assert_eq!(
            violated(verdict("ReliableBroadcast", "RB4", &run)),
            "p3 never delivered m#1 from p1 ('last words'), which p1 delivered; p1 and p3 are correct"
        );
        let mut events = half_delivered();
        events.push(crash("p1"));
        let run = RunEvents::from_events(3, events.clone());
        assert_eq!(
            violated(verdict("FifoReliableBroadcast", "FRB4", &run)),
            "p3 never delivered m#1 from p1 ('last words'), which p2 delivered at L7; p2 and p3 are correct"
        );
        // Only the crashed sender delivered it: agreement holds, uniform
        // agreement does not.
        let mut events = vec![bc("p1", 1, "last words"), dl("p1", "p1", 1, "last words"), crash("p1")];
        let run = RunEvents::from_events(3, events.clone());
        assert_eq!(verdict("CausalOrderBroadcast", "CRB4", &run), Verdict::Holds);
        assert_eq!(
            violated(verdict("UniformReliableBroadcast", "URB4", &run)),
            "p2 never delivered m#1 from p1 ('last words'), which p1 delivered; p1 crashed, p2 is correct"
        );
        events.extend([dl("p2", "p1", 1, "last words"), dl("p3", "p1", 1, "last words")]);
        assert_eq!(verdict("UniformReliableBroadcast", "URB4", &RunEvents::from_events(3, events)), Verdict::Holds);
    }

    #[test]
    fn pb1_is_never_decided_by_one_run() {
        let run = RunEvents::from_events(3, everyone_delivers(3));
        let v = verdict("ProbabilisticBroadcast", "PB1", &run);
        assert!(matches!(&v, Verdict::Undecided(why) if why.contains("1 of 1")), "{v:?}");
    }

    #[test]
    fn frb5_a_correct_process_delivers_each_senders_messages_in_its_order() {
        let out_of_order = RunEvents::from_events(
            2,
            [
                bc("p1", 1, "a"),
                dl("p1", "p1", 1, "a"),
                bc("p1", 2, "b"),
                dl("p1", "p1", 2, "b"),
                Event { lamport: 6, ..dl("p2", "p1", 2, "b") },
                dl("p2", "p1", 1, "a"),
            ],
        );
        assert_eq!(
            violated(verdict("FifoReliableBroadcast", "FRB5", &out_of_order)),
            "p2 delivered m#2 from p1 ('b') at L6 before m#1 from p1 ('a'), which p1 broadcast before it; p2 is correct"
        );
        // A crashed process is not bound by FIFO delivery.
        let mut events = out_of_order.by_process.values().flatten().cloned().collect::<Vec<_>>();
        events.push(crash("p2"));
        assert_eq!(verdict("FifoReliableBroadcast", "FRB5", &RunEvents::from_events(2, events)), Verdict::Holds);
        // Two senders interleaved, each in its own order, is FIFO.
        let interleaved = RunEvents::from_events(
            2,
            [
                bc("p1", 1, "a"),
                bc("p1", 2, "b"),
                bc("p2", 1, "x"),
                dl("p2", "p2", 1, "x"),
                dl("p2", "p1", 1, "a"),
                dl("p2", "p1", 2, "b"),
            ],
        );
        assert_eq!(verdict("FifoReliableBroadcast", "FRB5", &interleaved), Verdict::Holds);
        let mut hidden = RunEvents::from_events(2, [dl("p2", "p1", 2, "b")]);
        hidden.missing = vec!["host-a".into()];
        hidden.missing_processes.insert("p1".into());
        assert!(undecided(&verdict("FifoReliableBroadcast", "FRB5", &hidden)));
    }

    /// p1 broadcasts "question"; p2 delivers it, then broadcasts "answer".
    fn question_and_answer() -> Vec<Event> {
        vec![
            bc("p1", 1, "question"),
            dl("p1", "p1", 1, "question"),
            dl("p2", "p1", 1, "question"),
            bc("p2", 1, "answer"),
            dl("p2", "p2", 1, "answer"),
            dl("p1", "p2", 1, "answer"),
        ]
    }

    #[test]
    fn crb5_a_message_is_delivered_after_what_its_sender_delivered_before_it() {
        let mut events = question_and_answer();
        events.extend([dl("p3", "p1", 1, "question"), dl("p3", "p2", 1, "answer")]);
        assert_eq!(verdict("CausalOrderBroadcast", "CRB5", &RunEvents::from_events(3, events)), Verdict::Holds);

        let mut events = question_and_answer();
        events.extend([Event { lamport: 8, ..dl("p3", "p2", 1, "answer") }, dl("p3", "p1", 1, "question")]);
        let run = RunEvents::from_events(3, events.clone());
        assert_eq!(
            violated(verdict("CausalOrderBroadcast", "CRB5", &run)),
            "p3 delivered m#1 from p2 ('answer') at L8 before m#1 from p1 ('question') (p2 delivered it before broadcasting m#1, so it potentially caused it)"
        );
        // Causal delivery binds crashed processes too.
        events.push(crash("p3"));
        assert!(matches!(
            verdict("CausalOrderBroadcast", "CRB5", &RunEvents::from_events(3, events)),
            Verdict::Violated(_)
        ));
        // FIFO is part of causality: a sender's own earlier message.
        let fifo = RunEvents::from_events(2, [bc("p1", 1, "a"), bc("p1", 2, "b"), dl("p2", "p1", 2, "b")]);
        assert!(violated(verdict("CausalOrderBroadcast", "CRB5", &fifo)).contains("p1 broadcast it before m#2"));
    }

    #[test]
    fn crb5_follows_causality_transitively() {
        // p1: a; p2 delivers a, broadcasts b; p3 delivers b, broadcasts c.
        // p4 delivers b, c but never a: a → c through b.
        let events = vec![
            bc("p1", 1, "a"),
            dl("p2", "p1", 1, "a"),
            bc("p2", 1, "b"),
            dl("p3", "p1", 1, "a"),
            dl("p3", "p2", 1, "b"),
            bc("p3", 1, "c"),
            dl("p4", "p2", 1, "b"),
            dl("p4", "p3", 1, "c"),
        ];
        let why = violated(verdict("CausalOrderBroadcast", "CRB5", &RunEvents::from_events(4, events)));
        assert!(why.starts_with("p4 delivered m#1 from p2 ('b') before m#1 from p1 ('a')"), "{why}");
        let mut hidden = RunEvents::from_events(2, [dl("p2", "p1", 2, "b")]);
        hidden.missing = vec!["host-a".into()];
        hidden.missing_processes.insert("p1".into());
        assert!(undecided(&verdict("CausalOrderBroadcast", "CRB5", &hidden)));
    }

    #[test]
    fn two_processes_order_common_deliveries_alike_or_not() {
        let same = RunEvents::from_events(
            2,
            [
                dl("p1", "p2", 1, "a"),
                dl("p1", "p3", 1, "x"),
                dl("p1", "p2", 2, "b"),
                dl("p2", "p2", 1, "a"),
                dl("p2", "p2", 2, "b"),
            ],
        );
        assert_eq!(order_disagreement(&same, "p1", "p2"), None);
        let swapped = RunEvents::from_events(
            2,
            [dl("p1", "p2", 1, "a"), dl("p1", "p3", 1, "x"), dl("p2", "p3", 1, "x"), dl("p2", "p2", 1, "a")],
        );
        assert_eq!(
            order_disagreement(&swapped, "p1", "p2").unwrap(),
            "p1 delivered m#1 from p2 ('a') before m#1 from p3 ('x'), p2 the other way round"
        );
    }
}
