#![doc = include_str!("causal.md")]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::best_effort;
use super::reliable::{ReliableBroadcast, parse_algorithm};
use super::{Broadcast, BroadcastModule, Delivery};
use crate::runtime::contract::ID_STRIDE;
use crate::runtime::{self, Context, Contract, RunError, Timer};

/// A message of causal broadcast: its original sender, its number there
/// (1, 2, …; with the sender, what makes it unique), and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CausalMessage {
    pub sender: String,
    pub id: u64,
    pub text: String,
}

impl CausalMessage {
    fn key(&self) -> (String, u64) {
        (self.sender.clone(), self.id)
    }
}

/// The state of each algorithm.
#[derive(Debug)]
enum Algorithm {
    /// No-Waiting Causal Broadcast: the book's `delivered` and `past`
    /// (with `in_past`, the same messages as a set).
    NoWaiting { delivered: HashSet<(String, u64)>, past: Vec<CausalMessage>, in_past: HashSet<(String, u64)> },
    /// Waiting Causal Broadcast: the book's vector clock `V` (indexed by
    /// rank) and `pending`, the messages (p, W, m) that wait for their
    /// causal past.
    Waiting { v: Vec<u64>, pending: Vec<(String, Vec<u64>, String)> },
}

/// Implements: CausalOrderReliableBroadcast, instance crb (No-Waiting or
/// Waiting Causal Broadcast).
/// Uses: ReliableBroadcast, instance rb.
#[derive(Debug)]
pub struct CausalOrderBroadcast {
    rb: ReliableBroadcast,
    algorithm: Algorithm,
    /// The book's `lsn` (Waiting); for both, how many messages this process
    /// broadcast, which numbers them.
    lsn: u64,
}

impl CausalOrderBroadcast {
    /// No-Waiting Causal Broadcast named `instance`, over an eager rb.
    pub fn no_waiting(instance: &str, period: Duration) -> CausalOrderBroadcast {
        let algorithm = Algorithm::NoWaiting { delivered: HashSet::new(), past: Vec::new(), in_past: HashSet::new() };
        CausalOrderBroadcast { rb: ReliableBroadcast::eager(instance, period), algorithm, lsn: 0 }
    }

    /// Waiting Causal Broadcast named `instance`, over an eager rb.
    pub fn waiting(instance: &str, period: Duration) -> CausalOrderBroadcast {
        let algorithm = Algorithm::Waiting { v: Vec::new(), pending: Vec::new() };
        CausalOrderBroadcast { rb: ReliableBroadcast::eager(instance, period), algorithm, lsn: 0 }
    }

