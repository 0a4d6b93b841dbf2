#![doc = include_str!("fifo.md")]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use super::best_effort;
use super::reliable::ReliableBroadcast;
use super::{Broadcast, BroadcastModule, Delivery};
use crate::runtime::contract::ID_STRIDE;
use crate::runtime::{self, Context, Contract, RunError, Timer};

/// A message delivered in FIFO order: its original sender, its sequence
/// number there (1, 2, …), and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoMessage {
    pub sender: String,
    pub sn: u64,
    pub text: String,
}

/// `[DATA, self, m, lsn]` inside rb's DATA: on the wire `<lsn> <m>` (rb
/// already carries the sender).
fn encode(lsn: u64, m: &str) -> String {
    format!("{lsn} {m}")
}

fn decode(m: &str) -> Option<(u64, String)> {
    let (sn, text) = m.split_once(' ').unwrap_or((m, ""));
    Some((sn.parse().ok()?, text.to_owned()))
}

/// Implements: FIFOReliableBroadcast, instance frb (Broadcast with Sequence Number).
/// Uses: ReliableBroadcast, instance rb.
#[derive(Debug)]
pub struct FifoReliableBroadcast {
    rb: ReliableBroadcast,
    /// The book's `lsn`: the sequence number of this process's last broadcast.
    lsn: u64,
    /// The book's `pending`, by sender then sequence number.
    pending: HashMap<String, BTreeMap<u64, String>>,
    /// The book's `next[s]`: the sequence number of s's next delivery.
    next: HashMap<String, u64>,
}

impl FifoReliableBroadcast {
    /// A FIFO reliable broadcast named `instance`, over an eager rb.
    pub fn new(instance: &str, period: Duration) -> FifoReliableBroadcast {
        FifoReliableBroadcast {
            rb: ReliableBroadcast::eager(instance, period),
            lsn: 0,
            pending: HashMap::new(),
            next: HashMap::new(),
        }
    }

    /// `upon event ⟨ frb, Init ⟩`: `lsn := 0; pending := ∅; next := [1]^N`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.rb.upon_init(ctx);
        // A restarted process numbers from its incarnation's first id, so
        // that its messages are new ones, not its earlier life's again.
        self.lsn = ctx.first_message_id() - 1;
        self.next = ctx.processes().into_iter().map(|p| (p, 1)).collect();
    }

    /// `upon event ⟨ frb, Broadcast | m ⟩`: `lsn := lsn + 1;
    /// trigger ⟨ rb, Broadcast | [DATA, self, m, lsn] ⟩`. Returns `lsn`.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) -> u64 {
        self.lsn += 1;
        self.rb.upon_broadcast(ctx, &encode(self.lsn, m));
        self.lsn
    }

    /// A datagram arrived: rb's `⟨ rb, Deliver | p, [DATA, s, m, sn] ⟩`
    /// goes to [`Self::upon_rb_deliver`]. Returns the messages
    /// `⟨ frb, Deliver | s, m ⟩` it released, in order.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<FifoMessage> {
        let Some(data) = self.rb.receive(ctx, from, payload) else { return Vec::new() };
        match decode(&data.text) {
            Some((sn, m)) => self.upon_rb_deliver(data.sender, sn, m),
            None => {
                eprintln!("frb: dropped a message from {} without a sequence number: {:?}", data.sender, data.text);
                Vec::new()
            }
        }
    }

    /// `upon event ⟨ rb, Deliver | p, [DATA, s, m, sn] ⟩`:
    /// `pending := pending ∪ {(s, m, sn)}`;
    /// `while exists (s, m', sn') ∈ pending such that sn' = next[s] do
    /// next[s] := next[s] + 1; pending := pending \ {(s, m', sn')};
    /// trigger ⟨ frb, Deliver | s, m' ⟩`.
    fn upon_rb_deliver(&mut self, s: String, sn: u64, m: String) -> Vec<FifoMessage> {
        let pending = self.pending.entry(s.clone()).or_default();
        let next = self.next.entry(s.clone()).or_insert(1);
        // A message of a later incarnation of s: s crashed and came back,
        // and its new life's sequence starts at that incarnation's first
        // number. What its earlier life left pending can never be released
        // (the book's crash-stop s sent nothing more), so it goes.
        let first_of = |n: u64| (n - 1) / ID_STRIDE * ID_STRIDE + 1;
        if sn >= 1 && first_of(sn) > *next {
            *next = first_of(sn);
            pending.retain(|&k, _| k >= *next);
        }
        // Below next: delivered already, or of a life that ended.
        if sn >= *next {
            pending.insert(sn, m);
        }
        let mut out = Vec::new();
        while let Some(m) = pending.remove(next) {
            out.push(FifoMessage { sender: s.clone(), sn: *next, text: m });
            *next += 1;
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

/// FIFO reliable broadcast as the user sees it (see [`BroadcastModule`]).
impl Broadcast for FifoReliableBroadcast {
    fn upon_init(&mut self, ctx: &mut Context) {
        FifoReliableBroadcast::upon_init(self, ctx);
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
            .map(|m| Delivery { sender: m.sender, id: m.sn, text: m.text })
            .collect()
    }

    fn timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Vec<Delivery> {
        FifoReliableBroadcast::upon_timeout(self, ctx, timer);
        Vec::new()
    }
}

/// Runs the module: `mgr-modules FifoReliableBroadcast [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let period = crate::links::stubborn::parse_period_or(args, best_effort::DEFAULT_PERIOD)?;
    runtime::run(contract, BroadcastModule(FifoReliableBroadcast::new("frb", period)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_wait_for_their_predecessors() {
        let mut frb = FifoReliableBroadcast::new("frb", Duration::from_millis(100));
        assert_eq!(decode(&encode(3, "a b")), Some((3, "a b".to_owned())));
        assert_eq!(decode("x a"), None);
        assert!(frb.upon_rb_deliver("p1".into(), 2, "second".into()).is_empty());
        assert!(frb.upon_rb_deliver("p1".into(), 3, "third".into()).is_empty());
        let out = frb.upon_rb_deliver("p1".into(), 1, "first".into());
        let texts: Vec<&str> = out.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["first", "second", "third"]);
        assert_eq!(out[2].sn, 3);
    }
}
