//! ChatNode: the group chat of the lab reports (issue 6 item 3).
//!
//! It owns the chat's whole protocol: the Ricart-Agrawala mutual exclusion
//! that a node holds while it multicasts a message ([`RicartAgrawala`], a
//! pure state machine), the IP multicast sockets of the chat group, the
//! artificial receive delay, the message history with its local replica
//! files and checkpoint ([`History`], [`Checkpoint`]), and the `sync`
//! reconciliation with the peers.
//!
//! It must not touch files other than its own (`MGR_DIR/<MGR_SELF>.*`: the
//! run folder is shared by the run's instances), and it must not send to
//! anything but its peers (the instances of its own role, or of its run
//! when it has no roles) and the chat group, on the interface of `MGR_ADDR`
//! (a run on loopback stays on loopback; on a host of its own, the group
//! goes out and is joined on the interface that carries `MGR_ADDR`).
#![doc = ""]
#![doc = include_str!("chat.md")]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::catalog::ModuleInfo;
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Stamp, Timer, say};

/// The catalog entry.
pub const INFO: ModuleInfo = ModuleInfo {
    name: "ChatNode",
    summary: "group chat over IP multicast, with Ricart-Agrawala mutual exclusion, local replicas and checkpoints",
    reference: "Lab: group chat",
    description: include_str!("chat.md"),
    algorithms: &["Ricart-Agrawala"],
    run,
};

/// The commands on stdin; any other line is a chat message.
pub const HELP: &str = "  <text>           any other line: send it to the group (under the mutex)
  verbose [on|off] show (or hide) the mutual exclusion and replica messages
  peers            list the run's processes and the chat group
  history          list the messages this node holds
  sync             reconcile the history with every peer
  quit             save a checkpoint and exit
  help             this list";

/// The frames' first word, so that stray datagrams are told apart.
const TAG: &str = "chat";
/// How often the multicast socket is drained. The runtime's event loop
/// listens on the module's own socket only, so the group's socket is polled
/// on a timer; a few milliseconds are small next to the receive delay.
const POLL: Duration = Duration::from_millis(5);

const T_POLL: &str = "chat.poll";
const T_MUTEX: &str = "chat.mutex";
const T_CHECK: &str = "chat.check";
const T_CHECKPOINT: &str = "chat.checkpoint";

/// The module's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub group: SocketAddrV4,
    pub replicas: usize,
    pub delay: Duration,
    pub checkpoint: Duration,
    pub mutex_timeout: Duration,
    pub check: Duration,
}

/// The lab's group, for a node run without `--group` nor `MGR_MULTICAST`.
pub const DEFAULT_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(224, 1, 1, 1), 5007);

impl Default for Config {
    fn default() -> Config {
        Config {
            group: DEFAULT_GROUP,
            replicas: 3,
            delay: Duration::from_millis(50),
            checkpoint: Duration::from_secs(60),
            mutex_timeout: Duration::from_millis(3000),
            check: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Reads `--group ADDR:PORT --replicas N --delay-ms N --checkpoint-secs N
    /// --mutex-timeout-ms N --check-secs N` (each `--opt V` or `--opt=V`).
    /// Without `--group` the group is `run_group` (the run's `MGR_MULTICAST`),
    /// else [`DEFAULT_GROUP`].
    pub fn parse(args: &[String], run_group: Option<SocketAddrV4>) -> Result<Config, RunError> {
        let usage = |what: String| {
            RunError::Usage(format!(
                "{what} (usage: [--group ADDR:PORT] [--replicas N] [--delay-ms N] [--checkpoint-secs N] [--mutex-timeout-ms N] [--check-secs N])"
            ))
        };
        let mut config = Config { group: run_group.unwrap_or(DEFAULT_GROUP), ..Config::default() };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, value.to_owned()),
                None => (arg.as_str(), args.next().ok_or_else(|| usage(format!("{arg} needs a value")))?.clone()),
            };
            let number = |positive: bool| match value.parse::<u64>() {
                Ok(n) if n > 0 || !positive => Ok(n),
                _ => {
                    Err(usage(format!("{name}: '{value}' is not a {}number", if positive { "positive " } else { "" })))
                }
            };
            match name {
                "--group" => {
                    let group: SocketAddrV4 =
                        value.parse().map_err(|_| usage(format!("--group: '{value}' is not an IPv4 ADDR:PORT")))?;
                    if !group.ip().is_multicast() {
                        return Err(usage(format!("--group: {} is not a multicast address (224.0.0.0/4)", group.ip())));
                    }
                    config.group = group;
                }
                "--replicas" => config.replicas = usize::try_from(number(true)?).unwrap_or(usize::MAX),
                // A zero delay is allowed: it turns the artificial delay off.
                "--delay-ms" => config.delay = Duration::from_millis(number(false)?),
                "--checkpoint-secs" => config.checkpoint = Duration::from_secs(number(true)?),
                "--mutex-timeout-ms" => config.mutex_timeout = Duration::from_millis(number(true)?),
                "--check-secs" => config.check = Duration::from_secs(number(true)?),
                _ => return Err(usage(format!("unexpected argument '{arg}'"))),
            }
        }
        Ok(config)
    }
}

