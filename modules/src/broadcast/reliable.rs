#![doc = include_str!("reliable.md")]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::best_effort::{self, BestEffortBroadcast};
use super::{Broadcast, BroadcastModule, Delivery};
use crate::detectors::perfect::{self, PerfectFailureDetector};
use crate::runtime::{self, Context, Contract, RunError, Timer};

/// A message of reliable broadcast: its original sender, its number there,
/// and the text. On the wire: `DATA <s> <id> <text>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Data {
    pub sender: String,
    pub id: u64,
    pub text: String,
}

impl Data {
    /// The message on the wire: `DATA <s> <id> <text>`.
    pub fn encode(&self) -> String {
        format!("DATA {} {} {}", self.sender, self.id, self.text)
    }

    /// Reads back what [`Data::encode`] wrote; `None` for anything else.
    pub fn decode(m: &str) -> Option<Data> {
        let mut parts = m.splitn(4, ' ');
        (parts.next()? == "DATA").then_some(())?;
        let sender = parts.next()?.to_owned();
        let id = parts.next()?.parse().ok()?;
        let text = parts.next().unwrap_or("").to_owned();
        Some(Data { sender, id, text })
    }
}

/// Implements: ReliableBroadcast, instance rb (Eager or Lazy Reliable Broadcast).
/// Uses: BestEffortBroadcast, instance beb; for Lazy also
/// PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct ReliableBroadcast {
    beb: BestEffortBroadcast,
    /// Eager: the book's `delivered`, keyed by (sender, id).
    delivered: HashSet<(String, u64)>,
    /// Lazy: the detector P (None for Eager).
    p: Option<PerfectFailureDetector>,
    /// Lazy: the book's `correct`.
    correct: BTreeSet<String>,
    /// Lazy: the book's `from[s]`, the messages delivered with sender s.
    from: BTreeMap<String, BTreeMap<u64, Data>>,
    /// Numbers this process gave its own broadcasts.
    broadcasts: u64,
}

impl ReliableBroadcast {
    /// An eager reliable broadcast named `instance`.
    pub fn eager(instance: &str, period: Duration) -> ReliableBroadcast {
        ReliableBroadcast {
            beb: BestEffortBroadcast::new(instance, period),
            delivered: HashSet::new(),
            p: None,
            correct: BTreeSet::new(),
            from: BTreeMap::new(),
            broadcasts: 0,
        }
    }

    /// A lazy reliable broadcast named `instance`, whose detector (instance
    /// `<instance>.pfd`) times out after `delta`.
    pub fn lazy(instance: &str, period: Duration, delta: Duration) -> ReliableBroadcast {
        ReliableBroadcast {
            p: Some(PerfectFailureDetector::new(&format!("{instance}.pfd"), delta, period)),
            ..ReliableBroadcast::eager(instance, period)
        }
    }

    /// `upon event ⟨ rb, Init ⟩`: `delivered := ∅` (Eager);
    /// `correct := Π; from[p] := ∅ forall p ∈ Π` (Lazy).
    pub fn upon_init(&mut self, ctx: &mut Context) {
        // Numbers go on from this incarnation's first id, so that a
        // restarted process never reuses one of its earlier lives.
        self.broadcasts = ctx.first_message_id() - 1;
        self.beb.upon_init(ctx);
        if let Some(p) = &mut self.p {
            p.upon_init(ctx);
            self.correct = ctx.processes().into_iter().collect();
            self.from.clear();
        }
    }

