//! ChatNode: the group chat of the lab reports (issue 6 item 3, issue 16).
//!
//! It owns the chat's whole protocol: the membership of the chat (the
//! nodes that announce themselves on the group, [`Members`]), the
//! Ricart-Agrawala mutual exclusion that a node holds while it multicasts a
//! message ([`RicartAgrawala`], a pure state machine), the IP multicast
//! sockets of the chat group, the artificial receive delay, the message
//! history with its local replica files and the user's checkpoint
//! ([`History`], [`Checkpoint`]), and the `sync` reconciliation.
//!
//! It must not touch files other than its own: `MGR_DIR/<MGR_SELF>.*` (the
//! run folder is shared by the run's instances) and
//! `MGR_DATA/ChatNode/<user>.checkpoint.json` (the user's data outlives
//! the run). It must not send to anything but the chat's members and the
//! chat group, on the interface of `MGR_ADDR` (a run on loopback stays on
//! loopback; on a host of its own, the group goes out and is joined on the
//! interface that carries `MGR_ADDR`).
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
  verbose [on|off] show (or hide) the mutual exclusion, membership and replica messages
  peers            list the chat's members and the group
  history          list the messages this node holds
  sync             reconcile the history with every member
  quit             save a checkpoint, tell the others and exit (also: sair, end of input, SIGTERM)
  help             this list";

/// The frames' first word, so that stray datagrams are told apart.
const TAG: &str = "chat";
/// How often the multicast socket is drained. The runtime's event loop
/// listens on the module's own socket only, so the group's socket is polled
/// on a timer; a few milliseconds are small next to the receive delay.
const POLL: Duration = Duration::from_millis(5);
/// A member not heard from for this many announcement periods has left.
const SILENT_PERIODS: u32 = 3;
/// The most members a node keeps: far more than a chat has, and a bound on
/// what stray announcements can make it hold.
pub const MAX_MEMBERS: usize = 256;
/// The most messages held back by the receive delay at once; past it, a
/// message is dropped with an error (a `sync` brings it back).
const MAX_INBOX: usize = 10_000;
/// The largest checkpoint file read back: far more than a lab's history,
/// and a bound on what a stray file can make the node read.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 << 20;
/// At most this many messages are reprinted on restore (the rest: `history`).
const REPRINT: usize = 100;
/// The longest user name.
pub const MAX_USER: usize = 32;

const T_POLL: &str = "chat.poll";
const T_MUTEX: &str = "chat.mutex";
const T_CHECK: &str = "chat.check";
const T_CHECKPOINT: &str = "chat.checkpoint";
const T_HELLO: &str = "chat.hello";
const T_JOINED: &str = "chat.joined";

/// The module's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub group: SocketAddrV4,
    /// The name shown with this node's messages and keying its checkpoint;
    /// `None`: the instance's name.
    pub user: Option<String>,
    pub replicas: usize,
    pub delay: Duration,
    pub checkpoint: Duration,
    pub mutex_timeout: Duration,
    pub check: Duration,
    /// How often the node announces itself on the group.
    pub hello: Duration,
}

/// The lab's group, for a node run without `--group` nor `MGR_MULTICAST`.
pub const DEFAULT_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(224, 1, 1, 1), 5007);

impl Default for Config {
    fn default() -> Config {
        Config {
            group: DEFAULT_GROUP,
            user: None,
            replicas: 3,
            delay: Duration::from_millis(50),
            checkpoint: Duration::from_secs(60),
            mutex_timeout: Duration::from_millis(3000),
            check: Duration::from_secs(10),
            hello: Duration::from_millis(1000),
        }
    }
}