// ---------------------------------------------------------------------------
// Ricart-Agrawala

/// Where a process stands with the critical section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutexState {
    Released,
    /// Requested with sequence number `seq`; `waiting` are the peers whose
    /// reply has not come yet.
    Wanted {
        seq: u64,
        waiting: BTreeSet<String>,
    },
    Held {
        seq: u64,
    },
}

/// The Ricart-Agrawala algorithm for one process, without I/O: the caller
/// sends the REQ and REP messages the methods ask for.
///
/// A request carries a Lamport sequence number, one more than the highest
/// seen; requests are ordered by (sequence number, process name), and a
/// process defers its reply to a request that comes after its own (or
/// while it holds the section) until it releases.
#[derive(Debug, Clone)]
pub struct RicartAgrawala {
    me: String,
    pub state: MutexState,
    /// The highest sequence number seen in any request, ours included.
    pub highest_seq: u64,
    /// Peers whose request waits for our reply, with the request's
    /// sequence number (the reply names it), answered on release.
    pub deferred: BTreeMap<String, u64>,
}

impl RicartAgrawala {
    pub fn new(me: &str, highest_seq: u64) -> RicartAgrawala {
        RicartAgrawala { me: me.to_owned(), state: MutexState::Released, highest_seq, deferred: BTreeMap::new() }
    }

    /// Asks for the section: returns the request's sequence number, to send
    /// to every one of `others`. With no others the section is held at once.
    pub fn request(&mut self, others: &[String]) -> u64 {
        self.highest_seq += 1;
        let seq = self.highest_seq;
        let waiting: BTreeSet<String> = others.iter().filter(|p| **p != self.me).cloned().collect();
        self.state = if waiting.is_empty() { MutexState::Held { seq } } else { MutexState::Wanted { seq, waiting } };
        seq
    }

    /// A REQ from `from` with `seq`: true to reply now, false when the
    /// reply is deferred until [`RicartAgrawala::release`].
    pub fn on_request(&mut self, from: &str, seq: u64) -> bool {
        self.highest_seq = self.highest_seq.max(seq);
        let defer = match &self.state {
            MutexState::Released => false,
            MutexState::Held { .. } => true,
            // Our own request comes first when its (seq, name) is smaller.
            MutexState::Wanted { seq: mine, .. } => (*mine, self.me.as_str()) < (seq, from),
        };
        if defer {
            self.deferred.insert(from.to_owned(), seq);
        }
        !defer
    }

    /// A REP from `from` answering our request `seq`: true when it was the
    /// last reply missing and the section is now held. A reply to an older
    /// request (one given up on) is ignored.
    pub fn on_reply(&mut self, from: &str, seq: u64) -> bool {
        let MutexState::Wanted { seq: mine, waiting } = &mut self.state else { return false };
        if *mine != seq {
            return false;
        }
        waiting.remove(from);
        if waiting.is_empty() {
            self.state = MutexState::Held { seq };
            return true;
        }
        false
    }

    /// Leaves the section (or gives up a request): the peers to reply to
    /// now, each with the request the reply grants.
    pub fn release(&mut self) -> Vec<(String, u64)> {
        self.state = MutexState::Released;
        std::mem::take(&mut self.deferred).into_iter().collect()
    }

    /// The sequence number of the pending or held request, if any.
    pub fn current(&self) -> Option<u64> {
        match &self.state {
            MutexState::Released => None,
            MutexState::Wanted { seq, .. } | MutexState::Held { seq } => Some(*seq),
        }
    }
}

// ---------------------------------------------------------------------------
// History, replicas, checkpoint

/// One chat message: its sender, its number there, the sender's Lamport
/// clock when it sent it, and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub sender: String,
    pub id: u64,
    pub lamport: u64,
    pub text: String,
}

impl ChatMessage {
    fn key(&self) -> (String, u64) {
        (self.sender.clone(), self.id)
    }

    /// One line of a replica file (and the tail of a HAVE frame):
    /// `sender<TAB>id<TAB>lamport<TAB>text`. The text is last, so it may hold tabs.
    pub fn to_line(&self) -> String {
        format!("{}\t{}\t{}\t{}", self.sender, self.id, self.lamport, self.text.replace(['\n', '\r'], " "))
    }

    pub fn from_line(line: &str) -> Option<ChatMessage> {
        let mut parts = line.splitn(4, '\t');
        let sender = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let id = parts.next()?.parse().ok()?;
        let lamport = parts.next()?.parse().ok()?;
        let text = parts.next()?.to_owned();
        Some(ChatMessage { sender, id, lamport, text })
    }
}

