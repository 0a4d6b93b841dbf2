#![doc = include_str!("uniform.md")]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::best_effort::{self, BestEffortBroadcast};
use super::reliable::{Data, parse_algorithm};
use super::{Broadcast, BroadcastModule, Delivery};
use crate::detectors::perfect::{self, PerfectFailureDetector};
use crate::runtime::{self, Context, Contract, RunError, Timer};

/// A message's identity: its original sender and its number there (the
/// book assumes messages unique; this pair makes them so).
type Key = (String, u64);

/// Implements: UniformReliableBroadcast, instance urb (All-Ack or
/// Majority-Ack Uniform Reliable Broadcast).
/// Uses: BestEffortBroadcast, instance beb; for All-Ack also
/// PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct UniformReliableBroadcast {
    beb: BestEffortBroadcast,
    /// All-Ack: the detector P; None for Majority-Ack.
    p: Option<PerfectFailureDetector>,
    /// The book's `delivered`.
    delivered: HashSet<Key>,
    /// The book's `pending`: the messages seen and relayed, not all delivered.
    pending: BTreeMap<Key, Data>,
    /// All-Ack: the book's `correct`.
    correct: BTreeSet<String>,
    /// The book's `ack[m]`: the processes that relayed m.
    ack: BTreeMap<Key, BTreeSet<String>>,
    /// N, the number of processes.
    n: usize,
    /// Numbers this process gave its own broadcasts.
    broadcasts: u64,
}

impl UniformReliableBroadcast {
    /// Majority-Ack Uniform Reliable Broadcast named `instance`.
    pub fn majority_ack(instance: &str, period: Duration) -> UniformReliableBroadcast {
        UniformReliableBroadcast {
            beb: BestEffortBroadcast::new(instance, period),
            p: None,
            delivered: HashSet::new(),
            pending: BTreeMap::new(),
            correct: BTreeSet::new(),
            ack: BTreeMap::new(),
            n: 0,
            broadcasts: 0,
        }
    }

    /// All-Ack Uniform Reliable Broadcast named `instance`, whose detector
    /// (instance `<instance>.pfd`) times out after `delta`.
    pub fn all_ack(instance: &str, period: Duration, delta: Duration) -> UniformReliableBroadcast {
        UniformReliableBroadcast {
            p: Some(PerfectFailureDetector::new(&format!("{instance}.pfd"), delta, period)),
            ..UniformReliableBroadcast::majority_ack(instance, period)
        }
    }

