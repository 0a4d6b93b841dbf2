//! The multicast lab: peers that multicast numbered messages to each other
//! and a comparator that checks whether they all delivered them in the same
//! order (they do not, without coordination; with `--ordered` they do).
//!
//! This file owns both roles, their frames and their pure logic: the
//! reliable FIFO channel between two peers ([`Channel`]), the Lamport
//! total-order rule ([`TotalOrder`]) and the comparison of orders
//! ([`compare`]). It must not rely on anything but the launch contract: a
//! peer works with the instances of its own role (every instance of the
//! run when it has no roles) and reaches the comparator by its address,
//! `--comparator` or else the instance of role `comparator`, so that the
//! comparator may as well be a run of its own. The protocol is described
//! in `multicast.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::runtime::{self, Command, Context, Contract, Module, RunError, Stamp, Timer, say};

/// How often unacknowledged frames (HELLO, channel frames, orders) are sent again.
const PERIOD: Duration = Duration::from_millis(50);

/// How long a finished process stays to answer retransmissions before it
/// exits even though some of its own frames were never acknowledged (the
/// acknowledgement, not the frame, may be what was lost).
const LINGER: Duration = Duration::from_secs(3);

/// At most this many message ids per ORDER frame, so that a long order
/// still fits in a UDP datagram.
const IDS_PER_FRAME: usize = 400;

/// The stdin commands: the peers take none, their work starts by itself.
const HELP: &str = "  help             this list";

// ----------------------------------------------------------------------------
// Reliable FIFO channel
// ----------------------------------------------------------------------------

/// A reliable FIFO channel to one peer over UDP: every frame gets the next
/// sequence number, is sent again until the peer acknowledges it, and is
/// handed up at the peer in sequence order. The total-order rule needs FIFO
/// channels: once a peer's clock is seen at `t`, nothing it sends later can
/// carry a timestamp at or below `t`.
#[derive(Debug)]
pub struct Channel {
    /// The sequence number of the next frame sent.
    next_seq: u64,
    /// Frames sent and not yet acknowledged, by sequence number.
    unacked: BTreeMap<u64, String>,
    /// The sequence number of the next frame to hand up.
    expected: u64,
    /// Frames that arrived ahead of `expected`.
    early: BTreeMap<u64, String>,
}

impl Default for Channel {
    fn default() -> Channel {
        Channel { next_seq: 1, unacked: BTreeMap::new(), expected: 1, early: BTreeMap::new() }
    }
}

impl Channel {
    /// Numbers `body` and keeps it for retransmission; returns the frame to send.
    pub fn send(&mut self, body: String) -> String {
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = format!("D {seq} {body}");
        self.unacked.insert(seq, frame.clone());
        frame
    }

    /// A `D seq body` frame arrived: returns the bodies now in order and the
    /// cumulative acknowledgement to answer with.
    pub fn receive(&mut self, seq: u64, body: &str) -> (Vec<String>, String) {
        if seq >= self.expected {
            self.early.insert(seq, body.to_owned());
        }
        let mut ready = Vec::new();
        while let Some(body) = self.early.remove(&self.expected) {
            ready.push(body);
            self.expected += 1;
        }
        (ready, format!("A {}", self.expected - 1))
    }

    /// An `A seq` frame arrived: everything up to `seq` got there.
    pub fn acked(&mut self, seq: u64) {
        self.unacked.retain(|s, _| *s > seq);
    }

    /// Whether every frame sent got there.
    pub fn idle(&self) -> bool {
        self.unacked.is_empty()
    }
}

// ----------------------------------------------------------------------------
// Lamport total order
// ----------------------------------------------------------------------------

/// A message waiting in the total-order queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub sender: String,
    /// The message's number at its sender.
    pub k: u64,
    /// The event-log clocks it carried, for the `deliver` event.
    pub stamp: Option<Stamp>,
}

impl Held {
    /// The message's name, `pI:k`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.sender, self.k)
    }
}

/// The rule of Lamport's totally ordered multicast, apart from the network:
/// messages wait ordered by (timestamp, sender), and the head is delivered
/// once every other peer's clock is known to have reached its timestamp.
/// Over FIFO channels a peer whose clock was seen at `t` can only send
/// timestamps above `t` from then on, so nothing can arrive that should
/// come before the head. Every peer answers each message with a CLOCK frame
/// (the algorithm's acknowledgement) so that clocks are seen to move even
/// when a peer has nothing to send; a STOP ends a peer's messages, so its
/// clock counts as infinite.
#[derive(Debug)]
pub struct TotalOrder {
    /// The highest timestamp seen from each other peer.
    seen: BTreeMap<String, u64>,
    /// The waiting messages, by (timestamp, sender, number).
    queue: BTreeMap<(u64, String, u64), Held>,
}

