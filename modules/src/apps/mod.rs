//! Applications built on the runtime: the lab systems of the seed reports,
//! each role a module of its own. Each file lists its modules here.

pub mod ack;

use crate::catalog::ModuleInfo;

/// The application modules.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "AckDiscovery",
        summary: "ack-based group communication: the registry of live receivers",
        reference: "Lab: ack-based group communication",
        description: include_str!("ack_discovery.md"),
        algorithms: &[],
        run: ack::run_discovery,
    },
    ModuleInfo {
        name: "AckReceiver",
        summary: "ack-based group communication: processes a request and acks it, or crashes first",
        reference: "Lab: ack-based group communication",
        description: include_str!("ack_receiver.md"),
        algorithms: &[],
        run: ack::run_receiver,
    },
    ModuleInfo {
        name: "AckClient",
        summary: "ack-based group communication: sends each request to a receiver until one acks",
        reference: "Lab: ack-based group communication",
        description: include_str!("ack_client.md"),
        algorithms: &[],
        run: ack::run_client,
    },
];
