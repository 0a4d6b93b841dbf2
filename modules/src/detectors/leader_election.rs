#![doc = include_str!("leader_election.md")]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::perfect::{self, PerfectFailureDetector};
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer};

const HELP: &str = "  help       this list";

/// Implements: LeaderElection, instance le.
/// Uses: PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct LeaderElection {
    p: PerfectFailureDetector,
    suspected: BTreeSet<String>,
    leader: Option<String>,
}

impl LeaderElection {
    /// A leader election named `instance`, over a perfect failure detector
    /// with timeout `delta` and links that retransmit every `period`.
    pub fn new(instance: &str, delta: Duration, period: Duration) -> LeaderElection {
        LeaderElection {
            p: PerfectFailureDetector::new(&format!("{instance}.P"), delta, period),
            suspected: BTreeSet::new(),
            leader: None,
        }
    }

    /// `upon event ⟨ le, Init ⟩`: `suspected := ∅; leader := ⊥`. Returns
    /// the first `⟨ le, Leader | p ⟩` (the rule below holds at once).
    pub fn upon_init(&mut self, ctx: &mut Context) -> Option<String> {
        self.suspected.clear();
        self.leader = None;
        self.p.upon_init(ctx);
        self.upon_leader_change(ctx)
    }

    /// `upon event ⟨ P, Crash | p ⟩`: `suspected := suspected ∪ {p}`.
    pub fn upon_crash(&mut self, p: String) {
        self.suspected.insert(p);
    }

    /// `upon exists p such that leader ≠ p ∧ p = maxrank(Π \ suspected)`:
    /// `leader := p; trigger ⟨ le, Leader | p ⟩`. Returns the new leader, if any.
    pub fn upon_leader_change(&mut self, ctx: &Context) -> Option<String> {
        let p = maxrank(&ctx.processes(), &self.suspected)?;
        if self.leader.as_ref() == Some(&p) {
            return None;
        }
        self.leader = Some(p.clone());
        Some(p)
    }

    /// The detector's timer: `None` when `timer` is not this instance's,
    /// otherwise the new leader, if the crashes detected changed it.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Option<String>> {
        let crashed = self.p.upon_timeout(ctx, timer)?;
        for p in crashed {
            self.upon_crash(p);
        }
        Some(self.upon_leader_change(ctx))
    }

    /// A datagram for the detector; false when it is not this instance's.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> bool {
        self.p.receive(ctx, from, payload)
    }

    /// The current leader (⊥ before `upon_init`).
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
}

/// `maxrank(Π \ suspected)`: the first process of Π (p1 is ranked highest)
/// that is not suspected, if any.
pub fn maxrank(processes: &[String], suspected: &BTreeSet<String>) -> Option<String> {
    processes.iter().find(|p| !suspected.contains(*p)).cloned()
}

/// Leader election as a module of its own.
impl Module for LeaderElection {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        if let Some(p) = LeaderElection::upon_init(self, ctx) {
            ctx.indicate("leader", Some(&p), "");
        }
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        ctx.refuse(&command, HELP);
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        self.receive(ctx, from, payload);
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        if let Some(Some(p)) = LeaderElection::upon_timeout(self, ctx, timer) {
            ctx.indicate("leader", Some(&p), "");
        }
    }
}

/// Runs the module: `mgr-modules LeaderElection [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (delta, period) = perfect::parse_timing(args, perfect::DEFAULT_DELTA)?;
    runtime::run(contract, LeaderElection::new("le", delta, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxrank_is_the_first_process_not_suspected() {
        let pi: Vec<String> = ["p1", "p2", "p3"].map(String::from).to_vec();
        let suspected = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(maxrank(&pi, &suspected(&[])).as_deref(), Some("p1"));
        assert_eq!(maxrank(&pi, &suspected(&["p1"])).as_deref(), Some("p2"));
        assert_eq!(maxrank(&pi, &suspected(&["p2"])).as_deref(), Some("p1"));
        assert_eq!(maxrank(&pi, &suspected(&["p1", "p2", "p3"])), None);
    }
}