impl TotalOrder {
    /// A queue for the peer `me` among `processes` (its own clock need not be
    /// waited for: what it sends later carries larger timestamps than
    /// anything it has seen).
    pub fn new(me: &str, processes: &[String]) -> TotalOrder {
        let seen = processes.iter().filter(|p| *p != me).map(|p| (p.clone(), 0)).collect();
        TotalOrder { seen, queue: BTreeMap::new() }
    }

    /// A message with timestamp `ts` joins the queue.
    pub fn hold(&mut self, ts: u64, held: Held) {
        self.queue.insert((ts, held.sender.clone(), held.k), held);
    }

    /// A frame from `from` carried timestamp `ts`.
    pub fn heard(&mut self, from: &str, ts: u64) {
        if let Some(seen) = self.seen.get_mut(from) {
            *seen = (*seen).max(ts);
        }
    }

    /// `from` sends nothing more.
    pub fn stopped(&mut self, from: &str) {
        self.heard(from, u64::MAX);
    }

    /// Removes and returns the messages that can be delivered now, in order.
    pub fn deliverable(&mut self) -> Vec<Held> {
        let mut out = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            let ts = entry.key().0;
            if self.seen.values().any(|seen| *seen < ts) {
                break;
            }
            out.push(entry.remove());
        }
        out
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

// ----------------------------------------------------------------------------
// The peer
// ----------------------------------------------------------------------------

/// The peer's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOptions {
    pub msgs: u64,
    pub jitter_ms: u64,
    pub comparator: Option<SocketAddr>,
    pub ordered: bool,
}

impl PeerOptions {
    /// Reads `--msgs K --jitter MS --comparator IP:PORT --ordered`.
    pub fn parse(args: &[String]) -> Result<PeerOptions, RunError> {
        let usage = |what: String| {
            RunError::Usage(format!("{what} (usage: [--msgs K] [--jitter MS] [--comparator IP:PORT] [--ordered])"))
        };
        let mut opts = PeerOptions { msgs: 10, jitter_ms: 0, comparator: None, ordered: false };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            if flag == "--ordered" && inline.is_none() {
                opts.ordered = true;
                continue;
            }
            if !matches!(flag, "--msgs" | "--jitter" | "--comparator") {
                return Err(usage(format!("unexpected argument '{arg}'")));
            }
            let value = match inline {
                Some(value) => value,
                None => args.next().cloned().ok_or_else(|| usage(format!("{flag} needs a value")))?,
            };
            let bad = || usage(format!("{flag}: '{value}' is not valid"));
            match flag {
                "--msgs" => opts.msgs = value.parse().map_err(|_| bad())?,
                "--jitter" => opts.jitter_ms = value.parse().map_err(|_| bad())?,
                _ => opts.comparator = Some(value.parse().map_err(|_| bad())?),
            }
        }
        Ok(opts)
    }
}

/// Where a peer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for READY from every other peer.
    Handshake,
    /// Sending its messages, one per `mc.send` timer.
    Sending,
    /// Its STOP is sent; waiting for everyone else's.
    Waiting,
    /// Its order is printed (and being sent to the comparator).
    Done,
}

/// One peer of the multicast lab.
#[derive(Debug)]
pub struct MulticastPeer {
    opts: PeerOptions,
    /// Where the order goes at the end: `--comparator`, or the instance of
    /// role `comparator`.
    comparator: SocketAddr,
    me: String,
    /// The other peers: the other instances of this one's role.
    others: Vec<String>,
    phase: Phase,
    /// Peers that answered the handshake (READY, or a HELLO of their own).
    ready: BTreeSet<String>,
    channels: BTreeMap<String, Channel>,
    /// Messages sent so far (the next one is `sent + 1`).
    sent: u64,
    stops: BTreeSet<String>,
    /// The algorithm's Lamport clock (the event log keeps its own for the
    /// diagrams; this one is the one the frames carry and the order uses).
    clock: u64,
    total: TotalOrder,
    /// What this peer delivered, in order.
    order: Vec<String>,
    /// The ORDER frames the comparator has not acknowledged, by part.
    order_frames: BTreeMap<usize, String>,
}

impl MulticastPeer {
    pub fn new(opts: PeerOptions, comparator: SocketAddr) -> MulticastPeer {
        MulticastPeer {
            opts,
            comparator,
            me: String::new(),
            others: Vec::new(),
            phase: Phase::Handshake,
            ready: BTreeSet::new(),
            channels: BTreeMap::new(),
            sent: 0,
            stops: BTreeSet::new(),
            clock: 0,
            total: TotalOrder::new("", &[]),
            order: Vec::new(),
            order_frames: BTreeMap::new(),
        }
    }

    fn send_to(ctx: &Context, peer: &str, frame: &str) {
        if let Some(addr) = ctx.contract.peer_addr(peer) {
            ctx.send_datagram(addr, frame.as_bytes());
        }
    }

