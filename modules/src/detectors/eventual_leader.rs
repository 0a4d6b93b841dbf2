#![doc = include_str!("eventual_leader.md")]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::eventually_perfect::{EventuallyPerfectFailureDetector, Indication};
use super::leader_election::maxrank;
use super::perfect;
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer};

const HELP: &str = "  help       this list";

/// Implements: EventualLeaderDetector, instance Ω.
/// Uses: EventuallyPerfectFailureDetector, instance ◇P.
#[derive(Debug)]
pub struct EventualLeaderDetector {
    epfd: EventuallyPerfectFailureDetector,
    suspected: BTreeSet<String>,
    leader: Option<String>,
}

impl EventualLeaderDetector {
    /// An eventual leader detector named `instance`, over an eventually
    /// perfect failure detector with timeout increment `delta` and links
    /// that retransmit every `period`.
    pub fn new(instance: &str, delta: Duration, period: Duration) -> EventualLeaderDetector {
        EventualLeaderDetector {
            epfd: EventuallyPerfectFailureDetector::new(&format!("{instance}.epfd"), delta, period),
            suspected: BTreeSet::new(),
            leader: None,
        }
    }

    /// `upon event ⟨ Ω, Init ⟩`: `suspected := ∅; leader := ⊥`. Returns the
    /// first `⟨ Ω, Trust | p ⟩` (the rule below holds at once).
    pub fn upon_init(&mut self, ctx: &mut Context) -> Option<String> {
        self.suspected.clear();
        self.leader = None;
        self.epfd.upon_init(ctx);
        self.upon_leader_change(ctx)
    }

    /// `upon event ⟨ ◇P, Suspect | p ⟩`: `suspected := suspected ∪ {p}`.
    pub fn upon_suspect(&mut self, p: String) {
        self.suspected.insert(p);
    }

    /// `upon event ⟨ ◇P, Restore | p ⟩`: `suspected := suspected \ {p}`.
    pub fn upon_restore(&mut self, p: &str) {
        self.suspected.remove(p);
    }

    /// `upon leader ≠ maxrank(Π \ suspected)`: `leader := maxrank(Π \ suspected);
    /// trigger ⟨ Ω, Trust | leader ⟩`. Returns the new leader, if any.
    pub fn upon_leader_change(&mut self, ctx: &Context) -> Option<String> {
        let p = maxrank(&ctx.processes(), &self.suspected)?;
        if self.leader.as_ref() == Some(&p) {
            return None;
        }
        self.leader = Some(p.clone());
        Some(p)
    }

    /// The detector's timers: `None` when `timer` is not this instance's,
    /// otherwise the new leader trusted, if ◇P's suspicions changed it.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Option<String>> {
        for indication in self.epfd.upon_timeout(ctx, timer)? {
            match indication {
                Indication::Suspect(p) => self.upon_suspect(p),
                Indication::Restore(p) => self.upon_restore(&p),
            }
        }
        Some(self.upon_leader_change(ctx))
    }

    /// A datagram for the detector; false when it is not this instance's.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> bool {
        self.epfd.receive(ctx, from, payload)
    }

    /// The process trusted now (⊥ before `upon_init`).
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
}

/// The eventual leader detector as a module of its own.
impl Module for EventualLeaderDetector {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        if let Some(p) = EventualLeaderDetector::upon_init(self, ctx) {
            ctx.indicate("trust", Some(&p), "");
        }
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        ctx.refuse(&command, HELP);
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        self.receive(ctx, from, payload);
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        if let Some(Some(p)) = EventualLeaderDetector::upon_timeout(self, ctx, timer) {
            ctx.indicate("trust", Some(&p), "");
        }
    }
}

/// Runs the module: `mgr-modules EventualLeaderDetector [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (delta, period) = perfect::parse_timing(args, perfect::DEFAULT_DELTA)?;
    runtime::run(contract, EventualLeaderDetector::new("omega", delta, period))
}
