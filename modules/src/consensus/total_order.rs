#![doc = include_str!("total_order.md")]
//!
//! # Implementation notes
//!
//! Consensus instance `r` is a [`Consensus`] (flooding) named
//! `<instance>.c<r>`, so each has its own links, frames and timers. All
//! instances share one perfect failure detector, owned here. An instance is
//! created when this process proposes in it, or when the first frame of it
//! arrives (a process that has not yet reached round `r` still takes part in
//! instance `r` from the start). Instances are kept after they decide: their
//! links still acknowledge late retransmissions from the other processes.
//!
//! A set of messages travels as one consensus value: the messages
//! `sender:id:text` (text escaped) separated by spaces.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::regular::Consensus;
use super::{escape, unescape};
use crate::broadcast::HELP;
use crate::broadcast::reliable::{Data, ReliableBroadcast};
use crate::detectors::perfect::PerfectFailureDetector;
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer};

/// Implements: TotalOrderBroadcast, instance tob (Algorithm 6.1, Consensus-Based Total-Order Broadcast).
/// Uses: ReliableBroadcast, instance rb; Consensus (multiple instances);
/// PerfectFailureDetector, instance P (shared by the consensus instances).
#[derive(Debug)]
pub struct TotalOrderBroadcast {
    instance: String,
    period: Duration,
    rb: ReliableBroadcast,
    pfd: PerfectFailureDetector,
    /// The book's `unordered`: rb-delivered, not yet tob-delivered.
    unordered: BTreeSet<(String, u64, String)>,
    /// The book's `delivered`, keyed by (sender, id).
    delivered: HashSet<(String, u64)>,
    round: u64,
    wait: bool,
    /// The consensus instances `c.r`, by round.
    consensus: BTreeMap<u64, Consensus>,
    /// Decisions of instances `r > round`, held until `r = round`.
    decisions: BTreeMap<u64, String>,
}

impl TotalOrderBroadcast {
    /// A total-order broadcast named `instance`, with a detector of timeout `delta`.
    pub fn new(instance: &str, delta: Duration, period: Duration) -> TotalOrderBroadcast {
        TotalOrderBroadcast {
            instance: instance.to_owned(),
            period,
            rb: ReliableBroadcast::eager(&format!("{instance}.rb"), period),
            pfd: PerfectFailureDetector::new(&format!("{instance}.P"), delta, period),
            unordered: BTreeSet::new(),
            delivered: HashSet::new(),
            round: 1,
            wait: false,
            consensus: BTreeMap::new(),
            decisions: BTreeMap::new(),
        }
    }

