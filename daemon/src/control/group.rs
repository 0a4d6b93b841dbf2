//! The group's I/O: the membership protocol's datagrams, its timers, the
//! join handshakes and discovery's hints, feeding the [`Membership`] state
//! machine, which it owns.
//!
//! Membership travels over UDP on the manager's own port (the TCP port of
//! its gRPC services), every datagram sealed with the group's membership key
//! (`swim_wire`); what does not open is dropped, counted, and never
//! answered. The control plane stays gRPC over mutual TLS: this task keeps
//! a channel to every live member for the control handlers, and publishes
//! each new view on a `watch` channel, so readers never wait on it.
//!
//! A manager joins by announcing itself to any one member: one named by
//! `--join` (an address or a DNS name, re-resolved every
//! [`RESOLVE_EVERY`]) or by `mgrctl join` first gets a gRPC hello, so a
//! wrong key or group is a clear error; one discovery found is announced to
//! directly, since only a holder of the key can answer.
//!
//! It must not know about runs or processes: those belong to the
//! supervisor.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foca::Timer;
use mgr_proto::peer_client::PeerClient;
use mgr_proto::{HelloRequest, MemberInfo};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::Channel;

use crate::auth::{self, Tls};
use crate::discovery::Found;
use crate::membership::{Change, Effects, ForgetError, Liveness, MemberView, Membership, PeerInfo, Refusal, SwimId};
use crate::swim_wire::{Dropped, MAX_DATAGRAM, Opener, Sealer};

/// Longest wait for a connection and a handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a `--join` target is resolved again (a DNS name may name
/// other machines by then) and joined again if none of its addresses is a
/// live member.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// Pause before a `--join` target that did not answer is tried again.
const RETRY_JOIN: Duration = Duration::from_secs(1);

/// Addresses of one `--join` name followed (a round-robin name or a
/// headless service may list many; any one member is enough).
const MAX_JOIN_ADDRESSES: usize = 16;

/// Pause before a discovered manager is announced to again; doubled at
/// every try that brings no answer (another key, or gone), up to
/// [`TRY_STRANGER_AGAIN`].
const TRY_AGAIN: Duration = Duration::from_secs(2);
const TRY_STRANGER_AGAIN: Duration = Duration::from_secs(60);

/// Discovered managers being tried (or paused after a try) at once.
const MAX_TRYING: usize = 1024;

/// Most log lines a minute about dropped datagrams.
const DROP_LOGS_PER_MINUTE: u32 = 5;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The group as published to readers.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// This manager first, then the peers by name.
    pub members: Vec<MemberView>,
    /// The channels to live peers made so far.
    channels: Channels,
}

/// Channels to peers, made when a call first needs one (a lazy channel
/// connects on its first call; even unconnected, each costs a task and its
/// buffers, 8 KiB a member: 1 MiB of a manager's memory at 128 members
/// that may never be called) and kept while the peer lives at that
/// address. A cache shared by the views and the group task, which drops
/// the entries of members no longer alive at each publication; the lock is
/// never held across an await.
#[derive(Clone, Default)]
struct Channels {
    tls: Option<Tls>,
    made: Arc<std::sync::Mutex<BTreeMap<String, (String, Channel)>>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Channels")
    }
}

impl Channels {
    /// The channel to `member`, made now if there is none to its address.
    fn to(&self, member: &PeerInfo) -> Option<Channel> {
        let tls = self.tls.as_ref()?;
        let mut made = self.made.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((address, channel)) = made.get(&member.id)
            && address == &member.address
        {
            return Some(channel.clone());
        }
        match auth::lazy_channel(&member.address, tls) {
            Ok(channel) => {
                made.insert(member.id.clone(), (member.address.clone(), channel.clone()));
                Some(channel)
            }
            Err(err) => {
                tracing::warn!(member = %member.name, address = %member.address, %err, "cannot reach a member");
                None
            }
        }
    }

