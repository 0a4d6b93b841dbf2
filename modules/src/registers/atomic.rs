#![doc = include_str!("atomic.md")]
//!
//! # Implementation notes
//!
//! Messages are text lines, the value always last (see
//! [`super::encode_value`]): `WRITE <ts> <v>` and `ACK` (Read-Impose
//! Write-All); `WRITE <r> <ts> <v>`, `ACK <r>`, `READ <r>`,
//! `VALUE <r> <ts> <v>` (Read-Impose Write-Majority). The book's `readlist`
//! is a map from process to (ts, v), as in [`super::regular`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::regular::highest;
use super::{Arrival, Indication, Layers, Register, RegisterModule, Value, decode_value, encode_value, fields};
use crate::runtime::{self, Context, Contract, RunError, Timer};

/// The `--algorithm` names, the default first.
pub const ALGORITHMS: &[&str] = &["read-impose-write-all", "read-impose-write-majority"];

/// Implements: (1,N)-AtomicRegister, instance onar (Read-Impose Write-All).
/// Uses: BestEffortBroadcast, instance beb; PerfectPointToPointLinks,
/// instance pl; PerfectFailureDetector, instance P.
#[derive(Debug)]
pub struct ReadImposeWriteAll {
    layers: Layers,
    ts: u64,
    val: Value,
    correct: BTreeSet<String>,
    writeset: BTreeSet<String>,
    readval: Value,
    reading: bool,
}

impl ReadImposeWriteAll {
    /// A register named `instance`; its components are `<instance>.beb`,
    /// `<instance>.pl` and `<instance>.pfd` (timeout `delta`).
    pub fn new(instance: &str, delta: Duration, period: Duration) -> ReadImposeWriteAll {
        ReadImposeWriteAll {
            layers: Layers::new(instance, period, Some(delta)),
            ts: 0,
            val: None,
            correct: BTreeSet::new(),
            writeset: BTreeSet::new(),
            readval: None,
            reading: false,
        }
    }

    /// `upon event ⟨ P, Crash | p ⟩`: `correct := correct \ {p}`.
    fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<Indication> {
        ctx.events.record("crash", Some(p), None, None);
        self.correct.remove(p);
        self.upon_correct_subset_of_writeset()
    }

    /// `upon event ⟨ beb, Deliver | p, [WRITE, ts′, v′] ⟩`: if `ts′ > ts`
    /// then `(ts, val) := (ts′, v′)`; `trigger ⟨ pl, Send | p, [ACK] ⟩`.
    fn upon_beb_deliver(&mut self, ctx: &mut Context, p: &str, m: &str) {
        let Some((n, v)) = fields(m, "WRITE", 1).and_then(|(n, v)| Some((n, decode_value(v)?))) else {
            eprintln!("onar: dropped a broadcast from {p} that is not [WRITE, ts, v]: {m:?}");
            return;
        };
        if n[0] > self.ts {
            (self.ts, self.val) = (n[0], v);
        }
        self.layers.pl.send(ctx, p, "ACK".to_owned());
    }

    /// `upon event ⟨ pl, Deliver | p, [ACK] ⟩`: `writeset := writeset ∪ {p}`.
    fn upon_pl_deliver(&mut self, p: String, m: &str) -> Option<Indication> {
        if m != "ACK" {
            eprintln!("onar: dropped a message from {p} that is not ACK: {m:?}");
            return None;
        }
        self.writeset.insert(p);
        self.upon_correct_subset_of_writeset()
    }

    /// `upon correct ⊆ writeset`: `writeset := ∅`; if `reading = TRUE`
    /// then `reading := FALSE`; `trigger ⟨ onar, ReadReturn | readval ⟩`;
    /// else `trigger ⟨ onar, WriteReturn ⟩`.
    fn upon_correct_subset_of_writeset(&mut self) -> Option<Indication> {
        if self.writeset.is_empty() || !self.correct.is_subset(&self.writeset) {
            return None;
        }
        self.writeset.clear();
        if self.reading {
            self.reading = false;
            Some(Indication::ReadReturn(self.readval.clone()))
        } else {
            Some(Indication::WriteReturn)
        }
    }
}

