//! Membership: who is in the group, as this manager sees it.
//!
//! SWIM (Das, Gupta, Motivala 2002) as implemented by the `foca` crate:
//! every probe period a member pings one other member at random; one that
//! does not answer, directly or through [`INDIRECT_PROBES`] others asked to
//! ping it, is *suspected*, and declared dead unless it refutes the
//! suspicion (with a higher incarnation) within [`SUSPECT_TO_DOWN`]. News
//! (joins, suspicions, deaths) rides on the probes' datagrams. Each member
//! sends a few datagrams a second whatever the group's size, where a full
//! mesh of heartbeats costs every member a stream per peer (ARCHITECTURE.md,
//! Decisions, has the numbers).
//!
//! What SWIM says of a member is mapped onto the view users see: active
//! (alive or suspected) is `alive`, declared down is `dead`; a dead member
//! is forgotten after [`FORGET_AFTER`], or by `mgrctl forget`. A member's
//! SWIM identity ([`SwimId`]) carries what peers need to know of it (its
//! id, name, address, version, what it allows), so a member heard of is
//! fully described without another round trip; only the number of its
//! instances is asked of it (by `members`).
//!
//! A state machine: datagrams (already opened, see `swim_wire`) and timers
//! come in, datagrams to send, timers to set and changes of the view come
//! out as [`Effects`]; `control::group` does the I/O. Time comes in as an
//! argument, so the tests run groups of members in memory.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foca::{
    AccumulatingRuntime, Config, Foca, Identity, Incarnation, Member, OwnedNotification, PeriodicParams, PostcardCodec,
    State, Timer,
};
use rand_010::SeedableRng;
use rand_010::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use crate::names::{self, Kind};

/// How long a dead member stays in the view: long enough to see what was
/// lost with it over a lab session, short enough that a semester of
/// machines coming and going does not pile up.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Most peers one view holds; members beyond it are not listed (a lab is
/// tens of machines, a course a few hundred).
pub const MAX_PEERS: usize = 1024;

/// How often a member probes another. With [`PROBE_RTT`] and
/// [`SUSPECT_TO_DOWN`] it sets how soon a crash is known: some member
/// probes the victim within a period or two (each member goes through the
/// others in a shuffled order, so with N members one of them probes a given
/// member in a given period with probability 1 − 1/e), suspects it at the
/// end of that period, and declares it dead [`SUSPECT_TO_DOWN`] later;
/// gossip tells the others within a few hundred ms: about 2 s in all.
pub const PROBE_PERIOD: Duration = Duration::from_millis(300);
/// How long a direct probe waits for its ack before asking others (a
/// LAN's round trip is well under a millisecond; this is the time a busy
/// machine may take to schedule the manager).
pub const PROBE_RTT: Duration = Duration::from_millis(150);
/// Members asked to probe one that did not answer.
pub const INDIRECT_PROBES: usize = 3;
/// How long a suspected member has to refute the suspicion: the news of it
/// must reach the suspect, and the refutation everyone who heard it.
pub const SUSPECT_TO_DOWN: Duration = Duration::from_millis(1000);
/// How many times each member passes on a piece of news it learnt. foca
/// sizes it 4·log₁₀(N + 1), 9 for 256 members; when half of the group
/// fails at once, 128 pieces of news compete for room in the same
/// datagrams, and with 9 a member now and then heard none of the news of
/// one failed member (it kept it alive until its own probe round reached
/// it, up to N probe periods). 15 made that vanish in the 128-member
/// partition test; it costs only while there is news.
const MAX_TRANSMISSIONS: u8 = 15;
/// How often each member looks for suspicions it learnt of that are due.
const SUSPECTS_CHECKED_EVERY: Duration = Duration::from_millis(200);
/// Members the news is pushed to, every [`GOSSIP_EVERY`], besides the
/// news riding on probes: a join is known to all within a few rounds.
const GOSSIP_TO: usize = 3;
const GOSSIP_EVERY: Duration = Duration::from_millis(200);
/// A member asks one random member for a sample of the group (a bounded
/// pull) this often, which closes the gaps gossip leaves.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// A member knocks on members it believes dead this often: a healed
/// partition (or a member declared dead by mistake) comes back through it.
const ANNOUNCE_TO_DEAD_EVERY: Duration = Duration::from_secs(1);
/// Members a manager declared dead by the others announces itself to at
/// once, and every [`RECONNECT_EVERY`] until one answers.
const RECONNECT_TO: usize = 3;
pub const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// The group size the dissemination is tuned for (how many times a piece
/// of news is sent on): enough for a course's few hundred machines.
const SIZED_FOR: u32 = 256;