    /// Sends `body` over the reliable channel to `peer`.
    fn send_reliably(&mut self, ctx: &Context, peer: &str, body: String) {
        let frame = self.channels.entry(peer.to_owned()).or_default().send(body);
        Self::send_to(ctx, peer, &frame);
    }

    fn say_hello(&self, ctx: &Context) {
        for q in self.others.iter().filter(|q| !self.ready.contains(*q)) {
            Self::send_to(ctx, q, "HELLO");
        }
    }

    /// Starts sending once every other peer answered the handshake.
    fn maybe_start(&mut self, ctx: &mut Context) {
        if self.phase == Phase::Handshake && self.ready.len() == self.others.len() {
            self.phase = Phase::Sending;
            self.schedule_send(ctx);
        }
    }

    fn schedule_send(&self, ctx: &mut Context) {
        let delay = if self.opts.jitter_ms == 0 { 0 } else { rand::random_range(0..=self.opts.jitter_ms) };
        ctx.start_timer("mc.send", Duration::from_millis(delay));
    }

    /// Sends the next message to every peer (or, after the last, the STOP).
    fn send_next(&mut self, ctx: &mut Context) {
        if self.sent == self.opts.msgs {
            self.clock += 1;
            for q in self.others.clone() {
                self.send_reliably(ctx, &q, format!("STOP {}", self.clock));
            }
            self.phase = Phase::Waiting;
            self.maybe_finish(ctx);
            return;
        }
        self.sent += 1;
        self.clock += 1;
        let (k, ts) = (self.sent, self.clock);
        let id = format!("{}:{k}", self.me);
        ctx.events.record("multicast", None, Some(k), Some(&id));
        for q in self.others.clone() {
            let stamp = ctx.events.send(&q, Some(k), &id);
            self.send_reliably(ctx, &q, format!("MSG {ts} {k} {}", stamp.encode()));
        }
        let me = self.me.clone();
        if self.opts.ordered {
            self.total.hold(ts, Held { sender: me, k, stamp: None });
            self.deliver_ordered(ctx);
        } else {
            self.deliver(ctx, Held { sender: me, k, stamp: None });
        }
        self.schedule_send(ctx);
    }

    fn deliver(&mut self, ctx: &mut Context, held: Held) {
        let id = held.id();
        ctx.deliver(&held.sender, Some(held.k), held.stamp.as_ref(), &id);
        self.order.push(id);
    }

    fn deliver_ordered(&mut self, ctx: &mut Context) {
        for held in self.total.deliverable() {
            self.deliver(ctx, held);
        }
    }

    /// A body from `from`'s channel, in FIFO order.
    fn upon_body(&mut self, ctx: &mut Context, from: &str, body: &str) {
        let words: Vec<&str> = body.split_whitespace().collect();
        let ts = words.get(1).and_then(|w| w.parse::<u64>().ok());
        let Some(ts) = ts else {
            eprintln!("multicast: dropped a malformed frame from {from}: {body:?}");
            return;
        };
        self.clock = self.clock.max(ts) + 1;
        match words[0] {
            "MSG" => {
                let Some(k) = words.get(2).and_then(|w| w.parse::<u64>().ok()) else {
                    eprintln!("multicast: dropped a message without a number from {from}: {body:?}");
                    return;
                };
                let stamp = words.get(3).and_then(|w| Stamp::decode(w));
                let held = Held { sender: from.to_owned(), k, stamp };
                if self.opts.ordered {
                    self.total.hold(ts, held);
                    self.total.heard(from, ts);
                    // The acknowledgement: everyone learns that this
                    // peer's clock passed the message's timestamp.
                    self.clock += 1;
                    for q in self.others.clone() {
                        self.send_reliably(ctx, &q, format!("CLOCK {}", self.clock));
                    }
                    self.deliver_ordered(ctx);
                } else {
                    self.deliver(ctx, held);
                }
            }
            "CLOCK" => {
                self.total.heard(from, ts);
                self.deliver_ordered(ctx);
            }
            "STOP" => {
                self.stops.insert(from.to_owned());
                self.total.stopped(from);
                self.deliver_ordered(ctx);
                self.maybe_finish(ctx);
            }
            _ => eprintln!("multicast: dropped an unknown frame from {from}: {body:?}"),
        }
    }

    /// Prints the order once every peer stopped and everything is delivered.
    fn maybe_finish(&mut self, ctx: &mut Context) {
        if self.phase != Phase::Waiting || self.stops.len() < self.others.len() || !self.total.is_empty() {
            return;
        }
        self.phase = Phase::Done;
        ctx.indicate("order", None, &self.order.join(" "));
        // The report of the order to the comparator, as an event: with the
        // comparator's `reported` once it has the whole order, it is drawn
        // as an arrow.
        let comparator =
            ctx.contract.peer_name(self.comparator).map_or_else(|| self.comparator.to_string(), str::to_owned);
        ctx.events.record("report", Some(&comparator), None, None);
        let parts: Vec<&[String]> = self.order.chunks(IDS_PER_FRAME).collect();
        let count = parts.len().max(1);
        for part in 0..count {
            let ids = parts.get(part).map(|ids| ids.join(" ")).unwrap_or_default();
            let frame = format!("ORDER {} {part} {count} {ids}", self.me);
            self.order_frames.insert(part, frame.trim_end().to_owned());
        }
        self.send_order(ctx);
        ctx.start_timer("mc.linger", LINGER);
    }

