//! Chapter 3 broadcasts: best-effort, reliable, uniform reliable, FIFO, causal and
//! probabilistic broadcast.
//!
//! One file per abstraction, its interface and properties in the doc
//! comment; each is listed in [`MODULES`].

pub mod best_effort;
pub mod causal;
pub mod fifo;
pub mod probabilistic;
pub mod reliable;
pub mod uniform;

use std::net::SocketAddr;

use crate::catalog::ModuleInfo;
use crate::runtime::{Command, Context, Module, Timer};

/// The stdin commands of the broadcast modules.
pub const HELP: &str = "  broadcast text   broadcast text to every process\n  help             this list";

/// A message a broadcast delivers: its original sender, the number it has
/// there, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sender: String,
    pub id: u64,
    pub text: String,
}

/// A broadcast abstraction as its user sees it: the book's
/// `⟨ Broadcast | m ⟩` request and `⟨ Deliver | p, m ⟩` indication. Each
/// algorithm implements it once; [`BroadcastModule`] makes it a module.
pub trait Broadcast: std::fmt::Debug {
    /// `upon event ⟨ Init ⟩`.
    fn upon_init(&mut self, ctx: &mut Context);
    /// The number the next message broadcast here will have.
    fn next_id(&self) -> u64;
    /// `⟨ Broadcast | m ⟩`; returns what it delivers here at once, if anything.
    fn broadcast(&mut self, ctx: &mut Context, m: &str) -> Vec<Delivery>;
    /// The deliveries a datagram brings.
    fn deliveries(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<Delivery>;
    /// The deliveries a timer brings (a detected crash may release some).
    fn timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Vec<Delivery>;
}

/// A broadcast as a module of its own, with the user above: stdin
/// `broadcast text`, stdout `deliver p text`, events `broadcast` (logged
/// before the messages leave, so clocks order it first) and `deliver`, both
/// with the message's number at its sender.
#[derive(Debug)]
pub struct BroadcastModule<B>(pub B);

impl<B: Broadcast> BroadcastModule<B> {
    fn deliver(ctx: &mut Context, deliveries: Vec<Delivery>) {
        for d in deliveries {
            ctx.deliver(&d.sender, Some(d.id), None, &d.text);
        }
    }
}

impl<B: Broadcast> Module for BroadcastModule<B> {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        self.0.upon_init(ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command.verb.as_str() {
            "broadcast" if !command.args.is_empty() => {
                ctx.events.record("broadcast", None, Some(self.0.next_id()), Some(&command.args));
                let now = self.0.broadcast(ctx, &command.args);
                Self::deliver(ctx, now);
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        let got = self.0.deliveries(ctx, from, payload);
        Self::deliver(ctx, got);
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        let got = self.0.timeout(ctx, timer);
        Self::deliver(ctx, got);
    }
}

/// The modules of this chapter, in the book's order.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "BestEffortBroadcast",
        summary: "best-effort broadcast: every correct process delivers what a correct process broadcasts",
        reference: "Module 3.1",
        description: include_str!("best_effort.md"),
        algorithms: &["Basic Broadcast"],
        run: best_effort::run,
    },
    ModuleInfo {
        name: "ReliableBroadcast",
        summary: "reliable broadcast: correct processes deliver the same messages, even if the sender crashes",
        reference: "Module 3.2",
        description: include_str!("reliable.md"),
        algorithms: &["Eager Reliable Broadcast", "Lazy Reliable Broadcast"],
        run: reliable::run,
    },
    ModuleInfo {
        name: "UniformReliableBroadcast",
        summary: "uniform reliable broadcast: what any process delivers, even one that crashes, every correct process delivers",
        reference: "Module 3.3",
        description: include_str!("uniform.md"),
        algorithms: &["All-Ack Uniform Reliable Broadcast", "Majority-Ack Uniform Reliable Broadcast"],
        run: uniform::run,
    },
    ModuleInfo {
        name: "ProbabilisticBroadcast",
        summary: "probabilistic broadcast: gossip to k random processes for R rounds; everyone delivers with high probability",
        reference: "Chapter 3",
        description: include_str!("probabilistic.md"),
        algorithms: &["Eager Probabilistic Broadcast"],
        run: probabilistic::run,
    },
    ModuleInfo {
        name: "FifoReliableBroadcast",
        summary: "FIFO-order reliable broadcast: reliable broadcast that delivers each sender's messages in the order it sent them",
        reference: "Chapter 3",
        description: include_str!("fifo.md"),
        algorithms: &["Broadcast with Sequence Number"],
        run: fifo::run,
    },
    ModuleInfo {
        name: "CausalOrderBroadcast",
        summary: "causal-order reliable broadcast: no process delivers a message before the messages that may have caused it",
        reference: "Chapter 3",
        description: include_str!("causal.md"),
        algorithms: &["No-Waiting Causal Broadcast", "Waiting Causal Broadcast"],
        run: causal::run,
    },
];