/// A manager as its peers describe it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerInfo {
    pub id: String,
    pub name: String,
    /// The gRPC address (ip:port) peers and remote CLIs use; the membership
    /// protocol's datagrams go to the same ip and port, over UDP.
    pub address: String,
    pub group: String,
    pub version: u32,
    pub allow_exec: bool,
    /// It can limit an instance's memory, cpus and processes.
    pub limits: bool,
    /// The IP its instances get.
    pub advertise: String,
    /// Live instances (of this manager only; peers are asked by `members`).
    pub instances: u32,
    /// Start time (Unix ms) of this run of the manager; a member declared
    /// dead by mistake comes back with it one higher.
    pub incarnation: u64,
}

/// How a member is identified in the membership protocol: what its peers
/// need to know of it, fixed for one run of the manager. Two identities of
/// one member id are two runs (or renewals) of it: the higher `boot` wins.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SwimId {
    id: String,
    name: String,
    address: SocketAddr,
    advertise: IpAddr,
    version: u32,
    allow_exec: bool,
    limits: bool,
    boot: u64,
}

impl Identity for SwimId {
    type Addr = String;

    /// A member declared dead while alive (a partition, a starved CPU)
    /// comes back as itself with a higher boot, which wins over the dead
    /// identity everywhere.
    fn renew(&self) -> Option<Self> {
        Some(SwimId { boot: self.boot + 1, ..self.clone() })
    }

    fn addr(&self) -> String {
        self.id.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.boot > adversary.boot
    }
}

impl SwimId {
    fn from_info(info: &PeerInfo) -> SwimId {
        SwimId {
            id: info.id.clone(),
            name: info.name.clone(),
            address: info.address.parse().unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
            advertise: info.advertise.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            version: info.version,
            allow_exec: info.allow_exec,
            limits: info.limits,
            boot: info.incarnation,
        }
    }

    /// Member `id` at `address`: an announcement is read by the member of
    /// that id whatever its other fields, and the rest comes with its answer.
    fn at(id: &str, address: SocketAddr) -> SwimId {
        SwimId {
            id: id.to_owned(),
            name: String::new(),
            address,
            advertise: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            version: 0,
            allow_exec: false,
            limits: false,
            boot: 0,
        }
    }

    /// The peer it describes, in `group` (the key it was sealed with says
    /// so); `None` if a field is not valid (only a holder of the key could
    /// have sent it, but it is checked like any input).
    fn to_info(&self, group: &str) -> Option<PeerInfo> {
        names::check(Kind::MemberId, &self.id).ok()?;
        names::check(Kind::Member, &self.name).ok()?;
        if self.address.port() == 0 || self.address.ip().is_unspecified() {
            return None;
        }
        Some(PeerInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            address: self.address.to_string(),
            group: group.to_owned(),
            version: self.version,
            allow_exec: self.allow_exec,
            limits: self.limits,
            advertise: self.advertise.to_string(),
            instances: 0,
            incarnation: self.boot,
        })
    }
}

/// The protocol's settings (see the constants).
fn config() -> Config {
    let mut config = Config::new_lan(NonZeroU32::new(SIZED_FOR).expect("not zero"));
    config.probe_period = PROBE_PERIOD;
    config.probe_rtt = PROBE_RTT;
    config.num_indirect_probes = NonZeroUsize::new(INDIRECT_PROBES).expect("not zero");
    config.suspect_to_down_after = SUSPECT_TO_DOWN;
    config.max_packet_size = NonZeroUsize::new(crate::swim_wire::MAX_MESSAGE).expect("not zero");
    config.max_transmissions = std::num::NonZeroU8::new(MAX_TRANSMISSIONS).expect("not zero");
    let every = |frequency, num_members| {
        Some(PeriodicParams { frequency, num_members: NonZeroUsize::new(num_members).expect("not zero") })
    };
    config.periodic_gossip = every(GOSSIP_EVERY, GOSSIP_TO);
    config.periodic_announce = every(ANNOUNCE_EVERY, 1);
    config.periodic_announce_to_down_members = every(ANNOUNCE_TO_DEAD_EVERY, 2);
    config.notify_down_members = true;
    config.remove_down_after = Some(FORGET_AFTER);
    config
}

/// How this manager sees a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Answering probes, or suspected and not yet declared dead.
    Alive,
    /// Declared dead: it did not answer probes, nor refute the suspicion.
    Dead,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
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

