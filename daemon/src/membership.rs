//! Membership: who is in the group, as this manager sees it.
//!
//! A state machine fed by what the group's I/O hears (see
//! `control::group`): a peer heard directly (an answer on a connection this
//! manager made, authenticated with the group key) is alive; one that only
//! said hello, or that another member's gossip names, is *joining* until
//! heard, and is dropped, never a member, if it is not heard within
//! [`JOINING_TTL`]; an alive peer not heard from within the failure timeout
//! is dead; a dead peer heard again (restarted, or back from a partition)
//! is alive again, and one dead for [`FORGET_AFTER`] is forgotten. The view
//! holds at most [`MAX_PEERS`]. Time comes in as an argument, so the tests
//! drive it; this module does no I/O.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a peer may be *joining* (introduced, not yet heard from
/// directly) before it is dropped: it never became a member.
pub const JOINING_TTL: Duration = Duration::from_secs(30);

/// How long a dead member stays in the view: long enough to see what was
/// lost with it over a lab session, short enough that a semester of
/// machines coming and going does not pile up.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Most peers one view holds; gossip beyond it is ignored (a lab is tens of
/// machines, a flood is not a group).
pub const MAX_PEERS: usize = 1024;

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
    /// It can limit an instance's memory, cpus and processes.
    pub limits: bool,
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
    #[error("this manager's view of the group is full ({MAX_PEERS} members)")]
    Full,
}

/// What a hello made of its caller (see [`Membership::introduced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introduced {
    /// Joining at this address: to be reached there and heard from.
    Joining(PeerInfo),
    /// Known at this address already; nothing changes.
    Known(PeerInfo),
    /// Alive at another address than the hello says: it moves only if this
    /// address answers as it.
    Probe(PeerInfo),
}

/// What one [`Membership::tick`] changed.
#[derive(Debug, Default)]
pub struct Ticked {
    /// Alive peers that went silent.
    pub died: Vec<PeerInfo>,
    /// Joining peers never heard from: never members.
    pub dropped: Vec<PeerInfo>,
    /// Peers dead for [`FORGET_AFTER`].
    pub forgotten: Vec<PeerInfo>,
}

impl Ticked {
    pub fn changed(&self) -> bool {
        !(self.died.is_empty() && self.dropped.is_empty() && self.forgotten.is_empty())
    }
}