    /// Keeps only the channels to these members, at these addresses.
    fn keep(&self, alive: &[MemberView]) {
        let mut made = self.made.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if made.is_empty() {
            return;
        }
        let alive: BTreeMap<&str, &str> =
            alive.iter().filter(|m| m.is_live_peer()).map(|m| (m.info.id.as_str(), m.info.address.as_str())).collect();
        made.retain(|id, (address, _)| alive.get(id.as_str()) == Some(&address.as_str()));
    }
}

impl GroupView {
    pub fn me(&self) -> &PeerInfo {
        &self.members[0].info
    }

    /// The live peers (not this manager) with a channel to each.
    pub fn alive_peers(&self) -> Vec<(PeerInfo, Channel)> {
        self.members
            .iter()
            .filter(|m| m.is_live_peer())
            .filter_map(|m| self.channels.to(&m.info).map(|c| (m.info.clone(), c)))
            .collect()
    }

    /// Whether any peer is alive.
    pub fn has_alive_peers(&self) -> bool {
        self.members.iter().any(MemberView::is_live_peer)
    }

    pub fn member(&self, id: &str) -> Option<&MemberView> {
        self.members.iter().find(|m| m.info.id == id)
    }

    /// A channel to the live peer `id`.
    pub fn channel(&self, id: &str) -> Option<Channel> {
        let member = self.member(id).filter(|m| m.is_live_peer())?;
        self.channels.to(&member.info)
    }
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{0}")]
    Connect(#[from] auth::AuthError),
    #[error("the manager at {address} refused to join: {message}")]
    Refused { address: String, message: String },
    #[error("cannot join the manager at {address}: {refusal}")]
    NotAMember { address: String, refusal: Refusal },
    #[error("no answer from the manager at {0} in time")]
    Timeout(String),
    #[error("cannot join the manager at {address}: {message}")]
    Failed { address: String, message: String },
    #[error("the manager has stopped")]
    Stopped,
    #[error(
        "this manager has no group key, so it cannot be part of a group: start it with --key-file (see `mgr keygen`)"
    )]
    NoGroup,
    #[error("the manager at {address} answered with a member description that is not valid: {message}")]
    BadAnswer { address: String, message: String },
    #[error("cannot resolve '{name}': {reason}")]
    Resolve { name: String, reason: String },
}

impl JoinError {
    /// Whether trying again later can help (it was not a refusal).
    fn transient(&self) -> bool {
        match self {
            JoinError::Connect(err) => err.is_transient(),
            JoinError::Timeout(_) | JoinError::Failed { .. } | JoinError::Resolve { .. } => true,
            JoinError::Refused { .. }
            | JoinError::NotAMember { .. }
            | JoinError::Stopped
            | JoinError::NoGroup
            | JoinError::BadAnswer { .. } => false,
        }
    }
}

enum Msg {
    /// A peer said hello (inbound handshake).
    Hello(PeerInfo, oneshot::Sender<Result<(PeerInfo, Vec<PeerInfo>), Refusal>>),
    /// A peer answered our hello: announce this manager to it.
    Answered(PeerInfo, oneshot::Sender<Result<(), Refusal>>),
    /// A user forgets a dead member.
    Forget(String, oneshot::Sender<Result<PeerInfo, ForgetError>>),
    /// The manager stops: tell the group.
    Leave(oneshot::Sender<()>),
    /// The answer to a pull: the live members of another member's view
    /// (`None` if it failed).
    Pulled(Option<Vec<PeerInfo>>),
}

/// The handle to the group task. Cheap to clone.
#[derive(Clone)]
pub struct Group {
    tx: mpsc::Sender<Msg>,
    view: watch::Receiver<Arc<GroupView>>,
    tls: Option<Tls>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Group")
    }
}

