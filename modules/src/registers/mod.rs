//! Chapter 4 shared memory: (1,N) regular and atomic registers.
//!
//! One file per abstraction, its interface and properties in the doc
//! comment; each is listed in [`MODULES`]. What the registers share lives
//! here: the values (⊥ included) and how they travel, the module arguments,
//! and the standalone module that connects stdin and stdout to a register
//! algorithm ([`RegisterModule`]).

pub mod atomic;
pub mod regular;

use std::net::SocketAddr;
use std::time::Duration;

use crate::broadcast::best_effort::BestEffortBroadcast;
use crate::catalog::ModuleInfo;
use crate::detectors::perfect::PerfectFailureDetector;
use crate::links::perfect::PerfectPointToPointLink;
use crate::runtime::{self, Command, Context, Module, RunError, Timer};

/// The modules of this chapter, in the book's order.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "RegularRegister",
        summary: "(1,N) regular register: p1 writes, everyone reads the last value written or one being written",
        reference: "Module 4.1",
        description: include_str!("regular.md"),
        algorithms: &["Read-One Write-All", "Majority Voting Regular Register"],
        run: regular::run,
    },
    ModuleInfo {
        name: "AtomicRegister",
        summary: "(1,N) atomic register: a regular register whose reads never go back to an older value",
        reference: "Module 4.2",
        description: include_str!("atomic.md"),
        algorithms: &["Read-Impose Write-All", "Read-Impose Write-Majority"],
        run: atomic::run,
    },
];

/// The stdin commands of the register modules.
pub const HELP: &str = "  write v   write v into the register (p1 only: it is the one writer)\n  read      read the register\n  help      this list";

/// A register's content: `None` is the book's ⊥, the value of a register
/// nobody wrote yet.
pub type Value = Option<String>;

/// How ⊥ is printed.
pub const BOTTOM: &str = "⊥";

/// The value as printed on stdout: `⊥` or the value itself.
pub fn show(v: &Value) -> &str {
    v.as_deref().unwrap_or(BOTTOM)
}

/// A value on the wire, always the last field of a message: `-` for ⊥,
/// `=v` for v (so that a user's value may hold spaces, `-` or `⊥`).
pub fn encode_value(v: &Value) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) => format!("={v}"),
    }
}

/// Reads back [`encode_value`].
pub fn decode_value(text: &str) -> Option<Value> {
    match text {
        "-" => Some(None),
        _ => text.strip_prefix('=').map(|v| Some(v.to_owned())),
    }
}

/// Reads a message `<tag> <n1> … <nk> [rest]`: the `k` numbers after the
/// tag, and the rest (the value, if any). `None` for another tag or a
/// malformed message.
pub fn fields<'m>(m: &'m str, tag: &str, k: usize) -> Option<(Vec<u64>, &'m str)> {
    let mut parts = m.splitn(k + 2, ' ');
    (parts.next()? == tag).then_some(())?;
    let numbers = (0..k).map(|_| parts.next()?.parse().ok()).collect::<Option<Vec<u64>>>()?;
    Some((numbers, parts.next().unwrap_or("")))
}

/// What a register algorithm hands back to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indication {
    /// `⟨ onrr, ReadReturn | v ⟩` (or onar).
    ReadReturn(Value),
    /// `⟨ onrr, WriteReturn ⟩` (or onar).
    WriteReturn,
}

/// One algorithm of a (1,N) register, seen from the module that runs it:
/// the two requests and the events from below. Each returns the indication
/// it triggers, if any.
pub trait Register: std::fmt::Debug {
    /// `upon event ⟨ Init ⟩`: starts the layers below.
    fn upon_init(&mut self, ctx: &mut Context);
    /// `upon event ⟨ Read ⟩`.
    fn upon_read(&mut self, ctx: &mut Context) -> Option<Indication>;
    /// `upon event ⟨ Write | v ⟩` (at the writer only).
    fn upon_write(&mut self, ctx: &mut Context, v: &str) -> Option<Indication>;
    /// A datagram for one of the layers below.
    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<Indication>;
    /// A timer of one of the layers below.
    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Indication>;
}