/// Why a member cannot be forgotten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgetError {
    #[error("no member named '{0}' (see: mgrctl members)")]
    Unknown(String),
    #[error("several members are named '{0}': give its id (see: mgrctl members)")]
    Ambiguous(String),
    #[error("member {0} is alive: only a dead member can be forgotten")]
    Alive(String),
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
    /// Monotonic time of the last direct contact (or of being learned, or
    /// of dying).
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

    /// A peer was heard from directly: it answered a handshake or sends
    /// heartbeats on a connection this manager made.
    pub fn heard(&mut self, info: PeerInfo, now: Instant, wall_ms: u64) -> Result<Change, Refusal> {
        self.admits(&info)?;
        if !self.peers.contains_key(&info.id) && self.peers.len() >= MAX_PEERS {
            return Err(Refusal::Full);
        }
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

    /// A peer said hello (it called us): it is *joining* until this
    /// manager reaches it and hears from it directly. Saying hello proves
    /// nothing: a known peer at its known address keeps its state; a dead
    /// or joining one at a new address (restarted elsewhere) is joining
    /// there; but an alive one is not moved on a hello's word (anyone with
    /// the key could say it), only once its new address answers as it
    /// ([`Introduced::Probe`]).
    pub fn introduced(&mut self, info: PeerInfo, now: Instant) -> Result<Introduced, Refusal> {
        self.admits(&info)?;
        let full = self.peers.len() >= MAX_PEERS;
        match self.peers.get_mut(&info.id) {
            Some(peer) if peer.info.address == info.address => Ok(Introduced::Known(peer.info.clone())),
            Some(peer) if peer.state == Liveness::Alive => Ok(Introduced::Probe(info)),
            Some(peer) => {
                *peer =
                    Peer { info: info.clone(), state: Liveness::Joining, last: now, last_seen_ms: peer.last_seen_ms };
                Ok(Introduced::Joining(info))
            }
            None if full => Err(Refusal::Full),
            None => {
                let peer = Peer { info: info.clone(), state: Liveness::Joining, last: now, last_seen_ms: 0 };
                self.peers.insert(info.id.clone(), peer);
                Ok(Introduced::Joining(info))
            }
        }
    }

    /// Another member named these peers as alive: returns the ones new to
    /// this manager, which should be contacted. Known peers keep their
    /// state: only direct contact proves liveness.
    pub fn learned(&mut self, infos: impl IntoIterator<Item = PeerInfo>, now: Instant) -> Vec<PeerInfo> {
        let mut new = Vec::new();
        for info in infos {
            if self.admits(&info).is_err() || self.peers.contains_key(&info.id) || self.peers.len() >= MAX_PEERS {
                continue;
            }
            let peer = Peer { info: info.clone(), state: Liveness::Joining, last: now, last_seen_ms: 0 };
            self.peers.insert(info.id.clone(), peer);
            new.push(info);
        }
        new
    }

    /// Declares dead every alive peer not heard from within the timeout,
    /// drops every joining peer not heard from within [`JOINING_TTL`] and
    /// forgets every peer dead for [`FORGET_AFTER`].
    pub fn tick(&mut self, now: Instant) -> Ticked {
        let mut ticked = Ticked::default();
        let since = |peer: &Peer| now.saturating_duration_since(peer.last);
        for peer in self.peers.values_mut() {
            if peer.state == Liveness::Alive && since(peer) > self.timeout {
                peer.state = Liveness::Dead;
                peer.last = now;
                ticked.died.push(peer.info.clone());
            }
        }
        self.peers.retain(|_, peer| match peer.state {
            Liveness::Joining if since(peer) > JOINING_TTL => {
                ticked.dropped.push(peer.info.clone());
                false
            }
            Liveness::Dead if since(peer) > FORGET_AFTER => {
                ticked.forgotten.push(peer.info.clone());
                false
            }
            _ => true,
        });
        ticked
    }

    /// Forgets a dead member, named by its id or its name (one of them).
    pub fn forget(&mut self, member: &str) -> Result<PeerInfo, ForgetError> {
        let by_id = self.peers.contains_key(member).then(|| member.to_owned());
        let by_name: Vec<String> =
            self.peers.values().filter(|p| p.info.name == member).map(|p| p.info.id.clone()).collect();
        let id = match (by_id, by_name.as_slice()) {
            (Some(id), _) => id,
            (None, [id]) => id.clone(),
            (None, []) => return Err(ForgetError::Unknown(member.to_owned())),
            (None, _) => return Err(ForgetError::Ambiguous(member.to_owned())),
        };
        if self.peers[&id].state == Liveness::Alive {
            return Err(ForgetError::Alive(member.to_owned()));
        }
        Ok(self.peers.remove(&id).expect("found above").info)
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
        assert!(!m.tick(t0 + Duration::from_millis(1400)).changed());
        assert_eq!(m.heard(info("a", "g"), t0 + Duration::from_millis(1400), 2), Ok(Change::Refreshed));
        assert!(!m.tick(t0 + Duration::from_millis(2800)).changed(), "a heartbeat resets the timer");
        let died = m.tick(t0 + Duration::from_millis(3000)).died;
        assert_eq!(died.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(!m.tick(t0 + Duration::from_millis(4000)).changed(), "dies once");
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
        let ticked = m.tick(t0 + Duration::from_secs(2));
        assert_eq!(ticked.died.len(), 1, "only a member heard from can die");
        assert!(m.learned([info("a", "g")], t0 + Duration::from_secs(2)).is_empty());
        assert!(m.alive().is_empty(), "gossip does not prove liveness");
        // b was never heard from: it never was a member, and goes.
        let ticked = m.tick(t0 + JOINING_TTL + Duration::from_secs(1));
        assert_eq!(ticked.dropped.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(m.members(0).len(), 2, "me and the dead a");
    }

    #[test]
    fn a_hello_is_not_a_member_until_heard_and_goes_if_never_heard() {
        let mut m = group();
        let t0 = Instant::now();
        // A thousand hellos of strangers who never answer.
        for i in 0..1000 {
            m.introduced(info(&format!("fake{i}"), "g"), t0).unwrap();
        }
        assert!(m.alive().is_empty(), "a hello proves nothing");
        assert!(m.members(0).iter().skip(1).all(|v| v.state == Liveness::Joining));
        let ticked = m.tick(t0 + JOINING_TTL + Duration::from_secs(1));
        assert_eq!(ticked.dropped.len(), 1000);
        assert!(ticked.died.is_empty(), "never members, so never dead members");
        assert_eq!(m.members(0).len(), 1);
        // One that is then heard directly is a member.
        m.introduced(info("real", "g"), t0).unwrap();
        assert_eq!(m.heard(info("real", "g"), t0, 5), Ok(Change::Joined));
        assert_eq!(m.alive().len(), 1);
        // A hello of a known member at its address changes nothing; one at a
        // new address does not move an alive member (it is only probed
        // there), and moves a dead one, joining there until heard.
        assert_eq!(m.introduced(info("real", "g"), t0), Ok(Introduced::Known(info("real", "g"))));
        assert_eq!(m.alive().len(), 1);
        let mut moved = info("real", "g");
        moved.address = "10.0.0.99:6170".into();
        assert_eq!(m.introduced(moved.clone(), t0), Ok(Introduced::Probe(moved.clone())));
        assert_eq!(m.alive()[0].address, info("real", "g").address, "an alive member is not moved by a hello");
        m.tick(t0 + Duration::from_secs(2));
        assert_eq!(m.introduced(moved.clone(), t0), Ok(Introduced::Joining(moved)));
        assert!(m.alive().is_empty());
        assert!(matches!(m.introduced(info("x", "other"), t0), Err(Refusal::OtherGroup { .. })));
    }

    #[test]
    fn the_view_is_bounded() {
        let mut m = group();
        let t0 = Instant::now();
        for i in 0..MAX_PEERS {
            m.introduced(info(&format!("p{i}"), "g"), t0).unwrap();
        }
        assert_eq!(m.introduced(info("one-more", "g"), t0), Err(Refusal::Full));
        assert!(m.learned([info("gossiped", "g")], t0).is_empty());
        assert_eq!(m.heard(info("heard", "g"), t0, 0), Err(Refusal::Full));
        assert_eq!(m.members(0).len(), MAX_PEERS + 1);
    }

    #[test]
    fn dead_members_are_forgotten_by_hand_or_after_a_while() {
        let mut m = group();
        let t0 = Instant::now();
        m.heard(info("a", "g"), t0, 0).unwrap();
        m.heard(info("b", "g"), t0, 0).unwrap();
        assert_eq!(m.forget("n-a"), Err(ForgetError::Alive("n-a".into())));
        assert_eq!(m.forget("nobody"), Err(ForgetError::Unknown("nobody".into())));
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(m.tick(t1).died.len(), 2);
        assert_eq!(m.forget("n-a").unwrap().id, "a", "by name");
        assert_eq!(m.members(0).len(), 2);
        // b is forgotten by itself, FORGET_AFTER after it died.
        assert!(m.tick(t1 + FORGET_AFTER - Duration::from_secs(1)).forgotten.is_empty());
        assert_eq!(m.tick(t1 + FORGET_AFTER + Duration::from_secs(1)).forgotten.len(), 1);
        assert_eq!(m.members(0).len(), 1);
        // Two members of one name are told apart by id.
        let mut twin = info("c", "g");
        twin.name = "n-d".into();
        m.heard(twin, t1, 0).unwrap();
        m.heard(info("d", "g"), t1, 0).unwrap();
        m.tick(t1 + Duration::from_secs(2));
        assert_eq!(m.forget("n-d"), Err(ForgetError::Ambiguous("n-d".into())));
        assert_eq!(m.forget("d").unwrap().id, "d");
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
