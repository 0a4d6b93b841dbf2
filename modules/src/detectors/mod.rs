//! Chapter 2 failure detectors and leader election: PerfectFailureDetector, LeaderElection,
//! EventuallyPerfectFailureDetector, EventualLeaderDetector.
//!
//! One file per abstraction, its interface and properties in the doc
//! comment; each is listed in [`MODULES`].

pub mod eventual_leader;
pub mod eventually_perfect;
pub mod leader_election;
pub mod perfect;

use crate::catalog::ModuleInfo;

/// The modules of this chapter, in the book's order.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "PerfectFailureDetector",
        summary: "perfect failure detector: detects exactly the crashed processes",
        reference: "Module 2.6",
        description: include_str!("perfect.md"),
        algorithms: &["Exclude on Timeout"],
        run: perfect::run,
    },
    ModuleInfo {
        name: "LeaderElection",
        summary: "leader election: elects a correct leader, a new one only when the last has crashed",
        reference: "Module 2.7",
        description: include_str!("leader_election.md"),
        algorithms: &["Monarchical Leader Election"],
        run: leader_election::run,
    },
    ModuleInfo {
        name: "EventuallyPerfectFailureDetector",
        summary: "eventually perfect failure detector: suspects crashed processes, eventually only them",
        reference: "Module 2.8",
        description: include_str!("eventually_perfect.md"),
        algorithms: &["Increasing Timeout"],
        run: eventually_perfect::run,
    },
    ModuleInfo {
        name: "EventualLeaderDetector",
        summary: "eventual leader detector (Ω): eventually all correct processes trust the same correct process",
        reference: "Module 2.9",
        description: include_str!("eventual_leader.md"),
        algorithms: &["Monarchical Eventual Leader Detection"],
        run: eventual_leader::run,
    },
];
