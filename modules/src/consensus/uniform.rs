#![doc = include_str!("uniform.md")]
//!
//! # Implementation notes
//!
//! As for [`super::regular`], the perfect failure detector is owned by the
//! layer above, which passes every `⟨ P, Crash | p ⟩` down with
//! `upon_crash`; each handler returns the instance's `⟨ uc, Decide | v ⟩`,
//! if it triggered one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::{book_rank, decode_set, encode_set, escape, min_value, unescape};
use crate::broadcast::best_effort::BestEffortBroadcast;
use crate::broadcast::reliable::ReliableBroadcast;
use crate::links::perfect::PerfectPointToPointLink;
use crate::runtime::{Context, Contract, RunError, Timer};

/// Implements: UniformConsensus, instance uc (Algorithm 5.3, Flooding Uniform Consensus).
/// Uses: BestEffortBroadcast, instance beb; PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct FloodingUniformConsensus {
    beb: BestEffortBroadcast,
    correct: BTreeSet<String>,
    round: usize,
    decision: Option<String>,
    proposalset: BTreeSet<String>,
    receivedfrom: BTreeSet<String>,
    /// PROPOSAL messages of later rounds, held until their round comes (the
    /// book's `such that r = round`).
    pending: BTreeMap<usize, Vec<(String, Vec<String>)>>,
    /// N, the number of rounds.
    n: usize,
}

impl FloodingUniformConsensus {
    /// A flooding uniform consensus named `instance` (its beb is `<instance>.beb`).
    pub fn new(instance: &str, period: Duration) -> FloodingUniformConsensus {
        FloodingUniformConsensus {
            beb: BestEffortBroadcast::new(&format!("{instance}.beb"), period),
            correct: BTreeSet::new(),
            round: 1,
            decision: None,
            proposalset: BTreeSet::new(),
            receivedfrom: BTreeSet::new(),
            pending: BTreeMap::new(),
            n: 0,
        }
    }

    /// `upon event ⟨ uc, Init ⟩`: `correct := Π; round := 1; decision := ⊥;
    /// proposalset := ∅; receivedfrom := ∅`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.beb.upon_init(ctx);
        self.correct = ctx.processes().into_iter().collect();
        self.n = self.correct.len();
    }

    /// `upon event ⟨ P, Crash | p ⟩`: `correct := correct \ {p}`.
    pub fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String> {
        self.correct.remove(p);
        self.upon_round_complete(ctx)
    }

    /// `upon event ⟨ uc, Propose | v ⟩`: `proposalset := proposalset ∪ {v}`;
    /// `trigger ⟨ beb, Broadcast | [PROPOSAL, 1, proposalset] ⟩`.
    pub fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String> {
        self.proposalset.insert(v.to_owned());
        let m = format!("PROPOSAL 1 {}", encode_set(self.proposalset.iter()));
        self.beb.upon_broadcast(ctx, &m);
        None
    }

    /// A datagram of the beb: `⟨ beb, Deliver | p, [PROPOSAL, r, ps] ⟩`.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String> {
        let (p, m) = self.beb.receive(ctx, from, payload)?;
        let proposal = m.strip_prefix("PROPOSAL ").and_then(|rest| {
            let (r, ps) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((r.parse::<usize>().ok()?, decode_set(ps)?))
        });
        let Some((r, ps)) = proposal else {
            eprintln!("uc: dropped an unknown message from {p}: {m:?}");
            return None;
        };
        // `such that r = round`: a later round's message waits for its round;
        // an earlier one's sender was detected before it arrived.
        if r > self.round {
            self.pending.entry(r).or_default().push((p, ps));
            return None;
        }
        if r == self.round {
            self.upon_proposal(p, ps);
        }
        self.upon_round_complete(ctx)
    }

    /// `upon event ⟨ beb, Deliver | p, [PROPOSAL, r, ps] ⟩ such that r = round`:
    /// `receivedfrom := receivedfrom ∪ {p}; proposalset := proposalset ∪ ps`.
    fn upon_proposal(&mut self, p: String, ps: Vec<String>) {
        self.receivedfrom.insert(p);
        self.proposalset.extend(ps);
    }

    /// `upon correct ⊆ receivedfrom ∧ decision = ⊥`: decide `min(proposalset)`
    /// after round N, else go to the next round, broadcasting
    /// `[PROPOSAL, round, proposalset]`.
    fn upon_round_complete(&mut self, ctx: &mut Context) -> Option<String> {
        while self.decision.is_none() && self.correct.is_subset(&self.receivedfrom) {
            if self.round == self.n {
                let decision = min_value(&self.proposalset)?;
                self.decision = Some(decision.clone());
                return Some(decision);
            }
            self.round += 1;
            self.receivedfrom.clear();
            let m = format!("PROPOSAL {} {}", self.round, encode_set(self.proposalset.iter()));
            self.beb.upon_broadcast(ctx, &m);
            for (p, ps) in self.pending.remove(&self.round).unwrap_or_default() {
                self.upon_proposal(p, ps);
            }
        }
        None
    }
}

