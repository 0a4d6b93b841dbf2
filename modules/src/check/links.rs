//! The properties of the book's links chapter (Modules 2.1–2.3), checked on
//! a run's events: FairLossPointToPointLink (FLL1–FLL3),
//! StubbornPointToPointLink (SL1, SL2) and PerfectPointToPointLink
//! (PL1–PL3).
//!
//! It owns the pairing of a link's `send` requests with its `deliver`
//! indications, by (sender, destination, message). Only those two events
//! are the links' interface: a link used inside another module logs its
//! arrivals as `receive`, and retransmissions are not logged at all, so
//! neither is counted here. A link numbers its messages per sender (`id`,
//! the same in the send and in the deliver); the fair-loss link carries bare
//! text without an id, so its messages are told apart by their text.
//!
//! It must not do I/O or know how events are collected (see [`super`]), and
//! must not decide a liveness property before the run has quiesced.

use std::collections::BTreeMap;

use super::{Event, Property, RunEvents, Verdict, not_yet};

/// The properties `module` declares, if it is one of this chapter's.
pub fn properties(module: &str) -> Option<Vec<Property>> {
    match module {
        "FairLossPointToPointLink" => Some(vec![FLL1, FLL2, FLL3]),
        "StubbornPointToPointLink" => Some(vec![SL1, SL2]),
        "PerfectPointToPointLink" => Some(vec![PL1, PL2, PL3]),
        _ => None,
    }
}

/// "FLL1: Fair-loss: If a correct process p infinitely often sends a
/// message m to a correct process q, then q delivers m an infinite number of
/// times."
///
/// Not checkable on a finite run: no finite prefix shows that a message was
/// sent infinitely often, nor refutes that it will be delivered infinitely
/// often later, so every run is undecided. The property stays listed so that
/// `mgrctl check` shows the whole of the book's module.
pub const FLL1: Property = Property {
    id: "FLL1",
    statement: "Fair-loss: If a correct process p infinitely often sends a message m to a correct process q, then q delivers m an infinite number of times.",
    check: fair_loss,
};

/// "FLL2: Finite duplication: If a correct process p sends a message m a
/// finite number of times to process q, then m cannot be delivered an
/// infinite number of times by q."
///
/// A finite run delivers everything a finite number of times, so the check
/// reads the property as a bound: the network (and the manager's `dup`
/// fault, which makes at most one extra copy of a datagram) can at most
/// double each send, so a message delivered more than twice as often as it
/// was sent is being duplicated without bound.
pub const FLL2: Property = Property {
    id: "FLL2",
    statement: "Finite duplication: If a correct process p sends a message m a finite number of times to process q, then m cannot be delivered an infinite number of times by q.",
    check: finite_duplication,
};

/// "FLL3: No creation: If some process q delivers a message m with sender
/// p, then m was previously sent to q by process p."
pub const FLL3: Property = Property {
    id: "FLL3",
    statement: "No creation: If some process q delivers a message m with sender p, then m was previously sent to q by process p.",
    check: no_creation,
};

/// "SL1: Stubborn delivery: If a correct process p sends a message m once
/// to a correct process q, then q delivers m an infinite number of times."
///
/// On a finite run "an infinite number of times" is read as "at least once
/// by the time the run quiesced": a stubborn link that never delivered a
/// message by then is the finite evidence against it; more cannot be seen.
pub const SL1: Property = Property {
    id: "SL1",
    statement: "Stubborn delivery: If a correct process p sends a message m once to a correct process q, then q delivers m an infinite number of times.",
    check: reliable_delivery,
};

/// "SL2: No creation: If some process q delivers a message m with sender p,
/// then m was previously sent to q by process p."
pub const SL2: Property = Property {
    id: "SL2",
    statement: "No creation: If some process q delivers a message m with sender p, then m was previously sent to q by process p.",
    check: no_creation,
};