    fn send_order(&self, ctx: &Context) {
        for frame in self.order_frames.values() {
            ctx.send_datagram(self.comparator, frame.as_bytes());
        }
    }

    /// Exits once done, its order acknowledged and, unless `lingered`, every
    /// frame it sent acknowledged too (so no peer still waits for it).
    fn maybe_exit(&self, lingered: bool) {
        let all_acked = self.channels.values().all(Channel::idle);
        if self.phase == Phase::Done && self.order_frames.is_empty() && (all_acked || lingered) {
            std::process::exit(0);
        }
    }
}

impl Module for MulticastPeer {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        self.me = ctx.self_name().to_owned();
        let processes: Vec<String> = ctx.contract.role_peers().into_iter().map(|(name, _)| name).collect();
        self.others = processes.iter().filter(|p| **p != self.me).cloned().collect();
        self.total = TotalOrder::new(&self.me, &processes);
        self.say_hello(ctx);
        ctx.start_timer("mc.retransmit", PERIOD);
        self.maybe_start(ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        ctx.refuse(&command, HELP);
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else { return };
        if let Some(rest) = text.strip_prefix("ORDERACK ") {
            if from == self.comparator
                && let Some(part) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok())
            {
                self.order_frames.remove(&part);
                self.maybe_exit(false);
            }
            return;
        }
        // Only the instances of this peer's role take part: another role of
        // the run (the comparator) is no peer to handshake or order with.
        let Some(peer) = ctx.contract.peer_name(from).map(str::to_owned) else {
            eprintln!("multicast: dropped a frame from {from}, not an instance of this run");
            return;
        };
        if !ctx.contract.is_role_peer(&peer) {
            let role = ctx.contract.role_of(&peer).unwrap_or("none");
            eprintln!("multicast: dropped a frame from {peer} (role {role}), not a peer of this one's role");
            return;
        }
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        match verb {
            "HELLO" | "READY" => {
                if verb == "HELLO" {
                    Self::send_to(ctx, &peer, "READY");
                }
                self.ready.insert(peer);
                self.maybe_start(ctx);
            }
            "D" => {
                let Some((seq, body)) = rest.split_once(' ').and_then(|(s, b)| Some((s.parse::<u64>().ok()?, b)))
                else {
                    return;
                };
                let (bodies, ack) = self.channels.entry(peer.clone()).or_default().receive(seq, body);
                Self::send_to(ctx, &peer, &ack);
                for body in bodies {
                    self.upon_body(ctx, &peer, &body);
                }
            }
            "A" => {
                if let Ok(seq) = rest.trim().parse() {
                    self.channels.entry(peer).or_default().acked(seq);
                    self.maybe_exit(false);
                }
            }
            _ => eprintln!("multicast: dropped an unknown frame from {peer}: {text:?}"),
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        match timer {
            "mc.send" => self.send_next(ctx),
            "mc.linger" => self.maybe_exit(true),
            "mc.retransmit" => {
                if self.phase == Phase::Handshake {
                    self.say_hello(ctx);
                }
                for (q, channel) in &self.channels {
                    for frame in channel.unacked.values() {
                        Self::send_to(ctx, q, frame);
                    }
                }
                self.send_order(ctx);
                ctx.start_timer("mc.retransmit", PERIOD);
            }
            _ => {}
        }
    }
}

/// The role whose (first) instance is the comparator when `--comparator` is not given.
pub const COMPARATOR_ROLE: &str = "comparator";
/// The role whose instances the comparator expects orders from when `--peers` is not given.
pub const PEER_ROLE: &str = "peer";

/// Where a peer sends its order: `--comparator`, else the first instance of
/// role `comparator` of its run.
pub fn comparator_addr(opts: &PeerOptions, contract: &Contract) -> Result<SocketAddr, RunError> {
    if let Some(addr) = opts.comparator {
        return Ok(addr);
    }
    match contract.first_of_role(COMPARATOR_ROLE) {
        Some((_, addr)) => Ok(addr),
        None => Err(RunError::Usage(format!(
            "no comparator: give --comparator IP:PORT, or run the peers with a role '{COMPARATOR_ROLE}' in the same run (MGR_ROLES {})",
            if contract.roles.is_empty() {
                "is not set".to_owned()
            } else {
                format!("has roles {}", role_names(contract))
            }
        ))),
    }
}

/// The run's role names, for messages.
fn role_names(contract: &Contract) -> String {
    let names: Vec<&str> = contract.roles.iter().map(|(name, _)| name.as_str()).collect();
    names.join(", ")
}