    /// `upon event ⟨ urb, Init ⟩`: `delivered := ∅; pending := ∅;
    /// correct := Π; forall m do ack[m] := ∅`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        // Numbers go on from this incarnation's first id, so that a
        // restarted process never reuses one of its earlier lives.
        self.broadcasts = ctx.first_message_id() - 1;
        self.beb.upon_init(ctx);
        if let Some(p) = &mut self.p {
            p.upon_init(ctx);
        }
        self.correct = ctx.processes().into_iter().collect();
        self.n = self.correct.len();
    }

    /// `upon event ⟨ urb, Broadcast | m ⟩`: `pending := pending ∪ {(self, m)};
    /// trigger ⟨ beb, Broadcast | [DATA, self, m] ⟩`. Returns the message's
    /// number at this process.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) -> u64 {
        self.broadcasts += 1;
        let data = Data { sender: ctx.self_name().to_owned(), id: self.broadcasts, text: m.to_owned() };
        self.pending.insert((data.sender.clone(), data.id), data.clone());
        self.beb.upon_broadcast(ctx, &data.encode());
        data.id
    }

    /// A datagram arrived: beb's go to [`Self::upon_beb_deliver`], P's to P.
    /// Returns the messages `⟨ urb, Deliver | s, m ⟩` it made deliverable.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<Data> {
        if let Some(p) = &mut self.p
            && p.receive(ctx, from, payload)
        {
            return Vec::new();
        }
        let Some((p, m)) = self.beb.receive(ctx, from, payload) else { return Vec::new() };
        let Some(data) = Data::decode(&m) else {
            eprintln!("urb: dropped a message from {p} that is not DATA: {m:?}");
            return Vec::new();
        };
        self.upon_beb_deliver(ctx, &p, data);
        self.deliverable()
    }

    /// `upon event ⟨ beb, Deliver | p, [DATA, s, m] ⟩`: `ack[m] := ack[m] ∪ {p}`;
    /// if `(s, m) ∉ pending`, add it and `trigger ⟨ beb, Broadcast | [DATA, s, m] ⟩`.
    fn upon_beb_deliver(&mut self, ctx: &mut Context, p: &str, data: Data) {
        let key = (data.sender.clone(), data.id);
        self.ack.entry(key.clone()).or_default().insert(p.to_owned());
        if !self.pending.contains_key(&key) {
            self.beb.upon_broadcast(ctx, &data.encode());
            self.pending.insert(key, data);
        }
    }

    /// All-Ack: `upon event ⟨ P, Crash | p ⟩`: `correct := correct \ {p}`.
    fn upon_crash(&mut self, p: &str) {
        self.correct.remove(p);
    }

    /// `function candeliver(m)`: All-Ack: `correct ⊆ ack[m]`;
    /// Majority-Ack: `#(ack[m]) > N/2`.
    fn candeliver(&self, key: &Key) -> bool {
        let Some(ack) = self.ack.get(key) else { return false };
        match self.p {
            Some(_) => self.correct.is_subset(ack),
            None => ack.len() > self.n / 2,
        }
    }

    /// `upon exists (s, m) ∈ pending such that candeliver(m) ∧ m ∉ delivered`:
    /// `delivered := delivered ∪ {m}; trigger ⟨ urb, Deliver | s, m ⟩`.
    fn deliverable(&mut self) -> Vec<Data> {
        let ready: Vec<Data> = self
            .pending
            .iter()
            .filter(|(key, _)| !self.delivered.contains(*key) && self.candeliver(key))
            .map(|(_, data)| data.clone())
            .collect();
        for data in &ready {
            self.delivered.insert((data.sender.clone(), data.id));
        }
        ready
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.beb.owns(payload) || self.p.as_ref().is_some_and(|p| p.owns(payload))
    }

    /// The links' and the detector's timers; None when `timer` is not this
    /// instance's, else the messages a detection made deliverable.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Vec<Data>> {
        if self.beb.upon_timeout(ctx, timer) {
            return Some(Vec::new());
        }
        let crashed = self.p.as_mut()?.upon_timeout(ctx, timer)?;
        for q in &crashed {
            self.upon_crash(q);
        }
        Some(if crashed.is_empty() { Vec::new() } else { self.deliverable() })
    }
}

/// Uniform reliable broadcast as the user sees it (see [`BroadcastModule`]).
impl Broadcast for UniformReliableBroadcast {
    fn upon_init(&mut self, ctx: &mut Context) {
        UniformReliableBroadcast::upon_init(self, ctx);
    }

    fn next_id(&self) -> u64 {
        self.broadcasts + 1
    }

    fn broadcast(&mut self, ctx: &mut Context, m: &str) -> Vec<Delivery> {
        self.upon_broadcast(ctx, m);
        Vec::new()
    }

    fn deliveries(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<Delivery> {
        self.receive(ctx, from, payload)
            .into_iter()
            .map(|d| Delivery { sender: d.sender, id: d.id, text: d.text })
            .collect()
    }

    fn timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Vec<Delivery> {
        let released = UniformReliableBroadcast::upon_timeout(self, ctx, timer).unwrap_or_default();
        released.into_iter().map(|d| Delivery { sender: d.sender, id: d.id, text: d.text }).collect()
    }
}

/// Runs the module: `mgr-modules UniformReliableBroadcast
/// [--algorithm all-ack|majority-ack] [--period-ms N] [--delta-ms N (all-ack)]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (algorithm, rest) = parse_algorithm(args, &["all-ack", "majority-ack"])?;
    let urb = if algorithm == "all-ack" {
        let (delta, period) = perfect::parse_timing(&rest, perfect::DEFAULT_DELTA)?;
        UniformReliableBroadcast::all_ack("urb", period, delta)
    } else {
        let period = crate::links::stubborn::parse_period_or(&rest, best_effort::DEFAULT_PERIOD)?;
        UniformReliableBroadcast::majority_ack("urb", period)
    };
    runtime::run(contract, BroadcastModule(urb))
}