/// The messages a node holds, in the order it got them, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub messages: Vec<ChatMessage>,
    keys: BTreeSet<(String, u64)>,
}

impl History {
    pub fn contains(&self, sender: &str, id: u64) -> bool {
        self.keys.contains(&(sender.to_owned(), id))
    }

    /// Adds `m` unless held already; true when it is new.
    pub fn add(&mut self, m: ChatMessage) -> bool {
        if !self.keys.insert(m.key()) {
            return false;
        }
        self.messages.push(m);
        true
    }

    /// Adds every message of `others` not held yet; returns how many.
    pub fn merge(&mut self, others: impl IntoIterator<Item = ChatMessage>) -> usize {
        others.into_iter().filter(|m| self.add(m.clone())).count()
    }

    /// Whether `replica` holds exactly this history's messages (in any order).
    pub fn matches(&self, replica: &[ChatMessage]) -> bool {
        let theirs: BTreeSet<(String, u64)> = replica.iter().map(ChatMessage::key).collect();
        theirs == self.keys && replica.len() == self.keys.len()
    }

    /// The next number for a message of `me`: past every one it sent.
    pub fn next_id(&self, me: &str) -> u64 {
        self.messages.iter().filter(|m| m.sender == me).map(|m| m.id).max().unwrap_or(0) + 1
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Reads a replica file; a missing file is an empty replica, and lines
/// that do not parse (a torn last line after a crash) are skipped.
pub fn read_replica(path: &Path) -> Vec<ChatMessage> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter_map(ChatMessage::from_line).collect())
        .unwrap_or_default()
}

/// Writes `messages` as the whole replica, through a temporary file so that
/// a crash leaves the old replica or the new one, never half of one.
pub fn write_replica(path: &Path, messages: &[ChatMessage]) -> std::io::Result<()> {
    let text: String = messages.iter().map(|m| m.to_line() + "\n").collect();
    write_atomically(path, text.as_bytes())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What a checkpoint saves: the history and the mutual exclusion's
/// sequence number, so that a restarted node neither loses messages nor
/// reuses numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub process: String,
    pub highest_seq: u64,
    pub next_id: u64,
    pub messages: Vec<ChatMessage>,
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomically(path, &json).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The checkpoint at `path`, `None` when there is none.
    pub fn load(path: &Path) -> anyhow::Result<Option<Checkpoint>> {
        match std::fs::read(path) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))?))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

// ---------------------------------------------------------------------------
// Frames

/// The datagrams of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Multicast to the group: `chat MSG run stamp sender<TAB>id<TAB>lamport<TAB>text`.
    Msg { run: String, stamp: Stamp, message: ChatMessage },
    /// `chat REQ seq stamp`: asks for the section.
    Req { seq: u64, stamp: Stamp },
    /// `chat REP seq stamp`: grants the request `seq`.
    Rep { seq: u64, stamp: Stamp },
    /// `chat SYNC`: asks a peer for every message it holds.
    Sync,
    /// `chat HAVE sender<TAB>id<TAB>lamport<TAB>text`: one message, for `sync`.
    Have(ChatMessage),
}

impl Frame {
    pub fn encode(&self) -> String {
        match self {
            Frame::Msg { run, stamp, message } => format!("{TAG} MSG {run} {} {}", stamp.encode(), message.to_line()),
            Frame::Req { seq, stamp } => format!("{TAG} REQ {seq} {}", stamp.encode()),
            Frame::Rep { seq, stamp } => format!("{TAG} REP {seq} {}", stamp.encode()),
            Frame::Sync => format!("{TAG} SYNC"),
            Frame::Have(message) => format!("{TAG} HAVE {}", message.to_line()),
        }
    }