    /// `upon event ⟨ crb, Init ⟩`: No-Waiting: `delivered := ∅; past := []`;
    /// Waiting: `V := [0]^N; lsn := 0; pending := ∅`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.rb.upon_init(ctx);
        if let Algorithm::Waiting { v, .. } = &mut self.algorithm {
            *v = vec![0; ctx.processes().len()];
        }
        // A restarted process numbers its messages anew from its
        // incarnation's first id (Waiting: its entry of W too; receivers
        // move their V to that incarnation when they see it).
        self.lsn = ctx.first_message_id() - 1;
    }

    /// `upon event ⟨ crb, Broadcast | m ⟩`. Returns the message's number.
    ///
    /// No-Waiting: `trigger ⟨ rb, Broadcast | [DATA, past, m] ⟩;
    /// append(past, (self, m))`.
    /// Waiting: `W := V; W[rank(self)] := lsn; lsn := lsn + 1;
    /// trigger ⟨ rb, Broadcast | [DATA, W, m] ⟩`.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) -> u64 {
        let me = ctx.self_name().to_owned();
        match &mut self.algorithm {
            Algorithm::NoWaiting { past, in_past, .. } => {
                self.lsn += 1;
                let message = CausalMessage { sender: me, id: self.lsn, text: m.to_owned() };
                self.rb.upon_broadcast(ctx, &encode_past(past, &message));
                in_past.insert(message.key());
                past.push(message);
            }
            Algorithm::Waiting { v, .. } => {
                let mut w = v.clone();
                w[ctx.rank(&me).unwrap_or(0)] = self.lsn;
                self.lsn += 1;
                self.rb.upon_broadcast(ctx, &encode_clock(&w, m));
            }
        }
        self.lsn
    }

    /// A datagram arrived: rb's `⟨ rb, Deliver | p, [DATA, …, m] ⟩` goes to
    /// [`Self::upon_rb_deliver`]. Returns the messages `⟨ crb, Deliver | s, m ⟩`,
    /// in delivery order.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<CausalMessage> {
        let Some(data) = self.rb.receive(ctx, from, payload) else { return Vec::new() };
        self.upon_rb_deliver(ctx, &data.sender, &data.text)
    }

    /// `upon event ⟨ rb, Deliver | p, [DATA, mpast, m] ⟩` (No-Waiting):
    /// if `m ∉ delivered`, deliver first every message of `mpast` not yet
    /// delivered, in its order, then `m`; each joins `delivered` and `past`.
    ///
    /// `upon event ⟨ rb, Deliver | p, [DATA, W, m] ⟩` (Waiting):
    /// `pending := pending ∪ {(p, W, m)}`; `while exists (p', W', m') ∈ pending
    /// such that W' ≤ V do pending := pending \ {(p', W', m')};
    /// V[rank(p')] := V[rank(p')] + 1; trigger ⟨ crb, Deliver | p', m' ⟩`.
    fn upon_rb_deliver(&mut self, ctx: &Context, p: &str, m: &str) -> Vec<CausalMessage> {
        let mut out = Vec::new();
        match &mut self.algorithm {
            Algorithm::NoWaiting { delivered, past, in_past } => {
                let Some((mpast, m)) = decode_past(p, m) else {
                    eprintln!("crb: dropped a message from {p} without its causal past: {m:?}");
                    return out;
                };
                if delivered.contains(&m.key()) {
                    return out;
                }
                for n in mpast.into_iter().chain([m]) {
                    if delivered.insert(n.key()) {
                        out.push(n.clone());
                        if in_past.insert(n.key()) {
                            past.push(n);
                        }
                    }
                }
            }
            Algorithm::Waiting { v, pending } => {
                let Some((w, m)) = decode_clock(m).filter(|(w, _)| w.len() == v.len()) else {
                    eprintln!("crb: dropped a message from {p} without a vector clock of {}: {m:?}", v.len());
                    return out;
                };
                // The first message of a later incarnation of p: p crashed
                // and came back, its count starts at that incarnation's
                // base, and nothing its earlier life sent is still owed.
                if let Some(rank) = ctx.rank(p) {
                    let base = w[rank] / ID_STRIDE * ID_STRIDE;
                    if base > v[rank] {
                        v[rank] = base;
                    }
                }
                pending.push((p.to_owned(), w, m));
                while let Some(i) = pending.iter().position(|(_, w, _)| w.iter().zip(v.iter()).all(|(a, b)| a <= b)) {
                    let (q, w, m) = pending.remove(i);
                    let Some(rank) = ctx.rank(&q) else { continue };
                    v[rank] += 1;
                    out.push(CausalMessage { sender: q, id: w[rank] + 1, text: m });
                }
            }
        }
        out
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.rb.owns(payload)
    }

    /// The layers' timers; false when `timer` is not this instance's.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        self.rb.upon_timeout(ctx, timer)
    }
}

/// `[DATA, mpast, m]` inside rb's DATA: `<k>` then, for each of the k
/// messages of the past, `<s> <id> <byte length> <text>`, then `<id> <m>`.
fn encode_past(past: &[CausalMessage], m: &CausalMessage) -> String {
    let mut out = past.len().to_string();
    for n in past {
        out.push_str(&format!(" {} {} {} {}", n.sender, n.id, n.text.len(), n.text));
    }
    out.push_str(&format!(" {} {}", m.id, m.text));
    out
}

