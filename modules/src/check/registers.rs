//! The properties of the book's registers chapter (Modules 4.1 and 4.2, the
//! (1,N) regular and atomic registers), checked on a run's events.
//!
//! This file owns reading a register run's events as operations (a `write`
//! or `read` request and the `writereturn` or `readreturn` indication that
//! completes it) and the checkers of ONRR1–ONRR2 and ONAR1–ONAR3. It must
//! not do I/O and must not guess: a verdict of violation is given only when
//! the events prove it, and what they cannot prove is left undecided.
//!
//! The book's registers are defined in real time: an operation `o1`
//! precedes `o2` when `o1` returned before `o2` was invoked. The events
//! carry two witnesses of that, and either is taken as proof:
//! - causality: the return's vector clock is below the invocation's (the
//!   return happened before the invocation, so it came first in real time
//!   too), and, within one process, the order of its file;
//! - wall clocks: the return's `time_ms` is strictly below the invocation's.
//!   This assumes the processes' clocks agree to within a millisecond: true
//!   for the processes of one machine, which share its clock, and an
//!   assumption for hosts synchronised by NTP (a skew of a few milliseconds
//!   could make two overlapping operations look ordered).
//!
//! The catalog has no (N,N) register, so the (N,N) properties (NNAR1–NNAR2)
//! are not declared here.

use std::collections::BTreeSet;

use super::{Event, Property, RunEvents, Verdict, not_yet};

/// The properties `module` declares, if it is one of this chapter's.
pub fn properties(module: &str) -> Option<Vec<Property>> {
    match module {
        "RegularRegister" => Some(vec![ONRR1, ONRR2]),
        "AtomicRegister" => Some(vec![ONAR1, ONAR2, ONAR3]),
        _ => None,
    }
}

/// Module 4.1, ONRR1.
pub const ONRR1: Property = Property {
    id: "ONRR1",
    statement: "Termination: If a correct process invokes an operation, then the operation eventually completes.",
    check: termination,
};

/// Module 4.1, ONRR2.
pub const ONRR2: Property = Property {
    id: "ONRR2",
    statement: "Validity: A read that is not concurrent with a write returns the last value written; a read that is concurrent with a write returns the last value written or the value concurrently written.",
    check: validity,
};

/// Module 4.2, ONAR1.
pub const ONAR1: Property = Property {
    id: "ONAR1",
    statement: "Termination: If a correct process invokes an operation, then the operation eventually completes.",
    check: termination,
};

/// Module 4.2, ONAR2.
pub const ONAR2: Property = Property {
    id: "ONAR2",
    statement: "Validity: A read that is not concurrent with a write returns the last value written; a read that is concurrent with a write returns the last value written or the value concurrently written.",
    check: validity,
};

/// Module 4.2, ONAR3.
pub const ONAR3: Property = Property {
    id: "ONAR3",
    statement: "Ordering: If a read returns a value v and a subsequent read returns a value w, then the write of w does not precede the write of v.",
    check: ordering,
};

/// How ⊥ is printed in the events (see `registers::BOTTOM`).
const BOTTOM: &str = "⊥";

/// A point of a process's history: the event and its place in the
/// process's file.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    process: &'a str,
    pos: usize,
    event: &'a Event,
}

impl At<'_> {
    /// "L12", the event's Lamport time, how counterexamples name events.
    fn l(&self) -> String {
        format!("L{}", self.event.lamport)
    }
}

/// One operation: its invocation, its completion (if any), and for a write
/// the value written, for a completed read the value returned (`None` for ⊥).
#[derive(Debug, Clone)]
struct Op<'a> {
    inv: At<'a>,
    resp: Option<At<'a>>,
    write: Option<&'a str>,
    read: Option<Option<&'a str>>,
}

/// Whether `a` happened before `b`, as far as the events prove it (see the
/// module doc): the order of one process's file, the vector clocks, or the
/// wall clocks.
fn before(a: &At, b: &At) -> bool {
    if a.process == b.process {
        return a.pos < b.pos;
    }
    let (x, y) = (&a.event.vc, &b.event.vc);
    let causal = !x.is_empty() && x.len() == y.len() && x.iter().zip(y).all(|(i, j)| i <= j) && x != y;
    let timed = a.event.time_ms > 0 && b.event.time_ms > 0 && a.event.time_ms < b.event.time_ms;
    causal || timed
}

/// The processes the manager recorded as crashed (see
/// [`RunEvents::crashed`]: a failure detector's `crash` indication is not a
/// crash of the process that wrote it).
pub(crate) fn faulty(run: &RunEvents) -> BTreeSet<String> {
    run.crashed()
}

