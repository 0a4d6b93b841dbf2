//! Checking a run against the book's properties, from its events.
//!
//! A run's events are what its instances wrote to their `MGR_EVENTS` files
//! (see [`crate::runtime::events`]) plus the crash records the manager
//! appended (`"event":"crash","by":"mgr"`), merged over every member that
//! hosted the run. Each property of the book is a [`Property`]: a function
//! from the [`RunEvents`] to a [`Verdict`]. The chapters' files
//! (`links.rs`, `detectors.rs`, `broadcast.rs`, `registers.rs`,
//! `consensus.rs`, and `apps.rs` for the applications) hold their
//! properties and say which modules declare them.
//!
//! This module is pure: it reads events given to it and never does I/O, so
//! checkers are tested on events written by hand as well as on real runs.

pub mod ack;
pub mod apps;
pub mod broadcast;
pub mod consensus;
pub mod detectors;
pub mod links;
pub mod registers;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One line of an events file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Event {
    #[serde(default)]
    pub time_ms: u64,
    #[serde(default)]
    pub run: String,
    /// The instance that wrote it ("p1").
    pub process: String,
    /// "send", "receive", "deliver", "broadcast", "crash", "suspect", …
    pub event: String,
    /// The other end: the destination of a send, the sender of a
    /// receive or deliver, the suspected process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The message id, unique per (sender, destination) for links and per
    /// sender for broadcasts, as the module numbers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default)]
    pub lamport: u64,
    /// The vector clock, one entry per process of the run in `p1..pN` order.
    #[serde(default)]
    pub vc: Vec<u64>,
    /// The writer's incarnation (`MGR_INCARNATION`): 1, then one more at
    /// each restart; absent from events of programs that do not say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inc: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// "mgr" on the crash records the manager writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The merged events of one run.
#[derive(Debug, Clone, Default)]
pub struct RunEvents {
    pub run: String,
    /// The module the run ran ("exec" for a command); for a run of several
    /// roles, their modules joined by '+'.
    pub module: String,
    /// Each process's module, for a run of several roles (a scenario);
    /// empty when every process runs `module`.
    pub module_of: BTreeMap<String, String>,
    /// Each process's role, for a run of several roles; empty otherwise.
    pub role_of: BTreeMap<String, String>,
    /// Every process of the run, in `p1..pN` order.
    pub processes: Vec<String>,
    /// Each process's events in the order it wrote them (crash records
    /// last), by process name.
    pub by_process: BTreeMap<String, Vec<Event>>,
    /// Members whose events could not be had (dead): what they hosted is
    /// missing, and properties that need it are undecided.
    pub missing: Vec<String>,
    /// Processes hosted by a missing member.
    pub missing_processes: BTreeSet<String>,
    /// Lines that were not events (malformed JSON), counted, not hidden.
    pub bad_lines: usize,
    /// Whether the run has quiesced: no instance is live any more, or no new
    /// event came for the quiescence period. Liveness properties ("eventually
    /// every correct process delivers") are decided only then.
    pub quiesced: bool,
}

impl RunEvents {
    /// Every event of every process, each process's in its own order.
    pub fn all(&self) -> impl Iterator<Item = &Event> {
        self.by_process.values().flatten()
    }

    /// One process's events in order (empty if it wrote none).
    pub fn of(&self, process: &str) -> &[Event] {
        self.by_process.get(process).map_or(&[], Vec::as_slice)
    }

    /// Processes with a crash record written by the manager: the book's
    /// faulty processes. (A failure detector's own `crash` indication, which
    /// names the process it detected in `peer`, is not a crash of the
    /// detector.)
    pub fn crashed(&self) -> BTreeSet<String> {
        self.all().filter(|e| is_crash_record(e)).map(|e| e.process.clone()).collect()
    }

    /// Processes that never crashed: the book's correct processes.
    pub fn correct(&self) -> Vec<String> {
        let crashed = self.crashed();
        self.processes.iter().filter(|p| !crashed.contains(*p)).cloned().collect()
    }

