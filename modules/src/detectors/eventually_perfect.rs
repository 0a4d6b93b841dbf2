#![doc = include_str!("eventually_perfect.md")]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::perfect;
use crate::links::perfect::PerfectPointToPointLink;
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer};

const HEARTBEAT_REQUEST: &str = "HEARTBEATREQUEST";
const HEARTBEAT_REPLY: &str = "HEARTBEATREPLY";

const HELP: &str =
    "  suspected  print the processes suspected now\n  delay      print the current timeout\n  help       this list";

/// An indication of ◇P.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indication {
    /// `⟨ ◇P, Suspect | p ⟩`.
    Suspect(String),
    /// `⟨ ◇P, Restore | p ⟩`.
    Restore(String),
}

/// Implements: EventuallyPerfectFailureDetector, instance ◇P.
/// Uses: PerfectPointToPointLinks, instance pl.
#[derive(Debug)]
pub struct EventuallyPerfectFailureDetector {
    pl: PerfectPointToPointLink,
    alive: BTreeSet<String>,
    suspected: BTreeSet<String>,
    /// Δ, the initial delay and its increment.
    delta: Duration,
    delay: Duration,
    /// The processes whose last heartbeat request is not answered yet (not
    /// in the book; see the module's description).
    unanswered: BTreeSet<String>,
    timer: String,
}

impl EventuallyPerfectFailureDetector {
    /// A detector named `instance`, with timeout increment `delta` and links
    /// that retransmit every `period`.
    pub fn new(instance: &str, delta: Duration, period: Duration) -> EventuallyPerfectFailureDetector {
        EventuallyPerfectFailureDetector {
            pl: PerfectPointToPointLink::new(instance, period, true),
            alive: BTreeSet::new(),
            suspected: BTreeSet::new(),
            delta,
            delay: delta,
            unanswered: BTreeSet::new(),
            timer: format!("{instance}.timeout"),
        }
    }

    /// `upon event ⟨ ◇P, Init ⟩`: `alive := Π; suspected := ∅; delay := Δ;
    /// starttimer(delay)`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.alive = ctx.processes().into_iter().collect();
        self.suspected.clear();
        self.delay = self.delta;
        self.pl.upon_init(ctx);
        ctx.start_timer(&self.timer, self.delay);
    }

    /// `upon event ⟨ Timeout ⟩`: returns the indications of this round (in
    /// the order of Π), or `None` when `timer` is not the detector's (its
    /// link may have taken it).
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Vec<Indication>> {
        if timer != self.timer {
            return self.pl.upon_timeout(ctx, timer).then(Vec::new);
        }
        // if alive ∩ suspected ≠ ∅ then delay := delay + Δ
        if !self.alive.is_disjoint(&self.suspected) {
            self.delay += self.delta;
        }
        let mut indications = Vec::new();
        for p in ctx.processes() {
            let alive = self.alive.contains(&p);
            if !alive && !self.suspected.contains(&p) {
                self.suspected.insert(p.clone());
                indications.push(Indication::Suspect(p.clone()));
            } else if alive && self.suspected.remove(&p) {
                indications.push(Indication::Restore(p.clone()));
            }
            // trigger ⟨ pl, Send | p, [HEARTBEATREQUEST] ⟩, unless the last
            // one is still on its way.
            if self.unanswered.insert(p.clone()) {
                self.pl.send(ctx, &p, HEARTBEAT_REQUEST.to_owned());
            }
        }
        self.alive.clear();
        ctx.start_timer(&self.timer, self.delay);
        Some(indications)
    }

    /// `upon event ⟨ pl, Deliver | q, [HEARTBEATREQUEST] ⟩`: reply;
    /// `upon event ⟨ pl, Deliver | p, [HEARTBEATREPLY] ⟩`: `alive := alive ∪ {p}`.
    /// Returns false when the datagram is not this detector's.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> bool {
        if !self.pl.owns(payload) {
            return false;
        }
        if let Some((q, m)) = self.pl.receive_message(ctx, from, payload) {
            match m.text.as_str() {
                HEARTBEAT_REQUEST => self.pl.send(ctx, &q, HEARTBEAT_REPLY.to_owned()),
                HEARTBEAT_REPLY => {
                    self.unanswered.remove(&q);
                    self.alive.insert(q);
                }
                other => eprintln!("◇P: ignored an unknown message from {q}: {other:?}"),
            }
        }
        true
    }

    /// The processes suspected now.
    pub fn suspected(&self) -> &BTreeSet<String> {
        &self.suspected
    }

    /// The current timeout.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// The eventually perfect failure detector as a module of its own.
impl Module for EventuallyPerfectFailureDetector {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        EventuallyPerfectFailureDetector::upon_init(self, ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command.verb.as_str() {
            "suspected" => {
                let suspected: Vec<&str> = self.suspected.iter().map(String::as_str).collect();
                runtime::say(format!("suspected {}", suspected.join(" ")).trim_end());
            }
            "delay" => runtime::say(format_args!("delay {}ms", self.delay.as_millis())),
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        self.receive(ctx, from, payload);
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        for indication in EventuallyPerfectFailureDetector::upon_timeout(self, ctx, timer).unwrap_or_default() {
            match indication {
                Indication::Suspect(p) => ctx.indicate("suspect", Some(&p), ""),
                Indication::Restore(p) => ctx.indicate("restore", Some(&p), ""),
            }
        }
    }
}

/// Runs the module: `mgr-modules EventuallyPerfectFailureDetector [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (delta, period) = perfect::parse_timing(args, perfect::DEFAULT_DELTA)?;
    runtime::run(contract, EventuallyPerfectFailureDetector::new("epfd", delta, period))
}