/// Every operation of the run, by process in file order. A process runs
/// one operation at a time (the module refuses a second one), so a return
/// completes the process's pending operation; a return with none pending is
/// ignored.
fn operations(run: &RunEvents) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (process, events) in &run.by_process {
        let mut pending: Option<Op> = None;
        for (pos, event) in events.iter().enumerate() {
            let at = At { process, pos, event };
            match event.event.as_str() {
                "write" => {
                    ops.extend(pending.take());
                    pending =
                        Some(Op { inv: at, resp: None, write: Some(event.text.as_deref().unwrap_or("")), read: None });
                }
                "read" => {
                    ops.extend(pending.take());
                    pending = Some(Op { inv: at, resp: None, write: None, read: None });
                }
                "writereturn" | "readreturn" => {
                    if let Some(mut op) = pending.take() {
                        op.resp = Some(at);
                        if event.event == "readreturn" && op.write.is_none() {
                            op.read = Some(event.text.as_deref().filter(|t| *t != BOTTOM));
                        }
                        ops.push(op);
                    }
                }
                _ => {}
            }
        }
        ops.extend(pending);
    }
    ops
}

/// A value as counterexamples print it.
fn show(v: Option<&str>) -> &str {
    v.unwrap_or(BOTTOM)
}

/// The writes in the writer's order, or why they cannot be ordered: the
/// (1,N) registers have one writer, so writes from two processes are not a
/// run of these modules.
fn writes<'o, 'a>(ops: &'o [Op<'a>]) -> Result<Vec<&'o Op<'a>>, Verdict> {
    let writes: Vec<&Op> = ops.iter().filter(|o| o.write.is_some()).collect();
    let writers: BTreeSet<&str> = writes.iter().map(|w| w.inv.process).collect();
    if writers.len() > 1 {
        let list: Vec<&str> = writers.into_iter().collect();
        return Err(Verdict::Undecided(format!(
            "{} all wrote: a (1,N) register has one writer, so the writes have no order to check against",
            list.join(" and ")
        )));
    }
    Ok(writes)
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

/// ONRR1 / ONAR1: every operation a correct process invoked completed.
fn termination(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    let faulty = faulty(run);
    for op in operations(run) {
        if op.resp.is_none() && !faulty.contains(op.inv.process) {
            let what = match op.write {
                Some(v) => format!("write of {v}"),
                None => "read".to_owned(),
            };
            return Verdict::Violated(format!(
                "{}'s {what} invoked at {} never completed, and {} did not crash",
                op.inv.process,
                op.inv.l(),
                op.inv.process
            ));
        }
    }
    Verdict::Holds
}

/// ONRR2 / ONAR2. For each completed read, the writes that certainly
/// precede it fix the last value written (⊥ when none does), and the
/// writes that certainly come after it are excluded; the read must return
/// the last value written or the value of a write in between (concurrent
/// with it). Being sure of precedence only when the events prove it (see
/// [`before`]) can only widen the values allowed, so a violation found is
/// a real one.
fn validity(run: &RunEvents) -> Verdict {
    let ops = operations(run);
    let writes = match writes(&ops) {
        Ok(writes) => writes,
        Err(verdict) => return verdict,
    };
    for read in ops.iter().filter(|o| o.read.is_some()) {
        let (Some(resp), Some(v)) = (read.resp, read.read) else { continue };
        // Writes are numbered 1..=k in the writer's order; 0 is the initial ⊥.
        let last = writes.iter().rposition(|w| w.resp.is_some_and(|r| before(&r, &read.inv))).map_or(0, |i| i + 1);
        let until = writes.iter().rposition(|w| !before(&resp, &w.inv)).map_or(0, |i| i + 1);
        let value = |j: usize| if j == 0 { None } else { writes[j - 1].write };
        if (last..=until.max(last)).any(|j| value(j) == v) {
            continue;
        }
        let reader =
            format!("{} read {} (invoked at {}, returned at {})", read.inv.process, show(v), read.inv.l(), resp.l());
        let why = if (0..last).any(|j| value(j) == v) {
            let w = writes[last - 1];
            let done = w.resp.map_or(String::new(), |r| r.l());
            format!("{reader} after {}'s write of {} had completed at {done}", w.inv.process, show(w.write))
        } else if let Some(w) = writes[until..].iter().find(|w| w.write == v) {
            format!(
                "{reader}, but {}'s write of {} was invoked only at {}, after the read returned",
                w.inv.process,
                show(v),
                w.inv.l()
            )
        } else {
            format!("{reader}, a value never written")
        };
        return Verdict::Violated(why);
    }
    safety(run, None)
}

/// ONAR3: no new/old inversion. For two completed reads where the first
/// precedes the second, the second's value must not come from a write that
/// precedes the first's. A value written more than once could come from any
/// of its writes, so a pair is a violation only when every write of the
/// second value precedes every write of the first (⊥ precedes every write).
fn ordering(run: &RunEvents) -> Verdict {
    let ops = operations(run);
    let writes = match writes(&ops) {
        Ok(writes) => writes,
        Err(verdict) => return verdict,
    };
    // The numbers of the writes a value may come from (0 for ⊥); empty for
    // a value never written, which validity reports.
    let sources = |v: Option<&str>| -> Vec<usize> {
        match v {
            None => vec![0],
            Some(_) => (1..=writes.len()).filter(|&j| writes[j - 1].write == v).collect(),
        }
    };
    let reads: Vec<&Op> = ops.iter().filter(|o| o.read.is_some()).collect();
    for first in &reads {
        let (Some(first_resp), Some(v)) = (first.resp, first.read) else { continue };
        let from_v = sources(v);
        let Some(&oldest_v) = from_v.first() else { continue };
        for second in &reads {
            let (Some(second_resp), Some(w)) = (second.resp, second.read) else { continue };
            if !before(&first_resp, &second.inv) {
                continue;
            }
            let Some(&newest_w) = sources(w).last() else { continue };
            if newest_w < oldest_v {
                let write_of = |j: usize| {
                    if j == 0 {
                        "the initial ⊥".to_owned()
                    } else {
                        let op = writes[j - 1];
                        format!("{}'s write of {} (invoked at {})", op.inv.process, show(op.write), op.inv.l())
                    }
                };
                return Verdict::Violated(format!(
                    "{} read {} (returned at {}), then {} read {} (invoked at {}, returned at {}), but {} precedes {}",
                    first.inv.process,
                    show(v),
                    first_resp.l(),
                    second.inv.process,
                    show(w),
                    second.inv.l(),
                    second_resp.l(),
                    write_of(newest_w),
                    write_of(oldest_v)
                ));
            }
        }
    }
    safety(run, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::ev;

    /// An event at wall-clock `ms` and Lamport time `l`.
    fn at(process: &str, event: &str, text: Option<&str>, ms: u64, l: u64) -> Event {
        Event { time_ms: ms, lamport: l, ..ev(process, event, None, None, text) }
    }

    fn run(events: Vec<Event>) -> RunEvents {
        RunEvents::from_events(3, events)
    }

    fn violated(verdict: Verdict) -> String {
        match verdict {
            Verdict::Violated(why) => why,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    /// p1 writes 1 (10–20 ms), then 2 (30–40 ms); p2 reads during the second
    /// write (35–45 ms), p3 reads after it (50–55 ms).
    fn good() -> Vec<Event> {
        vec![
            at("p1", "write", Some("1"), 10, 1),
            at("p1", "writereturn", None, 20, 4),
            at("p1", "write", Some("2"), 30, 5),
            at("p1", "writereturn", None, 40, 8),
            at("p2", "read", None, 35, 6),
            at("p2", "readreturn", Some("1"), 45, 9),
            at("p3", "read", None, 1, 1),
            at("p3", "readreturn", Some("⊥"), 2, 2),
            at("p3", "read", None, 50, 10),
            at("p3", "readreturn", Some("2"), 55, 11),
        ]
    }

    #[test]
    fn the_chapter_declares_its_modules_properties_in_the_books_order() {
        let ids = |m| properties(m).unwrap().iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids("RegularRegister"), ["ONRR1", "ONRR2"]);
        assert_eq!(ids("AtomicRegister"), ["ONAR1", "ONAR2", "ONAR3"]);
        assert!(properties("Consensus").is_none());
    }

    #[test]
    fn termination_holds_fails_and_waits() {
        let mut r = run(good());
        assert_eq!(termination(&r), Verdict::Holds);
        r.by_process.get_mut("p2").unwrap().pop();
        let why = violated(termination(&r));
        assert!(why.contains("p2's read invoked at L6 never completed"), "{why}");
        // A crashed process owes nothing, and a detector's crash output
        // (with a peer) is not a crash of the process that wrote it.
        r.by_process.get_mut("p3").unwrap().push(ev("p3", "crash", Some("p2"), None, None));
        assert!(matches!(termination(&r), Verdict::Violated(_)));
        let record = Event { by: Some("mgr".into()), ..ev("p2", "crash", None, None, Some("killed")) };
        r.by_process.get_mut("p2").unwrap().push(record);
        assert_eq!(termination(&r), Verdict::Holds);
        r.by_process.get_mut("p2").unwrap().pop();
        r.quiesced = false;
        assert!(matches!(termination(&r), Verdict::Undecided(_)));
        r.quiesced = true;
        r.missing = vec!["m2".into()];
        assert!(matches!(termination(&r), Verdict::Undecided(_)));
    }

    #[test]
    fn validity_allows_the_last_or_a_concurrent_value() {
        let r = run(good());
        assert_eq!(validity(&r), Verdict::Holds);
        // p2's read overlapped the write of 2: 2 is allowed too.
        let mut events = good();
        events[5].text = Some("2".into());
        assert_eq!(validity(&run(events)), Verdict::Holds);
    }

    #[test]
    fn validity_catches_an_old_value_after_a_completed_write() {
        let mut events = good();
        events[9].text = Some("1".into());
        let why = violated(validity(&run(events)));
        assert_eq!(why, "p3 read 1 (invoked at L10, returned at L11) after p1's write of 2 had completed at L8");
        // ⊥ after a write completed is an old value too.
        let mut events = good();
        events[9].text = Some("⊥".into());
        assert!(violated(validity(&run(events))).contains("p3 read ⊥"));
    }

    #[test]
    fn validity_catches_a_value_from_the_future_or_from_nowhere() {
        let mut events = good();
        events[7].text = Some("2".into());
        let why = violated(validity(&run(events)));
        assert!(
            why.contains("p3 read 2 (invoked at L1, returned at L2), but p1's write of 2 was invoked only at L5"),
            "{why}"
        );
        let mut events = good();
        events[5].text = Some("9".into());
        assert!(violated(validity(&run(events))).ends_with("a value never written"));
    }

    #[test]
    fn causality_orders_operations_without_wall_clocks() {
        // No time_ms: the write's return happened before the read by the
        // vector clocks, so reading ⊥ is old.
        let mut w = ev("p1", "write", None, None, Some("1"));
        w.vc = vec![1, 0, 0];
        let mut wr = ev("p1", "writereturn", None, None, None);
        wr.vc = vec![3, 1, 0];
        let mut rd = ev("p2", "read", None, None, None);
        rd.vc = vec![3, 2, 0];
        let mut rr = ev("p2", "readreturn", None, None, Some("⊥"));
        rr.vc = vec![3, 3, 0];
        assert!(matches!(validity(&run(vec![w.clone(), wr.clone(), rd.clone(), rr.clone()])), Verdict::Violated(_)));
        // Concurrent by the clocks: either value is allowed.
        rd.vc = vec![0, 1, 0];
        rr.vc = vec![0, 2, 0];
        assert_eq!(validity(&run(vec![w, wr, rd, rr])), Verdict::Holds);
    }

    #[test]
    fn safety_is_undecided_with_missing_events_or_two_writers() {
        let mut r = run(good());
        r.missing = vec!["m2".into()];
        assert!(matches!(validity(&r), Verdict::Undecided(_)));
        assert!(matches!(ordering(&r), Verdict::Undecided(_)));
        let mut events = good();
        events.push(at("p2", "write", Some("7"), 60, 12));
        assert!(matches!(validity(&run(events)), Verdict::Undecided(_)));
    }

    /// p1 writes 1 (10–100 ms); p2 reads 1 (20–30 ms); p3 reads ⊥ (40–50
    /// ms): each read alone is valid, being concurrent with the write, but
    /// together they are a new/old inversion.
    fn inversion() -> Vec<Event> {
        vec![
            at("p1", "write", Some("1"), 10, 1),
            at("p1", "writereturn", None, 100, 9),
            at("p2", "read", None, 20, 3),
            at("p2", "readreturn", Some("1"), 30, 4),
            at("p3", "read", None, 40, 5),
            at("p3", "readreturn", Some("⊥"), 50, 6),
        ]
    }

    #[test]
    fn ordering_holds_on_a_run_without_inversion() {
        assert_eq!(ordering(&run(good())), Verdict::Holds);
    }

    #[test]
    fn ordering_catches_a_new_old_inversion_that_validity_allows() {
        let r = run(inversion());
        assert_eq!(validity(&r), Verdict::Holds);
        let why = violated(ordering(&r));
        assert_eq!(
            why,
            "p2 read 1 (returned at L4), then p3 read ⊥ (invoked at L5, returned at L6), but the initial ⊥ precedes p1's write of 1 (invoked at L1)"
        );
        // Reads that overlap are not ordered: no violation.
        let mut events = inversion();
        events[4].time_ms = 25;
        assert_eq!(ordering(&run(events)), Verdict::Holds);
    }
}
