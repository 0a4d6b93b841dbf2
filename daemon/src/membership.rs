//! Membership: who is in the group, as this manager sees it.
//!
//! A state machine fed by what the group's I/O hears (see
//! `control::group`): a peer heard directly is alive; one only named by
//! another member's gossip is *joining* until heard; an alive or joining
//! peer not heard from within the failure timeout is dead; a dead peer heard
//! again (restarted, or back from a partition) is alive again. Time comes in
//! as an argument, so the tests drive it; this module does no I/O.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A manager as its peers describe it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerInfo {
    pub id: String,
    pub name: String,
    /// The gRPC address (ip:port) peers and remote CLIs use.
    pub address: String,
    pub group: String,
    pub version: u32,
    pub allow_exec: bool,
    /// The IP its instances get.
    pub advertise: String,
    /// Live instances, as of the last heartbeat.
    pub instances: u32,
    /// Start time (Unix ms) of this run of the manager.
    pub incarnation: u64,
}

/// How this manager sees a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Named by another member, not heard from directly yet.
    Joining,
    Alive,
    /// Not heard from within the failure timeout.
    Dead,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Joining => "joining",
            Liveness::Alive => "alive",
            Liveness::Dead => "dead",
        }
    }
}

/// One member as seen from here.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub info: PeerInfo,
    pub state: Liveness,
    /// When it was last heard from (Unix ms); 0 if never.
    pub last_seen_ms: u64,
    /// True for this manager.
    pub me: bool,
}

/// Why a peer cannot be a member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is in group '{theirs}', this manager in group '{ours}'")]
    OtherGroup { ours: String, theirs: String },
    #[error("it speaks protocol version {theirs}, this manager version {ours}")]
    OtherVersion { ours: u32, theirs: u32 },
    #[error("it has this manager's own member id {0} (a copy of this state dir?)")]
    SameId(String),
    #[error("this manager is shutting down")]
    Stopping,
}

/// What changed with one `heard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A peer never heard from before.
    Joined,
    /// A dead peer is back.
    Rejoined,
    /// A peer now answers at another address.
    Moved,
    /// Nothing a watcher needs to act on.
    Refreshed,
}

#[derive(Debug, Clone)]
struct Peer {
    info: PeerInfo,
    state: Liveness,
    /// Monotonic time of the last direct contact (or of being learned).
    last: Instant,
    last_seen_ms: u64,
}

/// The membership view.
#[derive(Debug, Clone)]
pub struct Membership {
    me: PeerInfo,
    peers: BTreeMap<String, Peer>,
    timeout: Duration,
}

impl Membership {
    /// A group of one, declaring peers dead after `timeout` without news.
    pub fn new(me: PeerInfo, timeout: Duration) -> Self {
        Membership { me, peers: BTreeMap::new(), timeout }
    }

    pub fn me(&self) -> &PeerInfo {
        &self.me
    }

    pub fn set_instances(&mut self, instances: u32) {
        self.me.instances = instances;
    }

    /// Whether a peer may be a member at all.
    pub fn admits(&self, info: &PeerInfo) -> Result<(), Refusal> {
        if info.group != self.me.group {
            return Err(Refusal::OtherGroup { ours: self.me.group.clone(), theirs: info.group.clone() });
        }
        if info.version != self.me.version {
            return Err(Refusal::OtherVersion { ours: self.me.version, theirs: info.version });
        }
        if info.id == self.me.id {
            return Err(Refusal::SameId(info.id.clone()));
        }
        Ok(())
    }

    /// A peer was heard from directly (a handshake or a heartbeat).
    pub fn heard(&mut self, info: PeerInfo, now: Instant, wall_ms: u64) -> Result<Change, Refusal> {
        self.admits(&info)?;
        let change = match self.peers.get(&info.id) {
            None => Change::Joined,
            Some(peer) if peer.info.address != info.address => Change::Moved,
            Some(peer) if peer.state == Liveness::Dead => Change::Rejoined,
            Some(peer) if peer.state == Liveness::Joining => Change::Joined,
            Some(_) => Change::Refreshed,
        };
        self.peers.insert(info.id.clone(), Peer { info, state: Liveness::Alive, last: now, last_seen_ms: wall_ms });
        Ok(change)
    }

    /// Another member named these peers as alive: returns the ones new to
    /// this manager, which should be contacted. Known peers keep their
    /// state: only direct contact proves liveness.
    pub fn learned(&mut self, infos: impl IntoIterator<Item = PeerInfo>, now: Instant) -> Vec<PeerInfo> {
        let mut new = Vec::new();
        for info in infos {
            if self.admits(&info).is_err() || self.peers.contains_key(&info.id) {
                continue;
            }
            let peer = Peer { info: info.clone(), state: Liveness::Joining, last: now, last_seen_ms: 0 };
            self.peers.insert(info.id.clone(), peer);
            new.push(info);
        }
        new
    }

    /// Declares dead every peer not heard from within the timeout; returns
    /// them.
    pub fn tick(&mut self, now: Instant) -> Vec<PeerInfo> {
        let mut died = Vec::new();
        for peer in self.peers.values_mut() {
            if peer.state != Liveness::Dead && now.saturating_duration_since(peer.last) > self.timeout {
                peer.state = Liveness::Dead;
                died.push(peer.info.clone());
            }
        }
        died
    }

