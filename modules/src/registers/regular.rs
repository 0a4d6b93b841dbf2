#![doc = include_str!("regular.md")]
//!
//! # Implementation notes
//!
//! Messages are text lines, the value always last (see
//! [`super::encode_value`]): `WRITE <v>` and `ACK` (Read-One Write-All);
//! `WRITE <ts> <v>`, `ACK <ts>`, `READ <r>`, `VALUE <r> <ts> <v>` (Majority
//! Voting). The book's `readlist`, an array of N entries initially ⊥, is a
//! map from process to (ts, v): its size is the book's `#(readlist)`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::{Arrival, Indication, Layers, Register, RegisterModule, Value, decode_value, encode_value, fields};
use crate::runtime::{self, Context, Contract, RunError, Timer};

/// The `--algorithm` names, the default first.
pub const ALGORITHMS: &[&str] = &["read-one-write-all", "majority-voting"];

/// Implements: (1,N)-RegularRegister, instance onrr (Read-One Write-All).
/// Uses: BestEffortBroadcast, instance beb; PerfectPointToPointLinks,
/// instance pl; PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct ReadOneWriteAll {
    layers: Layers,
    val: Value,
    correct: BTreeSet<String>,
    writeset: BTreeSet<String>,
}

impl ReadOneWriteAll {
    /// A register named `instance`; its components are `<instance>.beb`,
    /// `<instance>.pl` and `<instance>.pfd` (timeout `delta`).
    pub fn new(instance: &str, delta: Duration, period: Duration) -> ReadOneWriteAll {
        ReadOneWriteAll {
            layers: Layers::new(instance, period, Some(delta)),
            val: None,
            correct: BTreeSet::new(),
            writeset: BTreeSet::new(),
        }
    }

    /// `upon event ⟨ P, Crash | p ⟩`: `correct := correct \ {p}`.
    fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<Indication> {
        ctx.events.record("crash", Some(p), None, None);
        self.correct.remove(p);
        self.upon_correct_subset_of_writeset()
    }

    /// `upon event ⟨ beb, Deliver | q, [WRITE, v] ⟩`: `val := v`;
    /// `trigger ⟨ pl, Send | q, ACK ⟩`.
    fn upon_beb_deliver(&mut self, ctx: &mut Context, q: &str, m: &str) {
        let Some(v) = fields(m, "WRITE", 0).and_then(|(_, v)| decode_value(v)) else {
            eprintln!("onrr: dropped a broadcast from {q} that is not [WRITE, v]: {m:?}");
            return;
        };
        self.val = v;
        self.layers.pl.send(ctx, q, "ACK".to_owned());
    }

    /// `upon event ⟨ pl, Deliver | p, ACK ⟩`: `writeset := writeset ∪ {p}`.
    fn upon_pl_deliver(&mut self, p: String, m: &str) -> Option<Indication> {
        if m != "ACK" {
            eprintln!("onrr: dropped a message from {p} that is not ACK: {m:?}");
            return None;
        }
        self.writeset.insert(p);
        self.upon_correct_subset_of_writeset()
    }

    /// `upon correct ⊆ writeset`: `writeset := ∅`;
    /// `trigger ⟨ onrr, WriteReturn ⟩`.
    fn upon_correct_subset_of_writeset(&mut self) -> Option<Indication> {
        if self.writeset.is_empty() || !self.correct.is_subset(&self.writeset) {
            return None;
        }
        self.writeset.clear();
        Some(Indication::WriteReturn)
    }
}

impl Register for ReadOneWriteAll {
    /// `upon event ⟨ onrr, Init ⟩`: `val := ⊥; correct := Π; writeset := ∅`.
    fn upon_init(&mut self, ctx: &mut Context) {
        self.val = None;
        self.correct = ctx.processes().into_iter().collect();
        self.writeset.clear();
        self.layers.upon_init(ctx);
    }