/// Runs a peer: `mgr-modules MulticastPeer [--msgs K] [--jitter MS] [--comparator IP:PORT] [--ordered]`.
pub fn run_peer(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let opts = PeerOptions::parse(args)?;
    let comparator = comparator_addr(&opts, &contract)?;
    runtime::run(contract, MulticastPeer::new(opts, comparator))
}

// ----------------------------------------------------------------------------
// The comparator
// ----------------------------------------------------------------------------

/// The first position (1-based) where two orders differ, with what each has
/// there (`None` past its end); `None` when they are the same.
pub fn first_divergence<'a>(a: &'a [String], b: &'a [String]) -> Option<(usize, Option<&'a str>, Option<&'a str>)> {
    let len = a.len().max(b.len());
    (0..len).find_map(|i| {
        let (x, y) = (a.get(i).map(String::as_str), b.get(i).map(String::as_str));
        (x != y).then_some((i + 1, x, y))
    })
}

/// The comparator's report on complete orders, one line each: `agree: …`,
/// or a `diverge: …` line per pair that differs; then `verdict agree|diverge`.
pub fn compare(orders: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut lines = Vec::new();
    let peers: Vec<(&String, &Vec<String>)> = orders.iter().collect();
    for (i, (pa, a)) in peers.iter().enumerate() {
        for (pb, b) in &peers[i + 1..] {
            if let Some((pos, x, y)) = first_divergence(a, b) {
                let (x, y) = (x.unwrap_or("(end)"), y.unwrap_or("(end)"));
                lines.push(format!("diverge: {pa} and {pb} first differ at position {pos} ({pa}: {x}, {pb}: {y})"));
            }
        }
    }
    if lines.is_empty() {
        let m = peers.first().map_or(0, |(_, order)| order.len());
        lines.push(format!("agree: all {} peers delivered the same {m} messages in the same order", peers.len()));
        lines.push("verdict agree".to_owned());
    } else {
        lines.push("verdict diverge".to_owned());
    }
    lines
}

/// The most message ids one TCP order may hold: far more than a lab sends,
/// and a bound on what a stray client can make the comparator keep.
pub const MAX_STREAM_IDS: usize = 1_000_000;

/// The comparator: collects `--peers N` orders, acknowledging each frame,
/// reports, then lingers to acknowledge retransmissions and exits 0.
#[derive(Debug)]
pub struct MulticastComparator {
    expected: usize,
    /// Parts received so far, by peer: (part count, parts).
    parts: BTreeMap<String, (usize, BTreeMap<usize, Vec<String>>)>,
    /// Orders coming over TCP, by connection: the peer named by the
    /// `ORDER pI` line, and the ids so far.
    streams: BTreeMap<u64, (Option<String>, Vec<String>)>,
    /// TCP streams refused for a bad line: the rest of them is ignored.
    refused: BTreeSet<u64>,
    reported: bool,
}

impl MulticastComparator {
    pub fn new(expected: usize) -> MulticastComparator {
        MulticastComparator {
            expected,
            parts: BTreeMap::new(),
            streams: BTreeMap::new(),
            refused: BTreeSet::new(),
            reported: false,
        }
    }

    /// Takes an `ORDER peer part count ids…` frame; returns the acknowledgement.
    pub fn receive(&mut self, frame: &str) -> Option<String> {
        let mut words = frame.split_whitespace();
        let (Some("ORDER"), Some(peer)) = (words.next(), words.next()) else { return None };
        let part: usize = words.next()?.parse().ok()?;
        let count: usize = words.next()?.parse().ok()?;
        let ids = words.map(str::to_owned).collect();
        let entry = self.parts.entry(peer.to_owned()).or_insert_with(|| (count, BTreeMap::new()));
        entry.1.entry(part).or_insert(ids);
        Some(format!("ORDERACK {peer} {part}"))
    }

    /// Takes one line of the TCP stream `conn`: first `ORDER pI`, then
    /// message ids (one or more a line). An error says why the line (and
    /// the rest of the stream) is refused; it is said once a stream.
    pub fn stream_line(&mut self, conn: u64, line: &str) -> Result<(), String> {
        if self.refused.contains(&conn) {
            return Ok(());
        }
        let refused = self.stream_fields(conn, line);
        if refused.is_err() {
            self.streams.remove(&conn);
            self.refused.insert(conn);
        }
        refused
    }

    fn stream_fields(&mut self, conn: u64, line: &str) -> Result<(), String> {
        let (peer, ids) = self.streams.entry(conn).or_default();
        let mut words = line.split_whitespace();
        match peer {
            None => match (words.next(), words.next(), words.next()) {
                (Some("ORDER"), Some(name), None) => *peer = Some(name.to_owned()),
                (None, ..) => {}
                _ => return Err(format!("the first line must be 'ORDER <peer>', not '{line}'")),
            },
            Some(name) => {
                ids.extend(words.map(str::to_owned));
                if ids.len() > MAX_STREAM_IDS {
                    return Err(format!("the order of {name} is over {MAX_STREAM_IDS} messages"));
                }
            }
        }
        Ok(())
    }