/// The abstractions a register algorithm uses (the book's `Uses:`), named
/// `<instance>.beb`, `<instance>.pl` and `<instance>.pfd`, and the routing
/// of datagrams and timers to them.
#[derive(Debug)]
pub struct Layers {
    pub beb: BestEffortBroadcast,
    pub pl: PerfectPointToPointLink,
    /// The perfect failure detector, for the algorithms that use one.
    pub p: Option<PerfectFailureDetector>,
}

/// What a datagram brought to a register algorithm.
#[derive(Debug)]
pub enum Arrival {
    /// `⟨ beb, Deliver | p, m ⟩`.
    Beb(String, String),
    /// `⟨ pl, Deliver | p, m ⟩`.
    Pl(String, String),
    /// Nothing for the algorithm (the detector's traffic, a duplicate…).
    Nothing,
}

impl Layers {
    /// The layers of a register named `instance`; with `delta`, a perfect
    /// failure detector of that timeout too.
    pub fn new(instance: &str, period: Duration, delta: Option<Duration>) -> Layers {
        Layers {
            beb: BestEffortBroadcast::new(&format!("{instance}.beb"), period),
            pl: PerfectPointToPointLink::new(&format!("{instance}.pl"), period, true),
            p: delta.map(|delta| PerfectFailureDetector::new(&format!("{instance}.pfd"), delta, period)),
        }
    }

    /// Starts every layer.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.beb.upon_init(ctx);
        self.pl.upon_init(ctx);
        if let Some(p) = &mut self.p {
            p.upon_init(ctx);
        }
    }

    /// Hands a datagram to the layer it belongs to.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Arrival {
        if let Some(p) = &mut self.p
            && p.receive(ctx, from, payload)
        {
            return Arrival::Nothing;
        }
        if self.beb.owns(payload) {
            return self.beb.receive(ctx, from, payload).map_or(Arrival::Nothing, |(p, m)| Arrival::Beb(p, m));
        }
        if self.pl.owns(payload) {
            return self
                .pl
                .receive_message(ctx, from, payload)
                .map_or(Arrival::Nothing, |(p, m)| Arrival::Pl(p, m.text));
        }
        eprintln!("register: dropped a datagram from {from} of no layer here");
        Arrival::Nothing
    }

    /// Hands a timer to its layer; returns the processes the detector has
    /// just detected (`⟨ P, Crash | p ⟩` for each).
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Vec<String> {
        if let Some(p) = &mut self.p
            && let Some(crashed) = p.upon_timeout(ctx, timer)
        {
            return crashed;
        }
        if !self.beb.upon_timeout(ctx, timer) {
            self.pl.upon_timeout(ctx, timer);
        }
        Vec::new()
    }
}

/// An operation invoked and not yet returned: the book's processes are
/// sequential, so a process invokes one operation at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Read,
    Write,
}

/// A register as a module of its own, with the user as its process: `write
/// v` (at p1) and `read` on stdin, `writereturn` and `readreturn v` on stdout.
#[derive(Debug)]
pub struct RegisterModule {
    register: Box<dyn Register>,
    pending: Option<Pending>,
}

impl RegisterModule {
    pub fn new(register: Box<dyn Register>) -> RegisterModule {
        RegisterModule { register, pending: None }
    }

    /// Prints an indication and ends the pending operation.
    fn indicate(&mut self, ctx: &mut Context, indication: Option<Indication>) {
        match indication {
            Some(Indication::ReadReturn(v)) => {
                self.pending = None;
                ctx.indicate("readreturn", None, show(&v));
            }
            Some(Indication::WriteReturn) => {
                self.pending = None;
                ctx.indicate("writereturn", None, "");
            }
            None => {}
        }
    }
}