impl Group {
    /// Starts the group task for `me`, speaking the membership protocol on
    /// `udp` (none for a manager without a key: a group of one). It joins
    /// each of `join` (retrying until it answers) and announces itself to
    /// every manager of its group that `found` reports.
    pub fn start(
        me: PeerInfo,
        tls: Option<Tls>,
        udp: Option<UdpSocket>,
        join: Vec<String>,
        found: Option<mpsc::Receiver<Found>>,
        browsing: Option<watch::Sender<bool>>,
    ) -> Group {
        let seed = rand::random();
        let membership = Membership::new(me, seed);
        let channels = Channels { tls: tls.clone(), made: Default::default() };
        let view = GroupView { members: membership.members(now_ms()), channels: channels.clone() };
        let (view_tx, view_rx) = watch::channel(Arc::new(view));
        let (tx, rx) = mpsc::channel(256);
        let dropped = Arc::new(AtomicU64::new(0));
        let group = Group { tx: tx.clone(), view: view_rx, tls: tls.clone(), dropped: dropped.clone() };
        let wire = match (&tls, udp) {
            (Some(tls), Some(socket)) => {
                let key = tls.membership_key(&membership.me().group);
                Some(Wire {
                    socket,
                    sealer: Sealer::new(&key, rand::random()),
                    opener: Opener::new(&key),
                    dropped,
                    logged: (Instant::now(), 0),
                })
            }
            _ => None,
        };
        let task = Task {
            me: tx.downgrade(),
            pulling: false,
            membership,
            view: view_tx,
            wire,
            timers: BTreeMap::new(),
            seq: 0,
            channels,
            next_try: BTreeMap::new(),
            browsing,
            browse_until: Instant::now() + BROWSE_WINDOW,
            next_browse: Instant::now() + BROWSE_AGAIN,
        };
        tokio::spawn(task.run(rx, found));
        for target in join {
            let group = group.clone();
            tokio::spawn(async move { group.follow_join(target).await });
        }
        group
    }

    /// The current view.
    pub fn view(&self) -> Arc<GroupView> {
        self.view.borrow().clone()
    }

    /// Changes of the view, for those who wait on a member's fate.
    pub fn subscribe(&self) -> watch::Receiver<Arc<GroupView>> {
        self.view.clone()
    }

    /// Membership datagrams dropped since the start: not sealed with this
    /// group's key, or replayed.
    pub fn dropped_datagrams(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// An inbound handshake: admits the peer or says why not. It changes
    /// nothing: the caller announces itself over the membership protocol.
    pub async fn hello(&self, from: PeerInfo) -> Result<(PeerInfo, Vec<PeerInfo>), Refusal> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Hello(from.clone(), reply)).await.is_err() {
            return Err(Refusal::Stopping);
        }
        rx.await.unwrap_or(Err(Refusal::Stopping))
    }

    /// Merges with the manager at `address` (ip:port): a hello, then an
    /// announcement over the membership protocol.
    pub async fn join(&self, address: &str) -> Result<(), JoinError> {
        let tls = self.tls.as_ref().ok_or(JoinError::NoGroup)?;
        let (peer, _) = hello(self.view().me().clone(), address, tls).await?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Answered(peer, reply)).await.map_err(|_| JoinError::Stopped)?;
        rx.await
            .map_err(|_| JoinError::Stopped)?
            .map_err(|refusal| JoinError::NotAMember { address: address.to_owned(), refusal })
    }

    /// Forgets a dead member (by id or name); returns it.
    pub async fn forget(&self, member: &str) -> Result<PeerInfo, ForgetError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Forget(member.to_owned(), reply)).await.is_err() {
            return Err(ForgetError::Unknown(member.to_owned()));
        }
        rx.await.unwrap_or_else(|_| Err(ForgetError::Unknown(member.to_owned())))
    }

    /// Tells some members that this manager is leaving, so the group lists
    /// it dead at once rather than after failed probes.
    pub async fn leave(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Leave(reply)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }

    /// `--join TARGET` for as long as the manager runs: resolves it (an
    /// ip:port, or a host name and port that may name several machines),
    /// joins an address of it unless one is a live member already, tries
    /// again every second until one answers, and resolves it again every
    /// [`RESOLVE_EVERY`]. A refusal ends it (the log says why).
    async fn follow_join(&self, target: String) {
        let mut warned = false;
        loop {
            let pause = match self.join_target(&target).await {
                Ok(()) => {
                    warned = false;
                    RESOLVE_EVERY
                }
                Err(err) if err.transient() => {
                    if !warned {
                        tracing::info!(%target, %err, "cannot join yet; trying again until it answers");
                        warned = true;
                    }
                    RETRY_JOIN
                }
                Err(err) => {
                    tracing::error!(%target, %err, "cannot join");
                    return;
                }
            };
            tokio::time::sleep(pause).await;
            if self.tx.is_closed() {
                return;
            }
        }
    }

    async fn join_target(&self, target: &str) -> Result<(), JoinError> {
        let resolved = tokio::net::lookup_host(target)
            .await
            .map_err(|err| JoinError::Resolve { name: target.to_owned(), reason: err.to_string() })?;
        let addresses: Vec<SocketAddr> = resolved.take(MAX_JOIN_ADDRESSES).collect();
        let view = self.view();
        let me = view.me().address.clone();
        let live = |address: &SocketAddr| {
            let address = address.to_string();
            address == me || view.members.iter().any(|m| m.state == Liveness::Alive && m.info.address == address)
        };
        if addresses.iter().any(live) {
            return Ok(());
        }
        let mut last = JoinError::Resolve { name: target.to_owned(), reason: "no address".into() };
        for address in addresses {
            match self.join(&address.to_string()).await {
                Ok(()) => {
                    tracing::info!(%target, %address, "joined the group");
                    return Ok(());
                }
                Err(err) => last = err,
            }
        }
        Err(last)
    }
}