    /// The TCP stream `conn` ended: its order is whole. Returns the peer,
    /// or `None` for a stream that never named one (or was refused).
    pub fn stream_end(&mut self, conn: u64) -> Option<String> {
        self.refused.remove(&conn);
        let (peer, ids) = self.streams.remove(&conn)?;
        let peer = peer?;
        // As on UDP, the first complete order of a peer is the one kept.
        self.parts.entry(peer.clone()).or_insert_with(|| (1, BTreeMap::from([(0, ids)])));
        Some(peer)
    }

    /// The orders complete so far.
    pub fn complete(&self) -> BTreeMap<String, Vec<String>> {
        self.parts
            .iter()
            .filter(|(_, (count, parts))| parts.len() >= *count)
            .map(|(peer, (_, parts))| (peer.clone(), parts.values().flatten().cloned().collect()))
            .collect()
    }

    /// After an order of `peer` arrived whole (`before` orders were whole
    /// until then): records the report and, once all are in, compares.
    fn upon_order(&mut self, ctx: &mut Context, peer: &str, before: usize) {
        let orders = self.complete();
        if orders.len() > before {
            // A peer's order is now whole: the receipt of its report.
            ctx.events.record("reported", Some(peer), None, None);
        }
        if self.reported || orders.len() < self.expected {
            return;
        }
        self.reported = true;
        for (peer, order) in &orders {
            say(format_args!("order {peer} {}", order.join(" ")));
        }
        let lines = compare(&orders);
        let (verdict, report) = lines.split_last().expect("compare always ends with a verdict");
        for line in report {
            say(line);
        }
        ctx.indicate("verdict", None, verdict.trim_start_matches("verdict "));
        // Late retransmissions (an acknowledgement lost) still get answered
        // for a while before the comparator exits.
        ctx.start_timer("cmp.linger", LINGER);
    }
}

impl Module for MulticastComparator {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        ctx.refuse(&command, HELP);
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        let before = self.complete().len();
        let Some(ack) = std::str::from_utf8(payload).ok().and_then(|frame| self.receive(frame)) else {
            eprintln!("comparator: dropped a frame from {from} that is not an ORDER");
            return;
        };
        ctx.send_datagram(from, ack.as_bytes());
        let peer = ack.split_whitespace().nth(1).unwrap_or_default().to_owned();
        self.upon_order(ctx, &peer, before);
    }

    fn tcp(&self) -> Option<runtime::Service> {
        Some(runtime::Service::Lines)
    }

    fn upon_stream_line(&mut self, _ctx: &mut Context, conn: u64, from: SocketAddr, line: &str) {
        if let Err(why) = self.stream_line(conn, line) {
            say(format_args!("error: order from {from} refused: {why}"));
        }
    }

    fn upon_stream_end(&mut self, ctx: &mut Context, conn: u64, from: SocketAddr) {
        let before = self.complete().len();
        let refused = self.refused.contains(&conn);
        match self.stream_end(conn) {
            Some(peer) => self.upon_order(ctx, &peer, before),
            None if refused => {}
            None => say(format_args!("error: a connection from {from} ended without an 'ORDER <peer>' line")),
        }
    }

    fn upon_timeout(&mut self, _ctx: &mut Context, timer: Timer<'_>) {
        if timer == "cmp.linger" {
            std::process::exit(0);
        }
    }
}

/// How many orders the comparator expects: `--peers N`, else (in a run
/// with roles) the number of instances of role `peer`.
pub fn expected_peers(args: &[String], contract: &Contract) -> Result<usize, RunError> {
    let usage = |what: String| RunError::Usage(format!("{what} (usage: [--peers N])"));
    let value = match args {
        [flag, value] if flag == "--peers" => value.as_str(),
        [arg] if arg.starts_with("--peers=") => &arg["--peers=".len()..],
        [] => {
            let peers = contract.role_instances(PEER_ROLE).len();
            if peers > 0 {
                return Ok(peers);
            }
            let why = if contract.roles.is_empty() {
                "MGR_ROLES is not set".to_owned()
            } else {
                format!("the run has no role '{PEER_ROLE}' (roles {})", role_names(contract))
            };
            return Err(usage(format!("--peers N is required: {why}")));
        }
        _ => return Err(usage(format!("unexpected arguments '{}'", args.join(" ")))),
    };
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| usage(format!("--peers: '{value}' is not a positive number")))
}