    /// Adds events from lines of a file of one process (JSON objects, one
    /// per line), counting lines that are not events.
    pub fn add_lines(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Event>(line) {
                Ok(event) => self.by_process.entry(event.process.clone()).or_default().push(event),
                Err(_) => self.bad_lines += 1,
            }
        }
    }

    /// The same run seen through `processes` only: their events, as if
    /// the run had no other process. A run of several roles is checked one
    /// module at a time this way, since each module's properties speak of
    /// its own processes (a discovery service is not a client).
    pub fn only(&self, processes: &[String]) -> RunEvents {
        let keep = |p: &String| processes.contains(p);
        RunEvents {
            run: self.run.clone(),
            module: self.module.clone(),
            module_of: self.module_of.iter().filter(|(p, _)| keep(p)).map(|(p, m)| (p.clone(), m.clone())).collect(),
            role_of: self.role_of.iter().filter(|(p, _)| keep(p)).map(|(p, r)| (p.clone(), r.clone())).collect(),
            processes: self.processes.iter().filter(|p| keep(p)).cloned().collect(),
            by_process: self.by_process.iter().filter(|(p, _)| keep(p)).map(|(p, e)| (p.clone(), e.clone())).collect(),
            missing: self.missing.clone(),
            missing_processes: self.missing_processes.iter().filter(|p| keep(p)).cloned().collect(),
            bad_lines: self.bad_lines,
            quiesced: self.quiesced,
        }
    }

    /// The run split by role, each part with its role's name, its module
    /// and its processes, in order of first process; one part, with an
    /// empty role name, for a run without roles. Each role is its own Π
    /// (the book's modules broadcast within their role), so each is checked
    /// on its own.
    pub fn by_role(&self) -> Vec<(String, String, RunEvents)> {
        if self.role_of.is_empty() {
            return vec![(String::new(), self.module.clone(), self.clone())];
        }
        let mut roles: Vec<&String> = Vec::new();
        for process in &self.processes {
            if let Some(role) = self.role_of.get(process)
                && !roles.contains(&role)
            {
                roles.push(role);
            }
        }
        roles
            .into_iter()
            .map(|role| {
                let mine: Vec<String> =
                    self.processes.iter().filter(|p| self.role_of.get(*p) == Some(role)).cloned().collect();
                let module = mine.first().and_then(|p| self.module_of.get(p)).cloned().unwrap_or_default();
                (role.clone(), module, self.only(&mine))
            })
            .collect()
    }

    /// Builds a run from events (tests, and tools that have them at hand):
    /// processes `p1..pN`, quiesced.
    pub fn from_events(n: usize, events: impl IntoIterator<Item = Event>) -> RunEvents {
        let mut run =
            RunEvents { processes: (1..=n).map(|i| format!("p{i}")).collect(), quiesced: true, ..Default::default() };
        for event in events {
            run.by_process.entry(event.process.clone()).or_default().push(event);
        }
        run
    }
}

/// Whether `event` is a crash record: written by the manager when the
/// process ended other than by a requested stop.
pub fn is_crash_record(event: &Event) -> bool {
    event.event == "crash" && event.by.as_deref() == Some("mgr")
}

/// The outcome of checking one property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    /// A minimal counterexample: which process, which message, which events.
    Violated(String),
    /// Not decidable from these events: a liveness property before the run
    /// quiesced, or events missing from a dead member. Says why.
    Undecided(String),
}

/// One property of the book.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// The book's label, e.g. "PL1".
    pub id: &'static str,
    /// Its name and statement, e.g. "Reliable delivery: if a correct process
    /// p sends a message m to a correct process q, then q eventually
    /// delivers m."
    pub statement: &'static str,
    pub check: fn(&RunEvents) -> Verdict,
}

/// The properties `module` declares, in the book's order; empty for a
/// module with none (or an exec).
pub fn properties_of(module: &str) -> Vec<Property> {
    [
        links::properties,
        detectors::properties,
        broadcast::properties,
        registers::properties,
        consensus::properties,
        apps::properties,
        ack::properties,
    ]
    .iter()
    .find_map(|chapter| chapter(module))
    .unwrap_or_default()
}