    /// `upon event ⟨ rb, Broadcast | m ⟩`: `trigger ⟨ beb, Broadcast | [DATA, self, m] ⟩`.
    /// Returns the message's number at this process.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) -> u64 {
        self.broadcasts += 1;
        let data = Data { sender: ctx.self_name().to_owned(), id: self.broadcasts, text: m.to_owned() };
        self.beb.upon_broadcast(ctx, &data.encode());
        data.id
    }

    /// A datagram arrived: `⟨ beb, Deliver | p, [DATA, s, m] ⟩` if it is one
    /// of beb's, handed to [`Self::upon_beb_deliver`]. Returns
    /// `⟨ rb, Deliver | s, m ⟩` if any.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<Data> {
        if let Some(p) = &mut self.p
            && p.receive(ctx, from, payload)
        {
            return None;
        }
        let (p, m) = self.beb.receive(ctx, from, payload)?;
        let Some(data) = Data::decode(&m) else {
            eprintln!("rb: dropped a message from {p} that is not DATA: {m:?}");
            return None;
        };
        self.upon_beb_deliver(ctx, data)
    }

    /// `upon event ⟨ beb, Deliver | p, [DATA, s, m] ⟩`.
    ///
    /// Eager: if `m ∉ delivered`, deliver it and broadcast it again.
    /// Lazy: if `m ∉ from[s]`, deliver it, add it to `from[s]`, and
    /// broadcast it again only if `s ∉ correct`.
    fn upon_beb_deliver(&mut self, ctx: &mut Context, data: Data) -> Option<Data> {
        if self.p.is_none() {
            if !self.delivered.insert((data.sender.clone(), data.id)) {
                return None;
            }
            self.beb.upon_broadcast(ctx, &data.encode());
            return Some(data);
        }
        let from_s = self.from.entry(data.sender.clone()).or_default();
        if from_s.contains_key(&data.id) {
            return None;
        }
        from_s.insert(data.id, data.clone());
        if !self.correct.contains(&data.sender) {
            self.beb.upon_broadcast(ctx, &data.encode());
        }
        Some(data)
    }

    /// Lazy: `upon event ⟨ P, Crash | p ⟩`: `correct := correct \ {p}`;
    /// `forall m ∈ from[p] do trigger ⟨ beb, Broadcast | [DATA, p, m] ⟩`.
    fn upon_crash(&mut self, ctx: &mut Context, p: &str) {
        self.correct.remove(p);
        let relayed: Vec<String> = self.from.get(p).into_iter().flat_map(|m| m.values()).map(Data::encode).collect();
        for m in relayed {
            self.beb.upon_broadcast(ctx, &m);
        }
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.beb.owns(payload) || self.p.as_ref().is_some_and(|p| p.owns(payload))
    }

    /// The links' and the detector's timers; false when `timer` is not this
    /// instance's. A detection is handled here (Lazy's `⟨ P, Crash | p ⟩`).
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        if self.beb.upon_timeout(ctx, timer) {
            return true;
        }
        let Some(p) = &mut self.p else { return false };
        let Some(crashed) = p.upon_timeout(ctx, timer) else { return false };
        for q in crashed {
            self.upon_crash(ctx, &q);
        }
        true
    }
}

/// Reliable broadcast as the user sees it (see [`BroadcastModule`]).
impl Broadcast for ReliableBroadcast {
    fn upon_init(&mut self, ctx: &mut Context) {
        ReliableBroadcast::upon_init(self, ctx);
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
            .map(|d| Delivery { sender: d.sender, id: d.id, text: d.text })
            .into_iter()
            .collect()
    }

    fn timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Vec<Delivery> {
        ReliableBroadcast::upon_timeout(self, ctx, timer);
        Vec::new()
    }
}

/// Splits `--algorithm NAME` (default the first of `known`) from the other
/// arguments; an unknown name is a usage error.
pub fn parse_algorithm(args: &[String], known: &[&'static str]) -> Result<(&'static str, Vec<String>), RunError> {
    let mut algorithm = known[0];
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = match arg.strip_prefix("--algorithm") {
            Some("") => it.next().map(String::as_str),
            Some(v) if v.starts_with('=') => Some(&v[1..]),
            _ => {
                rest.push(arg.clone());
                continue;
            }
        };
        algorithm = known.iter().copied().find(|k| Some(*k) == value).ok_or_else(|| {
            RunError::Usage(format!("unknown algorithm {:?} (known: {})", value.unwrap_or(""), known.join(", ")))
        })?;
    }
    Ok((algorithm, rest))
}

/// Runs the module: `mgr-modules ReliableBroadcast [--algorithm eager|lazy]
/// [--period-ms N] [--delta-ms N (lazy)]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (algorithm, rest) = parse_algorithm(args, &["eager", "lazy"])?;
    let rb = if algorithm == "lazy" {
        let (delta, period) = perfect::parse_timing(&rest, perfect::DEFAULT_DELTA)?;
        ReliableBroadcast::lazy("rb", period, delta)
    } else {
        let period = crate::links::stubborn::parse_period_or(&rest, best_effort::DEFAULT_PERIOD)?;
        ReliableBroadcast::eager("rb", period)
    };
    runtime::run(contract, BroadcastModule(rb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_reads_back_as_written() {
        let d = Data { sender: "p2".into(), id: 7, text: "hello  there".into() };
        assert_eq!(d.encode(), "DATA p2 7 hello  there");
        assert_eq!(Data::decode(&d.encode()), Some(d));
        assert_eq!(Data::decode("ACK p2 7 x"), None);
    }

    #[test]
    fn the_algorithm_is_chosen_by_name() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (a, rest) = parse_algorithm(&args(&["--period-ms", "5"]), &["eager", "lazy"]).unwrap();
        assert_eq!((a, rest), ("eager", args(&["--period-ms", "5"])));
        assert_eq!(parse_algorithm(&args(&["--algorithm", "lazy"]), &["eager", "lazy"]).unwrap().0, "lazy");
        assert_eq!(parse_algorithm(&args(&["--algorithm=lazy"]), &["eager", "lazy"]).unwrap().0, "lazy");
        assert!(parse_algorithm(&args(&["--algorithm", "x"]), &["eager", "lazy"]).is_err());
        assert!(parse_algorithm(&args(&["--algorithm"]), &["eager", "lazy"]).is_err());
    }
}
