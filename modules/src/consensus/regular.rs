#![doc = include_str!("regular.md")]
//!
//! # Implementation notes
//!
//! The perfect failure detector is not owned by a consensus instance but by
//! the layer above (the module, or total-order broadcast, whose consensus
//! instances all share one detector): that layer passes every
//! `⟨ P, Crash | p ⟩` down with `upon_crash`, and a new instance starts from
//! the processes already detected.
//!
//! Each handler returns the instance's `⟨ c, Decide | v ⟩`, if it triggered
//! one: at most once per instance.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::{book_rank, decode_set, encode_set, escape, min_value, unescape};
use crate::broadcast::best_effort::BestEffortBroadcast;
use crate::runtime::{Context, Contract, RunError, Timer};

/// Implements: Consensus, instance c (Algorithm 5.1, Flooding Consensus).
/// Uses: BestEffortBroadcast, instance beb; PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct FloodingConsensus {
    beb: BestEffortBroadcast,
    correct: BTreeSet<String>,
    round: usize,
    decision: Option<String>,
    /// The book's `receivedfrom[r]`, for r = 0, 1, …
    receivedfrom: BTreeMap<usize, BTreeSet<String>>,
    /// The book's `proposals[r]`.
    proposals: BTreeMap<usize, BTreeSet<String>>,
}

impl FloodingConsensus {
    /// A flooding consensus named `instance` (its beb is `<instance>.beb`).
    pub fn new(instance: &str, period: Duration) -> FloodingConsensus {
        FloodingConsensus {
            beb: BestEffortBroadcast::new(&format!("{instance}.beb"), period),
            correct: BTreeSet::new(),
            round: 1,
            decision: None,
            receivedfrom: BTreeMap::new(),
            proposals: BTreeMap::new(),
        }
    }

    /// `upon event ⟨ c, Init ⟩`: `correct := Π; round := 1; decision := ⊥;
    /// receivedfrom := [∅]^N; proposals := [∅]^N; receivedfrom[0] := Π`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.beb.upon_init(ctx);
        self.correct = ctx.processes().into_iter().collect();
        self.receivedfrom.insert(0, self.correct.clone());
    }

    /// `upon event ⟨ P, Crash | p ⟩`: `correct := correct \ {p}`.
    pub fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String> {
        self.correct.remove(p);
        self.upon_round_complete(ctx)
    }

    /// `upon event ⟨ c, Propose | v ⟩`: `proposals[1] := proposals[1] ∪ {v}`;
    /// `trigger ⟨ beb, Broadcast | [PROPOSAL, 1, proposals[1]] ⟩`.
    pub fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String> {
        let proposals = self.proposals.entry(1).or_default();
        proposals.insert(v.to_owned());
        let m = format!("PROPOSAL 1 {}", encode_set(proposals.iter()));
        self.beb.upon_broadcast(ctx, &m);
        None
    }

    /// `upon event ⟨ beb, Deliver | p, [PROPOSAL, r, ps] ⟩` and
    /// `upon event ⟨ beb, Deliver | p, [DECIDED, v] ⟩`.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String> {
        let (p, m) = self.beb.receive(ctx, from, payload)?;
        match m.split_once(' ') {
            Some(("PROPOSAL", rest)) => {
                let (r, ps) = rest.split_once(' ').unwrap_or((rest, ""));
                match (r.parse::<usize>(), decode_set(ps)) {
                    (Ok(r), Some(ps)) => self.upon_proposal(ctx, p, r, ps),
                    _ => {
                        eprintln!("c: dropped a malformed PROPOSAL from {p}: {m:?}");
                        None
                    }
                }
            }
            Some(("DECIDED", v)) => match unescape(v) {
                Some(v) => self.upon_decided(ctx, &p, v),
                None => {
                    eprintln!("c: dropped a malformed DECIDED from {p}: {m:?}");
                    None
                }
            },
            _ => {
                eprintln!("c: dropped an unknown message from {p}: {m:?}");
                None
            }
        }
    }

    /// `upon event ⟨ beb, Deliver | p, [PROPOSAL, r, ps] ⟩`:
    /// `receivedfrom[r] := receivedfrom[r] ∪ {p}; proposals[r] := proposals[r] ∪ ps`.
    fn upon_proposal(&mut self, ctx: &mut Context, p: String, r: usize, ps: Vec<String>) -> Option<String> {
        self.receivedfrom.entry(r).or_default().insert(p);
        self.proposals.entry(r).or_default().extend(ps);
        self.upon_round_complete(ctx)
    }

    /// `upon correct ⊆ receivedfrom[round] ∧ decision = ⊥`: decide
    /// `min(proposals[round])` if no process crashed during the round
    /// (`receivedfrom[round] = receivedfrom[round − 1]`), else go to the
    /// next round, broadcasting `[PROPOSAL, round, proposals[round − 1]]`.
    fn upon_round_complete(&mut self, ctx: &mut Context) -> Option<String> {
        loop {
            if self.decision.is_some() {
                return None;
            }
            let empty = BTreeSet::new();
            let received = self.receivedfrom.get(&self.round).unwrap_or(&empty);
            if !self.correct.is_subset(received) {
                return None;
            }
            if Some(received) == self.receivedfrom.get(&(self.round - 1)) {
                let decision = min_value(self.proposals.get(&self.round).into_iter().flatten())?;
                self.decision = Some(decision.clone());
                self.beb.upon_broadcast(ctx, &format!("DECIDED {}", escape(&decision)));
                return Some(decision);
            }
            self.round += 1;
            let previous = self.proposals.get(&(self.round - 1)).cloned().unwrap_or_default();
            self.beb.upon_broadcast(ctx, &format!("PROPOSAL {} {}", self.round, encode_set(previous.iter())));
        }
    }

    /// `upon event ⟨ beb, Deliver | p, [DECIDED, v] ⟩ such that p ∈ correct ∧
    /// decision = ⊥`: `decision := v`; broadcast `[DECIDED, decision]`; decide.
    fn upon_decided(&mut self, ctx: &mut Context, p: &str, v: String) -> Option<String> {
        if !self.correct.contains(p) || self.decision.is_some() {
            return None;
        }
        self.decision = Some(v.clone());
        self.beb.upon_broadcast(ctx, &format!("DECIDED {}", escape(&v)));
        Some(v)
    }
}