/// "PL1: Reliable delivery: If a correct process p sends a message m to a
/// correct process q, then q eventually delivers m."
pub const PL1: Property = Property {
    id: "PL1",
    statement: "Reliable delivery: If a correct process p sends a message m to a correct process q, then q eventually delivers m.",
    check: reliable_delivery,
};

/// "PL2: No duplication: No message is delivered by a process more than
/// once."
pub const PL2: Property = Property {
    id: "PL2",
    statement: "No duplication: No message is delivered by a process more than once.",
    check: no_duplication,
};

/// "PL3: No creation: If some process q delivers a message m with sender p,
/// then m was previously sent to q by process p."
pub const PL3: Property = Property {
    id: "PL3",
    statement: "No creation: If some process q delivers a message m with sender p, then m was previously sent to q by process p.",
    check: no_creation,
};

/// What tells a message apart from the others of the same sender and
/// destination: the link's id, or the text itself for links without ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum MessageKey {
    Id(u64),
    Text(String),
}

fn key(e: &Event) -> MessageKey {
    match e.id {
        Some(id) => MessageKey::Id(id),
        None => MessageKey::Text(e.text.clone().unwrap_or_default()),
    }
}

/// A message named for a counterexample: "m#3 from p1 ('hi')", or
/// "'hi' from p1" when the link gives no id.
fn describe(from: &str, e: &Event) -> String {
    let text = e.text.as_deref().unwrap_or("");
    match e.id {
        Some(id) => format!("m#{id} from {from} ('{text}')"),
        None => format!("'{text}' from {from}"),
    }
}

/// The process at the other end of a link event, if it is a process of the
/// run: a fair-loss link also talks with `ip:port` addresses outside the run,
/// whose events the run cannot have, so those are left out.
fn peer_in_run<'a>(run: &RunEvents, e: &'a Event) -> Option<&'a str> {
    e.peer.as_deref().filter(|p| run.processes.iter().any(|q| q == p))
}

/// Every `send` request of the run: (sender, destination, message) → the
/// send events, in the sender's order.
fn sends(run: &RunEvents) -> BTreeMap<(String, String, MessageKey), Vec<&Event>> {
    let mut sends: BTreeMap<_, Vec<&Event>> = BTreeMap::new();
    for e in run.all().filter(|e| e.event == "send") {
        if let Some(to) = peer_in_run(run, e) {
            sends.entry((e.process.clone(), to.to_owned(), key(e))).or_default().push(e);
        }
    }
    sends
}