    pub fn decode(payload: &[u8]) -> Option<Frame> {
        let text = std::str::from_utf8(payload).ok()?;
        let rest = text.strip_prefix(TAG)?.strip_prefix(' ')?;
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut words = rest.splitn(3, ' ');
        match kind {
            "MSG" => {
                let run = words.next()?.to_owned();
                let stamp = Stamp::decode(words.next()?)?;
                let message = ChatMessage::from_line(words.next()?)?;
                Some(Frame::Msg { run, stamp, message })
            }
            "REQ" | "REP" => {
                let seq = words.next()?.parse().ok()?;
                let stamp = Stamp::decode(words.next()?)?;
                Some(if kind == "REQ" { Frame::Req { seq, stamp } } else { Frame::Rep { seq, stamp } })
            }
            "SYNC" => Some(Frame::Sync),
            "HAVE" => Some(Frame::Have(ChatMessage::from_line(rest)?)),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Multicast sockets

/// The chat group's sockets: one bound to the group's port that receives,
/// one bound to `MGR_ADDR`'s address that sends on that address's interface.
#[derive(Debug)]
struct Group {
    addr: SocketAddrV4,
    rx: UdpSocket,
    tx: UdpSocket,
}

impl Group {
    fn join(group: SocketAddrV4, interface: Ipv4Addr) -> anyhow::Result<Group> {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let rx =
            Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).context("cannot create the group socket")?;
        // Every node of the run on this machine binds the same group port.
        rx.set_reuse_address(true).context("SO_REUSEADDR")?;
        // Binding the group address (not 0.0.0.0) keeps unicast traffic to
        // that port, and other groups on it, out of this socket.
        rx.bind(&SockAddr::from(group)).with_context(|| format!("cannot bind {group}"))?;
        rx.join_multicast_v4(group.ip(), &interface)
            .with_context(|| format!("cannot join {} on {interface}", group.ip()))?;
        rx.set_nonblocking(true)?;

        let tx = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).context("cannot create a socket")?;
        tx.bind(&SockAddr::from(SocketAddrV4::new(interface, 0)))
            .with_context(|| format!("cannot bind {interface}:0"))?;
        tx.set_multicast_loop_v4(true)?;
        tx.set_multicast_ttl_v4(1)?;
        // Multicast leaves by the interface of MGR_ADDR rather than by the
        // default route, so that a run on loopback stays on loopback.
        tx.set_multicast_if_v4(&interface).context("IP_MULTICAST_IF")?;
        Ok(Group { addr: group, rx: rx.into(), tx: tx.into() })
    }

    fn send(&self, payload: &[u8]) {
        if let Err(err) = self.tx.send_to(payload, self.addr) {
            eprintln!("chat: multicast to {}: {err}", self.addr);
        }
    }
}

// ---------------------------------------------------------------------------
// The module

/// The chat node.
#[derive(Debug)]
pub struct ChatNode {
    config: Config,
    dir: PathBuf,
    group: Option<Group>,
    ra: RicartAgrawala,
    history: History,
    next_id: u64,
    /// Lines typed but not sent yet: each waits for its own turn in the section.
    outbox: VecDeque<String>,
    /// Multicast messages received and held back by the artificial delay.
    inbox: Vec<(Instant, Stamp, ChatMessage)>,
    verbose: bool,
}

impl ChatNode {
    pub fn new(config: Config, dir: PathBuf) -> ChatNode {
        ChatNode {
            config,
            dir,
            group: None,
            ra: RicartAgrawala::new("", 0),
            history: History::default(),
            next_id: 1,
            outbox: VecDeque::new(),
            inbox: Vec::new(),
            verbose: false,
        }
    }

    fn replica_path(&self, me: &str, i: usize) -> PathBuf {
        self.dir.join(format!("{me}.replica{i}.log"))
    }

    fn checkpoint_path(&self, me: &str) -> PathBuf {
        self.dir.join(format!("{me}.checkpoint.json"))
    }

    fn log(&self, line: impl std::fmt::Display) {
        if self.verbose {
            say(line);
        }
    }

    /// The other chat nodes: the other instances of this node's role (of
    /// its run, without roles). They are the processes Ricart-Agrawala asks
    /// and `sync` reconciles with; other roles of the run take no part.
    fn others(ctx: &Context) -> Vec<String> {
        ctx.contract.role_peers().into_iter().map(|(p, _)| p).filter(|p| p != ctx.self_name()).collect()
    }

    fn send_to(ctx: &Context, peer: &str, frame: &Frame) {
        if let Some(addr) = ctx.contract.peer_addr(peer) {
            ctx.send_datagram(addr, frame.encode().as_bytes());
        }
    }

    /// Restores the checkpoint, then folds in the local replicas, which are
    /// written at every message and so may hold messages newer than the
    /// last checkpoint (a node stopped by a signal saves none).
    fn restore(&mut self, ctx: &mut Context) {
        let me = ctx.self_name().to_owned();
        let mut from_checkpoint = 0;
        match Checkpoint::load(&self.checkpoint_path(&me)) {
            Ok(Some(cp)) => {
                from_checkpoint = cp.messages.len();
                self.history.merge(cp.messages);
                self.ra.highest_seq = cp.highest_seq;
                self.next_id = cp.next_id;
            }
            Ok(None) => {}
            Err(err) => say(format_args!("error: checkpoint: {err:#}")),
        }
        let mut from_replicas = 0;
        for i in 1..=self.config.replicas {
            from_replicas += self.history.merge(read_replica(&self.replica_path(&me, i)));
        }
        self.next_id = self.next_id.max(self.history.next_id(&me));
        say(format_args!(
            "restored {} messages ({from_checkpoint} from the checkpoint, {from_replicas} more from the replicas)",
            self.history.len()
        ));
        if !self.history.is_empty() {
            self.repair_replicas(&me);
        }
    }

    /// Appends `m` to every replica.
    fn append_to_replicas(&self, me: &str, m: &ChatMessage) {
        use std::io::Write;
        for i in 1..=self.config.replicas {
            let path = self.replica_path(me, i);
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all((m.to_line() + "\n").as_bytes()));
            if let Err(err) = appended {
                eprintln!("chat: cannot append to {}: {err}", path.display());
            }
        }
    }