    /// `upon event ⟨ tob, Init ⟩`: `unordered := ∅; delivered := ∅; round := 1; wait := FALSE`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.rb.upon_init(ctx);
        self.pfd.upon_init(ctx);
    }

    /// `upon event ⟨ tob, Broadcast | m ⟩`: `trigger ⟨ rb, Broadcast | m ⟩`.
    /// Returns the message's number at this process.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) -> u64 {
        self.rb.upon_broadcast(ctx, m)
    }

    /// `upon event ⟨ rb, Deliver | p, m ⟩`: if `m ∉ delivered`,
    /// `unordered := unordered ∪ {(p, m)}`.
    fn upon_rb_deliver(&mut self, ctx: &mut Context, data: Data) {
        if !self.delivered.contains(&(data.sender.clone(), data.id)) {
            self.unordered.insert((data.sender, data.id, data.text));
        }
        self.upon_progress(ctx);
    }

    /// Instance `c.r`, created (`Initialize a new instance c.r of consensus`)
    /// when it does not exist yet.
    fn instance(&mut self, ctx: &mut Context, r: u64) -> &mut Consensus {
        if !self.consensus.contains_key(&r) {
            let mut c = Consensus::new("flooding", &format!("{}.c{r}", self.instance), self.period);
            if let Some(decided) = c.upon_init(ctx, self.pfd.detected()) {
                self.decisions.insert(r, decided);
            }
            self.consensus.insert(r, c);
        }
        self.consensus.get_mut(&r).expect("just created")
    }

    /// The book's guarded handlers, run until none applies:
    /// - `upon ⟨ c.r, Decide | decided ⟩ such that r = round`: deliver the
    ///   messages of `decided` not yet delivered, in a deterministic order;
    ///   `round := round + 1; wait := FALSE`;
    /// - `upon unordered ≠ ∅ ∧ wait = FALSE`: `wait := TRUE`; initialize a new
    ///   instance `c.round`; `trigger ⟨ c.round, Propose | unordered ⟩`.
    fn upon_progress(&mut self, ctx: &mut Context) {
        loop {
            if let Some(decided) = self.decisions.remove(&self.round) {
                self.upon_decide(ctx, &decided);
                continue;
            }
            if !self.unordered.is_empty() && !self.wait {
                self.wait = true;
                let proposal = encode_batch(&self.unordered);
                let round = self.round;
                if let Some(decided) = self.instance(ctx, round).upon_propose(ctx, &proposal) {
                    self.decisions.insert(round, decided);
                }
                continue;
            }
            break;
        }
    }

    /// `upon event ⟨ c.round, Decide | decided ⟩`: `forall (s, m) ∈ sort(decided)`
    /// not in `delivered`: `trigger ⟨ tob, Deliver | s, m ⟩`.
    fn upon_decide(&mut self, ctx: &mut Context, decided: &str) {
        match decode_batch(decided) {
            Some(batch) => {
                for (s, id, m) in batch {
                    if self.delivered.insert((s.clone(), id)) {
                        ctx.deliver(&s, Some(id), None, &m);
                    }
                    self.unordered.remove(&(s, id, m));
                }
            }
            None => eprintln!("tob: round {} decided a malformed batch: {decided:?}", self.round),
        }
        self.round += 1;
        self.wait = false;
    }

    /// A datagram: for the detector, the rb, or a consensus instance.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        if self.pfd.receive(ctx, from, payload) {
            return;
        }
        if self.rb.owns(payload) {
            if let Some(data) = self.rb.receive(ctx, from, payload) {
                self.upon_rb_deliver(ctx, data);
            }
            return;
        }
        let Some(r) = self.round_of(payload) else {
            eprintln!("tob: dropped a datagram of no instance from {from}");
            return;
        };
        let c = self.instance(ctx, r);
        if let Some(decided) = c.receive(ctx, from, payload) {
            self.decisions.insert(r, decided);
        }
        self.upon_progress(ctx);
    }

    /// The round `r` of a frame of instance `<instance>.c<r>.…`.
    fn round_of(&self, payload: &[u8]) -> Option<u64> {
        let rest = payload.strip_prefix(self.instance.as_bytes())?.strip_prefix(b".c")?;
        let end = rest.iter().position(|b| !b.is_ascii_digit())?;
        let r: u64 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
        let c = self.consensus.get(&r);
        (r >= 1 && (c.is_some_and(|c| c.owns(payload)) || c.is_none())).then_some(r)
    }

    /// Timers: the detector's (`⟨ P, Crash | p ⟩` goes to every consensus
    /// instance), the rb's, or an instance's.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        if let Some(crashed) = self.pfd.upon_timeout(ctx, timer) {
            for p in crashed {
                for (r, c) in self.consensus.iter_mut() {
                    if let Some(decided) = c.upon_crash(ctx, &p) {
                        self.decisions.insert(*r, decided);
                    }
                }
            }
            self.upon_progress(ctx);
            return;
        }
        if self.rb.upon_timeout(ctx, timer) {
            return;
        }
        for c in self.consensus.values_mut() {
            if c.upon_timeout(ctx, timer) {
                return;
            }
        }
    }
}

/// A set of messages as one consensus value: `sender:id:text` each, escaped,
/// separated by spaces, in the set's order.
fn encode_batch(messages: &BTreeSet<(String, u64, String)>) -> String {
    messages.iter().map(|(s, id, m)| format!("{}:{id}:{}", escape(s), escape(m))).collect::<Vec<_>>().join(" ")
}

/// The inverse of [`encode_batch`], sorted by (sender, id): the book's `sort`.
fn decode_batch(value: &str) -> Option<Vec<(String, u64, String)>> {
    let mut batch = value
        .split_whitespace()
        .map(|word| {
            let mut parts = word.splitn(3, ':');
            let s = unescape(parts.next()?)?;
            let id = parts.next()?.parse().ok()?;
            let m = unescape(parts.next()?)?;
            Some((s, id, m))
        })
        .collect::<Option<Vec<_>>>()?;
    batch.sort();
    Some(batch)
}

impl Module for TotalOrderBroadcast {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        TotalOrderBroadcast::upon_init(self, ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command.verb.as_str() {
            "broadcast" if !command.args.is_empty() => {
                let id = self.upon_broadcast(ctx, &command.args);
                ctx.events.record("broadcast", None, Some(id), Some(&command.args));
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        self.receive(ctx, from, payload);
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        TotalOrderBroadcast::upon_timeout(self, ctx, timer);
    }
}

/// Runs the module: `mgr-modules TotalOrderBroadcast [--algorithm consensus]
/// [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (_, delta, period) = super::parse_args(args, &["consensus"])?;
    runtime::run(contract, TotalOrderBroadcast::new("tob", delta, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_sorted() {
        let mut set = BTreeSet::new();
        set.insert(("p2".to_owned(), 1, "b c".to_owned()));
        set.insert(("p1".to_owned(), 2, "x:y%".to_owned()));
        set.insert(("p1".to_owned(), 1, "a".to_owned()));
        let value = encode_batch(&set);
        assert_eq!(decode_batch(&value), Some(set.into_iter().collect()));
        assert_eq!(decode_batch("p1:x:a"), None);
    }
}
