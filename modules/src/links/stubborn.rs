#![doc = include_str!("stubborn.md")]
//!
//! # Implementation notes
//!
//! The book assumes messages are unique; on the wire each message therefore
//! carries the sender's id for it. A fair-loss payload of this link is the
//! plain-text frame
//!
//! ```text
//! <id> <lamport> <text>
//! ```
//!
//! where `id` counts the messages sent by this process (1, 2, …) and
//! `lamport` is the sender's Lamport clock at the send, so `1 1 hello` is the
//! first message. Frames can be typed by hand with `nc -u`. A payload that is
//! not a frame is reported on stderr and dropped, since no process of the run
//! sent it (SL2, no creation).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::fair_loss::FairLossPointToPointLink;
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Stamp, Timer};

/// The default retransmission period Δ.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(500);

/// The stdin commands of the links built on fair-loss links.
pub const HELP: &str = "  send q text   send text to process q, e.g. send p2 hello\n  help          this list";

/// A message of the stubborn and perfect links: the text plus what makes it
/// unique (`id`, per sender) and the sender's clocks at the send (`stamp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub stamp: Stamp,
    pub text: String,
}

/// What travels in one fair-loss datagram of these links. A link used as a
/// component is a named instance (`beb`, `pfd`…), and its frames start with
/// that name and a colon, so that several links can share one process and
/// one socket, each taking only its own frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `[<instance>:]<id> <stamp> <text>`: a message.
    Data(Message),
    /// `[<instance>:]ack <id>`: the receiver has the message `id`
    /// (acknowledged mode only).
    Ack(u64),
}

impl Frame {
    pub fn encode(&self, instance: &str) -> String {
        let tag = if instance.is_empty() { String::new() } else { format!("{instance}:") };
        match self {
            Frame::Data(m) => format!("{tag}{} {} {}", m.id, m.stamp.encode(), m.text),
            Frame::Ack(id) => format!("{tag}ack {id}"),
        }
    }

    /// Reads a frame of `instance`; `None` for a frame of another instance
    /// or one that is not a frame at all.
    pub fn decode(frame: &str, instance: &str) -> Option<Frame> {
        let frame = if instance.is_empty() { frame } else { frame.strip_prefix(instance)?.strip_prefix(':')? };
        let mut parts = frame.splitn(3, ' ');
        let first = parts.next()?;
        if first == "ack" {
            return Some(Frame::Ack(parts.next()?.parse().ok()?));
        }
        let id = first.parse().ok()?;
        let stamp = Stamp::decode(parts.next()?)?;
        let text = parts.next().unwrap_or("").to_owned();
        Some(Frame::Data(Message { id, stamp, text }))
    }
}

/// Implements: StubbornPointToPointLinks, instance sl.
/// Uses: FairLossPointToPointLinks, instance fll.
#[derive(Debug)]
pub struct StubbornPointToPointLink {
    fll: FairLossPointToPointLink,
    /// The book's `sent`: every (q, m) sent and still retransmitted, by
    /// (q, id) so that an acknowledgement removes its message at once.
    sent: BTreeMap<(String, u64), Message>,
    /// Δ.
    period: Duration,
    /// Retransmit until acknowledged instead of forever (see `new`).
    acked: bool,
    /// The instance name that tags this link's frames ("" standing alone).
    instance: String,
    /// The retransmission timer's name.
    timer: String,
}

impl StubbornPointToPointLink {
    /// The book's `upon event ⟨ sl, Init ⟩` sets `sent := ∅`; the timer is
    /// started in `upon_init`, when the runtime is there to run it. With
    /// `acked`, a message is retransmitted until its receiver acknowledges
    /// it rather than forever: the properties of the links built on it are
    /// the same, and the cost of a long run stays bounded.
    ///
    /// `instance` names the link when it is a component (see [`Frame`]);
    /// "" for the link as a module of its own.
    pub fn new(instance: &str, period: Duration, acked: bool) -> StubbornPointToPointLink {
        StubbornPointToPointLink {
            fll: FairLossPointToPointLink::default(),
            sent: BTreeMap::new(),
            period,
            acked,
            instance: instance.to_owned(),
            timer: format!("{instance}.sl.retransmit"),
        }
    }