    /// The periodic check of the local replicas: a replica that lost or
    /// gained messages (a failed write, a hand edit) is rewritten from the
    /// history, after any message only it held joined the history.
    fn repair_replicas(&mut self, me: &str) {
        let replicas: Vec<Vec<ChatMessage>> =
            (1..=self.config.replicas).map(|i| read_replica(&self.replica_path(me, i))).collect();
        for replica in &replicas {
            let found = self.history.merge(replica.iter().cloned());
            if found > 0 {
                say(format_args!("replicas: {found} messages found only in a replica, kept"));
            }
        }
        for (i, replica) in replicas.iter().enumerate() {
            if !self.history.matches(replica) {
                let path = self.replica_path(me, i + 1);
                match write_replica(&path, &self.history.messages) {
                    Ok(()) => say(format_args!(
                        "replicas: replica{} repaired ({} messages, had {})",
                        i + 1,
                        self.history.len(),
                        replica.len()
                    )),
                    Err(err) => eprintln!("chat: cannot rewrite {}: {err}", path.display()),
                }
            }
        }
        self.log(format_args!("replicas: {} replicas checked, {} messages", self.config.replicas, self.history.len()));
    }

    fn save_checkpoint(&self, me: &str) -> anyhow::Result<()> {
        let cp = Checkpoint {
            process: me.to_owned(),
            highest_seq: self.ra.highest_seq,
            next_id: self.next_id,
            messages: self.history.messages.clone(),
        };
        cp.save(&self.checkpoint_path(me))
    }

    /// Takes a message into the history, the replicas and the user's view.
    fn accept(&mut self, ctx: &mut Context, m: ChatMessage, stamp: Option<&Stamp>) {
        if self.history.contains(&m.sender, m.id) {
            return;
        }
        ctx.deliver(&m.sender, Some(m.id), stamp, &m.text);
        let me = ctx.self_name().to_owned();
        self.append_to_replicas(&me, &m);
        self.history.add(m);
    }

    /// Asks for the section for the next line waiting, if none is asked yet.
    fn pump(&mut self, ctx: &mut Context) {
        if self.ra.current().is_some() || self.outbox.is_empty() {
            return;
        }
        let others = Self::others(ctx);
        let seq = self.ra.request(&others);
        if others.is_empty() {
            self.critical_section(ctx);
            return;
        }
        self.log(format_args!("mutex: REQ seq {seq} to {}", others.join(",")));
        for peer in &others {
            let stamp = ctx.events.send(peer, Some(seq), "REQ");
            Self::send_to(ctx, peer, &Frame::Req { seq, stamp });
        }
        ctx.start_timer(T_MUTEX, self.config.mutex_timeout);
    }

    /// Holds the section: multicasts the first line waiting, then leaves.
    fn critical_section(&mut self, ctx: &mut Context) {
        ctx.cancel_timer(T_MUTEX);
        let seq = self.ra.current().unwrap_or(0);
        ctx.events.record("enter", None, Some(seq), None);
        self.log(format_args!("mutex: enter seq {seq}"));
        if let Some(text) = self.outbox.pop_front() {
            let me = ctx.self_name().to_owned();
            let id = self.next_id;
            self.next_id += 1;
            let group = self.config.group.to_string();
            let stamp = ctx.events.send(&group, Some(id), &text);
            let message = ChatMessage { sender: me, id, lamport: stamp.lamport, text };
            let frame = Frame::Msg { run: ctx.contract.run.clone(), stamp: stamp.clone(), message: message.clone() };
            if let Some(g) = &self.group {
                g.send(frame.encode().as_bytes());
            }
            // Our own copy comes back by the multicast loop too; taking it
            // now shows the sender its message at once, and the copy is then
            // a duplicate.
            self.accept(ctx, message, Some(&stamp));
        }
        ctx.events.record("exit", None, Some(seq), None);
        self.release(ctx, seq);
    }

    /// Leaves the section or drops the request: replies to the deferred.
    fn release(&mut self, ctx: &mut Context, seq: u64) {
        let deferred = self.ra.release();
        if deferred.is_empty() {
            self.log(format_args!("mutex: exit seq {seq}"));
        } else {
            let names: Vec<&str> = deferred.iter().map(|(p, _)| p.as_str()).collect();
            self.log(format_args!("mutex: exit seq {seq}, REP to deferred {}", names.join(",")));
        }
        for (peer, their_seq) in deferred {
            Self::reply(ctx, &peer, their_seq);
        }
        self.pump(ctx);
    }

    /// Grants `peer`'s request `seq`.
    fn reply(ctx: &mut Context, peer: &str, seq: u64) {
        let stamp = ctx.events.send(peer, Some(seq), "REP");
        Self::send_to(ctx, peer, &Frame::Rep { seq, stamp });
    }