impl MemberView {
    /// Another manager, alive: one that calls can go to.
    pub fn is_live_peer(&self) -> bool {
        !self.me && self.state == Liveness::Alive
    }
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

/// A change of the view, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A member never seen before.
    Joined(PeerInfo),
    /// A dead member is back (a healed partition, or a mistake refuted).
    Back(PeerInfo),
    /// A member restarted: a new run of the manager with the same id.
    Restarted(PeerInfo),
    /// A member answers at another address.
    Moved(PeerInfo),
    /// A member was declared dead.
    Died(PeerInfo),
    /// A member that is not one: another version, or this manager's id.
    Refused(PeerInfo, Refusal),
    /// This manager was declared dead by the others (it was cut off or
    /// starved), and came back with a higher incarnation.
    Renewed,
}

/// What the I/O must do after a call.
#[derive(Debug, Default)]
pub struct Effects {
    /// Messages to seal and send, with where to.
    pub send: Vec<(SocketAddr, Bytes)>,
    /// Timers to hand back to [`Membership::timer`] after a delay.
    pub timers: Vec<(Duration, Timer<SwimId>)>,
    /// Changes of the view.
    pub changes: Vec<Change>,
    /// This manager just became a member (it started, or renewed): the
    /// I/O should ask one member for its whole view (see
    /// [`Membership::learn`]).
    pub pull: bool,
}

impl Effects {
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Peer {
    info: PeerInfo,
    state: Liveness,
    /// When it died, for [`FORGET_AFTER`].
    since: Instant,
    last_seen_ms: u64,
}

/// The membership view and the protocol behind it.
pub struct Membership {
    me: PeerInfo,
    foca: Foca<SwimId, PostcardCodec, SmallRng, foca::NoCustomBroadcast>,
    runtime: AccumulatingRuntime<SwimId>,
    peers: BTreeMap<String, Peer>,
    /// Whether the protocol counts this manager in the group (false from a
    /// renewal until a member answers it).
    connected: bool,
    /// Where the next reconnection attempt starts in the list of members.
    rotation: usize,
    /// Members this manager knows suspected, by id: under which identity
    /// and incarnation, and since when (see [`Membership::expire_suspicions`]).
    suspects: HashMap<String, (SwimId, Incarnation, Instant)>,
    /// When the suspects were last looked at.
    suspects_checked: Option<Instant>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").field("me", &self.me.id).field("peers", &self.peers.len()).finish()
    }
}

impl Membership {
    /// A group of one; `seed` seeds the protocol's choice of whom to probe.
    pub fn new(me: PeerInfo, seed: u64) -> Self {
        let foca = Foca::new(SwimId::from_info(&me), config(), SmallRng::seed_from_u64(seed), PostcardCodec);
        Membership {
            me,
            foca,
            runtime: AccumulatingRuntime::new(),
            peers: BTreeMap::new(),
            connected: false,
            rotation: seed as usize,
            suspects: HashMap::new(),
            suspects_checked: None,
        }
    }