/// Runs the comparator: `mgr-modules MulticastComparator [--peers N]`.
pub fn run_comparator(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let n = expected_peers(args, &contract)?;
    runtime::run(contract, MulticastComparator::new(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    fn held(sender: &str, k: u64) -> Held {
        Held { sender: sender.to_owned(), k, stamp: None }
    }

    #[test]
    fn the_channel_hands_frames_up_in_order_once_and_retransmits_until_acked() {
        let (mut a, mut b) = (Channel::default(), Channel::default());
        let f1 = a.send("one".into());
        let f2 = a.send("two".into());
        assert_eq!((f1.as_str(), f2.as_str()), ("D 1 one", "D 2 two"));
        assert_eq!(b.receive(2, "two"), (vec![], "A 0".to_owned()));
        assert_eq!(b.receive(1, "one"), (names(&["one", "two"]), "A 2".to_owned()));
        assert_eq!(b.receive(1, "one"), (vec![], "A 2".to_owned()));
        a.acked(1);
        assert!(!a.idle());
        a.acked(2);
        assert!(a.idle());
    }

    /// Feeds one peer's view of the run: each event is (from, frame kind,
    /// timestamp, number); returns what it delivered.
    fn run_total_order(me: &str, events: &[(&str, &str, u64, u64)]) -> Vec<String> {
        let processes = names(&["p1", "p2", "p3"]);
        let mut total = TotalOrder::new(me, &processes);
        let mut out = Vec::new();
        for (from, kind, ts, k) in events {
            match *kind {
                "MSG" => {
                    total.hold(*ts, held(from, *k));
                    total.heard(from, *ts);
                }
                "CLOCK" => total.heard(from, *ts),
                _ => total.stopped(from),
            }
            out.extend(total.deliverable().iter().map(Held::id));
        }
        assert!(total.is_empty());
        out
    }

    #[test]
    fn the_ordered_variant_delivers_in_one_total_order_whatever_the_arrival_order() {
        // p1 sends at 1 and 4, p2 at 1 and 2, p3 at 3; p3's own messages are
        // held when sent, like any peer's.
        let at_p3 = run_total_order(
            "p3",
            &[
                ("p3", "MSG", 3, 1),
                ("p2", "MSG", 1, 1),
                ("p2", "MSG", 2, 2),
                ("p1", "MSG", 1, 1),
                ("p1", "CLOCK", 3, 0),
                ("p2", "STOP", 5, 0),
                ("p1", "MSG", 4, 2),
                ("p1", "STOP", 6, 0),
            ],
        );
        let at_p1 = run_total_order(
            "p1",
            &[
                ("p1", "MSG", 1, 1),
                ("p3", "MSG", 3, 1),
                ("p1", "MSG", 4, 2),
                ("p2", "MSG", 1, 1),
                ("p3", "STOP", 7, 0),
                ("p2", "MSG", 2, 2),
                ("p2", "STOP", 5, 0),
            ],
        );
        let want = names(&["p1:1", "p2:1", "p2:2", "p3:1", "p1:2"]);
        assert_eq!(at_p3, want);
        assert_eq!(at_p1, want);
    }

    #[test]
    fn the_head_waits_until_every_other_clock_passed_it() {
        let mut total = TotalOrder::new("p1", &names(&["p1", "p2", "p3"]));
        total.hold(2, held("p2", 1));
        total.heard("p2", 2);
        assert!(total.deliverable().is_empty(), "p3 might still send something stamped 1");
        total.heard("p3", 1);
        assert!(total.deliverable().is_empty());
        total.hold(2, held("p3", 1));
        total.heard("p3", 2);
        assert_eq!(total.deliverable().iter().map(Held::id).collect::<Vec<_>>(), ["p2:1", "p3:1"]);
    }

    #[test]
    fn the_comparator_finds_the_first_divergence_of_each_pair() {
        let a = names(&["p1:1", "p2:1", "p3:1"]);
        let b = names(&["p1:1", "p3:1", "p2:1"]);
        assert_eq!(first_divergence(&a, &a), None);
        assert_eq!(first_divergence(&a, &b), Some((2, Some("p2:1"), Some("p3:1"))));
        assert_eq!(first_divergence(&a, &a[..2]), Some((3, Some("p3:1"), None)));

        let mut orders = BTreeMap::new();
        orders.insert("p1".to_owned(), a.clone());
        orders.insert("p2".to_owned(), a.clone());
        assert_eq!(
            compare(&orders),
            ["agree: all 2 peers delivered the same 3 messages in the same order", "verdict agree"]
        );
        orders.insert("p3".to_owned(), b);
        assert_eq!(
            compare(&orders),
            [
                "diverge: p1 and p3 first differ at position 2 (p1: p2:1, p3: p3:1)",
                "diverge: p2 and p3 first differ at position 2 (p2: p2:1, p3: p3:1)",
                "verdict diverge",
            ]
        );
    }

    #[test]
    fn the_comparator_reassembles_orders_sent_in_parts() {
        let mut cmp = MulticastComparator::new(1);
        assert_eq!(cmp.receive("ORDER p1 1 2 c").as_deref(), Some("ORDERACK p1 1"));
        assert!(cmp.complete().is_empty());
        assert_eq!(cmp.receive("ORDER p1 0 2 a b").as_deref(), Some("ORDERACK p1 0"));
        assert_eq!(cmp.complete()["p1"], names(&["a", "b", "c"]));
        assert_eq!(cmp.receive("HELLO"), None);
    }

    #[test]
    fn the_comparator_takes_orders_as_tcp_lines_and_refuses_a_stream_without_a_name() {
        let mut cmp = MulticastComparator::new(2);
        cmp.stream_line(1, "ORDER p1").unwrap();
        cmp.stream_line(1, "p1:1").unwrap();
        cmp.stream_line(1, "p2:1 p1:2").unwrap();
        cmp.stream_line(1, "").unwrap();
        assert!(cmp.complete().is_empty(), "an order is whole at the end of its stream");
        assert_eq!(cmp.stream_end(1).as_deref(), Some("p1"));
        assert_eq!(cmp.complete()["p1"], names(&["p1:1", "p2:1", "p1:2"]));
        // A stream that does not start with its name is refused once, and
        // whatever it sends after is dropped.
        let err = cmp.stream_line(2, "p2:1 p1:1").unwrap_err();
        assert!(err.contains("ORDER <peer>"), "{err}");
        cmp.stream_line(2, "ORDER p2").unwrap();
        assert_eq!(cmp.stream_end(2), None);
        assert_eq!(cmp.complete().len(), 1);
        // UDP and TCP orders count together.
        cmp.receive("ORDER p2 0 1 p2:1 p1:1");
        assert_eq!(cmp.complete().len(), 2);
    }

    #[test]
    fn peer_arguments_parse_with_defaults() {
        let opts = PeerOptions::parse(&[]).unwrap();
        assert_eq!(opts, PeerOptions { msgs: 10, jitter_ms: 0, comparator: None, ordered: false });
        let args = names(&["--msgs", "20", "--jitter=5", "--comparator", "127.0.0.1:9", "--ordered"]);
        let opts = PeerOptions::parse(&args).unwrap();
        assert_eq!(opts.msgs, 20);
        assert_eq!(opts.jitter_ms, 5);
        assert_eq!(opts.comparator, Some("127.0.0.1:9".parse().unwrap()));
        assert!(opts.ordered);
        assert!(PeerOptions::parse(&names(&["--msgs"])).is_err());
        assert!(PeerOptions::parse(&names(&["--what"])).is_err());
    }

    #[test]
    fn the_comparator_is_the_argument_or_the_instance_of_role_comparator() {
        use crate::runtime::contract::for_tests;
        let roles = for_tests("p1", 5, Some("peer=p1,p2,p3,p4;comparator=p5"));
        let given = PeerOptions::parse(&names(&["--comparator", "10.0.0.1:9"])).unwrap();
        assert_eq!(comparator_addr(&given, &roles).unwrap(), "10.0.0.1:9".parse().unwrap());
        let none = PeerOptions::parse(&[]).unwrap();
        assert_eq!(comparator_addr(&none, &roles).unwrap(), "127.0.0.1:7005".parse().unwrap());
        let err = comparator_addr(&none, &for_tests("p1", 4, None)).unwrap_err().to_string();
        assert!(
            err.starts_with("no comparator: give --comparator IP:PORT") && err.contains("MGR_ROLES is not set"),
            "{err}"
        );
        let err = comparator_addr(&none, &for_tests("p1", 4, Some("peer=p1,p2;other=p3,p4"))).unwrap_err().to_string();
        assert!(err.contains("has roles peer, other"), "{err}");
        // The peers are the instances of the peer role, not the comparator.
        assert_eq!(roles.role_peers().len(), 4);
        assert!(!roles.is_role_peer("p5"));
    }

    #[test]
    fn the_comparator_expects_as_many_orders_as_the_peer_role_has_instances() {
        use crate::runtime::contract::for_tests;
        let roles = for_tests("p5", 5, Some("peer=p1,p2,p3,p4;comparator=p5"));
        assert_eq!(expected_peers(&[], &roles).unwrap(), 4);
        assert_eq!(expected_peers(&names(&["--peers", "2"]), &roles).unwrap(), 2);
        assert_eq!(expected_peers(&names(&["--peers=3"]), &for_tests("p1", 1, None)).unwrap(), 3);
        let err = expected_peers(&[], &for_tests("p1", 1, None)).unwrap_err().to_string();
        assert_eq!(err, "--peers N is required: MGR_ROLES is not set (usage: [--peers N])");
        let err = expected_peers(&[], &for_tests("p1", 2, Some("a=p1;b=p2"))).unwrap_err().to_string();
        assert!(err.contains("the run has no role 'peer' (roles a, b)"), "{err}");
        assert!(expected_peers(&names(&["--peers", "0"]), &roles).is_err());
        assert!(expected_peers(&names(&["--what"]), &roles).is_err());
    }
}