/// Whether `name` may be a user: 1 to [`MAX_USER`] letters, digits, `-`,
/// `_` or `.`, not starting with `.` (it names the user's checkpoint file,
/// and goes in frames between spaces).
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_USER
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Config {
    /// Reads `--user NAME --group ADDR:PORT --replicas N --delay-ms N
    /// --checkpoint-secs N --mutex-timeout-ms N --check-secs N --hello-ms N`
    /// (each `--opt V` or `--opt=V`). Without `--group` the group is
    /// `run_group` (the run's `MGR_MULTICAST`), else [`DEFAULT_GROUP`].
    pub fn parse(args: &[String], run_group: Option<SocketAddrV4>) -> Result<Config, RunError> {
        Config::parse_for(args, run_group, 1)
    }

    /// [`Config::parse`] for a node whose role has `nodes` instances: a
    /// user is one node, so `--user` needs a role of one.
    pub fn parse_for(args: &[String], run_group: Option<SocketAddrV4>, nodes: usize) -> Result<Config, RunError> {
        let usage = |what: String| {
            RunError::Usage(format!(
                "{what} (usage: [--user NAME] [--group ADDR:PORT] [--replicas N] [--delay-ms N] [--checkpoint-secs N] [--mutex-timeout-ms N] [--check-secs N] [--hello-ms N])"
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
                "--user" => {
                    if !valid_user(&value) {
                        return Err(usage(format!(
                            "--user: '{value}' is not 1 to {MAX_USER} letters, digits, '-', '_' or '.'"
                        )));
                    }
                    if nodes > 1 {
                        return Err(usage(format!(
                            "--user {value}: a user is one node, and this role has {nodes} instances (give each its own role, or no --user)"
                        )));
                    }
                    config.user = Some(value);
                }
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
                "--hello-ms" => config.hello = Duration::from_millis(number(true)?),
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
/// seen; requests are ordered by (sequence number, process id), and a
/// process defers its reply to a request that comes after its own (or
/// while it holds the section) until it releases. The chat names its
/// members by their addresses, which every member spells the same.
///
/// The membership may change while a request waits: a member that joins is
/// asked too ([`RicartAgrawala::join`]), since it may be about to enter
/// with an older request than ours that we already granted; a member that
/// left is no longer waited for ([`RicartAgrawala::forget`]).
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

    /// `peer` joined: while a request waits, it must grant it too. Returns
    /// the request's sequence number to send it, if one waits.
    pub fn join(&mut self, peer: &str) -> Option<u64> {
        match &mut self.state {
            MutexState::Wanted { seq, waiting } if peer != self.me => {
                waiting.insert(peer.to_owned());
                Some(*seq)
            }
            _ => None,
        }
    }

    /// `peer` left: its reply is no longer waited for, and it is owed none.
    /// True when it was the last reply missing and the section is now held.
    pub fn forget(&mut self, peer: &str) -> bool {
        self.deferred.remove(peer);
        let MutexState::Wanted { seq, waiting } = &mut self.state else { return false };
        if waiting.remove(peer) && waiting.is_empty() {
            self.state = MutexState::Held { seq: *seq };
            return true;
        }
        false
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

/// One chat message: its user, its number among that user's messages, the
/// process that sent it (`run/pN`), that process's Lamport clock and wall
/// clock when it sent it, and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub user: String,
    pub id: u64,
    pub origin: String,
    pub lamport: u64,
    pub time_ms: u64,
    pub text: String,
}

impl ChatMessage {
    fn key(&self) -> (String, u64) {
        (self.user.clone(), self.id)
    }

    /// One line of a replica file (and the tail of MSG and HAVE frames):
    /// `user<TAB>id<TAB>origin<TAB>lamport<TAB>time_ms<TAB>text`. The text
    /// is last, so it may hold tabs.
    pub fn to_line(&self) -> String {
        let text = self.text.replace(['\n', '\r'], " ");
        format!("{}\t{}\t{}\t{}\t{}\t{text}", self.user, self.id, self.origin, self.lamport, self.time_ms)
    }

    /// The message of a line, `None` when it is not one (a torn line, a
    /// hand edit, another format).
    pub fn from_line(line: &str) -> Option<ChatMessage> {
        let mut parts = line.splitn(6, '\t');
        let user = parts.next().filter(|u| valid_user(u))?.to_owned();
        let id = parts.next()?.parse().ok()?;
        let origin = parts.next().filter(|o| !o.is_empty() && !o.contains(' '))?.to_owned();
        let lamport = parts.next()?.parse().ok()?;
        let time_ms = parts.next()?.parse().ok()?;
        let text = parts.next()?.to_owned();
        Some(ChatMessage { user, id, origin, lamport, time_ms, text })
    }

    /// The report's display: `[HH:MM:SS] user: text`, in local time.
    pub fn display(&self) -> String {
        format!("[{}] {}: {}", clock(self.time_ms), self.user, self.text)
    }
}

/// `HH:MM:SS` of a wall-clock time, in the machine's time zone.
fn clock(ms: u64) -> String {
    match jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)) {
        Ok(at) => at.to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%H:%M:%S").to_string(),
        Err(_) => "??:??:??".to_owned(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The messages a node holds, in the order it got them, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub messages: Vec<ChatMessage>,
    keys: BTreeSet<(String, u64)>,
}

impl History {
    pub fn contains(&self, user: &str, id: u64) -> bool {
        self.keys.contains(&(user.to_owned(), id))
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

    /// How a replica differs from this history: the messages it lacks, and
    /// its lines beyond this history's messages (lines that are no message,
    /// and messages written twice).
    pub fn compare(&self, replica: &Replica) -> (usize, usize) {
        let theirs: BTreeSet<(String, u64)> = replica.messages.iter().map(ChatMessage::key).collect();
        let missing = self.keys.difference(&theirs).count();
        let extra = replica.bad_lines + (replica.messages.len() - theirs.len());
        (missing, extra)
    }

    /// The next number for a message of `user`: past every one it sent.
    pub fn next_id(&self, user: &str) -> u64 {
        self.messages.iter().filter(|m| m.user == user).map(|m| m.id).max().unwrap_or(0) + 1
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// What a replica file holds: its messages, and how many of its lines are
/// no message (a torn last line after a crash, a hand edit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replica {
    pub messages: Vec<ChatMessage>,
    pub bad_lines: usize,
}

/// Reads a replica file; a missing file is an empty replica.
pub fn read_replica(path: &Path) -> Replica {
    let mut replica = Replica::default();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        match ChatMessage::from_line(line) {
            Some(m) => replica.messages.push(m),
            None => replica.bad_lines += 1,
        }
    }
    replica
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

/// What a checkpoint saves: the user's history and the mutual exclusion's
/// sequence number, so that the user, back (after a restart, or in a later
/// run), neither loses messages nor reuses numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub user: String,
    pub highest_seq: u64,
    pub next_id: u64,
    pub messages: Vec<ChatMessage>,
}

/// Why a checkpoint is not restored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is damaged ({why})")]
    Damaged { path: String, why: String },
    #[error("{path} is the checkpoint of user '{theirs}', not of '{ours}'")]
    OtherUser { path: String, theirs: String, ours: String },
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
        }
        let json = serde_json::to_vec_pretty(self)?;
        write_atomically(path, &json).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The checkpoint of `user` at `path`, `None` when there is none. A
    /// file too large, not a checkpoint, with a message that is not one, or
    /// of another user is refused.
    pub fn load(path: &Path, user: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        let shown = path.display().to_string();
        let damaged = |why: String| CheckpointError::Damaged { path: shown.clone(), why };
        let read = || -> std::io::Result<Vec<u8>> {
            use std::io::Read as _;
            let mut bytes = Vec::new();
            std::fs::File::open(path)?.take(MAX_CHECKPOINT_BYTES + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        let bytes = match read() {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Read { path: shown, source }),
        };
        if bytes.len() as u64 > MAX_CHECKPOINT_BYTES {
            return Err(damaged(format!("over {} MiB", MAX_CHECKPOINT_BYTES >> 20)));
        }
        let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|err| damaged(err.to_string()))?;
        if cp.user != user {
            return Err(CheckpointError::OtherUser { path: shown, theirs: cp.user, ours: user.to_owned() });
        }
        if let Some(bad) = cp.messages.iter().find(|m| ChatMessage::from_line(&m.to_line()).as_ref() != Some(*m)) {
            return Err(damaged(format!("message {} of '{}' is not a valid message", bad.id, bad.user)));
        }
        Ok(Some(cp))
    }
}

// ---------------------------------------------------------------------------
// Frames

/// The datagrams of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Multicast to the group: `chat MSG stamp <message line>`.
    Msg { stamp: Stamp, message: ChatMessage },
    /// `chat REQ seq stamp`: asks for the section.
    Req { seq: u64, stamp: Stamp },
    /// `chat REP seq stamp`: grants the request `seq`.
    Rep { seq: u64, stamp: Stamp },
    /// `chat SYNC`: asks a member for every message it holds.
    Sync,
    /// `chat HAVE <message line>`: one message, for `sync`.
    Have(ChatMessage),
    /// Multicast: `chat HELLO origin user ip:port`, a member announcing
    /// itself (at start, then every `--hello-ms`).
    Hello { origin: String, user: String, addr: SocketAddr },
    /// Multicast: `chat LEAVE origin user ip:port`, a member leaving.
    Leave { origin: String, user: String, addr: SocketAddr },
}

impl Frame {
    pub fn encode(&self) -> String {
        match self {
            Frame::Msg { stamp, message } => format!("{TAG} MSG {} {}", stamp.encode(), message.to_line()),
            Frame::Req { seq, stamp } => format!("{TAG} REQ {seq} {}", stamp.encode()),
            Frame::Rep { seq, stamp } => format!("{TAG} REP {seq} {}", stamp.encode()),
            Frame::Sync => format!("{TAG} SYNC"),
            Frame::Have(message) => format!("{TAG} HAVE {}", message.to_line()),
            Frame::Hello { origin, user, addr } => format!("{TAG} HELLO {origin} {user} {addr}"),
            Frame::Leave { origin, user, addr } => format!("{TAG} LEAVE {origin} {user} {addr}"),
        }
    }

    pub fn decode(payload: &[u8]) -> Option<Frame> {
        let text = std::str::from_utf8(payload).ok()?;
        let rest = text.strip_prefix(TAG)?.strip_prefix(' ')?;
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        match kind {
            "MSG" => {
                let (stamp, line) = rest.split_once(' ')?;
                Some(Frame::Msg { stamp: Stamp::decode(stamp)?, message: ChatMessage::from_line(line)? })
            }
            "REQ" | "REP" => {
                let (seq, stamp) = rest.split_once(' ')?;
                let (seq, stamp) = (seq.parse().ok()?, Stamp::decode(stamp)?);
                Some(if kind == "REQ" { Frame::Req { seq, stamp } } else { Frame::Rep { seq, stamp } })
            }
            "SYNC" if rest.is_empty() => Some(Frame::Sync),
            "HAVE" => Some(Frame::Have(ChatMessage::from_line(rest)?)),
            "HELLO" | "LEAVE" => {
                let words: Vec<&str> = rest.split(' ').collect();
                let [origin, user, addr] = words[..] else { return None };
                if origin.is_empty() || !valid_user(user) {
                    return None;
                }
                let (origin, user, addr) = (origin.to_owned(), user.to_owned(), addr.parse().ok()?);
                Some(if kind == "HELLO" {
                    Frame::Hello { origin, user, addr }
                } else {
                    Frame::Leave { origin, user, addr }
                })
            }
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
// Membership

/// Another node of the chat, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `run/pN`: the process, which names it in the events.
    pub origin: String,
    /// Its user, once it announced itself (empty until then).
    pub user: String,
    pub seen: Instant,
}

/// What an announcement was to the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// A node that was not a member.
    New,
    /// A member known from the start, whose user this is the first word of.
    Named,
    /// A member already known by name.
    Known,
}

/// The chat's current members besides this node, by address: the other
/// instances of its role at start, then every node that announces itself
/// on the group (from another run, another member, started by hand), until
/// it leaves or has been silent for [`SILENT_PERIODS`] announcements.
#[derive(Debug, Default)]
pub struct Members {
    pub by_addr: BTreeMap<SocketAddr, Member>,
}

impl Members {
    /// A node heard from at `now` (an announcement, or a start as a peer).
    /// A node past [`MAX_MEMBERS`] is not taken (`None`).
    pub fn heard(&mut self, addr: SocketAddr, origin: &str, user: &str, now: Instant) -> Option<Heard> {
        if let Some(m) = self.by_addr.get_mut(&addr) {
            m.seen = now;
            m.origin = origin.to_owned();
            if m.user.is_empty() && !user.is_empty() {
                m.user = user.to_owned();
                return Some(Heard::Named);
            }
            return Some(Heard::Known);
        }
        if self.by_addr.len() >= MAX_MEMBERS {
            return None;
        }
        self.by_addr.insert(addr, Member { origin: origin.to_owned(), user: user.to_owned(), seen: now });
        Some(Heard::New)
    }

    /// The members silent for longer than `silence` before `now`.
    pub fn silent(&self, now: Instant, silence: Duration) -> Vec<SocketAddr> {
        self.by_addr
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.seen) > silence)
            .map(|(addr, _)| *addr)
            .collect()
    }

    /// The members' ids for the mutual exclusion (their addresses).
    pub fn ids(&self) -> Vec<String> {
        self.by_addr.keys().map(SocketAddr::to_string).collect()
    }
}

// ---------------------------------------------------------------------------
// The module

/// The chat node.
#[derive(Debug)]
pub struct ChatNode {
    config: Config,
    /// The run's folder: the replicas, and the checkpoint of a node
    /// without `--user` (`MGR_DIR`).
    dir: PathBuf,
    /// The users' data: the checkpoint of a node given `--user`
    /// (`MGR_DATA/ChatNode`), which a later run of that user finds.
    data: PathBuf,
    /// This node's user (`--user`, else the instance's name).
    user: String,
    /// `run/pN`, this process.
    origin: String,
    group: Option<Group>,
    members: Members,
    ra: RicartAgrawala,
    history: History,
    next_id: u64,
    /// Lines typed but not sent yet: each waits for its own turn in the section.
    outbox: VecDeque<String>,
    /// Multicast messages received and held back by the artificial delay.
    inbox: Vec<(Instant, Option<Stamp>, ChatMessage)>,
    /// The keys of the messages in `inbox`, so that a copy is seen at once.
    waiting: BTreeSet<(String, u64)>,
    /// Whether the first announcements had time to come back: until then,
    /// a node that just started may not know every member yet, and asks
    /// for the section of none.
    joined: bool,
    verbose: bool,
}

impl ChatNode {
    pub fn new(config: Config, dir: PathBuf, data: PathBuf) -> ChatNode {
        ChatNode {
            config,
            dir,
            data,
            user: String::new(),
            origin: String::new(),
            group: None,
            members: Members::default(),
            ra: RicartAgrawala::new("", 0),
            history: History::default(),
            next_id: 1,
            outbox: VecDeque::new(),
            inbox: Vec::new(),
            waiting: BTreeSet::new(),
            joined: false,
            verbose: false,
        }
    }

    fn replica_path(&self, me: &str, i: usize) -> PathBuf {
        self.dir.join(format!("{me}.replica{i}.log"))
    }

    /// `MGR_DATA/ChatNode/<user>.checkpoint.json` for a node given a user,
    /// `MGR_DIR/<MGR_SELF>.checkpoint.json` for one named after its
    /// instance: that name means nothing outside its run.
    fn checkpoint_path(&self, me: &str) -> PathBuf {
        match &self.config.user {
            Some(user) => self.data.join(format!("{user}.checkpoint.json")),
            None => self.dir.join(format!("{me}.checkpoint.json")),
        }
    }

    fn log(&self, line: impl std::fmt::Display) {
        if self.verbose {
            say(line);
        }
    }

    /// How a process is named in the events and on screen: `pN` in this
    /// run, `run/pN` in another.
    fn label<'a>(ctx: &Context, origin: &'a str) -> &'a str {
        origin.strip_prefix(ctx.contract.run.as_str()).and_then(|rest| rest.strip_prefix('/')).unwrap_or(origin)
    }

    /// Whether `origin` is a process of this run, whose clocks (the stamps
    /// it sends) are this run's.
    fn same_run(ctx: &Context, origin: &str) -> bool {
        Self::label(ctx, origin).len() < origin.len()
    }

    fn member_label(&self, ctx: &Context, addr: SocketAddr) -> String {
        match self.members.by_addr.get(&addr) {
            Some(m) => Self::label(ctx, &m.origin).to_owned(),
            None => addr.to_string(),
        }
    }

    /// Says on the group that this node is here.
    fn announce(&self, ctx: &Context) {
        let hello = Frame::Hello { origin: self.origin.clone(), user: self.user.clone(), addr: ctx.contract.addr };
        if let Some(g) = &self.group {
            g.send(hello.encode().as_bytes());
        }
    }

    /// Restores the user's checkpoint, then folds in the local replicas,
    /// which are written at every message and so may hold messages newer
    /// than the last checkpoint (a node that crashed saved none), and
    /// reprints the history.
    fn restore(&mut self, ctx: &mut Context) {
        let me = ctx.self_name().to_owned();
        let mut from_checkpoint = 0;
        match Checkpoint::load(&self.checkpoint_path(&me), &self.user) {
            Ok(Some(cp)) => {
                from_checkpoint = cp.messages.len();
                self.history.merge(cp.messages);
                self.ra.highest_seq = cp.highest_seq;
                self.next_id = cp.next_id;
            }
            Ok(None) => {}
            Err(err) => say(format_args!("error: checkpoint refused: {err}; starting clean from the replicas")),
        }
        let mut from_replicas = 0;
        for i in 1..=self.config.replicas {
            from_replicas += self.history.merge(read_replica(&self.replica_path(&me, i)).messages);
        }
        self.next_id = self.next_id.max(self.history.next_id(&self.user));
        say(format_args!(
            "restored {} messages ({from_checkpoint} from the checkpoint, {from_replicas} more from the replicas)",
            self.history.len()
        ));
        let skip = self.history.len().saturating_sub(REPRINT);
        if skip > 0 {
            say(format_args!("({skip} earlier messages: type history)"));
        }
        for m in &self.history.messages[skip..] {
            say(m.display());
        }
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

    /// The periodic check of the local replicas: a replica that lacks
    /// messages or has lines beyond them (a failed write, a hand edit,
    /// garbage) is rewritten from the history, after any message only it
    /// held joined the history.
    fn repair_replicas(&mut self, me: &str) {
        let replicas: Vec<Replica> =
            (1..=self.config.replicas).map(|i| read_replica(&self.replica_path(me, i))).collect();
        for replica in &replicas {
            let found = self.history.merge(replica.messages.iter().cloned());
            if found > 0 {
                say(format_args!("replicas: {found} messages found only in a replica, kept"));
            }
        }
        for (i, replica) in replicas.iter().enumerate() {
            let (missing, extra) = self.history.compare(replica);
            if missing == 0 && extra == 0 {
                continue;
            }
            let path = self.replica_path(me, i + 1);
            match write_replica(&path, &self.history.messages) {
                Ok(()) => say(format_args!(
                    "replicas: replica{} repaired ({} messages; it lacked {missing} and had {extra} extra lines)",
                    i + 1,
                    self.history.len(),
                )),
                Err(err) => eprintln!("chat: cannot rewrite {}: {err}", path.display()),
            }
        }
        self.log(format_args!("replicas: {} replicas checked, {} messages", self.config.replicas, self.history.len()));
    }

    fn save_checkpoint(&self, me: &str) -> anyhow::Result<()> {
        let cp = Checkpoint {
            user: self.user.clone(),
            highest_seq: self.ra.highest_seq,
            next_id: self.next_id,
            messages: self.history.messages.clone(),
        };
        cp.save(&self.checkpoint_path(me))
    }

    /// Takes a message into the history, the replicas and the user's view.
    fn accept(&mut self, ctx: &mut Context, m: ChatMessage, stamp: Option<&Stamp>) {
        if self.history.contains(&m.user, m.id) {
            return;
        }
        ctx.events.deliver(Self::label(ctx, &m.origin), Some(m.id), stamp, &m.text);
        say(m.display());
        let me = ctx.self_name().to_owned();
        self.append_to_replicas(&me, &m);
        self.history.add(m);
    }

    /// Asks for the section for the next line waiting, if none is asked yet.
    fn pump(&mut self, ctx: &mut Context) {
        if !self.joined || self.ra.current().is_some() || self.outbox.is_empty() {
            return;
        }
        let others = self.members.ids();
        let seq = self.ra.request(&others);
        if others.is_empty() {
            self.critical_section(ctx);
            return;
        }
        let addrs: Vec<SocketAddr> = self.members.by_addr.keys().copied().collect();
        let labels: Vec<String> = addrs.iter().map(|a| self.member_label(ctx, *a)).collect();
        self.log(format_args!("mutex: REQ seq {seq} to {}", labels.join(",")));
        for addr in addrs {
            self.request(ctx, addr, seq);
        }
        ctx.start_timer(T_MUTEX, self.config.mutex_timeout);
    }

    /// Asks the member at `addr` to grant request `seq`.
    fn request(&self, ctx: &mut Context, addr: SocketAddr, seq: u64) {
        let stamp = ctx.events.send(&self.member_label(ctx, addr), Some(seq), "REQ");
        ctx.send_datagram(addr, Frame::Req { seq, stamp }.encode().as_bytes());
    }

    /// Holds the section: multicasts the first line waiting, then leaves.
    fn critical_section(&mut self, ctx: &mut Context) {
        ctx.cancel_timer(T_MUTEX);
        let seq = self.ra.current().unwrap_or(0);
        ctx.events.record("enter", None, Some(seq), None);
        self.log(format_args!("mutex: enter seq {seq}"));
        if let Some(text) = self.outbox.pop_front() {
            let id = self.next_id;
            self.next_id += 1;
            let group = self.config.group.to_string();
            let stamp = ctx.events.send(&group, Some(id), &text);
            let message = ChatMessage {
                user: self.user.clone(),
                id,
                origin: self.origin.clone(),
                lamport: stamp.lamport,
                time_ms: now_ms(),
                text,
            };
            let frame = Frame::Msg { stamp: stamp.clone(), message: message.clone() };
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
            let names: Vec<String> = deferred
                .iter()
                .map(|(p, _)| p.parse().map_or_else(|_| p.clone(), |a| self.member_label(ctx, a)))
                .collect();
            self.log(format_args!("mutex: exit seq {seq}, REP to deferred {}", names.join(",")));
        }
        for (peer, their_seq) in deferred {
            if let Ok(addr) = peer.parse() {
                self.reply(ctx, addr, their_seq);
            }
        }
        self.pump(ctx);
    }

    /// Grants the request `seq` of the member at `addr`.
    fn reply(&self, ctx: &mut Context, addr: SocketAddr, seq: u64) {
        let stamp = ctx.events.send(&self.member_label(ctx, addr), Some(seq), "REP");
        ctx.send_datagram(addr, Frame::Rep { seq, stamp }.encode().as_bytes());
    }

    /// A node announced itself: a new one is told who this node is at once
    /// (so that it knows every member before it asks for the section), and
    /// asked for the section too if a request of ours waits.
    fn upon_hello(&mut self, ctx: &mut Context, addr: SocketAddr, origin: &str, user: &str) {
        match self.members.heard(addr, origin, user, Instant::now()) {
            Some(Heard::New) => {
                let label = Self::label(ctx, origin).to_owned();
                ctx.events.record("join", Some(&label), None, Some(user));
                say(format_args!("{user} joined ({label} at {addr})"));
                self.announce(ctx);
                if let Some(seq) = self.ra.join(&addr.to_string()) {
                    self.request(ctx, addr, seq);
                }
            }
            // A peer of the run heard by name for the first time: it may
            // not know ours either (it started after our first announcement).
            Some(Heard::Named) => self.announce(ctx),
            Some(Heard::Known) => {}
            None => eprintln!("chat: {MAX_MEMBERS} members already: {user} at {addr} is not taken"),
        }
    }

    /// A member left (it said so, or went silent): the section is no
    /// longer waited on it.
    fn drop_member(&mut self, ctx: &mut Context, addr: SocketAddr, why: &str) {
        let Some(member) = self.members.by_addr.remove(&addr) else { return };
        let label = Self::label(ctx, &member.origin).to_owned();
        ctx.events.record("leave", Some(&label), None, (!why.is_empty()).then_some(why));
        let user = if member.user.is_empty() { "?" } else { member.user.as_str() };
        match why {
            "" => say(format_args!("{user} left ({label})")),
            why => say(format_args!("{user} left ({label}): {why}")),
        }
        if self.ra.forget(&addr.to_string()) {
            self.critical_section(ctx);
        }
    }

    /// Leaves the chat: saves the checkpoint, grants what it deferred (no
    /// member may wait for a node that is gone) and tells the group. Lines
    /// not sent yet are named, not dropped in silence.
    fn leave(&mut self, ctx: &mut Context) {
        for text in std::mem::take(&mut self.outbox) {
            say(format_args!("error: not sent (leaving): {text}"));
        }
        ctx.cancel_timer(T_MUTEX);
        for (peer, seq) in self.ra.release() {
            if let Ok(addr) = peer.parse() {
                self.reply(ctx, addr, seq);
            }
        }
        let leave = Frame::Leave { origin: self.origin.clone(), user: self.user.clone(), addr: ctx.contract.addr };
        if let Some(g) = &self.group {
            g.send(leave.encode().as_bytes());
        }
        match self.save_checkpoint(ctx.self_name()) {
            Ok(()) => say(format_args!("checkpoint saved ({} messages); bye", self.history.len())),
            Err(err) => say(format_args!("error: checkpoint: {err:#}")),
        }
    }

    /// Drains the group socket: announcements at once, messages into the
    /// delayed inbox; then delivers what is due.
    fn poll(&mut self, ctx: &mut Context) {
        let mut buf = [0u8; 65_536];
        while let Some(g) = &self.group {
            let Ok((len, _)) = g.rx.recv_from(&mut buf) else { break };
            match Frame::decode(&buf[..len]) {
                Some(Frame::Hello { origin, user, addr }) if addr != ctx.contract.addr => {
                    self.upon_hello(ctx, addr, &origin, &user);
                }
                Some(Frame::Leave { addr, .. }) if addr != ctx.contract.addr => self.drop_member(ctx, addr, ""),
                Some(Frame::Msg { stamp, message }) => {
                    if self.history.contains(&message.user, message.id) || self.waiting.contains(&message.key()) {
                        continue;
                    }
                    if self.inbox.len() >= MAX_INBOX {
                        say(format_args!(
                            "error: {MAX_INBOX} messages wait already: dropped {}#{} (sync brings it back)",
                            message.user, message.id
                        ));
                        continue;
                    }
                    // Clocks of another run are not this run's: only a
                    // message of this run carries its stamp into the events.
                    let stamp = Self::same_run(ctx, &message.origin).then_some(stamp);
                    let delay =
                        rand::random_range(0..=u64::try_from(self.config.delay.as_millis()).unwrap_or(u64::MAX));
                    self.waiting.insert(message.key());
                    self.inbox.push((Instant::now() + Duration::from_millis(delay), stamp, message));
                }
                _ => {}
            }
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.inbox).into_iter().partition(|(at, ..)| *at <= now);
        self.inbox = later;
        let mut due = due;
        due.sort_by_key(|(at, ..)| *at);
        for (_, stamp, message) in due {
            self.waiting.remove(&message.key());
            self.accept(ctx, message, stamp.as_ref());
        }
    }

    fn command(&mut self, ctx: &mut Context, command: Command) {
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
                let mut peers = vec![format!("{}={} (me, {})", ctx.self_name(), ctx.contract.addr, self.user)];
                // This run's processes first, in number order, then the others.
                let mut members: Vec<(&str, &SocketAddr, &Member)> =
                    self.members.by_addr.iter().map(|(addr, m)| (Self::label(ctx, &m.origin), addr, m)).collect();
                members.sort_by_key(|(label, ..)| {
                    let number = label.rsplit('p').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(u64::MAX);
                    (label.contains('/'), number, label.to_string())
                });
                for (label, addr, m) in members {
                    // A peer of the run is a member before it says its user.
                    let user = if m.user.is_empty() { String::new() } else { format!(" ({})", m.user) };
                    peers.push(format!("{label}={addr}{user}"));
                }
                say(format_args!("peers {} group {}", peers.join(" "), self.config.group));
            }
            ("history", "") => {
                say(format_args!("history {} messages", self.history.len()));
                for m in &self.history.messages {
                    say(format_args!("  {}", m.display()));
                }
            }
            ("sync", "") => self.sync(ctx, true),
            ("quit" | "sair", "") => {
                self.leave(ctx);
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

    /// Reconciles with every member: asks each for what it holds and sends
    /// it what this node holds, so both ends end with the union.
    fn sync(&mut self, ctx: &mut Context, tell: bool) {
        let members: Vec<SocketAddr> = self.members.by_addr.keys().copied().collect();
        for addr in &members {
            self.send_history(ctx, *addr, true);
        }
        if tell {
            say(format_args!(
                "sync: {} messages sent to {} members, asked for theirs",
                self.history.len(),
                members.len()
            ));
        }
    }

    /// Sends every message held to `addr` (after a SYNC of our own when `ask`).
    fn send_history(&self, ctx: &Context, addr: SocketAddr, ask: bool) {
        if ask {
            ctx.send_datagram(addr, Frame::Sync.encode().as_bytes());
        }
        for m in &self.history.messages {
            ctx.send_datagram(addr, Frame::Have(m.clone()).encode().as_bytes());
        }
    }
}

impl Module for ChatNode {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        let me = ctx.self_name().to_owned();
        self.user = self.config.user.clone().unwrap_or_else(|| me.clone());
        self.origin = format!("{}/{me}", ctx.contract.run);
        self.ra = RicartAgrawala::new(&ctx.contract.addr.to_string(), 0);
        // The other instances of the role are members from the start; any
        // other node becomes one when it announces itself.
        let now = Instant::now();
        for (peer, addr) in ctx.contract.role_peers() {
            if peer != me {
                self.members.heard(addr, &format!("{}/{peer}", ctx.contract.run), "", now);
            }
        }
        self.restore(ctx);
        match ctx.contract.addr {
            SocketAddr::V4(addr) => match Group::join(self.config.group, *addr.ip()) {
                Ok(group) => self.group = Some(group),
                Err(err) => say(format_args!("error: multicast group {}: {err:#}", self.config.group)),
            },
            SocketAddr::V6(addr) => say(format_args!("error: multicast needs an IPv4 MGR_ADDR, not {addr}")),
        }
        self.announce(ctx);
        ctx.start_timer(T_POLL, POLL);
        ctx.start_timer(T_CHECK, self.config.check);
        ctx.start_timer(T_CHECKPOINT, self.config.checkpoint);
        ctx.start_timer(T_HELLO, self.config.hello);
        // Members answer an announcement at once; half a period is ample
        // for their answers to come back.
        ctx.start_timer(T_JOINED, (self.config.hello / 2).min(Duration::from_millis(500)));
        // A restarted node missed what was said while it was down.
        self.sync(ctx, false);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        self.command(ctx, command);
    }

    /// A scale changed the run: new instances of the role are members at
    /// once (they also announce themselves), and a request that waits asks
    /// them too.
    fn upon_peers(&mut self, ctx: &mut Context) {
        let now = Instant::now();
        for (peer, addr) in ctx.contract.role_peers() {
            if peer == ctx.self_name() {
                continue;
            }
            let origin = format!("{}/{peer}", ctx.contract.run);
            if self.members.heard(addr, &origin, "", now) == Some(Heard::New)
                && let Some(seq) = self.ra.join(&addr.to_string())
            {
                self.request(ctx, addr, seq);
            }
        }
    }

    fn upon_stdin_end(&mut self, ctx: &mut Context) {
        self.leave(ctx);
        std::process::exit(0);
    }

    fn upon_terminate(&mut self, ctx: &mut Context) {
        self.leave(ctx);
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        // Only the chat's members ask for the section, reply or sync.
        let Some(member) = self.members.by_addr.get_mut(&from) else {
            self.log(format_args!("chat: ignored a datagram from {from}, not a member"));
            return;
        };
        member.seen = Instant::now();
        let origin = member.origin.clone();
        let peer = Self::label(ctx, &origin).to_owned();
        let ours = Self::same_run(ctx, &origin);
        let id = from.to_string();
        match Frame::decode(payload) {
            Some(Frame::Req { seq, stamp }) => {
                ctx.events.arrive("receive", &peer, Some(seq), ours.then_some(&stamp), "REQ");
                if self.ra.on_request(&id, seq) {
                    self.log(format_args!("mutex: REQ seq {seq} from {peer}: REP now"));
                    self.reply(ctx, from, seq);
                } else {
                    self.log(format_args!("mutex: REQ seq {seq} from {peer}: deferred"));
                }
            }
            Some(Frame::Rep { seq, stamp }) => {
                ctx.events.arrive("receive", &peer, Some(seq), ours.then_some(&stamp), "REP");
                self.log(format_args!("mutex: REP seq {seq} from {peer}"));
                if self.ra.on_reply(&id, seq) {
                    self.critical_section(ctx);
                }
            }
            Some(Frame::Sync) => {
                self.send_history(ctx, from, false);
                self.log(format_args!("sync: sent {} messages to {peer}", self.history.len()));
            }
            Some(Frame::Have(m)) if !self.history.contains(&m.user, m.id) => {
                self.log(format_args!("sync: {}#{} from {peer}", m.user, m.id));
                if m.user == self.user {
                    self.next_id = self.next_id.max(m.id + 1);
                }
                self.accept(ctx, m, None);
            }
            _ => {}
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        let me = ctx.self_name().to_owned();
        match timer {
            T_POLL => {
                self.poll(ctx);
                ctx.start_timer(T_POLL, POLL);
            }
            T_HELLO => {
                self.announce(ctx);
                let silence = self.config.hello * SILENT_PERIODS;
                for addr in self.members.silent(Instant::now(), silence) {
                    let why = format!("silent for {:.1} s", silence.as_secs_f64());
                    self.drop_member(ctx, addr, &why);
                }
                ctx.start_timer(T_HELLO, self.config.hello);
            }
            T_JOINED => {
                self.joined = true;
                self.pump(ctx);
            }
            T_MUTEX => {
                if let MutexState::Wanted { seq, waiting } = self.ra.state.clone() {
                    let missing: Vec<String> = waiting
                        .iter()
                        .map(|p| p.parse().map_or_else(|_| p.clone(), |a| self.member_label(ctx, a)))
                        .collect();
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

/// The folder of the user's checkpoint: `MGR_DATA/ChatNode`, else (a node
/// started by hand) the run's folder, else the working directory.
pub fn data_dir(contract: &Contract) -> PathBuf {
    match (&contract.data, &contract.dir) {
        (Some(data), _) => data.join(INFO.name),
        (None, Some(dir)) => dir.clone(),
        (None, None) => PathBuf::from("."),
    }
}

/// Runs the module: `mgr-modules ChatNode [--user NAME] [--group ADDR:PORT]
/// [--replicas N] [--delay-ms N] [--checkpoint-secs N] [--mutex-timeout-ms N]
/// [--check-secs N] [--hello-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let config = Config::parse_for(args, contract.multicast, contract.role_peers().len())?;
    let dir = contract.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let data = data_dir(&contract);
    runtime::run(contract, ChatNode::new(config, dir, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn msg(user: &str, id: u64, text: &str) -> ChatMessage {
        ChatMessage {
            user: user.into(),
            id,
            origin: format!("r/{user}"),
            lamport: id * 10,
            time_ms: 1_700_000_000_000 + id,
            text: text.into(),
        }
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
    fn a_member_that_joins_is_asked_and_one_that_leaves_is_not_waited_for() {
        let mut p1 = RicartAgrawala::new("p1", 0);
        let seq = p1.request(&names(&["p2"]));
        // p4 joins while p1 waits: p1 must have its reply too.
        assert_eq!(p1.join("p4"), Some(seq));
        assert!(!p1.on_reply("p2", seq), "p4's reply is still missing");
        // p4 leaves before replying: p1 holds the section.
        assert!(p1.forget("p4"));
        assert_eq!(p1.state, MutexState::Held { seq });
        assert_eq!(p1.join("p5"), None, "holding, nobody is asked");
        // A member that left is owed no deferred reply.
        assert!(!p1.on_request("p2", seq + 1));
        assert!(!p1.forget("p2"));
        assert!(p1.release().is_empty());
    }

    #[test]
    fn members_are_heard_bounded_and_silent_ones_found() {
        let t0 = Instant::now();
        let mut members = Members::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(members.heard(a, "r/p1", "", t0), Some(Heard::New));
        assert_eq!(members.heard(a, "r/p1", "brenda", t0 + Duration::from_secs(2)), Some(Heard::Named));
        assert_eq!(members.heard(a, "r/p1", "brenda", t0 + Duration::from_secs(2)), Some(Heard::Known));
        assert_eq!(members.by_addr[&a].user, "brenda");
        assert!(members.silent(t0 + Duration::from_secs(4), Duration::from_secs(3)).is_empty());
        assert_eq!(members.silent(t0 + Duration::from_secs(6), Duration::from_secs(3)), [a]);
        for port in 2..=MAX_MEMBERS as u16 {
            members.heard(SocketAddr::from(([127, 0, 0, 1], port)), "r/x", "x", t0);
        }
        assert_eq!(members.heard("127.0.0.2:1".parse().unwrap(), "r/y", "y", t0), None);
        assert_eq!(members.ids().len(), MAX_MEMBERS);
    }

    #[test]
    fn a_message_shows_as_in_the_report() {
        let m = msg("brenda", 1, "oi gente");
        let shown = m.display();
        assert!(shown.starts_with('[') && shown.ends_with("] brenda: oi gente"), "{shown}");
        assert_eq!(shown.len(), "[HH:MM:SS] brenda: oi gente".len(), "{shown}");
    }

    #[test]
    fn replicas_reconcile_with_the_history_and_their_extra_lines_are_found() {
        let dir = tempdir("replicas");
        let mut history = History::default();
        assert!(history.add(msg("p1", 1, "a\tb")));
        assert!(!history.add(msg("p1", 1, "again")), "a message is held once");
        history.add(msg("p2", 1, "c"));
        let path = dir.join("p1.replica1.log");
        write_replica(&path, &history.messages).unwrap();
        let replica = read_replica(&path);
        assert_eq!(replica.messages, history.messages, "tabs in the text survive");
        assert_eq!(history.compare(&replica), (0, 0));
        // A replica that lost a message lacks one; one with a garbage line
        // or a message twice has extra lines; merging takes a message only
        // the replica has into the history.
        let lost = Replica { messages: history.messages[..1].to_vec(), bad_lines: 0 };
        assert_eq!(history.compare(&lost), (1, 0));
        std::fs::write(
            &path,
            format!(
                "{}\ngarbage\n{}\n{}\n",
                replica.messages[0].to_line(),
                replica.messages[1].to_line(),
                replica.messages[1].to_line()
            ),
        )
        .unwrap();
        assert_eq!(history.compare(&read_replica(&path)), (0, 2));
        let mut more = history.messages.clone();
        more.push(msg("p3", 2, "d"));
        assert_eq!(history.merge(more.clone()), 1);
        assert_eq!(history.next_id("p3"), 3);
        assert_eq!(history.next_id("p4"), 1);
        // A torn last line after a crash is a bad line.
        std::fs::write(&path, format!("{}\np2\t1", msg("p1", 1, "a").to_line())).unwrap();
        assert_eq!(read_replica(&path), Replica { messages: vec![msg("p1", 1, "a")], bad_lines: 1 });
        assert_eq!(read_replica(&dir.join("missing")), Replica::default());

        // The node's periodic check rewrites a damaged replica.
        let mut node = ChatNode::new(Config { replicas: 2, ..Config::default() }, dir.clone(), dir.clone());
        node.history = history.clone();
        std::fs::write(dir.join("p1.replica2.log"), "garbage\n").unwrap();
        node.repair_replicas("p1");
        for i in 1..=2 {
            let replica = read_replica(&dir.join(format!("p1.replica{i}.log")));
            assert_eq!(history.compare(&replica), (0, 0), "replica {i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mgr-chat-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_checkpoint_reads_back_as_written_and_another_users_or_a_damaged_one_is_refused() {
        let dir = tempdir("checkpoint");
        let path = dir.join("ChatNode").join("brenda.checkpoint.json");
        assert!(Checkpoint::load(&path, "brenda").unwrap().is_none());
        let cp = Checkpoint {
            user: "brenda".into(),
            highest_seq: 7,
            next_id: 3,
            messages: vec![msg("p1", 1, "hello"), msg("brenda", 2, "hi there")],
        };
        cp.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path, "brenda").unwrap(), Some(cp.clone()));
        let err = Checkpoint::load(&path, "carl").unwrap_err().to_string();
        assert!(err.ends_with("is the checkpoint of user 'brenda', not of 'carl'"), "{err}");
        std::fs::write(&path, "{").unwrap();
        assert!(Checkpoint::load(&path, "brenda").unwrap_err().to_string().contains("is damaged"));
        let mut bad = cp.clone();
        bad.messages[0].user = "no one".into();
        std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
        let err = Checkpoint::load(&path, "brenda").unwrap_err().to_string();
        assert!(err.contains("is damaged (message 1 of 'no one' is not a valid message)"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn frames_read_back_as_written() {
        let stamp = Stamp { lamport: 3, vc: vec![1, 2, 0] };
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let frames = [
            Frame::Msg { stamp: stamp.clone(), message: msg("p1", 4, "hello there") },
            Frame::Req { seq: 9, stamp: stamp.clone() },
            Frame::Rep { seq: 9, stamp },
            Frame::Sync,
            Frame::Have(msg("p3", 1, "x y")),
            Frame::Hello { origin: "r/p2".into(), user: "brenda".into(), addr },
            Frame::Leave { origin: "r/p2".into(), user: "brenda".into(), addr },
        ];
        for frame in frames {
            assert_eq!(Frame::decode(frame.encode().as_bytes()), Some(frame));
        }
        assert_eq!(Frame::decode(b"beb 1 hello"), None);
        assert_eq!(Frame::decode(b"chat REQ x 1/"), None);
        assert_eq!(Frame::decode(b"chat HELLO r/p2 no/user 127.0.0.1:1"), None);
        assert_eq!(Frame::decode(b"chat HELLO r/p2 brenda nowhere"), None);
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
        assert_eq!(Config::parse(&args("--user brenda"), None).unwrap().user.as_deref(), Some("brenda"));
        let err = Config::parse_for(&args("--user brenda"), None, 3).unwrap_err().to_string();
        assert!(err.contains("a user is one node, and this role has 3 instances"), "{err}");
        for bad in ["../x", ".hidden", "a/b", &"x".repeat(33)] {
            assert!(Config::parse(&args(&format!("--user {bad}")), None).is_err(), "{bad}");
        }
        // The run's group (MGR_MULTICAST) is the default; --group still wins.
        let run_group = Some("239.7.8.9:4000".parse().unwrap());
        assert_eq!(Config::parse(&[], run_group).unwrap().group, "239.7.8.9:4000".parse().unwrap());
        let c = Config::parse(&args("--group 224.1.1.1:6000"), run_group).unwrap();
        assert_eq!(c.group, "224.1.1.1:6000".parse().unwrap());
    }
}