/// Implements: Consensus, instance c (Algorithm 5.2, Hierarchical Consensus).
/// Uses: BestEffortBroadcast, instance beb; PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct HierarchicalConsensus {
    beb: BestEffortBroadcast,
    /// Ranks count from 1, as in the book.
    detectedranks: BTreeSet<usize>,
    round: usize,
    proposal: Option<String>,
    proposer: usize,
    /// The book's `delivered[r]`: the ranks whose DECIDED arrived.
    delivered: BTreeSet<usize>,
    broadcast: bool,
}

impl HierarchicalConsensus {
    /// A hierarchical consensus named `instance` (its beb is `<instance>.beb`).
    pub fn new(instance: &str, period: Duration) -> HierarchicalConsensus {
        HierarchicalConsensus {
            beb: BestEffortBroadcast::new(&format!("{instance}.beb"), period),
            detectedranks: BTreeSet::new(),
            round: 1,
            proposal: None,
            proposer: 0,
            delivered: BTreeSet::new(),
            broadcast: false,
        }
    }

    /// `upon event ⟨ c, Init ⟩`: `detectedranks := ∅; round := 1; proposal := ⊥;
    /// proposer := 0; delivered := [FALSE]^N; broadcast := FALSE`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.beb.upon_init(ctx);
    }

    /// `upon event ⟨ P, Crash | p ⟩`: `detectedranks := detectedranks ∪ {rank(p)}`.
    pub fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String> {
        if let Some(r) = book_rank(ctx, p) {
            self.detectedranks.insert(r);
        }
        self.upon_round_change(ctx)
    }

    /// `upon event ⟨ c, Propose | v ⟩ such that proposal = ⊥`: `proposal := v`.
    pub fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String> {
        if self.proposal.is_none() {
            self.proposal = Some(v.to_owned());
        }
        self.upon_round_change(ctx)
    }

    /// `upon event ⟨ beb, Deliver | p, [DECIDED, v] ⟩`: adopt `v` if `p`
    /// ranks below this process and above the last proposer adopted;
    /// `delivered[rank(p)] := TRUE`.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String> {
        let (p, m) = self.beb.receive(ctx, from, payload)?;
        let v = match m.split_once(' ') {
            Some(("DECIDED", v)) => unescape(v),
            _ => None,
        };
        let (Some(v), Some(r), Some(me)) = (v, book_rank(ctx, &p), book_rank(ctx, ctx.self_name())) else {
            eprintln!("c: dropped an unknown message from {p}: {m:?}");
            return None;
        };
        if r < me && r > self.proposer {
            self.proposal = Some(v);
            self.proposer = r;
        }
        self.delivered.insert(r);
        self.upon_round_change(ctx)
    }

    /// `upon round = rank(self) ∧ proposal ≠ ⊥ ∧ broadcast = FALSE`: broadcast
    /// `[DECIDED, proposal]` and decide it; `upon round ∈ detectedranks ∨
    /// delivered[round] = TRUE`: `round := round + 1`.
    fn upon_round_change(&mut self, ctx: &mut Context) -> Option<String> {
        let me = book_rank(ctx, ctx.self_name())?;
        let mut decided = None;
        loop {
            if self.round == me && !self.broadcast {
                let Some(proposal) = self.proposal.clone() else { break };
                self.broadcast = true;
                self.beb.upon_broadcast(ctx, &format!("DECIDED {}", escape(&proposal)));
                decided = Some(proposal);
            }
            if self.detectedranks.contains(&self.round) || self.delivered.contains(&self.round) {
                self.round += 1;
            } else {
                break;
            }
        }
        decided
    }
}