/// A hello to the manager at `address`: who it is, if it admits us, and the
/// members it sees alive (the valid ones, at most `MAX_PEERS`).
async fn hello(me: PeerInfo, address: &str, tls: &Tls) -> Result<(PeerInfo, Vec<PeerInfo>), JoinError> {
    let answer = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let channel = auth::connect(address, tls).await?;
        PeerClient::new(channel).hello(HelloRequest { from: Some(info_to_proto(&me)) }).await.map_err(|status| {
            match status.code() {
                tonic::Code::FailedPrecondition | tonic::Code::PermissionDenied => {
                    JoinError::Refused { address: address.to_owned(), message: status.message().to_owned() }
                }
                _ => JoinError::Failed { address: address.to_owned(), message: status.message().to_owned() },
            }
        })
    })
    .await
    .map_err(|_| JoinError::Timeout(address.to_owned()))??
    .into_inner();
    let peer = super::peer::checked_info(answer.me)
        .map_err(|status| JoinError::BadAnswer { address: address.to_owned(), message: status.message().to_owned() })?;
    let members = answer
        .members
        .into_iter()
        .take(crate::membership::MAX_PEERS)
        .filter_map(|m| super::peer::checked_info(Some(m)).ok())
        .collect();
    Ok((peer, members))
}

/// The membership protocol's socket and seals.
struct Wire {
    socket: UdpSocket,
    sealer: Sealer,
    opener: Opener,
    dropped: Arc<AtomicU64>,
    /// The start of the current minute of drop logs, and lines logged in it.
    logged: (Instant, u32),
}

impl Wire {
    fn drop_datagram(&mut self, from: SocketAddr, why: Dropped) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        if now.duration_since(self.logged.0) > Duration::from_secs(60) {
            self.logged = (now, 0);
        }
        if self.logged.1 < DROP_LOGS_PER_MINUTE {
            self.logged.1 += 1;
            tracing::warn!(%from, %why, total, "dropped a membership datagram (is another group or key on this network?)");
        }
    }
}

