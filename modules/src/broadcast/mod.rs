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

use crate::catalog::ModuleInfo;

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