/// Every property of every module, for `--property ID` (checking a run
/// against another abstraction's property, e.g. a best-effort broadcast
/// against RB4).
pub fn property(id: &str) -> Option<Property> {
    crate::catalog::all().flat_map(|m| properties_of(m.name)).find(|p| p.id.eq_ignore_ascii_case(id))
}

/// Checks `run` against `properties`, in order.
pub fn check(run: &RunEvents, properties: &[Property]) -> Vec<(Property, Verdict)> {
    properties.iter().map(|p| (*p, (p.check)(run))).collect()
}

/// The verdict for a liveness property whose evidence is incomplete: the
/// run has not quiesced, or a member's events are missing.
pub fn not_yet(run: &RunEvents) -> Option<Verdict> {
    if !run.missing.is_empty() {
        return Some(Verdict::Undecided(format!("events of member(s) {} are missing", run.missing.join(", "))));
    }
    if !run.quiesced {
        return Some(Verdict::Undecided("the run has not quiesced (wait with --quiesce SECS)".into()));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event for hand-written test runs.
    pub(crate) fn ev(process: &str, event: &str, peer: Option<&str>, id: Option<u64>, text: Option<&str>) -> Event {
        Event {
            process: process.into(),
            event: event.into(),
            peer: peer.map(Into::into),
            id,
            text: text.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn lines_become_events_by_process_and_bad_lines_are_counted() {
        let mut run = RunEvents { processes: vec!["p1".into(), "p2".into()], ..Default::default() };
        run.add_lines(concat!(
            r#"{"time_ms":1,"run":"r","process":"p1","event":"send","peer":"p2","id":1,"lamport":1,"vc":[1,0],"text":"hi"}"#,
            "\nnot json\n",
            r#"{"time_ms":2,"run":"r","process":"p2","event":"crash","by":"mgr","text":"killed by SIGKILL"}"#,
            "\n"
        ));
        assert_eq!(run.bad_lines, 1);
        assert_eq!(run.of("p1")[0].id, Some(1));
        assert_eq!(run.crashed().into_iter().collect::<Vec<_>>(), ["p2"]);
        assert_eq!(run.correct(), ["p1"]);
        let built = RunEvents::from_events(2, [ev("p2", "deliver", Some("p1"), Some(1), Some("hi"))]);
        assert_eq!(built.of("p2").len(), 1);
        assert!(built.quiesced && built.crashed().is_empty());
    }

    #[test]
    fn a_run_of_several_roles_is_split_by_role_with_only_its_processes() {
        let mut run = RunEvents::from_events(
            4,
            [
                ev("p1", "send", Some("p3"), Some(1), Some("x")),
                ev("p3", "acked", None, Some(1), None),
                Event { event: "crash".into(), by: Some("mgr".into()), ..ev("p2", "crash", None, None, None) },
            ],
        );
        assert_eq!(run.by_role().len(), 1, "a plain run is one part");
        run.module = "AckReceiver+AckClient".into();
        run.module_of = [("p1", "AckReceiver"), ("p2", "AckReceiver"), ("p3", "AckClient"), ("p4", "AckReceiver")]
            .map(|(p, m)| (p.into(), m.into()))
            .into();
        // Two roles of one module are two parts: each is its own group.
        run.role_of = [("p1", "receiver"), ("p2", "receiver"), ("p3", "client"), ("p4", "spare")]
            .map(|(p, r)| (p.into(), r.into()))
            .into();
        let parts = run.by_role();
        let names: Vec<(&str, &str)> = parts.iter().map(|(r, m, _)| (r.as_str(), m.as_str())).collect();
        assert_eq!(names, [("receiver", "AckReceiver"), ("client", "AckClient"), ("spare", "AckReceiver")]);
        let (receivers, client) = (&parts[0].2, &parts[1].2);
        assert_eq!(receivers.processes, ["p1", "p2"]);
        assert_eq!(receivers.crashed().into_iter().collect::<Vec<_>>(), ["p2"]);
        assert_eq!(client.processes, ["p3"]);
        assert!(client.of("p1").is_empty() && client.of("p3").len() == 1 && client.crashed().is_empty());
    }
}