struct Task {
    /// The task's own inbox, for the answers of the calls it starts (weak:
    /// the task ends when the last handle goes).
    me: mpsc::WeakSender<Msg>,
    /// A pull is under way (one at a time).
    pulling: bool,
    membership: Membership,
    view: watch::Sender<Arc<GroupView>>,
    /// `None` for a manager without a key: it has no group.
    wire: Option<Wire>,
    /// The protocol's timers, by when they are due (and order of setting).
    timers: BTreeMap<(Instant, u64), Timer<SwimId>>,
    seq: u64,
    /// The channels made to live peers (see [`Channels`]), and the TLS
    /// settings every call to a member uses.
    channels: Channels,
    /// When discovery may next make us announce to each id, and the pause
    /// after that: a flood of mDNS answers does not become a flood of
    /// datagrams, and a stranger (another key) is knocked on ever more
    /// rarely.
    next_try: BTreeMap<String, (Instant, Duration)>,
    /// Discovery's browsing switch (see `Discovery::browsing`): on while
    /// this manager is alone; in a group, only the scout (the live member
    /// with the smallest id, as this manager sees it) browses, for
    /// [`BROWSE_WINDOW`] after it starts and every [`BROWSE_AGAIN`], so
    /// that two groups that formed apart still meet. Everyone else keeps
    /// it off: the membership protocol knows the group, newcomers find it
    /// by asking themselves, and every query is answered by every member
    /// and heard by all (at 128 managers, each browsing member costs the
    /// group more than the whole membership protocol).
    browsing: Option<watch::Sender<bool>>,
    browse_until: Instant,
    next_browse: Instant,
}

