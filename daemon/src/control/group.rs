//! The group's I/O: handshakes, heartbeats and gossip with the other
//! managers over the `Peer` gRPC service, feeding the [`Membership`] state
//! machine, which it owns.
//!
//! Every member watches every other member it knows of: a `Watch` stream on
//! which the peer sends its view every [`HEARTBEAT`]. A view proves the
//! sender alive and names the members it sees alive, so a member that joins
//! any one member is known to all within a heartbeat, and two groups that
//! meet (by mDNS, `--join` or `mgrctl join`) become one. A peer not heard
//! from within [`FAILURE_TIMEOUT`] is dead; its watcher keeps knocking, so a
//! restarted manager or a healed partition merges back by itself.
//!
//! The task publishes each new view on a `watch` channel: readers (the
//! control handlers) never wait on it. It must not know about runs or
//! processes: those belong to the supervisor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mgr_proto::peer_client::PeerClient;
use mgr_proto::{HelloRequest, MemberInfo, WatchRequest};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::auth::{self, Tls};
use crate::discovery::Found;
use crate::membership::{Change, ForgetError, Introduced, Liveness, MemberView, Membership, PeerInfo, Refusal};

/// How often a member sends its view to each watcher.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// A peer not heard from for this long is dead. Six heartbeats: a busy
/// 2-core machine delays some, but a crash is still seen within 2 s.
pub const FAILURE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Pause between attempts to reach a peer that does not answer.
const RETRY: Duration = Duration::from_millis(300);

/// Longest wait for a connection and a handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The group as published to readers.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// This manager first, then the peers by name.
    pub members: Vec<MemberView>,
    /// A channel to each known peer, by id.
    channels: BTreeMap<String, Channel>,
}

impl GroupView {
    pub fn me(&self) -> &PeerInfo {
        &self.members[0].info
    }

    /// The live peers (not this manager) with a channel to each.
    pub fn alive_peers(&self) -> Vec<(PeerInfo, Channel)> {
        self.members
            .iter()
            .filter(|m| !m.me && m.state == Liveness::Alive)
            .filter_map(|m| self.channels.get(&m.info.id).map(|c| (m.info.clone(), c.clone())))
            .collect()
    }

    pub fn member(&self, id: &str) -> Option<&MemberView> {
        self.members.iter().find(|m| m.info.id == id)
    }

    pub fn channel(&self, id: &str) -> Option<Channel> {
        self.channels.get(id).cloned()
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
}

impl JoinError {
    /// Whether trying again later can help (it was not a refusal).
    fn transient(&self) -> bool {
        match self {
            JoinError::Connect(err) => err.is_transient(),
            JoinError::Timeout(_) | JoinError::Failed { .. } => true,
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
    /// A peer answered our hello, or sent its view on a watch.
    Heard { from: PeerInfo, members: Vec<PeerInfo>, reply: Option<oneshot::Sender<Result<(), Refusal>>> },
    /// Discovery saw a manager.
    Found(Found),
    /// A discovered manager refused us (another key, group or version).
    Refused(String),
    /// A user forgets a dead member.
    Forget(String, oneshot::Sender<Result<PeerInfo, ForgetError>>),
}

/// The handle to the group task. Cheap to clone.
#[derive(Clone)]
pub struct Group {
    tx: mpsc::Sender<Msg>,
    view: watch::Receiver<Arc<GroupView>>,
    tls: Option<Tls>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Group")
    }
}

impl Group {
    /// Starts the group task for `me`; it joins each of `join` (retrying
    /// until it answers) and every manager of its group that `found` reports.
    pub fn start(me: PeerInfo, tls: Option<Tls>, join: Vec<String>, found: Option<mpsc::Receiver<Found>>) -> Group {
        let membership = Membership::new(me, FAILURE_TIMEOUT);
        let view = GroupView { members: membership.members(now_ms()), channels: BTreeMap::new() };
        let (view_tx, view_rx) = watch::channel(Arc::new(view));
        let (tx, rx) = mpsc::channel(256);
        let group = Group { tx, view: view_rx, tls: tls.clone() };
        let task = Task {
            membership,
            watchers: BTreeMap::new(),
            view: view_tx,
            tls,
            handle: group.clone_weak(),
            next_try: BTreeMap::new(),
        };
        tokio::spawn(task.run(rx, found));
        for address in join {
            let group = group.clone();
            tokio::spawn(async move { group.join_until_answered(address).await });
        }
        group
    }

    /// A handle whose sender does not keep the task alive.
    fn clone_weak(&self) -> WeakGroup {
        WeakGroup { tx: self.tx.downgrade(), view: self.view.clone() }
    }