impl Module for RegisterModule {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        self.register.upon_init(ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        let writer = ctx.processes().into_iter().next().unwrap_or_default();
        match command.verb.as_str() {
            "write" | "read" if self.pending.is_some() => {
                runtime::say("error: an operation is still running: wait for its readreturn or writereturn");
            }
            "write" if !command.args.is_empty() && ctx.self_name() != writer => {
                runtime::say(format_args!("error: only {writer} writes (this is {})", ctx.self_name()));
            }
            "write" if !command.args.is_empty() => {
                ctx.events.record("write", None, None, Some(&command.args));
                self.pending = Some(Pending::Write);
                let indication = self.register.upon_write(ctx, &command.args);
                self.indicate(ctx, indication);
            }
            "read" if command.args.is_empty() => {
                ctx.events.record("read", None, None, None);
                self.pending = Some(Pending::Read);
                let indication = self.register.upon_read(ctx);
                self.indicate(ctx, indication);
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        let indication = self.register.upon_datagram(ctx, from, payload);
        self.indicate(ctx, indication);
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        let indication = self.register.upon_timeout(ctx, timer);
        self.indicate(ctx, indication);
    }
}

/// The module arguments of the registers: `--algorithm NAME` (one of
/// `algorithms`, the first by default), `--delta-ms N` (the perfect failure
/// detector's Δ, default 1000) and `--period-ms N` (the links' retransmission
/// period, default 100).
pub fn parse_args<'a>(args: &[String], algorithms: &[&'a str]) -> Result<(&'a str, Duration, Duration), RunError> {
    let mut algorithm = algorithms[0];
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = match arg.as_str() {
            "--algorithm" => it.next().map(String::as_str),
            other => match other.strip_prefix("--algorithm=") {
                Some(value) => Some(value),
                None => {
                    rest.push(arg.clone());
                    continue;
                }
            },
        };
        algorithm = algorithms.iter().copied().find(|a| Some(*a) == value).ok_or_else(|| {
            RunError::Usage(format!("unknown algorithm {:?} (known: {})", value.unwrap_or(""), algorithms.join(", ")))
        })?;
    }
    let (delta, period) = crate::detectors::perfect::parse_timing(&rest, crate::detectors::perfect::DEFAULT_DELTA)?;
    Ok((algorithm, delta, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn values_read_back_as_written() {
        for v in [None, Some("x".to_owned()), Some("a b".into()), Some("-".into()), Some("⊥".into())] {
            assert_eq!(decode_value(&encode_value(&v)), Some(v.clone()));
        }
        assert_eq!(decode_value("x"), None);
        assert_eq!(show(&None), "⊥");
    }

    #[test]
    fn fields_are_a_tag_numbers_and_the_rest() {
        assert_eq!(fields("VALUE 3 7 =a b", "VALUE", 2), Some((vec![3, 7], "=a b")));
        assert_eq!(fields("ACK", "ACK", 0), Some((vec![], "")));
        assert_eq!(fields("ACK 2", "WRITE", 1), None);
        assert_eq!(fields("ACK x", "ACK", 1), None);
        assert_eq!(fields("ACK", "ACK", 1), None);
    }

    #[test]
    fn arguments_choose_the_algorithm_and_the_timing() {
        let known = ["one", "two"];
        let (a, delta, period) = parse_args(&args(&[]), &known).unwrap();
        assert_eq!((a, delta, period), ("one", Duration::from_millis(1000), Duration::from_millis(100)));
        let (a, delta, period) =
            parse_args(&args(&["--algorithm", "two", "--delta-ms", "300", "--period-ms=50"]), &known).unwrap();
        assert_eq!((a, delta, period), ("two", Duration::from_millis(300), Duration::from_millis(50)));
        assert!(parse_args(&args(&["--algorithm", "three"]), &known).is_err());
        assert!(parse_args(&args(&["--algorithm"]), &known).is_err());
        assert!(parse_args(&args(&["--other"]), &known).is_err());
    }
}
