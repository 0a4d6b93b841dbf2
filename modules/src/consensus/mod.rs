//! Chapters 5 and 6: consensus, uniform consensus and total-order broadcast.
//!
//! One file per abstraction, its interface and properties in the doc
//! comment; each is listed in [`MODULES`]. This file holds what they share:
//! the module arguments, the encoding of values on the wire, and the
//! deterministic order behind the book's `min`.

pub mod regular;
pub mod total_order;
pub mod uniform;

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::catalog::ModuleInfo;
use crate::detectors::perfect::PerfectFailureDetector;
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer, say};

/// The modules of this chapter, in the book's order.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "Consensus",
        summary: "(regular) consensus: correct processes decide one of the proposed values, the same one",
        reference: "Module 5.1",
        description: include_str!("regular.md"),
        algorithms: &["Flooding Consensus", "Hierarchical Consensus"],
        run: regular::run,
    },
    ModuleInfo {
        name: "UniformConsensus",
        summary: "uniform consensus: no two processes, correct or not, decide differently",
        reference: "Module 5.2",
        description: include_str!("uniform.md"),
        algorithms: &["Flooding Uniform Consensus", "Hierarchical Uniform Consensus"],
        run: uniform::run,
    },
    ModuleInfo {
        name: "TotalOrderBroadcast",
        summary: "total-order broadcast: every process delivers the same messages in the same order",
        reference: "Module 6.1",
        description: include_str!("total_order.md"),
        algorithms: &["Consensus-Based Total-Order Broadcast"],
        run: total_order::run,
    },
];

/// The default timeout Δ of the perfect failure detector below consensus.
pub const DEFAULT_DELTA: Duration = Duration::from_millis(1000);

/// The module arguments: `--algorithm NAME` (one of `known`, default the
/// first) and the detector's `--delta-ms N --period-ms N`.
pub fn parse_args(args: &[String], known: &[&'static str]) -> Result<(&'static str, Duration, Duration), RunError> {
    let mut algorithm = known[0];
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        if name != "--algorithm" {
            rest.push(arg.clone());
            continue;
        }
        let value = inline.or_else(|| it.next().cloned());
        algorithm = match known.iter().find(|k| Some(**k) == value.as_deref()) {
            Some(k) => k,
            None => {
                return Err(RunError::Usage(format!("unknown algorithm {value:?} (known: {})", known.join(", "))));
            }
        };
    }
    let (delta, period) = crate::detectors::perfect::parse_timing(&rest, DEFAULT_DELTA)?;
    Ok((algorithm, delta, period))
}

/// Makes a value one word: `%`, whitespace and `,` become `%XX`, so that a
/// set of values travels as words separated by spaces.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' | ' ' | '\t' | '\n' | '\r' | ',' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape`]; `None` for a malformed word.
pub fn unescape(word: &str) -> Option<String> {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 1..i + 3)?;
        out.push(char::from(u8::from_str_radix(hex, 16).ok()?));
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A set of values as escaped words separated by spaces.
pub fn encode_set<'a>(values: impl IntoIterator<Item = &'a String>) -> String {
    values.into_iter().map(|v| escape(v)).collect::<Vec<_>>().join(" ")
}

/// The inverse of [`encode_set`].
pub fn decode_set(words: &str) -> Option<Vec<String>> {
    words.split_whitespace().map(unescape).collect()
}

/// The total order behind the book's `min`, the same at every process:
/// integers by value, before any other text, which goes by bytes.
pub fn value_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The book's `min(S)` for a set of proposals.
pub fn min_value<'a>(values: impl IntoIterator<Item = &'a String>) -> Option<String> {
    values.into_iter().min_by(|a, b| value_order(a, b)).cloned()
}

/// A process's rank as the book counts it: p1 is 1, …, pN is N.
pub fn book_rank(ctx: &crate::runtime::Context, p: &str) -> Option<usize> {
    ctx.rank(p).map(|r| r + 1)
}