    /// The current view.
    pub fn view(&self) -> Arc<GroupView> {
        self.view.borrow().clone()
    }

    /// Changes of the view, for those who wait on a member's fate.
    pub fn subscribe(&self) -> watch::Receiver<Arc<GroupView>> {
        self.view.clone()
    }

    /// An inbound handshake: admits the peer or says why not.
    pub async fn hello(&self, from: PeerInfo) -> Result<(PeerInfo, Vec<PeerInfo>), Refusal> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Hello(from.clone(), reply)).await.is_err() {
            return Err(Refusal::Stopping);
        }
        rx.await.unwrap_or(Err(Refusal::Stopping))
    }

    /// Merges with the manager at `address` (ip:port).
    pub async fn join(&self, address: &str) -> Result<(), JoinError> {
        let tls = self.tls.as_ref().ok_or(JoinError::NoGroup)?;
        join(&self.tx, self.view().me().clone(), address, tls).await
    }

    /// Forgets a dead member (by id or name); returns it.
    pub async fn forget(&self, member: &str) -> Result<PeerInfo, ForgetError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Forget(member.to_owned(), reply)).await.is_err() {
            return Err(ForgetError::Unknown(member.to_owned()));
        }
        rx.await.unwrap_or_else(|_| Err(ForgetError::Unknown(member.to_owned())))
    }

    /// `--join`: tries until the manager answers, or refuses.
    async fn join_until_answered(&self, address: String) {
        let mut warned = false;
        loop {
            match self.join(&address).await {
                Ok(()) => {
                    tracing::info!(%address, "joined the group");
                    return;
                }
                Err(err) if err.transient() => {
                    if !warned {
                        tracing::info!(%address, %err, "cannot join yet; trying again until it answers");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => {
                    tracing::error!(%address, %err, "cannot join");
                    return;
                }
            }
        }
    }
}

/// A handle that does not keep the task alive (held by the task itself).
#[derive(Clone)]
struct WeakGroup {
    tx: mpsc::WeakSender<Msg>,
    view: watch::Receiver<Arc<GroupView>>,
}

async fn join(tx: &mpsc::Sender<Msg>, me: PeerInfo, address: &str, tls: &Tls) -> Result<(), JoinError> {
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
    let bad = |status: tonic::Status| JoinError::BadAnswer {
        address: address.to_owned(),
        message: status.message().to_owned(),
    };
    let from = super::peer::checked_info(answer.me).map_err(bad)?;
    let members = valid_infos(answer.members);
    let (reply, rx) = oneshot::channel();
    tx.send(Msg::Heard { from, members, reply: Some(reply) }).await.map_err(|_| JoinError::Stopped)?;
    rx.await
        .map_err(|_| JoinError::Stopped)?
        .map_err(|refusal| JoinError::NotAMember { address: address.to_owned(), refusal })
}

struct Watcher {
    address: String,
    /// Also used by the control handlers to reach the peer.
    channel: Channel,
    task: JoinHandle<()>,
}

struct Task {
    membership: Membership,
    watchers: BTreeMap<String, Watcher>,
    view: watch::Sender<Arc<GroupView>>,
    /// `None` for a manager without a key: it has no group.
    tls: Option<Tls>,
    handle: WeakGroup,
    /// When discovery may next make us try each id, so a flood of mDNS
    /// answers does not become a flood of handshakes, and a stranger on the
    /// network (another key) is tried, and logged, once a minute at most.
    next_try: BTreeMap<String, Instant>,
}

/// Pause before a discovered manager is tried again.
const TRY_AGAIN: Duration = Duration::from_secs(2);

/// Pause before a discovered manager that refused us is tried again.
const TRY_STRANGER_AGAIN: Duration = Duration::from_secs(60);

/// Discovered managers being tried (or paused after a try) at once.
const MAX_TRYING: usize = 1024;

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, mut found: Option<mpsc::Receiver<Found>>) {
        let mut tick = tokio::time::interval(HEARTBEAT / 2);
        loop {
            let changed = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                f = async { found.as_mut().expect("guarded").recv().await }, if found.is_some() => match f {
                    Some(f) => self.handle(Msg::Found(f)),
                    None => {
                        found = None;
                        false
                    }
                },
                _ = tick.tick() => {
                    let ticked = self.membership.tick(Instant::now());
                    for peer in &ticked.died {
                        tracing::warn!(member = %peer.name, id = %peer.id, address = %peer.address,
                            "member is dead: no heartbeat for {} ms", FAILURE_TIMEOUT.as_millis());
                    }
                    for peer in &ticked.dropped {
                        tracing::info!(member = %peer.name, id = %peer.id, address = %peer.address,
                            "never heard from a manager that was introduced: dropped");
                        self.unwatch(&peer.id);
                    }
                    for peer in &ticked.forgotten {
                        tracing::info!(member = %peer.name, id = %peer.id, "forgot a member dead for an hour");
                        self.unwatch(&peer.id);
                    }
                    ticked.changed()
                }
            };
            if changed {
                self.publish();
            }
        }
        for watcher in self.watchers.values() {
            watcher.task.abort();
        }
    }

    /// Handles one message; returns whether the view changed.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Hello(from, reply) => {
                // A hello proves only that the caller holds the key: it is a
                // member once this manager reaches it at its address and
                // hears from it there.
                let result = self.membership.introduced(from.clone(), Instant::now());
                match &result {
                    Ok(Introduced::Joining(peer) | Introduced::Known(peer)) => self.ensure_watcher(&peer.clone()),
                    Ok(Introduced::Probe(peer)) => self.probe(peer.clone()),
                    Err(refusal) => tracing::warn!(member = %from.name, address = %from.address, %refusal,
                        "refused a manager that asked to join"),
                }
                let me = self.membership.me().clone();
                let _ = reply.send(result.map(|_| (me, self.membership.alive())));
                true
            }
            Msg::Forget(member, reply) => {
                let result = self.membership.forget(&member);
                if let Ok(peer) = &result {
                    tracing::info!(member = %peer.name, id = %peer.id, "forgot a dead member (mgrctl forget)");
                    self.unwatch(&peer.id);
                }
                let changed = result.is_ok();
                let _ = reply.send(result);
                changed
            }
            Msg::Heard { from, members, reply } => {
                let result = self.heard(from, members);
                if let Some(reply) = reply {
                    let _ = reply.send(result.map(|_| ()));
                }
                true
            }
            Msg::Found(found) => {
                self.found(found);
                false
            }
            Msg::Refused(id) => {
                self.next_try.insert(id, Instant::now() + TRY_STRANGER_AGAIN);
                false
            }
        }
    }

    fn heard(&mut self, from: PeerInfo, members: Vec<PeerInfo>) -> Result<(), Refusal> {
        let change = self.membership.heard(from.clone(), Instant::now(), now_ms())?;
        match change {
            Change::Joined => {
                tracing::info!(member = %from.name, id = %from.id, address = %from.address, "member joined")
            }
            Change::Rejoined => {
                tracing::info!(member = %from.name, id = %from.id, address = %from.address, "member is back")
            }
            Change::Moved => {
                tracing::info!(member = %from.name, id = %from.id, address = %from.address, "member moved")
            }
            Change::Refreshed => {}
        }
        self.ensure_watcher(&from);
        for new in self.membership.learned(members, Instant::now()) {
            tracing::debug!(member = %new.name, address = %new.address, "learned of a member");
            self.ensure_watcher(&new);
        }
        Ok(())
    }

    fn found(&mut self, mut found: Found) {
        use crate::names::{Kind, check};
        // A manager has an address or two; more is someone else's list.
        found.addrs.truncate(4);
        // Anyone on the LAN can announce anything: a hint that is not a
        // valid description is not worth a connection.
        if check(Kind::MemberId, &found.id).is_err() || check(Kind::Group, &found.group).is_err() {
            tracing::debug!("an mDNS announcement with a malformed id or group: ignored");
            return;
        }
        let me = self.membership.me();
        if found.group != me.group || found.id == me.id {
            tracing::debug!(id = %found.id, group = %found.group, "discovered a manager of another group: ignored");
            return;
        }
        let known_alive = self.membership.peers().any(|(p, state)| p.id == found.id && state == Liveness::Alive);
        if known_alive {
            return;
        }
        let now = Instant::now();
        if self.next_try.get(&found.id).is_some_and(|t| now < *t) {
            return;
        }
        // The pauses of ids announced once and never again go; a flood of
        // announcements of new ids is not followed past the bound.
        self.next_try.retain(|_, t| now < *t);
        if self.next_try.len() >= MAX_TRYING {
            tracing::debug!(id = %found.id, "too many discovered managers being tried: ignored");
            return;
        }
        self.next_try.insert(found.id.clone(), now + TRY_AGAIN);
        let Some(tx) = self.handle.tx.upgrade() else { return };
        let Some(tls) = self.tls.clone() else { return };
        let me = me.clone();
        tokio::spawn(async move {
            for addr in found.addrs {
                let address = addr.to_string();
                match join(&tx, me.clone(), &address, &tls).await {
                    Ok(()) => return,
                    Err(err) if err.transient() => {
                        tracing::debug!(member = %found.name, %address, %err, "cannot reach a discovered manager yet")
                    }
                    Err(err) => {
                        tracing::warn!(member = %found.name, %address, %err,
                            "cannot join a discovered manager (trying again in a minute)");
                        let _ = tx.send(Msg::Refused(found.id.clone())).await;
                        return;
                    }
                }
            }
        });
    }

    /// Asks the address a hello gave for a member alive elsewhere: if it
    /// answers as that member, the member has moved there (restarted on
    /// another port) and is heard from there; otherwise nothing changes.
    fn probe(&self, peer: PeerInfo) {
        let (Some(tls), Some(tx)) = (self.tls.clone(), self.handle.tx.upgrade()) else { return };
        let me = self.membership.me().clone();
        tokio::spawn(async move {
            let heard = tokio::time::timeout(CONNECT_TIMEOUT, async {
                let channel = auth::connect(&peer.address, &tls).await.ok()?;
                let mut stream = PeerClient::new(channel)
                    .watch(WatchRequest { from: Some(info_to_proto(&me)) })
                    .await
                    .ok()?
                    .into_inner();
                let view = stream.message().await.ok()??;
                super::peer::checked_info(view.me)
                    .ok()
                    .filter(|from| from.id == peer.id && from.address == peer.address)
            })
            .await;
            match heard {
                Ok(Some(from)) => {
                    let _ = tx.send(Msg::Heard { from, members: Vec::new(), reply: None }).await;
                }
                _ => tracing::debug!(member = %peer.name, address = %peer.address,
                    "a hello named another address for an alive member, which does not answer as it: ignored"),
            }
        });
    }

    /// Stops watching a peer that left the view.
    fn unwatch(&mut self, id: &str) {
        if let Some(old) = self.watchers.remove(id) {
            old.task.abort();
        }
    }

    /// Watches `peer` at its current address (again, if it moved).
    fn ensure_watcher(&mut self, peer: &PeerInfo) {
        if self.watchers.get(&peer.id).is_some_and(|w| w.address == peer.address) {
            return;
        }
        self.unwatch(&peer.id);
        let Some(tls) = &self.tls else { return };
        let Ok(channel) = auth::lazy_channel(&peer.address, tls) else {
            tracing::warn!(member = %peer.name, address = %peer.address, "cannot watch a member with a bad address");
            return;
        };
        let task = tokio::spawn(watch_peer(self.handle.clone(), peer.clone(), channel.clone()));
        self.watchers.insert(peer.id.clone(), Watcher { address: peer.address.clone(), channel, task });
    }

    fn publish(&mut self) {
        let channels = self.watchers.iter().map(|(id, w)| (id.clone(), w.channel.clone())).collect();
        let view = GroupView { members: self.membership.members(now_ms()), channels };
        self.view.send_replace(Arc::new(view));
    }
}