    /// Every peer (not this manager) with its state.
    pub fn peers(&self) -> impl Iterator<Item = (&PeerInfo, Liveness)> {
        self.peers.values().map(|p| (&p.info, p.state))
    }

    /// The peers heard from within the timeout.
    pub fn alive(&self) -> Vec<PeerInfo> {
        self.peers.values().filter(|p| p.state == Liveness::Alive).map(|p| p.info.clone()).collect()
    }

    /// Every member, this one first, then by name.
    pub fn members(&self, wall_ms: u64) -> Vec<MemberView> {
        let mut members =
            vec![MemberView { info: self.me.clone(), state: Liveness::Alive, last_seen_ms: wall_ms, me: true }];
        let mut others: Vec<MemberView> = self
            .peers
            .values()
            .map(|p| MemberView { info: p.info.clone(), state: p.state, last_seen_ms: p.last_seen_ms, me: false })
            .collect();
        others.sort_by(|a, b| (&a.info.name, &a.info.id).cmp(&(&b.info.name, &b.info.id)));
        members.extend(others);
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, group: &str) -> PeerInfo {
        PeerInfo {
            id: id.into(),
            name: format!("n-{id}"),
            address: format!("10.0.0.{}:6170", id.len()),
            group: group.into(),
            version: 1,
            ..Default::default()
        }
    }

    fn group() -> Membership {
        Membership::new(info("me", "g"), Duration::from_millis(1500))
    }

    #[test]
    fn a_peer_heard_is_alive_and_dies_after_the_timeout() {
        let mut m = group();
        let t0 = Instant::now();
        assert_eq!(m.heard(info("a", "g"), t0, 1), Ok(Change::Joined));
        assert_eq!(m.alive().len(), 1);
        assert!(m.tick(t0 + Duration::from_millis(1400)).is_empty());
        assert_eq!(m.heard(info("a", "g"), t0 + Duration::from_millis(1400), 2), Ok(Change::Refreshed));
        assert!(m.tick(t0 + Duration::from_millis(2800)).is_empty(), "a heartbeat resets the timer");
        let died = m.tick(t0 + Duration::from_millis(3000));
        assert_eq!(died.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(m.tick(t0 + Duration::from_millis(4000)).is_empty(), "dies once");
        assert!(m.alive().is_empty());
        assert_eq!(m.members(0)[1].state, Liveness::Dead);
        assert_eq!(m.heard(info("a", "g"), t0 + Duration::from_secs(9), 3), Ok(Change::Rejoined));
        assert_eq!(m.members(0)[1].state, Liveness::Alive);
    }

    #[test]
    fn other_groups_versions_and_my_own_id_are_refused() {
        let mut m = group();
        let t0 = Instant::now();
        assert!(matches!(m.heard(info("a", "other"), t0, 0), Err(Refusal::OtherGroup { .. })));
        let mut old = info("b", "g");
        old.version = 0;
        assert!(matches!(m.heard(old, t0, 0), Err(Refusal::OtherVersion { .. })));
        assert!(matches!(m.heard(info("me", "g"), t0, 0), Err(Refusal::SameId(_))));
        assert!(m.learned([info("c", "other"), info("me", "g")], t0).is_empty());
        assert_eq!(m.members(0).len(), 1);
    }

    #[test]
    fn gossip_names_new_peers_once_and_never_revives_the_dead() {
        let mut m = group();
        let t0 = Instant::now();
        let new = m.learned([info("a", "g"), info("b", "g")], t0);
        assert_eq!(new.len(), 2);
        assert!(m.learned([info("a", "g")], t0).is_empty(), "known already");
        assert!(m.alive().is_empty(), "learned is not heard");
        assert_eq!(m.members(0)[1].state, Liveness::Joining);
        m.heard(info("a", "g"), t0, 0).unwrap();
        let died = m.tick(t0 + Duration::from_secs(2));
        assert_eq!(died.len(), 2, "an unreachable joining peer dies too");
        assert!(m.learned([info("a", "g")], t0 + Duration::from_secs(2)).is_empty());
        assert!(m.alive().is_empty(), "gossip does not prove liveness");
    }

    #[test]
    fn a_new_address_is_a_move() {
        let mut m = group();
        let t0 = Instant::now();
        m.heard(info("a", "g"), t0, 0).unwrap();
        let mut moved = info("a", "g");
        moved.address = "10.0.0.9:7000".into();
        assert_eq!(m.heard(moved, t0, 0), Ok(Change::Moved));
        assert_eq!(m.alive()[0].address, "10.0.0.9:7000");
    }

    #[test]
    fn members_list_me_first_then_by_name() {
        let mut m = group();
        let t0 = Instant::now();
        let mut z = info("z", "g");
        z.name = "a-first".into();
        m.heard(info("y", "g"), t0, 0).unwrap();
        m.heard(z, t0, 0).unwrap();
        let names: Vec<_> = m.members(0).into_iter().map(|v| v.info.name).collect();
        assert_eq!(names, ["n-me", "a-first", "n-y"]);
    }
}
