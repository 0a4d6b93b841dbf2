//! Lab applications built on the runtime, as opposed to the book's
//! abstractions: the systems of the lab reports mgr grew from. Each file
//! owns one application (its protocol in the `.md` next to it) and lists
//! its modules here.

pub mod ack;
pub mod chat;
pub mod multicast;

use crate::catalog::ModuleInfo;

/// The modules whose set of processes may change while they run (`mgrctl
/// scale`): they find each other through a service or announcements, not
/// through a fixed Π, and take the `peers` control line when it comes. The
/// book's modules and the multicast lab (whose peers handshake once with a
/// fixed set) are not among them.
pub const DYNAMIC: &[&str] = &["ChatNode", "AckDiscovery", "AckReceiver", "AckClient"];

/// The applications' modules.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "MulticastPeer",
        summary: "multicast lab: peers handshake, multicast numbered messages and report their delivery order (--ordered: Lamport total order)",
        reference: "Multicast lab",
        description: include_str!("multicast.md"),
        algorithms: &["Uncoordinated Multicast", "Lamport Totally Ordered Multicast"],
        run: multicast::run_peer,
    },
    ModuleInfo {
        name: "MulticastComparator",
        summary: "multicast lab: collects the peers' delivery orders and reports whether they agree",
        reference: "Multicast lab",
        description: include_str!("multicast_comparator.md"),
        algorithms: &[],
        run: multicast::run_comparator,
    },
    chat::INFO,
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