/// Reads back [`encode_past`]; `p` is the sender of the last message.
fn decode_past(p: &str, mut rest: &str) -> Option<(Vec<CausalMessage>, CausalMessage)> {
    fn token<'a>(rest: &mut &'a str) -> Option<&'a str> {
        let (token, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        *rest = tail;
        Some(token).filter(|t| !t.is_empty())
    }
    let k: usize = token(&mut rest)?.parse().ok()?;
    let mut past = Vec::new();
    for _ in 0..k {
        let sender = token(&mut rest)?.to_owned();
        let id = token(&mut rest)?.parse().ok()?;
        let len: usize = token(&mut rest)?.parse().ok()?;
        let text = rest.get(..len)?.to_owned();
        rest = rest.get(len..)?.strip_prefix(' ')?;
        past.push(CausalMessage { sender, id, text });
    }
    let (id, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((past, CausalMessage { sender: p.to_owned(), id: id.parse().ok()?, text: text.to_owned() }))
}

/// `[DATA, W, m]` inside rb's DATA: `<W[0]>,<W[1]>,… <m>`.
fn encode_clock(w: &[u64], m: &str) -> String {
    let w: Vec<String> = w.iter().map(u64::to_string).collect();
    format!("{} {m}", w.join(","))
}

fn decode_clock(m: &str) -> Option<(Vec<u64>, String)> {
    let (w, text) = m.split_once(' ').unwrap_or((m, ""));
    let w = w.split(',').map(|x| x.parse().ok()).collect::<Option<Vec<u64>>>()?;
    Some((w, text.to_owned()))
}

/// Causal-order broadcast as the user sees it (see [`BroadcastModule`]).
impl Broadcast for CausalOrderBroadcast {
    fn upon_init(&mut self, ctx: &mut Context) {
        CausalOrderBroadcast::upon_init(self, ctx);
    }

    fn next_id(&self) -> u64 {
        self.lsn + 1
    }

    fn broadcast(&mut self, ctx: &mut Context, m: &str) -> Vec<Delivery> {
        self.upon_broadcast(ctx, m);
        Vec::new()
    }

    fn deliveries(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<Delivery> {
        self.receive(ctx, from, payload)
            .into_iter()
            .map(|m| Delivery { sender: m.sender, id: m.id, text: m.text })
            .collect()
    }

    fn timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Vec<Delivery> {
        CausalOrderBroadcast::upon_timeout(self, ctx, timer);
        Vec::new()
    }
}

/// Runs the module: `mgr-modules CausalOrderBroadcast
/// [--algorithm no-waiting|waiting] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (algorithm, rest) = parse_algorithm(args, &["no-waiting", "waiting"])?;
    let period = crate::links::stubborn::parse_period_or(&rest, best_effort::DEFAULT_PERIOD)?;
    let crb = if algorithm == "waiting" {
        CausalOrderBroadcast::waiting("crb", period)
    } else {
        CausalOrderBroadcast::no_waiting("crb", period)
    };
    runtime::run(contract, BroadcastModule(crb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sender: &str, id: u64, text: &str) -> CausalMessage {
        CausalMessage { sender: sender.into(), id, text: text.into() }
    }

    #[test]
    fn the_causal_past_reads_back_as_written() {
        let past = [message("p1", 1, "a b"), message("p3", 2, ""), message("p2", 1, "x  y ")];
        let m = message("p2", 2, "last one");
        let wire = encode_past(&past, &m);
        assert_eq!(decode_past("p2", &wire), Some((past.to_vec(), m.clone())));
        assert_eq!(decode_past("p2", &encode_past(&[], &m)), Some((vec![], m)));
        assert_eq!(decode_past("p2", "2 p1 1 3 ab"), None);
        assert_eq!(decode_past("p2", "x"), None);
    }

    #[test]
    fn the_vector_clock_reads_back_as_written() {
        assert_eq!(encode_clock(&[0, 2, 1], "hi there"), "0,2,1 hi there");
        assert_eq!(decode_clock("0,2,1 hi there"), Some((vec![0, 2, 1], "hi there".to_owned())));
        assert_eq!(decode_clock("0,x hi"), None);
    }
}