/// Keeps a `Watch` stream open to `peer`, reporting every view it sends;
/// reconnects after a failure, forever (the task is aborted when the peer
/// moves or the manager stops).
async fn watch_peer(group: WeakGroup, peer: PeerInfo, channel: Channel) {
    let mut client = PeerClient::new(channel);
    let mut last_error = String::new();
    loop {
        let me = group.view.borrow().me().clone();
        let request = WatchRequest { from: Some(info_to_proto(&me)) };
        match tokio::time::timeout(CONNECT_TIMEOUT, client.watch(request)).await {
            Ok(Ok(stream)) => {
                last_error.clear();
                let mut stream = stream.into_inner();
                // A stream that goes quiet (a cut cable sends no reset) is
                // dropped and made again, so a healed link is used at once.
                while let Ok(Ok(Some(view))) = tokio::time::timeout(FAILURE_TIMEOUT * 2, stream.message()).await {
                    let Some(tx) = group.tx.upgrade() else { return };
                    // What the peer says of itself and of others is checked
                    // like any call's arguments; a view that is not valid
                    // proves nothing.
                    let from = match super::peer::checked_info(view.me) {
                        Ok(from) if from.id == peer.id => from,
                        _ => {
                            tracing::debug!(member = %peer.name, "a view not of the member watched: ignored");
                            continue;
                        }
                    };
                    let members = valid_infos(view.members);
                    if tx.send(Msg::Heard { from, members, reply: None }).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Err(status)) => {
                let message = status.message().to_owned();
                if message != last_error {
                    tracing::debug!(member = %peer.name, address = %peer.address, %message, "cannot watch member");
                    last_error = message;
                }
            }
            Err(_) => tracing::debug!(member = %peer.name, address = %peer.address, "watch timed out"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The gossiped members that are valid descriptions, the rest dropped.
fn valid_infos(infos: Vec<MemberInfo>) -> Vec<PeerInfo> {
    infos.into_iter().filter_map(|info| super::peer::checked_info(Some(info)).ok()).collect()
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