    /// Whether a datagram's payload is a frame of this link instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.instance.is_empty()
            || payload.strip_prefix(self.instance.as_bytes()).is_some_and(|rest| rest.first() == Some(&b':'))
    }

    /// `upon event ⟨ sl, Init ⟩`: `starttimer(Δ)`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        ctx.start_timer(&self.timer, self.period);
    }

    /// `upon event ⟨ Timeout ⟩`: send every message again, then restart the
    /// timer. Returns false for a timer that is not the link's.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        if timer != self.timer {
            return false;
        }
        for ((q, _), m) in &self.sent {
            self.fll.upon_send(ctx, q, &Frame::Data(m.clone()).encode(&self.instance));
        }
        ctx.start_timer(&self.timer, self.period);
        true
    }

    /// `upon event ⟨ sl, Send | q, m ⟩`.
    pub fn upon_send(&mut self, ctx: &mut Context, q: &str, m: Message) {
        self.fll.upon_send(ctx, q, &Frame::Data(m.clone()).encode(&self.instance));
        self.sent.insert((q.to_owned(), m.id), m);
    }

    /// `upon event ⟨ fll, Deliver | p, m ⟩`: returns `⟨ sl, Deliver | p, m ⟩`.
    pub fn upon_fll_deliver(&mut self, ctx: &mut Context, p: String, frame: &str) -> Option<(String, Message)> {
        match Frame::decode(frame, &self.instance) {
            Some(Frame::Data(m)) => {
                if self.acked {
                    self.fll.upon_send(ctx, &p, &Frame::Ack(m.id).encode(&self.instance));
                }
                Some((p, m))
            }
            Some(Frame::Ack(id)) => {
                self.sent.remove(&(p, id));
                None
            }
            None => {
                eprintln!("sl: dropped a datagram from {p} that is not '<id> <stamp> <text>': {frame:?}");
                None
            }
        }
    }

    /// A datagram arrived: passes it up through fll, returning `⟨ sl, Deliver | p, m ⟩` if any.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<(String, Message)> {
        let (p, frame) = self.fll.receive(ctx, from, payload);
        self.upon_fll_deliver(ctx, p, &frame)
    }
}

/// Turns a text for `to` into a new message: a fresh id, and the clocks
/// taken when the send is logged.
pub fn new_message(ctx: &mut Context, to: &str, text: String) -> Message {
    let id = ctx.new_message_id();
    let stamp = ctx.events.send(to, Some(id), &text);
    Message { id, stamp, text }
}

/// The stubborn link as a module of its own, with the user as the layer
/// above: the book's Retransmit Forever.
impl Module for StubbornPointToPointLink {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        StubbornPointToPointLink::upon_init(self, ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match (command.verb.as_str(), command.target_and_text()) {
            ("send", Some((to, text))) => {
                if ctx.check_peer(to) {
                    let m = new_message(ctx, to, text.to_owned());
                    self.upon_send(ctx, to, m);
                }
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        if let Some((p, m)) = self.receive(ctx, from, payload) {
            ctx.deliver(&p, Some(m.id), Some(&m.stamp), &m.text);
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        StubbornPointToPointLink::upon_timeout(self, ctx, timer);
    }
}

/// Reads `--period-ms N` (also `--period-ms=N`), the only argument of the
/// stubborn link and of the links built on it.
pub(crate) fn parse_period(args: &[String]) -> Result<Duration, RunError> {
    parse_period_or(args, DEFAULT_PERIOD)
}

/// [`parse_period`] with another default, for modules built on links.
pub(crate) fn parse_period_or(args: &[String], default: Duration) -> Result<Duration, RunError> {
    let usage = |what: String| RunError::Usage(format!("{what} (usage: --period-ms N)"));
    let mut period = default;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--period-ms") {
            Some("") => args.next().ok_or_else(|| usage("--period-ms needs a value".into()))?,
            Some(rest) if rest.starts_with('=') => &rest[1..],
            _ => return Err(usage(format!("unexpected argument '{arg}'"))),
        };
        // Zero would retransmit in a busy loop, so the period must be positive.
        match value.parse::<u64>() {
            Ok(ms) if ms > 0 => period = Duration::from_millis(ms),
            _ => {
                return Err(usage(format!("--period-ms: '{value}' is not a positive number")));
            }
        }
    }
    Ok(period)
}

/// Runs the module: `mgr-modules StubbornPointToPointLink [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let period = parse_period(args)?;
    runtime::run(contract, StubbornPointToPointLink::new("", period, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn frames_round_trip() {
        let m = Message { id: 3, stamp: Stamp { lamport: 7, vc: vec![2, 5] }, text: "hello  world".into() };
        let data = Frame::Data(m.clone());
        assert_eq!(data.encode(""), "3 7/2.5 hello  world");
        assert_eq!(Frame::decode(&data.encode(""), ""), Some(data.clone()));
        assert_eq!(data.encode("beb"), "beb:3 7/2.5 hello  world");
        assert_eq!(Frame::decode("beb:3 7/2.5 hello  world", "beb"), Some(data));
        assert_eq!(Frame::decode("beb:3 7/2.5 x", "pfd"), None, "another instance's frame");
        assert_eq!(Frame::decode("ack 12", ""), Some(Frame::Ack(12)));
        assert_eq!(Frame::decode("pfd:ack 12", "pfd"), Some(Frame::Ack(12)));
        assert!(matches!(Frame::decode("1 2/0", ""), Some(Frame::Data(m)) if m.text.is_empty()));
        assert_eq!(Frame::decode("hello", ""), None);
        assert_eq!(Frame::decode("1 x hello", ""), None);
        assert_eq!(Frame::decode("ack x", ""), None);
    }

    #[test]
    fn period_argument() {
        assert_eq!(parse_period(&[]).unwrap(), DEFAULT_PERIOD);
        assert_eq!(parse_period(&args(&["--period-ms", "100"])).unwrap(), Duration::from_millis(100));
        assert_eq!(parse_period(&args(&["--period-ms=250"])).unwrap(), Duration::from_millis(250));
        for bad in [&["--period-ms"][..], &["--period-ms", "0"], &["--period-msx"], &["-v"]] {
            assert!(matches!(parse_period(&args(bad)), Err(RunError::Usage(_))), "{bad:?}");
        }
    }
}