/// Implements: UniformConsensus, instance uc (Algorithm 5.4, Hierarchical Uniform Consensus).
/// Uses: PerfectPointToPointLinks, instance pl; BestEffortBroadcast, instance beb;
/// ReliableBroadcast, instance rb; PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct HierarchicalUniformConsensus {
    pl: PerfectPointToPointLink,
    beb: BestEffortBroadcast,
    rb: ReliableBroadcast,
    /// Ranks count from 1, as in the book.
    detectedranks: BTreeSet<usize>,
    ackranks: BTreeSet<usize>,
    round: usize,
    proposal: Option<String>,
    decision: Option<String>,
    /// The book's `proposed[r]`: the proposal heard from rank r.
    proposed: BTreeMap<usize, String>,
    /// Whether this process, as leader, broadcast its PROPOSAL, then its DECIDED
    /// (each of the book's guards fires once).
    sent_proposal: bool,
    sent_decided: bool,
}

impl HierarchicalUniformConsensus {
    /// A hierarchical uniform consensus named `instance` (its components are
    /// `<instance>.pl`, `<instance>.beb` and `<instance>.rb`).
    pub fn new(instance: &str, period: Duration) -> HierarchicalUniformConsensus {
        HierarchicalUniformConsensus {
            pl: PerfectPointToPointLink::new(&format!("{instance}.pl"), period, true),
            beb: BestEffortBroadcast::new(&format!("{instance}.beb"), period),
            rb: ReliableBroadcast::eager(&format!("{instance}.rb"), period),
            detectedranks: BTreeSet::new(),
            ackranks: BTreeSet::new(),
            round: 1,
            proposal: None,
            decision: None,
            proposed: BTreeMap::new(),
            sent_proposal: false,
            sent_decided: false,
        }
    }

    /// `upon event ⟨ uc, Init ⟩`: `detectedranks := ∅; ackranks := ∅; round := 1;
    /// proposal := ⊥; decision := ⊥; proposed := [⊥]^N`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.pl.upon_init(ctx);
        self.beb.upon_init(ctx);
        self.rb.upon_init(ctx);
    }

    /// `upon event ⟨ P, Crash | p ⟩`: `detectedranks := detectedranks ∪ {rank(p)}`.
    pub fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String> {
        if let Some(r) = book_rank(ctx, p) {
            self.detectedranks.insert(r);
        }
        self.upon_change(ctx);
        None
    }

    /// `upon event ⟨ uc, Propose | v ⟩ such that proposal = ⊥`: `proposal := v`.
    pub fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String> {
        if self.proposal.is_none() {
            self.proposal = Some(v.to_owned());
        }
        self.upon_change(ctx);
        None
    }

    /// A datagram of one of the components.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String> {
        if self.beb.owns(payload) {
            let (p, m) = self.beb.receive(ctx, from, payload)?;
            match (m.strip_prefix("PROPOSAL ").and_then(unescape), book_rank(ctx, &p)) {
                (Some(v), Some(r)) => self.upon_beb_deliver_proposal(ctx, &p, r, v),
                _ => eprintln!("uc: dropped an unknown message from {p}: {m:?}"),
            }
        } else if self.pl.owns(payload) {
            let (q, m) = self.pl.receive_message(ctx, from, payload)?;
            match (m.text.as_str(), book_rank(ctx, &q)) {
                // `upon event ⟨ pl, Deliver | q, [ACK] ⟩`: `ackranks := ackranks ∪ {rank(q)}`.
                ("ACK", Some(r)) => {
                    self.ackranks.insert(r);
                }
                _ => eprintln!("uc: dropped an unknown message from {q}: {:?}", m.text),
            }
        } else if self.rb.owns(payload) {
            let data = self.rb.receive(ctx, from, payload)?;
            match data.text.strip_prefix("DECIDED ").and_then(unescape) {
                Some(v) => return self.upon_rb_deliver_decided(v),
                None => eprintln!("uc: dropped an unknown message from {}: {:?}", data.sender, data.text),
            }
        }
        self.upon_change(ctx);
        None
    }

    /// `upon event ⟨ beb, Deliver | p, [PROPOSAL, v] ⟩`: `proposed[rank(p)] := v`;
    /// if `rank(p) ≥ round`, `trigger ⟨ pl, Send | p, [ACK] ⟩`.
    fn upon_beb_deliver_proposal(&mut self, ctx: &mut Context, p: &str, r: usize, v: String) {
        self.proposed.insert(r, v);
        if r >= self.round {
            self.pl.send(ctx, p, "ACK".to_owned());
        }
    }

    /// `upon event ⟨ rb, Deliver | p, [DECIDED, v] ⟩ such that decision = ⊥`:
    /// `decision := v; trigger ⟨ uc, Decide | decision ⟩`.
    fn upon_rb_deliver_decided(&mut self, v: String) -> Option<String> {
        if self.decision.is_some() {
            return None;
        }
        self.decision = Some(v.clone());
        Some(v)
    }

    /// The book's guarded handlers, run until none applies:
    /// - `upon round = rank(self) ∧ proposal ≠ ⊥ ∧ decision = ⊥`:
    ///   `trigger ⟨ beb, Broadcast | [PROPOSAL, proposal] ⟩`;
    /// - `upon round ∈ detectedranks`: adopt `proposed[round]` if any;
    ///   `round := round + 1`;
    /// - `upon detectedranks ∪ ackranks = {1, …, N}`:
    ///   `trigger ⟨ rb, Broadcast | [DECIDED, proposal] ⟩`.
    fn upon_change(&mut self, ctx: &mut Context) {
        let Some(me) = book_rank(ctx, ctx.self_name()) else { return };
        let n = ctx.processes().len();
        loop {
            if self.round == me
                && self.decision.is_none()
                && !self.sent_proposal
                && let Some(proposal) = &self.proposal
            {
                self.sent_proposal = true;
                let m = format!("PROPOSAL {}", escape(proposal));
                self.beb.upon_broadcast(ctx, &m);
            }
            if self.detectedranks.contains(&self.round) {
                if let Some(v) = self.proposed.get(&self.round) {
                    self.proposal = Some(v.clone());
                }
                self.round += 1;
                continue;
            }
            break;
        }
        let all = (1..=n).all(|r| self.detectedranks.contains(&r) || self.ackranks.contains(&r));
        if self.sent_proposal && !self.sent_decided && all {
            self.sent_decided = true;
            if let Some(proposal) = &self.proposal {
                let m = format!("DECIDED {}", escape(proposal));
                self.rb.upon_broadcast(ctx, &m);
            }
        }
    }

    fn owns(&self, payload: &[u8]) -> bool {
        self.pl.owns(payload) || self.beb.owns(payload) || self.rb.owns(payload)
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        self.pl.upon_timeout(ctx, timer) || self.beb.upon_timeout(ctx, timer) || self.rb.upon_timeout(ctx, timer)
    }
}