    pub fn me(&self) -> &PeerInfo {
        &self.me
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

    /// Announces this manager to a known peer (it answered a hello): it
    /// answers with a sample of the group.
    pub fn announce(&mut self, peer: &PeerInfo, now: Instant, wall_ms: u64) -> Effects {
        let _ = self.foca.announce(SwimId::from_info(peer), &mut self.runtime);
        self.drain(now, wall_ms)
    }

    /// Announces this manager to member `id` at `address` (a hint of
    /// discovery): only a member of this group can open the datagram, and
    /// only that member reads it.
    pub fn announce_to(&mut self, id: &str, address: SocketAddr, now: Instant, wall_ms: u64) -> Effects {
        let _ = self.foca.announce(SwimId::at(id, address), &mut self.runtime);
        self.drain(now, wall_ms)
    }

    /// A message received (opened already).
    pub fn datagram(&mut self, message: &[u8], now: Instant, wall_ms: u64) -> Effects {
        if let Err(err) = self.foca.handle_data(message, &mut self.runtime) {
            tracing::debug!(%err, "a membership message was not handled");
        }
        self.drain(now, wall_ms)
    }

    /// A timer set by an earlier call is due.
    pub fn timer(&mut self, timer: Timer<SwimId>, now: Instant, wall_ms: u64) -> Effects {
        if let Err(err) = self.foca.handle_timer(timer, &mut self.runtime) {
            tracing::debug!(%err, "a membership timer was not handled");
        }
        if self.suspects_checked.is_none_or(|at| now.saturating_duration_since(at) >= SUSPECTS_CHECKED_EVERY) {
            self.suspects_checked = Some(now);
            self.expire_suspicions(now);
        }
        self.drain(now, wall_ms)
    }

    /// Declares dead every member this manager has known suspected, at the
    /// same incarnation, for [`SUSPECT_TO_DOWN`].
    ///
    /// foca starts that countdown only on the member whose probe failed;
    /// the others wait for its verdict to reach them. When many members
    /// fail at once (half of the group behind a partition), dozens of
    /// verdicts compete for room in the same datagrams, and a few members
    /// missed one and kept a member suspected (alive) until their own
    /// probe round reached it: 40 s at 128 members. SWIM with Lifeguard
    /// starts the countdown on every member that learns of the suspicion;
    /// this does the same. The suspected member had as long to refute as
    /// the one its prober gives it.
    fn expire_suspicions(&mut self, now: Instant) {
        let mut still = HashMap::new();
        let mut down = Vec::new();
        for member in self.foca.iter_members().filter(|m| m.state() == State::Suspect) {
            let id = member.id();
            let since = match self.suspects.remove(&id.id) {
                Some((known, incarnation, since)) if known == *id && incarnation == member.incarnation() => since,
                _ => now,
            };
            if now.saturating_duration_since(since) >= SUSPECT_TO_DOWN {
                down.push(Member::new(id.clone(), member.incarnation(), State::Down));
            } else {
                still.insert(id.id.clone(), (id.clone(), member.incarnation(), since));
            }
        }
        self.suspects = still;
        if !down.is_empty() {
            let _ = self.foca.apply_many(down.into_iter(), true, &mut self.runtime);
        }
    }

    /// Tells some members that this manager leaves (it stops): they list it
    /// dead at once, without waiting for a probe to fail.
    pub fn leave(&mut self, now: Instant, wall_ms: u64) -> Effects {
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.drain(now, wall_ms)
    }

    /// Whether this manager knows no live member: it should keep knocking
    /// on whom it was told to join.
    pub fn alone(&self) -> bool {
        self.foca.num_members() == 0
    }

    /// Whether the member with this id is known alive (or suspected).
    pub fn is_active(&self, id: &str) -> bool {
        self.foca.iter_members().any(|m| m.id().id == id)
    }

    /// A manager the group declared dead (see [`Change::Renewed`]) comes
    /// back with a new identity, which nobody knows yet: everything it sends
    /// is addressed to identities that may have been renewed too (after a
    /// partition heals, everyone renews at once), and only an announcement
    /// is read by a member whatever identity it was addressed to. So until
    /// a member answers, it announces itself to a few members it knew, dead
    /// or alive, every [`RECONNECT_EVERY`].
    pub fn reconnect(&mut self, now: Instant, wall_ms: u64) -> Effects {
        if !self.connected {
            let known: Vec<SwimId> = self.foca.iter_membership_state().map(|m| m.id().clone()).collect();
            if !known.is_empty() {
                for k in 0..RECONNECT_TO.min(known.len()) {
                    let to = known[(self.rotation + k) % known.len()].clone();
                    let _ = self.foca.announce(to, &mut self.runtime);
                }
                self.rotation = self.rotation.wrapping_add(RECONNECT_TO);
            }
        }
        self.drain(now, wall_ms)
    }

    /// Takes in the live members of another member's view (the answer to
    /// a pull), as if gossip had brought them: the bounded push-pull of
    /// SWIM implementations. A newcomer learns of the group from the
    /// announcement's answer (a packet of members), from gossip (news
    /// only) and from the members that probe it, which at 128 members took
    /// it 30 s; with the pull, one round trip. Entries that are not valid
    /// members, or this manager, are skipped; at most [`MAX_PEERS`].
    pub fn learn(&mut self, members: Vec<PeerInfo>, now: Instant, wall_ms: u64) -> Effects {
        let learnt = members
            .into_iter()
            .take(MAX_PEERS)
            .filter(|info| self.admits(info).is_ok())
            .map(|info| SwimId::from_info(&info))
            .filter(|id| id.to_info(&self.me.group).is_some())
            // Incarnation 0: whatever this manager already knows of the
            // member wins, and the member refutes any suspicion anyway.
            .map(|id| Member::new(id, 0, State::Alive))
            .collect::<Vec<_>>();
        let _ = self.foca.apply_many(learnt.into_iter(), false, &mut self.runtime);
        self.drain(now, wall_ms)
    }

    /// Forgets every member dead for [`FORGET_AFTER`]; returns them.
    pub fn tick(&mut self, now: Instant) -> Vec<PeerInfo> {
        let mut forgotten = Vec::new();
        self.peers.retain(|_, peer| {
            let keep = peer.state == Liveness::Alive || now.saturating_duration_since(peer.since) <= FORGET_AFTER;
            if !keep {
                forgotten.push(peer.info.clone());
            }
            keep
        });
        forgotten
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

    /// The live peers.
    pub fn alive(&self) -> Vec<PeerInfo> {
        self.peers.values().filter(|p| p.state == Liveness::Alive).map(|p| p.info.clone()).collect()
    }

    /// Whether this manager has the smallest id of the live members it
    /// knows (the group's scout for discovery; the view of each member
    /// may differ for a while, and then two scout).
    pub fn is_scout(&self) -> bool {
        self.peers.values().filter(|p| p.state == Liveness::Alive).all(|p| p.info.id > self.me.id)
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

    /// Takes what the protocol asked for, and applies its notifications to
    /// the view.
    fn drain(&mut self, now: Instant, wall_ms: u64) -> Effects {
        let mut effects = Effects::default();
        let mut renewed = false;
        while let Some((to, message)) = self.runtime.to_send() {
            effects.send.push((to.address, message));
        }
        while let Some(timer) = self.runtime.to_schedule() {
            effects.timers.push(timer);
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => self.up(&id, now, wall_ms, &mut effects.changes),
                OwnedNotification::Rename(_, id) => self.up(&id, now, wall_ms, &mut effects.changes),
                OwnedNotification::MemberDown(id) => {
                    if let Some(peer) = self.peers.get_mut(&id.id)
                        && peer.info.incarnation == id.boot
                        && peer.state == Liveness::Alive
                    {
                        peer.state = Liveness::Dead;
                        peer.since = now;
                        effects.changes.push(Change::Died(peer.info.clone()));
                    }
                }
                OwnedNotification::Rejoin(_) => {
                    self.connected = false;
                    renewed = true;
                    effects.changes.push(Change::Renewed);
                }
                OwnedNotification::Active => {
                    effects.pull |= !self.connected;
                    self.connected = true;
                }
                OwnedNotification::Idle => self.connected = false,
                OwnedNotification::DataReceived(header) => {
                    if let Some(peer) = self.peers.get_mut(&header.src.id)
                        && peer.state == Liveness::Alive
                    {
                        peer.last_seen_ms = wall_ms;
                    }
                }
                _ => {}
            }
        }
        if renewed {
            let more = self.reconnect(now, wall_ms);
            effects.send.extend(more.send);
            effects.pull |= more.pull;
            effects.timers.extend(more.timers);
            effects.changes.extend(more.changes);
        }
        effects
    }

    /// A member is up (or renamed: a new identity of it won).
    fn up(&mut self, id: &SwimId, now: Instant, wall_ms: u64, changes: &mut Vec<Change>) {
        let active = self.foca.iter_members().any(|m| m.id() == id);
        let Some(info) = id.to_info(&self.me.group) else {
            tracing::debug!(?id, "a member with a malformed identity: not listed");
            return;
        };
        if let Err(refusal) = self.admits(&info) {
            if !self.peers.contains_key(&info.id) && refusal != Refusal::SameId(info.id.clone()) {
                changes.push(Change::Refused(info, refusal));
            }
            return;
        }
        let change = match self.peers.get(&info.id) {
            None if self.peers.len() >= MAX_PEERS => {
                tracing::warn!(member = %info.name, "the view is full ({MAX_PEERS} members): not listed");
                return;
            }
            None => Change::Joined(info.clone()),
            Some(peer) if peer.info.address != info.address => Change::Moved(info.clone()),
            // A renewal is one higher; a new run of the manager starts at
            // its start time.
            Some(peer) if info.incarnation > peer.info.incarnation + 1000 => Change::Restarted(info.clone()),
            Some(peer) if peer.state == Liveness::Dead && active => Change::Back(info.clone()),
            Some(_) => {
                // Renamed but still dead, or a renewal of a live member.
                let peer = self.peers.get_mut(&info.id).expect("matched");
                peer.info = info;
                if active && peer.state == Liveness::Dead {
                    peer.state = Liveness::Alive;
                }
                return;
            }
        };
        let state = if active { Liveness::Alive } else { Liveness::Dead };
        self.peers.insert(info.id.clone(), Peer { info, state, since: now, last_seen_ms: wall_ms });
        changes.push(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(i: usize) -> PeerInfo {
        PeerInfo {
            id: format!("m{i:04}"),
            name: format!("n{i}"),
            address: format!("10.0.0.{}:6170", i + 1),
            group: "g".into(),
            version: 1,
            advertise: format!("10.0.0.{}", i + 1),
            incarnation: 1_000_000,
            ..Default::default()
        }
    }

    /// Members exchanging messages in memory, on one simulated clock; a
    /// message takes 1 ms, and `cut` pairs (either way) lose theirs.
    struct Net {
        t0: Instant,
        now: Duration,
        members: Vec<Membership>,
        down: Vec<bool>,
        cut: std::collections::HashSet<(usize, usize)>,
        queue: BTreeMap<(Duration, u64), Event>,
        seq: u64,
        changes: Vec<(usize, Change)>,
        /// Members that asked to pull a view, in order.
        pulls: Vec<usize>,
    }

    enum Event {
        Message(usize, Bytes),
        Timer(usize, Timer<SwimId>),
    }

    impl Net {
        fn new(n: usize) -> Net {
            let members = (0..n).map(|i| Membership::new(info(i), i as u64 + 1)).collect();
            Net {
                t0: Instant::now(),
                now: Duration::ZERO,
                members,
                down: vec![false; n],
                cut: Default::default(),
                queue: BTreeMap::new(),
                seq: 0,
                changes: Vec::new(),
                pulls: Vec::new(),
            }
        }

        fn index(&self, address: SocketAddr) -> Option<usize> {
            self.members.iter().position(|m| m.me.address == address.to_string())
        }

        fn apply(&mut self, from: usize, effects: Effects) {
            for (to, message) in effects.send {
                let Some(to) = self.index(to) else { continue };
                if self.cut.contains(&(from, to)) || self.cut.contains(&(to, from)) {
                    continue;
                }
                self.seq += 1;
                self.queue.insert((self.now + Duration::from_millis(1), self.seq), Event::Message(to, message));
            }
            for (after, timer) in effects.timers {
                self.seq += 1;
                self.queue.insert((self.now + after, self.seq), Event::Timer(from, timer));
            }
            self.changes.extend(effects.changes.into_iter().map(|c| (from, c)));
            if effects.pull {
                self.pulls.push(from);
            }
        }

        fn wall(&self) -> u64 {
            self.now.as_millis() as u64
        }

        /// Member `i` announces itself to member `j`.
        fn join(&mut self, i: usize, j: usize) {
            let peer = self.members[j].me.clone();
            let (now, wall) = (self.t0 + self.now, self.wall());
            let effects = self.members[i].announce(&peer, now, wall);
            self.apply(i, effects);
        }

        /// `n` members that joined the first and had 2 s to converge.
        fn joined(n: usize) -> Net {
            let mut net = Net::new(n);
            for i in 1..n {
                net.join(i, 0);
            }
            net.run_for(Duration::from_secs(2));
            net
        }

        fn run_for(&mut self, span: Duration) {
            let end = self.now + span;
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > end {
                    break;
                }
                let ((at, _), event) = entry.remove_entry();
                self.now = at;
                let (now, wall) = (self.t0 + self.now, self.wall());
                let (i, effects) = match event {
                    Event::Message(i, _) | Event::Timer(i, _) if self.down[i] => continue,
                    Event::Message(i, message) => (i, self.members[i].datagram(&message, now, wall)),
                    Event::Timer(i, timer) => (i, self.members[i].timer(timer, now, wall)),
                };
                self.apply(i, effects);
            }
            self.now = end;
        }

        fn alive_seen_by(&self, i: usize) -> Vec<String> {
            self.members[i].alive().into_iter().map(|p| p.name).collect()
        }

        fn all_see(&self, alive: usize) -> bool {
            (0..self.members.len()).filter(|i| !self.down[*i]).all(|i| self.members[i].alive().len() == alive)
        }
    }

    #[test]
    fn members_that_join_one_seed_all_see_each_other_within_a_second() {
        let mut net = Net::new(16);
        for i in 1..16 {
            net.join(i, 0);
        }
        net.run_for(Duration::from_millis(1000));
        assert!(net.all_see(15), "{:?}", (0..16).map(|i| net.alive_seen_by(i).len()).collect::<Vec<_>>());
        let described = &net.members[5].alive().into_iter().find(|p| p.id == "m0009").unwrap();
        assert_eq!(described, &PeerInfo { instances: 0, ..info(9) }, "the identity describes the member");
        assert!(net.changes.iter().all(|(_, c)| matches!(c, Change::Joined(_))));
    }

    #[test]
    fn a_member_announced_to_by_id_and_address_only_answers() {
        let mut net = Net::new(3);
        net.join(1, 0);
        net.run_for(Duration::from_secs(1));
        let to: SocketAddr = net.members[0].me.address.parse().unwrap();
        let (now, wall) = (net.t0 + net.now, net.wall());
        let effects = net.members[2].announce_to("m0000", to, now, wall);
        net.apply(2, effects);
        net.run_for(Duration::from_secs(1));
        assert!(net.all_see(2), "{:?}", (0..3).map(|i| net.alive_seen_by(i)).collect::<Vec<_>>());
    }

    #[test]
    fn a_chain_of_joins_converges_through_the_periodic_pull() {
        let mut net = Net::new(12);
        for i in 1..12 {
            net.join(i, i - 1);
        }
        net.run_for(Duration::from_secs(6));
        assert!(net.all_see(11), "{:?}", (0..12).map(|i| net.alive_seen_by(i).len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_crashed_member_is_dead_everywhere_within_3s_and_a_restart_is_alive_again() {
        let mut net = Net::joined(8);
        assert!(net.all_see(7));
        net.changes.clear();
        net.down[3] = true;
        net.run_for(Duration::from_secs(3));
        for i in (0..8).filter(|i| *i != 3) {
            let view = net.members[i].members(0);
            let state = view.iter().find(|v| v.info.id == "m0003").map(|v| v.state);
            assert_eq!(state, Some(Liveness::Dead), "seen by {i}");
            assert_eq!(net.members[i].alive().len(), 6);
        }
        let died = net.changes.iter().filter(|(_, c)| matches!(c, Change::Died(p) if p.id == "m0003")).count();
        assert_eq!(died, 7, "each other member logs the death once");
        assert!(!net.changes.iter().any(|(_, c)| matches!(c, Change::Died(p) if p.id != "m0003")), "no false death");

        // The manager starts again: same id, a later start time.
        let mut again = info(3);
        again.incarnation += 60_000;
        net.members[3] = Membership::new(again, 99);
        net.down[3] = false;
        net.changes.clear();
        net.join(3, 0);
        net.run_for(Duration::from_secs(2));
        assert!(net.all_see(7));
        let restarted = net.changes.iter().filter(|(_, c)| matches!(c, Change::Restarted(p) if p.id == "m0003"));
        assert_eq!(restarted.count(), 7);
        assert_eq!(net.members[0].alive().iter().find(|p| p.id == "m0003").unwrap().incarnation, 1_060_000);
    }

    #[test]
    fn a_partition_splits_the_group_in_two_and_heals_into_one() {
        let n = 10;
        let mut net = Net::joined(n);
        assert!(net.all_see(n - 1));
        for a in 0..5 {
            for b in 5..n {
                net.cut.insert((a, b));
            }
        }
        // Each side probes every member of the other within a round of
        // the shuffled probe order, then suspects and declares it dead.
        net.run_for(Duration::from_secs(7));
        assert!(net.all_see(4), "{:?}", (0..n).map(|i| net.alive_seen_by(i).len()).collect::<Vec<_>>());
        net.cut.clear();
        net.changes.clear();
        net.run_for(Duration::from_secs(4));
        assert!(net.all_see(n - 1), "{:?}", (0..n).map(|i| net.alive_seen_by(i).len()).collect::<Vec<_>>());
        assert!(net.changes.iter().any(|(_, c)| matches!(c, Change::Back(_))));
    }

    #[test]
    fn a_newcomer_asks_for_a_pull_and_knows_the_whole_group_from_it() {
        let n = 64;
        let mut net = Net::new(n + 1);
        for i in 1..n {
            net.join(i, 0);
        }
        net.run_for(Duration::from_secs(4));
        assert!((0..n).all(|i| net.members[i].alive().len() == n - 1), "the group of 64 converged");
        assert_eq!(net.pulls.len(), n, "each member asked once, when it became one");
        net.pulls.clear();

        net.join(n, 0);
        net.run_for(Duration::from_millis(50));
        assert_eq!(net.pulls, [n], "the newcomer asks for a pull once it is a member");
        let partial = net.members[n].alive().len();
        assert!(partial < n, "an announcement's answer is one packet of members: {partial}");
        let view = net.members[0].alive();
        let (now, wall) = (net.t0 + net.now, net.wall());
        let effects = net.members[n].learn(view, now, wall);
        net.apply(n, effects);
        assert_eq!(net.members[n].alive().len(), n, "the pull tells it of every member");
        net.run_for(Duration::from_secs(1));
        assert!(net.all_see(n), "and every member knows it");

        // What a pull answers is input: invalid members, this manager
        // itself and members of another version are not taken in.
        let mut bad = vec![info(n), PeerInfo { address: "nowhere".into(), ..info(200) }];
        bad.push(PeerInfo { version: 9, ..info(201) });
        let effects = net.members[n].learn(bad, now, wall);
        net.apply(n, effects);
        assert_eq!(net.members[n].alive().len(), n);
    }

    #[test]
    fn a_64_64_partition_is_two_groups_everywhere_within_seconds() {
        let n = 128;
        let mut net = Net::joined(n);
        net.run_for(Duration::from_secs(10));
        assert!(net.all_see(n - 1));
        for a in 0..n / 2 {
            for b in n / 2..n {
                net.cut.insert((a, b));
            }
        }
        // Every member must declare dead all 64 members of the other side,
        // not just those its own probes reached: before members started
        // their own countdown on a suspicion they heard of, a few of them
        // missed one verdict among 64 and kept a member alive for 40 s.
        net.run_for(Duration::from_secs(5));
        assert!(net.all_see(n / 2 - 1), "{:?}", (0..n).map(|i| net.alive_seen_by(i).len()).collect::<Vec<_>>());
        assert!(!net.changes.iter().any(|(_, c)| matches!(c, Change::Renewed)), "nobody was declared dead on its side");
    }

    #[test]
    fn another_version_and_my_own_id_are_never_members() {
        let mut net = Net::new(3);
        net.members[2].me.version = 2;
        net.members[2] = Membership::new(net.members[2].me.clone(), 3);
        net.join(1, 0);
        net.join(2, 0);
        net.run_for(Duration::from_secs(2));
        assert_eq!(net.alive_seen_by(0), ["n1"]);
        assert_eq!(net.alive_seen_by(1), ["n0"]);
        let refused = net.changes.iter().filter(|(_, c)| matches!(c, Change::Refused(_, Refusal::OtherVersion { .. })));
        assert!(refused.count() >= 1);
        let m = &net.members[0];
        let mut other_group = info(7);
        other_group.group = "other".into();
        assert!(matches!(m.admits(&other_group), Err(Refusal::OtherGroup { .. })));
        assert!(matches!(m.admits(&info(0)), Err(Refusal::SameId(_))));
    }

    #[test]
    fn a_member_that_leaves_is_dead_at_once_and_forgettable() {
        let mut net = Net::joined(4);
        let (now, wall) = (net.t0 + net.now, net.wall());
        let effects = net.members[2].leave(now, wall);
        net.apply(2, effects);
        net.down[2] = true;
        net.run_for(Duration::from_millis(300));
        let m = &mut net.members[0];
        assert_eq!(m.alive().len(), 2, "left: dead before any probe could fail");
        assert_eq!(m.forget("n1"), Err(ForgetError::Alive("n1".into())));
        assert_eq!(m.forget("nobody"), Err(ForgetError::Unknown("nobody".into())));
        assert_eq!(m.forget("n2").unwrap().id, "m0002", "by name");
        assert_eq!(m.members(0).len(), 3);
        // A dead member is forgotten by itself after FORGET_AFTER.
        let died_at = net.t0 + net.now;
        net.down[3] = true;
        net.run_for(Duration::from_secs(5));
        let m = &mut net.members[0];
        assert_eq!(m.alive().len(), 1, "3 is dead too");
        assert!(m.tick(died_at + FORGET_AFTER).is_empty());
        assert_eq!(m.tick(died_at + FORGET_AFTER + Duration::from_secs(10)).len(), 1);
        assert_eq!(m.members(0).len(), 2);
    }

    #[test]
    fn an_identity_with_malformed_fields_is_not_listed() {
        let mut bad = SwimId::from_info(&info(1));
        bad.name = "../etc".into();
        assert_eq!(bad.to_info("g"), None);
        let mut unaddressed = SwimId::from_info(&info(1));
        unaddressed.address = "0.0.0.0:6170".parse().unwrap();
        assert_eq!(unaddressed.to_info("g"), None);
        assert!(SwimId::from_info(&info(1)).to_info("g").is_some());
    }

    #[test]
    fn members_list_me_first_then_by_name() {
        let mut net = Net::new(3);
        net.members[2].me.name = "a-first".into();
        net.members[2] = Membership::new(net.members[2].me.clone(), 3);
        net.join(1, 0);
        net.join(2, 0);
        net.run_for(Duration::from_secs(1));
        let names: Vec<_> = net.members[0].members(0).into_iter().map(|v| v.info.name).collect();
        assert_eq!(names, ["n0", "a-first", "n1"]);
    }
}