/// Every `deliver` indication of the run: (sender, destination, message) →
/// the deliver events, in the destination's order.
fn delivers(run: &RunEvents) -> BTreeMap<(String, String, MessageKey), Vec<&Event>> {
    let mut delivers: BTreeMap<_, Vec<&Event>> = BTreeMap::new();
    for e in run.all().filter(|e| e.event == "deliver") {
        if let Some(from) = peer_in_run(run, e) {
            delivers.entry((from.to_owned(), e.process.clone(), key(e))).or_default().push(e);
        }
    }
    delivers
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

fn lamports(events: &[&Event]) -> String {
    let ls: Vec<String> = events.iter().map(|e| format!("L{}", e.lamport)).collect();
    match ls.len() {
        0 => String::new(),
        1 => ls[0].clone(),
        n => format!("{} and {}", ls[..n - 1].join(", "), ls[n - 1]),
    }
}

fn fair_loss(_run: &RunEvents) -> Verdict {
    Verdict::Undecided("fair loss is about messages sent infinitely often and cannot be decided on a finite run".into())
}

fn finite_duplication(run: &RunEvents) -> Verdict {
    let sends = sends(run);
    for ((from, to, k), delivered) in delivers(run) {
        let sent = sends.get(&(from.clone(), to.clone(), k)).map_or(0, Vec::len);
        // A message never sent is FLL3's business, not this one's.
        if sent > 0 && delivered.len() > 2 * sent {
            return Verdict::Violated(format!(
                "{to} delivered {} {} times ({}) but it was sent {sent} time(s): more than the network's duplication can explain",
                describe(&from, delivered[0]),
                delivered.len(),
                lamports(&delivered),
            ));
        }
    }
    safe(run)
}

/// Whether `send` (at sender `from`) happened before `deliver`, as far as
/// the vector clocks tell: the deliver has seen the sender's entry of the
/// send. Only messages with an id carry the sender's clocks (the stubborn
/// and perfect links' frames); a fair-loss payload is bare text, so its
/// delivery is a local event whose clock knows nothing of the send. Without
/// clocks (those, and hand-written events) there is nothing to refute, so
/// the send counts as previous.
fn before(run: &RunEvents, from: &str, send: &Event, deliver: &Event) -> bool {
    if deliver.id.is_none() {
        return true;
    }
    let Some(i) = run.processes.iter().position(|p| p == from) else { return true };
    match (send.vc.get(i), deliver.vc.get(i)) {
        (Some(s), Some(d)) => s <= d,
        _ => true,
    }
}

fn no_creation(run: &RunEvents) -> Verdict {
    let sends = sends(run);
    let mut unknown = Vec::new();
    for ((from, to, k), delivered) in delivers(run) {
        let candidates = sends.get(&(from.clone(), to.clone(), k)).map_or(&[][..], Vec::as_slice);
        for d in delivered {
            let what = describe(&from, d);
            let same_text: Vec<&&Event> = candidates.iter().filter(|s| s.text == d.text).collect();
            if same_text.iter().any(|s| before(run, &from, s, d)) {
                continue;
            }
            // The sender's events are on a dead member: whether it sent the
            // message cannot be told.
            if run.missing_processes.contains(&from) {
                unknown.push(what);
                continue;
            }
            return Verdict::Violated(match (candidates.first(), same_text.first()) {
                (None, _) => format!("{to} delivered {what} at L{}, but {from} never sent it to {to}", d.lamport),
                (Some(s), None) => format!(
                    "{to} delivered {what} at L{}, but {from} sent that message to {to} as '{}' (L{})",
                    d.lamport,
                    s.text.as_deref().unwrap_or(""),
                    s.lamport
                ),
                (Some(_), Some(s)) => format!(
                    "{to} delivered {what} at L{} (vc {:?}) before {from} sent it at L{} (vc {:?})",
                    d.lamport, d.vc, s.lamport, s.vc
                ),
            });
        }
    }
    if let Some(what) = unknown.first() {
        return Verdict::Undecided(format!(
            "{} delivered message(s) whose sender's events are missing, e.g. {what}",
            unknown.len()
        ));
    }
    safe(run)
}

fn no_duplication(run: &RunEvents) -> Verdict {
    for ((from, to, _), delivered) in delivers(run) {
        // Once per incarnation of the receiver: a restarted process is a
        // new one, which remembers nothing of what it delivered before.
        let mut lives: BTreeMap<Option<u64>, Vec<&Event>> = BTreeMap::new();
        for e in delivered.iter().copied() {
            lives.entry(e.inc).or_default().push(e);
        }
        if let Some(delivered) = lives.into_values().find(|d| d.len() > 1) {
            let times = if delivered.len() == 2 { "twice".to_owned() } else { format!("{} times", delivered.len()) };
            return Verdict::Violated(format!(
                "{to} delivered {} {times}: {}",
                describe(&from, delivered[0]),
                lamports(&delivered)
            ));
        }
    }
    safe(run)
}

fn reliable_delivery(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    // The manager's crash records say who is correct; see
    // `detectors::correct` for why not `RunEvents::correct`.
    let correct = super::detectors::correct(run);
    let delivers = delivers(run);
    for ((from, to, k), sent) in sends(run) {
        if !correct.contains(&from) || !correct.contains(&to) {
            continue;
        }
        if !delivers.contains_key(&(from.clone(), to.clone(), k)) {
            let s = sent[0];
            return Verdict::Violated(format!(
                "{from} sent {} to {to} at L{}, and {to} (correct) never delivered it",
                describe(&from, s),
                s.lamport
            ));
        }
    }
    Verdict::Holds
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;

    /// An event with a Lamport value, for counterexamples that name it.
    fn at(mut e: Event, lamport: u64) -> Event {
        e.lamport = lamport;
        e
    }

    fn send(p: &str, q: &str, id: Option<u64>, text: &str, l: u64) -> Event {
        at(ev(p, "send", Some(q), id, Some(text)), l)
    }

    fn deliver(q: &str, p: &str, id: Option<u64>, text: &str, l: u64) -> Event {
        at(ev(q, "deliver", Some(p), id, Some(text)), l)
    }

    fn crash(p: &str) -> Event {
        Event { by: Some("mgr".into()), ..ev(p, "crash", None, None, Some("killed by SIGKILL")) }
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

    #[test]
    fn modules_declare_the_books_properties_in_order() {
        let ids = |m| properties(m).unwrap().iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids("FairLossPointToPointLink"), ["FLL1", "FLL2", "FLL3"]);
        assert_eq!(ids("StubbornPointToPointLink"), ["SL1", "SL2"]);
        assert_eq!(ids("PerfectPointToPointLink"), ["PL1", "PL2", "PL3"]);
        assert!(properties("BestEffortBroadcast").is_none());
        for m in crate::links::MODULES {
            assert!(properties(m.name).is_some(), "{}", m.name);
        }
    }

    #[test]
    fn fll1_is_undecided() {
        let run = RunEvents::from_events(2, [send("p1", "p2", None, "hi", 1)]);
        assert!(undecided((FLL1.check)(&run)).contains("finite run"));
    }

    #[test]
    fn fll2_bounds_duplication() {
        let mut events = vec![send("p1", "p2", None, "hi", 1), deliver("p2", "p1", None, "hi", 1)];
        events.push(deliver("p2", "p1", None, "hi", 2));
        assert_eq!((FLL2.check)(&RunEvents::from_events(2, events.clone())), Verdict::Holds);
        events.push(deliver("p2", "p1", None, "hi", 3));
        let why = violated((FLL2.check)(&RunEvents::from_events(2, events)));
        assert_eq!(
            why,
            "p2 delivered 'hi' from p1 3 times (L1, L2 and L3) but it was sent 1 time(s): more than the network's duplication can explain"
        );
    }

    #[test]
    fn no_creation_pairs_by_sender_destination_and_message() {
        // FLL: by text.
        let ok = RunEvents::from_events(2, [send("p1", "p2", None, "hi", 1), deliver("p2", "p1", None, "hi", 1)]);
        assert_eq!((FLL3.check)(&ok), Verdict::Holds);
        let made_up = RunEvents::from_events(2, [send("p1", "p2", None, "hi", 1), deliver("p2", "p1", None, "ho", 4)]);
        assert_eq!(violated((FLL3.check)(&made_up)), "p2 delivered 'ho' from p1 at L4, but p1 never sent it to p2");
        // Sent to another process is not sent to q.
        let elsewhere =
            RunEvents::from_events(3, [send("p1", "p3", Some(1), "hi", 1), deliver("p2", "p1", Some(1), "hi", 2)]);
        assert_eq!(
            violated((SL2.check)(&elsewhere)),
            "p2 delivered m#1 from p1 ('hi') at L2, but p1 never sent it to p2"
        );
        // Same id, other text.
        let altered =
            RunEvents::from_events(2, [send("p1", "p2", Some(1), "hi", 1), deliver("p2", "p1", Some(1), "HI", 2)]);
        assert_eq!(
            violated((PL3.check)(&altered)),
            "p2 delivered m#1 from p1 ('HI') at L2, but p1 sent that message to p2 as 'hi' (L1)"
        );
        // Delivered before sent, by the vector clocks.
        let mut s = send("p1", "p2", Some(1), "hi", 5);
        s.vc = vec![5, 0];
        let mut d = deliver("p2", "p1", Some(1), "hi", 2);
        d.vc = vec![1, 2];
        let early = RunEvents::from_events(2, [s.clone(), d]);
        assert!(violated((PL3.check)(&early)).contains("before p1 sent it at L5"));
        let mut d = deliver("p2", "p1", Some(1), "hi", 6);
        d.vc = vec![5, 1];
        assert_eq!((PL3.check)(&RunEvents::from_events(2, [s, d])), Verdict::Holds);
        // A fair-loss delivery carries no clocks: its vector clock cannot
        // refute the send.
        let mut s = send("p1", "p2", None, "hi", 1);
        s.vc = vec![1, 0];
        let mut d = deliver("p2", "p1", None, "hi", 1);
        d.vc = vec![0, 1];
        assert_eq!((FLL3.check)(&RunEvents::from_events(2, [s, d])), Verdict::Holds);
        // Deliveries from outside the run (nc) are not the run's to check.
        let outside = RunEvents::from_events(2, [deliver("p2", "127.0.0.1:9", None, "poke", 1)]);
        assert_eq!((FLL3.check)(&outside), Verdict::Holds);
    }

    #[test]
    fn no_creation_is_undecided_when_the_sender_is_missing() {
        let mut run = RunEvents::from_events(2, [deliver("p2", "p1", Some(1), "hi", 2)]);
        run.missing = vec!["m2".into()];
        run.missing_processes.insert("p1".into());
        assert!(undecided((PL3.check)(&run)).contains("m#1 from p1 ('hi')"));
        // A violation among the events at hand stays a violation.
        run.by_process.entry("p2".into()).or_default().push(deliver("p2", "p2", Some(7), "x", 3));
        assert!(violated((PL3.check)(&run)).contains("m#7 from p2"));
    }

    #[test]
    fn pl2_no_duplication() {
        let once = RunEvents::from_events(
            2,
            [
                send("p1", "p2", Some(3), "hi", 1),
                deliver("p2", "p1", Some(3), "hi", 5),
                deliver("p2", "p1", Some(4), "hi", 6),
            ],
        );
        assert_eq!((PL2.check)(&once), Verdict::Holds);
        let twice = RunEvents::from_events(
            2,
            [
                send("p1", "p2", Some(3), "hi", 1),
                deliver("p2", "p1", Some(3), "hi", 5),
                deliver("p2", "p1", Some(3), "hi", 9),
            ],
        );
        assert_eq!(violated((PL2.check)(&twice)), "p2 delivered m#3 from p1 ('hi') twice: L5 and L9");
        let mut missing = once;
        missing.missing = vec!["m2".into()];
        assert!(undecided((PL2.check)(&missing)).contains("m2"));
    }

    #[test]
    fn pl1_and_sl1_reliable_delivery() {
        let events = vec![send("p1", "p2", Some(1), "hi", 1), send("p1", "p2", Some(2), "ho", 2)];
        let mut run = RunEvents::from_events(2, events.clone());
        run.by_process.entry("p2".into()).or_default().push(deliver("p2", "p1", Some(1), "hi", 3));
        let why = violated((PL1.check)(&run));
        assert_eq!(why, "p1 sent m#2 from p1 ('ho') to p2 at L2, and p2 (correct) never delivered it");
        assert_eq!(violated((SL1.check)(&run)), why);
        run.by_process.entry("p2".into()).or_default().push(deliver("p2", "p1", Some(2), "ho", 4));
        assert_eq!((PL1.check)(&run), Verdict::Holds);
        // A crashed destination owes nothing.
        let crashed = RunEvents::from_events(2, [events[0].clone(), crash("p2")]);
        assert_eq!((PL1.check)(&crashed), Verdict::Holds);
        // Liveness waits for quiescence and for every member's events.
        let mut running = RunEvents::from_events(2, events);
        running.quiesced = false;
        assert!(undecided((PL1.check)(&running)).contains("quiesced"));
        running.quiesced = true;
        running.missing = vec!["m2".into()];
        assert!(undecided((SL1.check)(&running)).contains("m2"));
    }
}
