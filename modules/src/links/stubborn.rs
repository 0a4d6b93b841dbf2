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

use std::net::SocketAddr;
use std::time::Duration;

use super::fair_loss::FairLossPointToPointLink;
use crate::runtime::{self, Command, Context, Contract, Module, RunError};

/// The default retransmission period Δ.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(500);

/// A message of the stubborn and perfect links: the user's text plus what
/// makes it unique (`id`) and orders it (`lamport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub lamport: u64,
    pub text: String,
}

impl Message {
    /// The fair-loss payload: `<id> <lamport> <text>`.
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.id, self.lamport, self.text)
    }

    /// Reads a frame made by [`Message::encode`].
    pub fn decode(frame: &str) -> Option<Message> {
        let mut parts = frame.splitn(3, ' ');
        let id = parts.next()?.parse().ok()?;
        let lamport = parts.next()?.parse().ok()?;
        let text = parts.next().unwrap_or("").to_owned();
        Some(Message { id, lamport, text })
    }
}

/// Implements: StubbornPointToPointLinks, instance sl.
/// Uses: FairLossPointToPointLinks, instance fll.
#[derive(Debug)]
pub struct StubbornPointToPointLink {
    fll: FairLossPointToPointLink,
    /// The book's `sent`: every (q, m) ever sent, retransmitted forever.
    sent: Vec<(String, Message)>,
    /// Δ.
    period: Duration,
}

impl StubbornPointToPointLink {
    /// The book's `upon event ⟨ sl, Init ⟩` sets `sent := ∅`; the timer is
    /// started in [`Module::upon_init`], when the runtime is there to run it.
    pub fn new(period: Duration) -> StubbornPointToPointLink {
        StubbornPointToPointLink { fll: FairLossPointToPointLink::default(), sent: Vec::new(), period }
    }

    /// `upon event ⟨ sl, Init ⟩`: `starttimer(Δ)`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        ctx.start_timer(self.period);
    }

    /// `upon event ⟨ Timeout ⟩`: send every message again, then restart the timer.
    pub fn upon_timeout(&mut self, ctx: &mut Context) {
        for (q, m) in &self.sent {
            self.fll.upon_send(ctx, q, &m.encode());
        }
        ctx.start_timer(self.period);
    }

    /// `upon event ⟨ sl, Send | q, m ⟩`.
    pub fn upon_send(&mut self, ctx: &mut Context, q: &str, m: Message) {
        self.fll.upon_send(ctx, q, &m.encode());
        self.sent.push((q.to_owned(), m));
    }

    /// `upon event ⟨ fll, Deliver | p, m ⟩`: returns `⟨ sl, Deliver | p, m ⟩`.
    pub fn upon_fll_deliver(&mut self, p: String, frame: &str) -> Option<(String, Message)> {
        match Message::decode(frame) {
            Some(m) => Some((p, m)),
            None => {
                eprintln!("sl: dropped a datagram from {p} that is not '<id> <lamport> <text>': {frame:?}");
                None
            }
        }
    }

    /// A datagram arrived: passes it up through fll, returning `⟨ sl, Deliver | p, m ⟩` if any.
    pub fn receive(&mut self, ctx: &Context, from: SocketAddr, payload: &[u8]) -> Option<(String, Message)> {
        let (p, frame) = self.fll.receive(ctx, from, payload);
        self.upon_fll_deliver(p, &frame)
    }
}

/// Turns the user's `send q text` into a new message: a fresh id, and a
/// Lamport timestamp taken when the send is logged.
pub(crate) fn new_message(ctx: &mut Context, to: &str, text: String) -> Message {
    let id = ctx.new_message_id();
    let lamport = ctx.events.send(to, Some(id), &text);
    Message { id, lamport, text }
}

/// The stubborn link as a module of its own, with the user as the layer above.
impl Module for StubbornPointToPointLink {
    fn upon_init(&mut self, ctx: &mut Context) {
        StubbornPointToPointLink::upon_init(self, ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command {
            Command::Send { to, text } => {
                if ctx.check_peer(&to) {
                    let m = new_message(ctx, &to, text);
                    self.upon_send(ctx, &to, m);
                }
            }
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        if let Some((p, m)) = self.receive(ctx, from, payload) {
            ctx.deliver(&p, Some(m.id), Some(m.lamport), &m.text);
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context) {
        StubbornPointToPointLink::upon_timeout(self, ctx);
    }
}

/// Reads `--period-ms N` (also `--period-ms=N`), the only argument of the
/// stubborn link and of the links built on it.
pub(crate) fn parse_period(args: &[String]) -> Result<Duration, RunError> {
    let usage = |what: String| RunError::Usage(format!("{what} (usage: --period-ms N)"));
    let mut period = DEFAULT_PERIOD;
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
    runtime::run(contract, StubbornPointToPointLink::new(period))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn frames_round_trip() {
        let m = Message { id: 3, lamport: 7, text: "hello  world".into() };
        assert_eq!(m.encode(), "3 7 hello  world");
        assert_eq!(Message::decode(&m.encode()), Some(m));
        assert_eq!(Message::decode("1 2").map(|m| m.text), Some(String::new()));
        assert_eq!(Message::decode("hello"), None);
        assert_eq!(Message::decode("1 x hello"), None);
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