    /// `upon event ⟨ onrr, Read ⟩`: `trigger ⟨ onrr, ReadReturn | val ⟩`.
    fn upon_read(&mut self, _ctx: &mut Context) -> Option<Indication> {
        Some(Indication::ReadReturn(self.val.clone()))
    }

    /// `upon event ⟨ onrr, Write | v ⟩`: `trigger ⟨ beb, Broadcast | [WRITE, v] ⟩`.
    fn upon_write(&mut self, ctx: &mut Context, v: &str) -> Option<Indication> {
        self.layers.beb.upon_broadcast(ctx, &format!("WRITE {}", encode_value(&Some(v.to_owned()))));
        None
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<Indication> {
        match self.layers.receive(ctx, from, payload) {
            Arrival::Beb(p, m) => {
                self.upon_beb_deliver(ctx, &p, &m);
                None
            }
            Arrival::Pl(p, m) => self.upon_pl_deliver(p, &m),
            Arrival::Nothing => None,
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Indication> {
        let crashed = self.layers.upon_timeout(ctx, timer);
        crashed.iter().fold(None, |done, p| self.upon_crash(ctx, p).or(done))
    }
}

/// Implements: (1,N)-RegularRegister, instance onrr (Majority Voting
/// Regular Register). Uses: BestEffortBroadcast, instance beb;
/// PerfectPointToPointLinks, instance pl.
#[derive(Debug)]
pub struct MajorityVoting {
    layers: Layers,
    /// N, the number of processes.
    n: usize,
    ts: u64,
    val: Value,
    wts: u64,
    acks: usize,
    rid: u64,
    readlist: BTreeMap<String, (u64, Value)>,
}

impl MajorityVoting {
    /// A register named `instance`; its components are `<instance>.beb` and `<instance>.pl`.
    pub fn new(instance: &str, period: Duration) -> MajorityVoting {
        MajorityVoting {
            layers: Layers::new(instance, period, None),
            n: 0,
            ts: 0,
            val: None,
            wts: 0,
            acks: 0,
            rid: 0,
            readlist: BTreeMap::new(),
        }
    }

    /// `upon event ⟨ beb, Deliver | p, [WRITE, ts′, v′] ⟩`: if `ts′ > ts`
    /// then `(ts, val) := (ts′, v′)`; `trigger ⟨ pl, Send | p, [ACK, ts′] ⟩`.
    ///
    /// `upon event ⟨ beb, Deliver | p, [READ, r] ⟩`:
    /// `trigger ⟨ pl, Send | p, [VALUE, r, ts, val] ⟩`.
    fn upon_beb_deliver(&mut self, ctx: &mut Context, p: &str, m: &str) {
        if let Some((n, v)) = fields(m, "WRITE", 1)
            && let Some(v) = decode_value(v)
        {
            if n[0] > self.ts {
                (self.ts, self.val) = (n[0], v);
            }
            self.layers.pl.send(ctx, p, format!("ACK {}", n[0]));
        } else if let Some((n, "")) = fields(m, "READ", 1) {
            let value = format!("VALUE {} {} {}", n[0], self.ts, encode_value(&self.val));
            self.layers.pl.send(ctx, p, value);
        } else {
            eprintln!("onrr: dropped a broadcast from {p} that is neither WRITE nor READ: {m:?}");
        }
    }

    /// `upon event ⟨ pl, Deliver | q, [ACK, ts′] ⟩ such that ts′ = wts`:
    /// `acks := acks + 1`; if `acks > N/2` then `acks := 0`;
    /// `trigger ⟨ onrr, WriteReturn ⟩`.
    ///
    /// `upon event ⟨ pl, Deliver | q, [VALUE, r, ts′, v′] ⟩ such that r = rid`:
    /// `readlist[q] := (ts′, v′)`; if `#(readlist) > N/2` then
    /// `v := highestval(readlist)`; `readlist := [⊥]ᴺ`;
    /// `trigger ⟨ onrr, ReadReturn | v ⟩`.
    fn upon_pl_deliver(&mut self, q: String, m: &str) -> Option<Indication> {
        if let Some((n, "")) = fields(m, "ACK", 1) {
            if n[0] != self.wts {
                return None;
            }
            self.acks += 1;
            if self.acks > self.n / 2 {
                self.acks = 0;
                return Some(Indication::WriteReturn);
            }
        } else if let Some((n, v)) = fields(m, "VALUE", 2)
            && let Some(v) = decode_value(v)
        {
            if n[0] != self.rid {
                return None;
            }
            self.readlist.insert(q, (n[1], v));
            if self.readlist.len() > self.n / 2 {
                let v = highest(&self.readlist).1.clone();
                self.readlist.clear();
                return Some(Indication::ReadReturn(v));
            }
        } else {
            eprintln!("onrr: dropped a message from {q} that is neither ACK nor VALUE: {m:?}");
        }
        None
    }
}

/// The book's `highest(readlist)`: the pair with the largest timestamp.
pub fn highest(readlist: &BTreeMap<String, (u64, Value)>) -> (u64, &Value) {
    static BOTTOM: Value = None;
    readlist.values().max_by_key(|(ts, _)| *ts).map_or((0, &BOTTOM), |(ts, v)| (*ts, v))
}

impl Register for MajorityVoting {
    /// `upon event ⟨ onrr, Init ⟩`: `(ts, val) := (0, ⊥); wts := 0;
    /// acks := 0; rid := 0; readlist := [⊥]ᴺ`.
    fn upon_init(&mut self, ctx: &mut Context) {
        self.n = ctx.processes().len();
        self.layers.upon_init(ctx);
    }

    /// `upon event ⟨ onrr, Read ⟩`: `rid := rid + 1; readlist := [⊥]ᴺ`;
    /// `trigger ⟨ beb, Broadcast | [READ, rid] ⟩`.
    fn upon_read(&mut self, ctx: &mut Context) -> Option<Indication> {
        self.rid += 1;
        self.readlist.clear();
        self.layers.beb.upon_broadcast(ctx, &format!("READ {}", self.rid));
        None
    }

    /// `upon event ⟨ onrr, Write | v ⟩`: `wts := wts + 1; acks := 0`;
    /// `trigger ⟨ beb, Broadcast | [WRITE, wts, v] ⟩`.
    fn upon_write(&mut self, ctx: &mut Context, v: &str) -> Option<Indication> {
        self.wts += 1;
        self.acks = 0;
        self.layers.beb.upon_broadcast(ctx, &format!("WRITE {} {}", self.wts, encode_value(&Some(v.to_owned()))));
        None
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<Indication> {
        match self.layers.receive(ctx, from, payload) {
            Arrival::Beb(p, m) => {
                self.upon_beb_deliver(ctx, &p, &m);
                None
            }
            Arrival::Pl(p, m) => self.upon_pl_deliver(p, &m),
            Arrival::Nothing => None,
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Indication> {
        self.layers.upon_timeout(ctx, timer);
        None
    }
}

/// Runs the module: `mgr-modules RegularRegister [--algorithm
/// read-one-write-all|majority-voting] [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (algorithm, delta, period) = super::parse_args(args, ALGORITHMS)?;
    let register: Box<dyn Register> = match algorithm {
        "majority-voting" => Box::new(MajorityVoting::new("onrr", period)),
        _ => Box::new(ReadOneWriteAll::new("onrr", delta, period)),
    };
    runtime::run(contract, RegisterModule::new(register))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_takes_the_largest_timestamp() {
        let mut readlist = BTreeMap::new();
        assert_eq!(highest(&readlist), (0, &None));
        readlist.insert("p1".to_owned(), (2, Some("y".to_owned())));
        readlist.insert("p2".to_owned(), (0, None));
        readlist.insert("p3".to_owned(), (1, Some("x".to_owned())));
        assert_eq!(highest(&readlist), (2, &Some("y".to_owned())));
    }
}