/// What the consensus modules have in common, for [`run_module`]: the
/// handlers of a consensus instance whose detector is owned above it. Each
/// returns the instance's `Decide` indication, if it triggered one.
pub trait ConsensusLayer {
    /// `upon event ⟨ Init ⟩`, given the processes already detected.
    fn upon_init(&mut self, ctx: &mut Context, detected: &BTreeSet<String>) -> Option<String>;
    /// `upon event ⟨ P, Crash | p ⟩`.
    fn upon_crash(&mut self, ctx: &mut Context, p: &str) -> Option<String>;
    /// `upon event ⟨ Propose | v ⟩`.
    fn upon_propose(&mut self, ctx: &mut Context, v: &str) -> Option<String>;
    /// A datagram that is not the detector's.
    fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<String>;
    /// A timer that is not the detector's; false when not the instance's either.
    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool;
}

/// The stdin commands of the consensus modules.
pub const HELP: &str = "  propose v   propose the value v (once per run)\n  help        this list";

/// A consensus instance as a module of its own, with the user above and the
/// perfect failure detector (instance `P`) beside it.
#[derive(Debug)]
pub struct ConsensusModule<C> {
    pfd: PerfectFailureDetector,
    c: C,
    proposed: Option<String>,
    decided: Option<String>,
}

impl<C: ConsensusLayer> ConsensusModule<C> {
    /// `trigger ⟨ c, Decide | v ⟩`: prints `decide v`.
    fn upon_decide(&mut self, ctx: &mut Context, decision: Option<String>) {
        if let Some(v) = decision {
            ctx.indicate("decide", None, &v);
            self.decided = Some(v);
        }
    }
}

impl<C: ConsensusLayer> Module for ConsensusModule<C> {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        self.pfd.upon_init(ctx);
        let decision = self.c.upon_init(ctx, &BTreeSet::new());
        self.upon_decide(ctx, decision);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command.verb.as_str() {
            "propose" if !command.args.is_empty() => {
                if let Some(v) = &self.decided {
                    say(format_args!("error: this run already decided {v} (one consensus instance per run)"));
                } else if let Some(v) = &self.proposed {
                    say(format_args!("error: this process already proposed {v} (one consensus instance per run)"));
                } else {
                    self.proposed = Some(command.args.clone());
                    ctx.events.record("propose", None, None, Some(&command.args));
                    let decision = self.c.upon_propose(ctx, &command.args);
                    self.upon_decide(ctx, decision);
                }
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        if !self.pfd.receive(ctx, from, payload) {
            let decision = self.c.receive(ctx, from, payload);
            self.upon_decide(ctx, decision);
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        match self.pfd.upon_timeout(ctx, timer) {
            Some(crashed) => {
                for p in crashed {
                    let decision = self.c.upon_crash(ctx, &p);
                    self.upon_decide(ctx, decision);
                }
            }
            None => {
                self.c.upon_timeout(ctx, timer);
            }
        }
    }
}

/// Runs consensus instance `c` as a module, with a detector of timeout `delta`.
pub fn run_module<C: ConsensusLayer>(
    contract: Contract,
    c: C,
    delta: Duration,
    period: Duration,
) -> Result<(), RunError> {
    let pfd = PerfectFailureDetector::new("P", delta, period);
    runtime::run(contract, ConsensusModule { pfd, c, proposed: None, decided: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_one_word_each() {
        let vs = vec!["a b".to_owned(), "50%".to_owned(), "x,y\nz".to_owned(), "plain".to_owned()];
        let words = encode_set(&vs);
        assert_eq!(words.split(' ').count(), 4);
        assert_eq!(decode_set(&words), Some(vs));
        assert_eq!(unescape("%2"), None);
        assert_eq!(unescape("%zz"), None);
    }

    #[test]
    fn min_orders_numbers_by_value_then_text() {
        let vs: Vec<String> = ["10", "9", "apple", "-3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(min_value(&vs).as_deref(), Some("-3"));
        let vs: Vec<String> = ["10", "9", "apple"].iter().map(|s| s.to_string()).collect();
        assert_eq!(min_value(&vs).as_deref(), Some("9"));
        let vs: Vec<String> = ["pear", "apple"].iter().map(|s| s.to_string()).collect();
        assert_eq!(min_value(&vs).as_deref(), Some("apple"));
    }
}