/// Implements: Consensus, with the algorithm chosen at launch.
#[derive(Debug)]
pub enum Consensus {
    Flooding(FloodingConsensus),
    Hierarchical(HierarchicalConsensus),
}

/// The algorithms, by their `--algorithm` names.
pub const ALGORITHMS: &[&str] = &["flooding", "hierarchical"];

impl Consensus {
    /// An instance named `instance` of `algorithm` (one of [`ALGORITHMS`]).
    pub fn new(algorithm: &str, instance: &str, period: Duration) -> Consensus {
        match algorithm {
            "hierarchical" => Consensus::Hierarchical(HierarchicalConsensus::new(instance, period)),
            _ => Consensus::Flooding(FloodingConsensus::new(instance, period)),
        }
    }

    /// `upon event ⟨ c, Init ⟩`, then `⟨ P, Crash | p ⟩` for each process
    /// the shared detector has already detected.
    pub fn upon_init(&mut self, ctx: &mut Context, detected: &BTreeSet<String>) -> Option<String> {
        match self {
            Consensus::Flooding(c) => c.upon_init(ctx),
            Consensus::Hierarchical(c) => c.upon_init(ctx),
        }
        detected.iter().fold(None, |decided, p| self.upon_crash(ctx, p).or(decided))
    }

    /// `upon event ⟨ P, Crash | p ⟩`.
    pub fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String> {
        match self {
            Consensus::Flooding(c) => c.upon_crash(ctx, p),
            Consensus::Hierarchical(c) => c.upon_crash(ctx, p),
        }
    }

    /// `upon event ⟨ c, Propose | v ⟩`.
    pub fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String> {
        match self {
            Consensus::Flooding(c) => c.upon_propose(ctx, v),
            Consensus::Hierarchical(c) => c.upon_propose(ctx, v),
        }
    }

    /// A datagram of this instance's beb.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String> {
        match self {
            Consensus::Flooding(c) => c.receive(ctx, from, payload),
            Consensus::Hierarchical(c) => c.receive(ctx, from, payload),
        }
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        match self {
            Consensus::Flooding(c) => c.beb.owns(payload),
            Consensus::Hierarchical(c) => c.beb.owns(payload),
        }
    }

    /// The links' timers; false when `timer` is not this instance's.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        match self {
            Consensus::Flooding(c) => c.beb.upon_timeout(ctx, timer),
            Consensus::Hierarchical(c) => c.beb.upon_timeout(ctx, timer),
        }
    }
}

impl super::ConsensusLayer for Consensus {
    fn upon_init(&mut self, ctx: &mut Context, detected: &BTreeSet<String>) -> Option<String> {
        Consensus::upon_init(self, ctx, detected)
    }
    fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String> {
        Consensus::upon_crash(self, ctx, p)
    }
    fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String> {
        Consensus::upon_propose(self, ctx, v)
    }
    fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String> {
        Consensus::receive(self, ctx, from, payload)
    }
    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        Consensus::upon_timeout(self, ctx, timer)
    }
}

/// Runs the module: `mgr-modules Consensus [--algorithm flooding|hierarchical]
/// [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (algorithm, delta, period) = super::parse_args(args, ALGORITHMS)?;
    super::run_module(contract, Consensus::new(algorithm, "c", period), delta, period)
}