    /// Drains the group socket into the delayed inbox and delivers what is due.
    fn poll(&mut self, ctx: &mut Context) {
        let mut buf = [0u8; 65_536];
        while let Some(g) = &self.group {
            let Ok((len, _)) = g.rx.recv_from(&mut buf) else { break };
            let Some(Frame::Msg { run, stamp, message }) = Frame::decode(&buf[..len]) else { continue };
            // Another run on the same group and port is not our chat, nor is
            // another role of our run.
            if run != ctx.contract.run
                || !ctx.contract.is_role_peer(&message.sender)
                || self.history.contains(&message.sender, message.id)
            {
                continue;
            }
            let delay = rand::random_range(0..=u64::try_from(self.config.delay.as_millis()).unwrap_or(u64::MAX));
            self.inbox.push((Instant::now() + Duration::from_millis(delay), stamp, message));
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.inbox).into_iter().partition(|(at, ..)| *at <= now);
        self.inbox = later;
        let mut due = due;
        due.sort_by_key(|(at, ..)| *at);
        for (_, stamp, message) in due {
            self.accept(ctx, message, Some(&stamp));
        }
    }

    fn command(&mut self, ctx: &mut Context, command: Command) {
        let me = ctx.self_name().to_owned();
        match (command.verb.as_str(), command.args.as_str()) {
            ("verbose", arg @ ("" | "on" | "off")) => {
                self.verbose = match arg {
                    "on" => true,
                    "off" => false,
                    _ => !self.verbose,
                };
                say(format_args!("verbose {}", if self.verbose { "on" } else { "off" }));
            }
            ("peers", "") => {
                let peers: Vec<String> = ctx
                    .contract
                    .role_peers()
                    .iter()
                    .map(|(p, a)| if *p == me { format!("{p}={a} (me)") } else { format!("{p}={a}") })
                    .collect();
                say(format_args!("peers {} group {}", peers.join(" "), self.config.group));
            }
            ("history", "") => {
                say(format_args!("history {} messages", self.history.len()));
                for m in &self.history.messages {
                    say(format_args!("  {}#{} {}", m.sender, m.id, m.text));
                }
            }
            ("sync", "") => self.sync(ctx, true),
            ("quit", "") => {
                match self.save_checkpoint(&me) {
                    Ok(()) => say(format_args!("checkpoint saved ({} messages); bye", self.history.len())),
                    Err(err) => say(format_args!("error: checkpoint: {err:#}")),
                }
                std::process::exit(0);
            }
            _ => {
                let line =
                    if command.args.is_empty() { command.verb } else { format!("{} {}", command.verb, command.args) };
                self.outbox.push_back(line);
                self.pump(ctx);
            }
        }
    }

    /// Reconciles with every peer: asks each for what it holds and sends it
    /// what this node holds, so both ends end with the union.
    fn sync(&mut self, ctx: &mut Context, tell: bool) {
        let others = Self::others(ctx);
        for peer in &others {
            Self::send_to(ctx, peer, &Frame::Sync);
            for m in &self.history.messages {
                Self::send_to(ctx, peer, &Frame::Have(m.clone()));
            }
        }
        if tell {
            say(format_args!("sync: {} messages sent to {} peers, asked for theirs", self.history.len(), others.len()));
        }
    }
}

