//! The properties of the ack-based group communication lab, checked on the
//! client's run: AckClient (ACK1, ACK2).
//!
//! It owns the pairing of the client's `send` requests (one per attempt,
//! `id` = the request number) with its `acked` indications (same `id`). The
//! receivers and discovery are other runs, or other roles of the same run;
//! their events are not needed, since whether a request ended acked is the
//! client's to say, and they log neither `send` nor `acked`, so a run
//! holding every role is checked just the same.
//!
//! It must not do I/O (see [`super`]), and must not decide the liveness
//! property before the run has quiesced.

use std::collections::BTreeSet;

use super::{Property, RunEvents, Verdict, not_yet};

/// The properties `module` declares, if it is one of the lab's.
pub fn properties(module: &str) -> Option<Vec<Property>> {
    match module {
        "AckClient" => Some(vec![ACK1, ACK2]),
        _ => None,
    }
}

/// "ACK1: Every request ends acked: every request a correct client sends
/// is eventually acked by some receiver." A liveness property: decided once
/// the run quiesced (the client exits when all its requests are acked).
pub const ACK1: Property = Property {
    id: "ACK1",
    statement: "Every request ends acked: every request a correct client sends is eventually acked by some receiver.",
    check: every_request_acked,
};

/// "ACK2: No ack without request: a client only takes acks of requests it
/// sent." A safety property.
pub const ACK2: Property = Property {
    id: "ACK2",
    statement: "No ack without request: every acked indication of a client is for a request it sent.",
    check: no_ack_without_request,
};

/// The request numbers a client sent and those it had acked.
fn requests_and_acks(run: &RunEvents, client: &str) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let ids = |event: &str| run.of(client).iter().filter(|e| e.event == event).filter_map(|e| e.id).collect();
    (ids("send"), ids("acked"))
}

fn every_request_acked(run: &RunEvents) -> Verdict {
    if let Some(verdict) = not_yet(run) {
        return verdict;
    }
    for client in run.correct() {
        let (sent, acked) = requests_and_acks(run, &client);
        if let Some(request) = sent.difference(&acked).next() {
            let attempts = run.of(&client).iter().filter(|e| e.event == "send" && e.id == Some(*request)).count();
            return Verdict::Violated(format!(
                "{client} (correct) sent request {request} ({attempts} attempt(s)) and it was never acked"
            ));
        }
    }
    Verdict::Holds
}

fn no_ack_without_request(run: &RunEvents) -> Verdict {
    for client in &run.processes {
        let (sent, acked) = requests_and_acks(run, client);
        if let Some(request) = acked.difference(&sent).next() {
            return Verdict::Violated(format!("{client} had request {request} acked but never sent it"));
        }
    }
    if run.missing.is_empty() {
        Verdict::Holds
    } else {
        Verdict::Undecided(format!(
            "no violation in the events at hand, but those of member(s) {} are missing",
            run.missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;

    fn client_run(events: Vec<super::super::Event>) -> RunEvents {
        RunEvents::from_events(1, events)
    }

    #[test]
    fn a_request_acked_after_retries_holds() {
        let run = client_run(vec![
            ev("p1", "send", Some("p1"), Some(1), Some("req1")),
            ev("p1", "timeout", Some("p1"), None, Some("request 1 attempt 1")),
            ev("p1", "send", Some("p2"), Some(1), Some("req1")),
            ev("p1", "acked", Some("p2"), Some(1), None),
        ]);
        assert_eq!((ACK1.check)(&run), Verdict::Holds);
        assert_eq!((ACK2.check)(&run), Verdict::Holds);
    }

    #[test]
    fn a_request_never_acked_is_a_violation_once_quiesced() {
        let mut run = client_run(vec![
            ev("p1", "send", Some("p1"), Some(1), Some("req1")),
            ev("p1", "acked", Some("p1"), Some(1), None),
            ev("p1", "send", Some("p3"), Some(2), Some("req2")),
            ev("p1", "send", Some("p2"), Some(2), Some("req2")),
        ]);
        let Verdict::Violated(why) = (ACK1.check)(&run) else { panic!("ACK1 should be violated") };
        assert_eq!(why, "p1 (correct) sent request 2 (2 attempt(s)) and it was never acked");
        run.quiesced = false;
        assert!(matches!((ACK1.check)(&run), Verdict::Undecided(_)));
    }

    #[test]
    fn a_crashed_client_owes_nothing_but_acks_need_requests() {
        let mut crash = ev("p1", "crash", None, None, Some("killed by SIGKILL"));
        crash.by = Some("mgr".into());
        let run = client_run(vec![ev("p1", "send", Some("p1"), Some(1), Some("req1")), crash]);
        assert_eq!((ACK1.check)(&run), Verdict::Holds);
        let run = client_run(vec![ev("p1", "acked", Some("p1"), Some(4), None)]);
        assert!(matches!((ACK2.check)(&run), Verdict::Violated(_)));
        assert_eq!(properties("AckClient").map(|p| p.len()), Some(2));
        assert!(properties("AckReceiver").is_none());
    }
}