/// How long discovery browses after a start, and in each round later.
const BROWSE_WINDOW: Duration = Duration::from_secs(10);
/// How often the scout of a group browses again for a while.
const BROWSE_AGAIN: Duration = Duration::from_secs(300);

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, mut found: Option<mpsc::Receiver<Found>>) {
        let mut tick = tokio::time::interval(crate::membership::RECONNECT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let next_timer = self.timers.first_key_value().map(|((at, _), _)| *at);
            let changed = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg).await,
                    None => break,
                },
                f = async { found.as_mut().expect("guarded").recv().await }, if found.is_some() => match f {
                    Some(f) => self.found(f).await,
                    None => {
                        found = None;
                        false
                    }
                },
                received = async { self.wire.as_ref().expect("guarded").socket.recv_from(&mut buf).await },
                    if self.wire.is_some() => match received {
                    Ok((len, from)) => self.datagram(&mut buf[..len], from).await,
                    Err(err) => {
                        // An ICMP error of an earlier send (a member gone)
                        // surfaces here on some systems: not this socket's
                        // fault.
                        tracing::debug!(%err, "membership socket");
                        false
                    }
                },
                _ = async { tokio::time::sleep_until(next_timer.expect("guarded").into()).await }, if next_timer.is_some() => {
                    self.due_timers().await
                }
                _ = tick.tick() => {
                    for peer in self.membership.tick(Instant::now()) {
                        tracing::info!(member = %peer.name, id = %peer.id, "forgot a member dead for an hour");
                    }
                    let effects = self.membership.reconnect(Instant::now(), now_ms());
                    self.apply(effects).await;
                    self.switch_browsing();
                    // Also publishes when members were last heard from.
                    true
                }
            };
            if changed {
                self.publish();
            }
        }
    }

    /// Handles one message; returns whether the view changed.
    async fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Hello(from, reply) => {
                let result = self.membership.admits(&from);
                if let Err(refusal) = &result {
                    tracing::warn!(member = %from.name, address = %from.address, %refusal,
                        "refused a manager that asked to join");
                }
                let me = self.membership.me().clone();
                let _ = reply.send(result.map(|()| (me, self.membership.alive())));
                false
            }
            Msg::Answered(peer, reply) => {
                if let Err(refusal) = self.membership.admits(&peer) {
                    let _ = reply.send(Err(refusal));
                    return false;
                }
                let effects = self.membership.announce(&peer, Instant::now(), now_ms());
                let _ = reply.send(Ok(()));
                self.apply(effects).await
            }
            Msg::Forget(member, reply) => {
                let result = self.membership.forget(&member);
                if let Ok(peer) = &result {
                    tracing::info!(member = %peer.name, id = %peer.id, "forgot a dead member (mgrctl forget)");
                }
                let changed = result.is_ok();
                let _ = reply.send(result);
                changed
            }
            Msg::Leave(reply) => {
                let effects = self.membership.leave(Instant::now(), now_ms());
                let changed = self.apply(effects).await;
                let _ = reply.send(());
                changed
            }
            Msg::Pulled(members) => {
                self.pulling = false;
                let Some(members) = members else { return false };
                let effects = self.membership.learn(members, Instant::now(), now_ms());
                self.apply(effects).await
            }
        }
    }

    async fn datagram(&mut self, datagram: &mut [u8], from: SocketAddr) -> bool {
        let Some(wire) = &mut self.wire else { return false };
        let message = match wire.opener.open(datagram) {
            Ok(message) => message,
            Err(why) => {
                wire.drop_datagram(from, why);
                return false;
            }
        };
        let effects = self.membership.datagram(message, Instant::now(), now_ms());
        self.apply(effects).await
    }

    async fn due_timers(&mut self) -> bool {
        let now = Instant::now();
        let mut changed = false;
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            let effects = self.membership.timer(timer, now, now_ms());
            changed |= self.apply(effects).await;
        }
        changed
    }

    /// Sends what the protocol asked to send, sets its timers, and logs the
    /// changes of the view; returns whether it changed.
    async fn apply(&mut self, effects: Effects) -> bool {
        if let Some(wire) = &mut self.wire {
            for (to, message) in &effects.send {
                let datagram = wire.sealer.seal(message);
                if let Err(err) = wire.socket.send_to(&datagram, to).await {
                    tracing::debug!(%to, %err, "cannot send a membership datagram");
                }
            }
        }
        let changed = effects.changed();
        if effects.pull {
            self.pull();
        }
        let now = Instant::now();
        for (after, timer) in effects.timers {
            self.seq += 1;
            self.timers.insert((now + after, self.seq), timer);
        }
        for change in &effects.changes {
            match change {
                Change::Joined(p) => {
                    tracing::info!(member = %p.name, id = %p.id, address = %p.address, "member joined")
                }
                Change::Back(p) => tracing::info!(member = %p.name, id = %p.id, address = %p.address, "member is back"),
                Change::Restarted(p) => {
                    tracing::info!(member = %p.name, id = %p.id, address = %p.address, "member restarted")
                }
                Change::Moved(p) => tracing::info!(member = %p.name, id = %p.id, address = %p.address, "member moved"),
                Change::Died(p) => tracing::warn!(member = %p.name, id = %p.id, address = %p.address,
                    "member is dead: it answers no probe"),
                Change::Refused(p, refusal) => tracing::warn!(member = %p.name, address = %p.address, %refusal,
                    "a manager that cannot be a member"),
                Change::Renewed => tracing::warn!(
                    "the group declared this manager dead (cut off, or too slow to answer); it is back with a new incarnation"
                ),
            }
        }
        changed
    }

    /// Discovery saw a manager: announce to it, unless it is known alive,
    /// or was tried a moment ago.
    async fn found(&mut self, mut found: Found) -> bool {
        use crate::names::{Kind, check};
        if self.wire.is_none() {
            return false;
        }
        // A manager has an address or two; more is someone else's list.
        found.addrs.truncate(4);
        // Anyone on the LAN can announce anything: a hint that is not a
        // valid description is not worth a datagram.
        if check(Kind::MemberId, &found.id).is_err() || check(Kind::Group, &found.group).is_err() {
            tracing::debug!("an mDNS announcement with a malformed id or group: ignored");
            return false;
        }
        let me = self.membership.me();
        if found.group != me.group || found.id == me.id || found.version != me.version {
            tracing::debug!(id = %found.id, group = %found.group, "discovered a manager of another group or version: ignored");
            return false;
        }
        if self.membership.is_active(&found.id) {
            self.next_try.remove(&found.id);
            return false;
        }
        let now = Instant::now();
        let pause = match self.next_try.get(&found.id) {
            Some((at, _)) if now < *at => return false,
            Some((_, pause)) => (*pause * 2).min(TRY_STRANGER_AGAIN),
            None => TRY_AGAIN,
        };
        // The pauses of ids announced once and never again go; a flood of
        // announcements of new ids is not followed past the bound.
        self.next_try.retain(|_, (at, pause)| now < *at + *pause * 2);
        if self.next_try.len() >= MAX_TRYING {
            tracing::debug!(id = %found.id, "too many discovered managers being tried: ignored");
            return false;
        }
        self.next_try.insert(found.id.clone(), (now + pause, pause));
        tracing::debug!(member = %found.name, addrs = ?found.addrs, "announcing this manager to a discovered one");
        let mut changed = false;
        for address in found.addrs {
            let effects = self.membership.announce_to(&found.id, address, now, now_ms());
            changed |= self.apply(effects).await;
        }
        changed
    }

    /// Asks one live member, chosen at random, for its whole view, over a
    /// gRPC hello (see [`Membership::learn`]); the answer comes back as
    /// [`Msg::Pulled`].
    fn pull(&mut self) {
        let (Some(tls), Some(inbox)) = (self.channels.tls.clone(), self.me.upgrade()) else { return };
        let alive = self.membership.alive();
        if self.pulling || alive.is_empty() {
            return;
        }
        self.pulling = true;
        let from = alive[(rand::random::<u64>() % alive.len() as u64) as usize].clone();
        let me = self.membership.me().clone();
        tokio::spawn(async move {
            let members = match hello(me, &from.address, &tls).await {
                Ok((_, members)) => Some(members),
                Err(err) => {
                    tracing::debug!(member = %from.name, %err, "cannot pull the view of a member");
                    None
                }
            };
            let _ = inbox.send(Msg::Pulled(members)).await;
        });
    }

    fn switch_browsing(&mut self) {
        let Some(switch) = &self.browsing else { return };
        let now = Instant::now();
        if now >= self.next_browse {
            // A little spread, so a group that started together does not
            // browse together.
            let jitter = Duration::from_millis(rand::random::<u64>() % 30_000);
            self.browse_until = now + BROWSE_WINDOW;
            self.next_browse = now + BROWSE_AGAIN + jitter;
        }
        let wanted = self.membership.alone() || (self.membership.is_scout() && now < self.browse_until);
        if *switch.borrow() != wanted {
            tracing::debug!(wanted, "mdns browsing");
            switch.send_replace(wanted);
        }
    }

    fn publish(&mut self) {
        let members = self.membership.members(now_ms());
        // No channel outlives its member's life at its address.
        self.channels.keep(&members);
        self.view.send_replace(Arc::new(GroupView { members, channels: self.channels.clone() }));
    }
}

pub(super) fn info_to_proto(info: &PeerInfo) -> MemberInfo {
    MemberInfo {
        id: info.id.clone(),
        name: info.name.clone(),
        address: info.address.clone(),
        group: info.group.clone(),
        version: info.version,
        allow_exec: info.allow_exec,
        limits: info.limits,
        advertise: info.advertise.clone(),
        instances: info.instances,
        incarnation: info.incarnation,
    }
}

pub(super) fn info_from_proto(info: MemberInfo) -> PeerInfo {
    PeerInfo {
        id: info.id,
        name: info.name,
        address: info.address,
        group: info.group,
        version: info.version,
        allow_exec: info.allow_exec,
        limits: info.limits,
        advertise: info.advertise,
        instances: info.instances,
        incarnation: info.incarnation,
    }
}