impl Register for ReadImposeWriteAll {
    /// `upon event ⟨ onar, Init ⟩`: `(ts, val) := (0, ⊥); correct := Π;
    /// writeset := ∅; readval := ⊥; reading := FALSE`.
    fn upon_init(&mut self, ctx: &mut Context) {
        self.correct = ctx.processes().into_iter().collect();
        self.layers.upon_init(ctx);
    }

    /// `upon event ⟨ onar, Read ⟩`: `reading := TRUE; readval := val`;
    /// `trigger ⟨ beb, Broadcast | [WRITE, ts, val] ⟩` (the read imposes
    /// the value it returns).
    fn upon_read(&mut self, ctx: &mut Context) -> Option<Indication> {
        self.reading = true;
        self.readval = self.val.clone();
        self.layers.beb.upon_broadcast(ctx, &format!("WRITE {} {}", self.ts, encode_value(&self.val)));
        None
    }

    /// `upon event ⟨ onar, Write | v ⟩`:
    /// `trigger ⟨ beb, Broadcast | [WRITE, ts + 1, v] ⟩`.
    fn upon_write(&mut self, ctx: &mut Context, v: &str) -> Option<Indication> {
        self.layers.beb.upon_broadcast(ctx, &format!("WRITE {} {}", self.ts + 1, encode_value(&Some(v.to_owned()))));
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

/// Implements: (1,N)-AtomicRegister, instance onar (Read-Impose
/// Write-Majority). Uses: BestEffortBroadcast, instance beb;
/// PerfectPointToPointLinks, instance pl.
#[derive(Debug)]
pub struct ReadImposeWriteMajority {
    layers: Layers,
    /// N, the number of processes.
    n: usize,
    ts: u64,
    val: Value,
    wts: u64,
    acks: usize,
    rid: u64,
    readlist: BTreeMap<String, (u64, Value)>,
    readval: Value,
    reading: bool,
}

impl ReadImposeWriteMajority {
    /// A register named `instance`; its components are `<instance>.beb` and `<instance>.pl`.
    pub fn new(instance: &str, period: Duration) -> ReadImposeWriteMajority {
        ReadImposeWriteMajority {
            layers: Layers::new(instance, period, None),
            n: 0,
            ts: 0,
            val: None,
            wts: 0,
            acks: 0,
            rid: 0,
            readlist: BTreeMap::new(),
            readval: None,
            reading: false,
        }
    }

    /// `upon event ⟨ beb, Deliver | p, [WRITE, r, ts′, v′] ⟩`: if `ts′ > ts`
    /// then `(ts, val) := (ts′, v′)`; `trigger ⟨ pl, Send | p, [ACK, r] ⟩`.
    ///
    /// `upon event ⟨ beb, Deliver | p, [READ, r] ⟩`:
    /// `trigger ⟨ pl, Send | p, [VALUE, r, ts, val] ⟩`.
    fn upon_beb_deliver(&mut self, ctx: &mut Context, p: &str, m: &str) {
        if let Some((n, v)) = fields(m, "WRITE", 2)
            && let Some(v) = decode_value(v)
        {
            if n[1] > self.ts {
                (self.ts, self.val) = (n[1], v);
            }
            self.layers.pl.send(ctx, p, format!("ACK {}", n[0]));
        } else if let Some((n, "")) = fields(m, "READ", 1) {
            let value = format!("VALUE {} {} {}", n[0], self.ts, encode_value(&self.val));
            self.layers.pl.send(ctx, p, value);
        } else {
            eprintln!("onar: dropped a broadcast from {p} that is neither WRITE nor READ: {m:?}");
        }
    }

    /// `upon event ⟨ pl, Deliver | q, [VALUE, r, ts′, v′] ⟩ such that r = rid`:
    /// `readlist[q] := (ts′, v′)`; if `#(readlist) > N/2` then
    /// `(maxts, readval) := highest(readlist)`; `readlist := [⊥]ᴺ`;
    /// `trigger ⟨ beb, Broadcast | [WRITE, rid, maxts, readval] ⟩`.
    ///
    /// `upon event ⟨ pl, Deliver | q, [ACK, r] ⟩ such that r = rid`:
    /// `acks := acks + 1`; if `acks > N/2` then `acks := 0`; if
    /// `reading = TRUE` then `reading := FALSE`;
    /// `trigger ⟨ onar, ReadReturn | readval ⟩`; else
    /// `trigger ⟨ onar, WriteReturn ⟩`.
    fn upon_pl_deliver(&mut self, ctx: &mut Context, q: String, m: &str) -> Option<Indication> {
        if let Some((n, v)) = fields(m, "VALUE", 2)
            && let Some(v) = decode_value(v)
        {
            if n[0] != self.rid {
                return None;
            }
            self.readlist.insert(q, (n[1], v));
            if self.readlist.len() > self.n / 2 {
                let (maxts, readval) = highest(&self.readlist);
                let impose = format!("WRITE {} {maxts} {}", self.rid, encode_value(readval));
                self.readval = readval.clone();
                self.readlist.clear();
                self.layers.beb.upon_broadcast(ctx, &impose);
            }
        } else if let Some((n, "")) = fields(m, "ACK", 1) {
            if n[0] != self.rid {
                return None;
            }
            self.acks += 1;
            if self.acks > self.n / 2 {
                self.acks = 0;
                if self.reading {
                    self.reading = false;
                    return Some(Indication::ReadReturn(self.readval.clone()));
                }
                return Some(Indication::WriteReturn);
            }
        } else {
            eprintln!("onar: dropped a message from {q} that is neither VALUE nor ACK: {m:?}");
        }
        None
    }
}

impl Register for ReadImposeWriteMajority {
    /// `upon event ⟨ onar, Init ⟩`: `(ts, val) := (0, ⊥); wts := 0;
    /// acks := 0; rid := 0; readlist := [⊥]ᴺ; readval := ⊥; reading := FALSE`.
    fn upon_init(&mut self, ctx: &mut Context) {
        self.n = ctx.processes().len();
        self.layers.upon_init(ctx);
    }

    /// `upon event ⟨ onar, Read ⟩`: `rid := rid + 1; acks := 0;
    /// readlist := [⊥]ᴺ; reading := TRUE`;
    /// `trigger ⟨ beb, Broadcast | [READ, rid] ⟩`.
    fn upon_read(&mut self, ctx: &mut Context) -> Option<Indication> {
        self.rid += 1;
        self.acks = 0;
        self.readlist.clear();
        self.reading = true;
        self.layers.beb.upon_broadcast(ctx, &format!("READ {}", self.rid));
        None
    }

    /// `upon event ⟨ onar, Write | v ⟩`: `rid := rid + 1; wts := wts + 1;
    /// acks := 0`; `trigger ⟨ beb, Broadcast | [WRITE, rid, wts, v] ⟩`.
    fn upon_write(&mut self, ctx: &mut Context, v: &str) -> Option<Indication> {
        self.rid += 1;
        self.wts += 1;
        self.acks = 0;
        let write = format!("WRITE {} {} {}", self.rid, self.wts, encode_value(&Some(v.to_owned())));
        self.layers.beb.upon_broadcast(ctx, &write);
        None
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<Indication> {
        match self.layers.receive(ctx, from, payload) {
            Arrival::Beb(p, m) => {
                self.upon_beb_deliver(ctx, &p, &m);
                None
            }
            Arrival::Pl(p, m) => self.upon_pl_deliver(ctx, p, &m),
            Arrival::Nothing => None,
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Indication> {
        self.layers.upon_timeout(ctx, timer);
        None
    }
}

/// Runs the module: `mgr-modules AtomicRegister [--algorithm
/// read-impose-write-all|read-impose-write-majority] [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (algorithm, delta, period) = super::parse_args(args, ALGORITHMS)?;
    let register: Box<dyn Register> = match algorithm {
        "read-impose-write-majority" => Box::new(ReadImposeWriteMajority::new("onar", period)),
        _ => Box::new(ReadImposeWriteAll::new("onar", delta, period)),
    };
    runtime::run(contract, RegisterModule::new(register))
}
