//! Membership: who is in the group, as this manager sees it.
//!
//! Today the group is this manager alone; the group issue turns this into a
//! state machine fed by discovery and liveness events. It does no I/O.

use std::time::{SystemTime, UNIX_EPOCH};

/// One member as seen from here.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    /// The gRPC address peers and remote CLIs use.
    pub address: String,
    pub state: &'static str,
    pub last_seen_ms: u64,
}

/// The membership view. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Membership {
    me: MemberView,
}

impl Membership {
    pub fn new(id: &str, name: &str, address: &str) -> Self {
        Membership {
            me: MemberView {
                id: id.to_owned(),
                name: name.to_owned(),
                address: address.to_owned(),
                state: "alive",
                last_seen_ms: 0,
            },
        }
    }

    /// Every member, this one first.
    pub fn members(&self) -> Vec<MemberView> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        vec![MemberView { last_seen_ms: now, ..self.me.clone() }]
    }
}