impl Module for ChatNode {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        let me = ctx.self_name().to_owned();
        self.ra = RicartAgrawala::new(&me, 0);
        self.restore(ctx);
        match ctx.contract.addr {
            SocketAddr::V4(addr) => match Group::join(self.config.group, *addr.ip()) {
                Ok(group) => self.group = Some(group),
                Err(err) => say(format_args!("error: multicast group {}: {err:#}", self.config.group)),
            },
            SocketAddr::V6(addr) => say(format_args!("error: multicast needs an IPv4 MGR_ADDR, not {addr}")),
        }
        ctx.start_timer(T_POLL, POLL);
        ctx.start_timer(T_CHECK, self.config.check);
        ctx.start_timer(T_CHECKPOINT, self.config.checkpoint);
        // A restarted node missed what was said while it was down.
        self.sync(ctx, false);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        self.command(ctx, command);
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        // Only the other chat nodes ask for the section, reply or sync.
        let Some(peer) = ctx.contract.peer_name(from).filter(|p| ctx.contract.is_role_peer(p)).map(str::to_owned)
        else {
            return;
        };
        match Frame::decode(payload) {
            Some(Frame::Req { seq, stamp }) => {
                ctx.events.arrive("receive", &peer, Some(seq), Some(&stamp), "REQ");
                if self.ra.on_request(&peer, seq) {
                    self.log(format_args!("mutex: REQ seq {seq} from {peer}: REP now"));
                    Self::reply(ctx, &peer, seq);
                } else {
                    self.log(format_args!("mutex: REQ seq {seq} from {peer}: deferred"));
                }
            }
            Some(Frame::Rep { seq, stamp }) => {
                ctx.events.arrive("receive", &peer, Some(seq), Some(&stamp), "REP");
                self.log(format_args!("mutex: REP seq {seq} from {peer}"));
                if self.ra.on_reply(&peer, seq) {
                    self.critical_section(ctx);
                }
            }
            Some(Frame::Sync) => {
                for m in &self.history.messages {
                    Self::send_to(ctx, &peer, &Frame::Have(m.clone()));
                }
                self.log(format_args!("sync: sent {} messages to {peer}", self.history.len()));
            }
            Some(Frame::Have(m)) => {
                if !self.history.contains(&m.sender, m.id) {
                    self.log(format_args!("sync: {}#{} from {peer}", m.sender, m.id));
                    if m.sender == ctx.self_name() {
                        self.next_id = self.next_id.max(m.id + 1);
                    }
                    self.accept(ctx, m, None);
                }
            }
            Some(Frame::Msg { .. }) | None => {}
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        let me = ctx.self_name().to_owned();
        match timer {
            T_POLL => {
                self.poll(ctx);
                ctx.start_timer(T_POLL, POLL);
            }
            T_MUTEX => {
                if let MutexState::Wanted { seq, waiting } = self.ra.state.clone() {
                    let missing: Vec<String> = waiting.into_iter().collect();
                    let text = self.outbox.pop_front().unwrap_or_default();
                    ctx.events.record("giveup", None, Some(seq), Some(&text));
                    say(format_args!(
                        "error: mutex timeout after {} ms (no reply from {}): message not sent: {text}",
                        self.config.mutex_timeout.as_millis(),
                        missing.join(",")
                    ));
                    self.release(ctx, seq);
                }
            }
            T_CHECK => {
                self.repair_replicas(&me);
                ctx.start_timer(T_CHECK, self.config.check);
            }
            T_CHECKPOINT => {
                match self.save_checkpoint(&me) {
                    Ok(()) => self.log(format_args!("checkpoint: saved {} messages", self.history.len())),
                    Err(err) => say(format_args!("error: checkpoint: {err:#}")),
                }
                ctx.start_timer(T_CHECKPOINT, self.config.checkpoint);
            }
            _ => {}
        }
    }
}