/// Implements: UniformConsensus, with the algorithm chosen at launch.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one instance per process, made once")]
pub enum UniformConsensus {
    Flooding(FloodingUniformConsensus),
    Hierarchical(HierarchicalUniformConsensus),
}

/// The algorithms, by their `--algorithm` names.
pub const ALGORITHMS: &[&str] = &["flooding", "hierarchical"];

impl UniformConsensus {
    /// An instance named `instance` of `algorithm` (one of [`ALGORITHMS`]).
    pub fn new(algorithm: &str, instance: &str, period: Duration) -> UniformConsensus {
        match algorithm {
            "hierarchical" => UniformConsensus::Hierarchical(HierarchicalUniformConsensus::new(instance, period)),
            _ => UniformConsensus::Flooding(FloodingUniformConsensus::new(instance, period)),
        }
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        match self {
            UniformConsensus::Flooding(c) => c.beb.owns(payload),
            UniformConsensus::Hierarchical(c) => c.owns(payload),
        }
    }
}

impl super::ConsensusLayer for UniformConsensus {
    fn upon_init(&mut self, ctx: &mut Context, detected: &BTreeSet<String>) -> Option<String> {
        match self {
            UniformConsensus::Flooding(c) => c.upon_init(ctx),
            UniformConsensus::Hierarchical(c) => c.upon_init(ctx),
        }
        detected.iter().fold(None, |decided, p| self.upon_crash(ctx, p).or(decided))
    }

    fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String> {
        match self {
            UniformConsensus::Flooding(c) => c.upon_crash(ctx, p),
            UniformConsensus::Hierarchical(c) => c.upon_crash(ctx, p),
        }
    }

    fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String> {
        match self {
            UniformConsensus::Flooding(c) => c.upon_propose(ctx, v),
            UniformConsensus::Hierarchical(c) => c.upon_propose(ctx, v),
        }
    }

    fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String> {
        match self {
            UniformConsensus::Flooding(c) => c.receive(ctx, from, payload),
            UniformConsensus::Hierarchical(c) => c.receive(ctx, from, payload),
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        match self {
            UniformConsensus::Flooding(c) => c.beb.upon_timeout(ctx, timer),
            UniformConsensus::Hierarchical(c) => c.upon_timeout(ctx, timer),
        }
    }
}

/// Runs the module: `mgr-modules UniformConsensus [--algorithm flooding|hierarchical]
/// [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (algorithm, delta, period) = super::parse_args(args, ALGORITHMS)?;
    super::run_module(contract, UniformConsensus::new(algorithm, "uc", period), delta, period)
}