/// Runs the module: `mgr-modules ChatNode [--group ADDR:PORT] [--replicas N]
/// [--delay-ms N] [--checkpoint-secs N] [--mutex-timeout-ms N] [--check-secs N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let config = Config::parse(args, contract.multicast)?;
    let dir = contract.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    runtime::run(contract, ChatNode::new(config, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn msg(sender: &str, id: u64, text: &str) -> ChatMessage {
        ChatMessage { sender: sender.into(), id, lamport: id * 10, text: text.into() }
    }

    #[test]
    fn a_released_process_replies_at_once() {
        let mut p1 = RicartAgrawala::new("p1", 0);
        assert!(p1.on_request("p2", 4));
        assert_eq!(p1.highest_seq, 4);
        // The next request of p1 comes after every one it has seen.
        assert_eq!(p1.request(&names(&["p1", "p2", "p3"])), 5);
    }

    #[test]
    fn the_smaller_seq_wins_and_the_later_request_is_deferred() {
        let mut p1 = RicartAgrawala::new("p1", 0);
        let seq = p1.request(&names(&["p2", "p3"]));
        assert_eq!(seq, 1);
        // p2's request with a larger seq comes after ours: deferred.
        assert!(!p1.on_request("p2", 2));
        // p3's with a smaller one (impossible to beat) comes first: reply.
        let mut p1b = RicartAgrawala::new("p1", 5);
        let mine = p1b.request(&names(&["p3"]));
        assert!(p1b.on_request("p3", mine - 1));
        assert!(p1b.deferred.is_empty());
        // Equal seqs: the smaller name goes first.
        let mut p2 = RicartAgrawala::new("p2", 0);
        let s = p2.request(&names(&["p1", "p3"]));
        assert!(p2.on_request("p1", s), "p1 < p2 at equal seq");
        assert!(!p2.on_request("p3", s), "p3 > p2 at equal seq");
        assert_eq!(p2.deferred.get("p3"), Some(&s));
    }

    #[test]
    fn the_section_is_held_with_every_reply_and_deferred_replies_go_on_release() {
        let mut p1 = RicartAgrawala::new("p1", 0);
        let seq = p1.request(&names(&["p1", "p2", "p3"]));
        assert!(!p1.on_reply("p2", seq));
        // A reply to an older, abandoned request counts for nothing.
        assert!(!p1.on_reply("p3", seq + 7));
        assert!(p1.on_reply("p3", seq));
        assert_eq!(p1.state, MutexState::Held { seq });
        // Holding, p1 defers everyone.
        assert!(!p1.on_request("p2", 1));
        assert!(!p1.on_request("p3", 9));
        assert_eq!(p1.release(), vec![("p2".to_owned(), 1), ("p3".to_owned(), 9)]);
        assert_eq!(p1.state, MutexState::Released);
        assert!(p1.deferred.is_empty());
    }

    #[test]
    fn giving_up_releases_and_ignores_late_replies() {
        let mut p1 = RicartAgrawala::new("p1", 0);
        let seq = p1.request(&names(&["p2"]));
        assert!(!p1.on_request("p3", seq + 1));
        assert_eq!(p1.release(), vec![("p3".to_owned(), seq + 1)]);
        assert!(!p1.on_reply("p2", seq));
        assert_eq!(p1.state, MutexState::Released);
        // Alone, a process holds the section at once.
        let mut alone = RicartAgrawala::new("p1", 0);
        let seq = alone.request(&names(&["p1"]));
        assert_eq!(alone.state, MutexState::Held { seq });
    }

    #[test]
    fn replicas_reconcile_with_the_history() {
        let dir = std::env::temp_dir().join(format!("mgr-chat-replicas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut history = History::default();
        assert!(history.add(msg("p1", 1, "a\tb")));
        assert!(!history.add(msg("p1", 1, "again")), "a message is held once");
        history.add(msg("p2", 1, "c"));
        let path = dir.join("p1.replica1.log");
        write_replica(&path, &history.messages).unwrap();
        assert_eq!(read_replica(&path), history.messages, "tabs in the text survive");
        assert!(history.matches(&read_replica(&path)));
        // A replica that lost a message, and one that has a message the
        // history lacks, both differ; merging takes the extra message in.
        assert!(!history.matches(&history.messages[..1]));
        let mut extra = history.messages.clone();
        extra.push(msg("p3", 2, "d"));
        assert!(!history.matches(&extra));
        assert_eq!(history.merge(extra.clone()), 1);
        assert!(history.matches(&extra));
        assert_eq!(history.next_id("p3"), 3);
        assert_eq!(history.next_id("p4"), 1);
        // A torn last line after a crash is skipped.
        std::fs::write(&path, "p1\t1\t10\ta\np2\t1").unwrap();
        assert_eq!(read_replica(&path), vec![msg("p1", 1, "a")]);
        assert!(read_replica(&dir.join("missing")).is_empty());

        // The node's periodic check rewrites a damaged replica.
        let mut node = ChatNode::new(Config { replicas: 2, ..Config::default() }, dir.clone());
        node.history = history.clone();
        node.repair_replicas("p1");
        for i in 1..=2 {
            assert!(history.matches(&read_replica(&dir.join(format!("p1.replica{i}.log")))), "replica {i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let dir = std::env::temp_dir().join(format!("mgr-chat-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p2.checkpoint.json");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let cp = Checkpoint {
            process: "p2".into(),
            highest_seq: 7,
            next_id: 3,
            messages: vec![msg("p1", 1, "hello"), msg("p2", 2, "hi there")],
        };
        cp.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(cp));
        std::fs::write(&path, "{").unwrap();
        assert!(Checkpoint::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn frames_read_back_as_written() {
        let stamp = Stamp { lamport: 3, vc: vec![1, 2, 0] };
        let frames = [
            Frame::Msg { run: "r".into(), stamp: stamp.clone(), message: msg("p1", 4, "hello there") },
            Frame::Req { seq: 9, stamp: stamp.clone() },
            Frame::Rep { seq: 9, stamp },
            Frame::Sync,
            Frame::Have(msg("p3", 1, "x y")),
        ];
        for frame in frames {
            assert_eq!(Frame::decode(frame.encode().as_bytes()), Some(frame));
        }
        assert_eq!(Frame::decode(b"beb 1 hello"), None);
        assert_eq!(Frame::decode(b"chat REQ x 1/"), None);
    }

    #[test]
    fn arguments() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(Config::parse(&[], None).unwrap(), Config::default());
        assert_eq!(Config::default().group, "224.1.1.1:5007".parse().unwrap());
        let c = Config::parse(&args("--group 239.1.2.3:6000 --replicas=2 --delay-ms 0 --mutex-timeout-ms 500"), None)
            .unwrap();
        assert_eq!(c.group, "239.1.2.3:6000".parse().unwrap());
        assert_eq!((c.replicas, c.delay, c.mutex_timeout), (2, Duration::ZERO, Duration::from_millis(500)));
        assert!(Config::parse(&args("--group 10.0.0.1:5"), None).is_err());
        assert!(Config::parse(&args("--replicas 0"), None).is_err());
        assert!(Config::parse(&args("--replicas"), None).is_err());
        assert!(Config::parse(&args("--bogus 1"), None).is_err());
        // The run's group (MGR_MULTICAST) is the default; --group still wins.
        let run_group = Some("239.7.8.9:4000".parse().unwrap());
        assert_eq!(Config::parse(&[], run_group).unwrap().group, "239.7.8.9:4000".parse().unwrap());
        let c = Config::parse(&args("--group 224.1.1.1:6000"), run_group).unwrap();
        assert_eq!(c.group, "224.1.1.1:6000".parse().unwrap());
    }
}
