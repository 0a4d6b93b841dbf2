#![doc = include_str!("perfect.md")]
//!
//! # Implementation notes
//!
//! Messages travel in the stubborn link's frame, `<id> <lamport> <text>`
//! (see [`super::stubborn`]). The book keeps the set of delivered messages
//! `m`, assuming every message is unique; here a message is identified by its
//! sender and the sender's id for it, so `delivered` holds (p, id) pairs.
//!
//! Ids restart at 1 when a process restarts, so a receiver that keeps running
//! would take the restarted sender's new messages for duplicates. That is the
//! book's crash-stop model, in which a crashed process never comes back.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::stubborn::{self, Message, StubbornPointToPointLink};
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer};

/// Implements: PerfectPointToPointLinks, instance pl.
/// Uses: StubbornPointToPointLinks, instance sl.
#[derive(Debug)]
pub struct PerfectPointToPointLink {
    sl: StubbornPointToPointLink,
    /// The book's `delivered`, keyed by (sender, id).
    delivered: HashSet<(String, u64)>,
}

impl PerfectPointToPointLink {
    /// The book's `upon event ⟨ pl, Init ⟩`: `delivered := ∅`. With
    /// `acked`, the stubborn link below retransmits until acknowledged
    /// (what modules built on this link use); without, forever (the book).
    ///
    /// `instance` names the link when it is a component of another module
    /// (each component has its own link, as in the book); "" alone.
    pub fn new(instance: &str, period: Duration, acked: bool) -> PerfectPointToPointLink {
        PerfectPointToPointLink {
            sl: StubbornPointToPointLink::new(instance, period, acked),
            delivered: HashSet::new(),
        }
    }

    /// Whether a datagram's payload belongs to this link instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.sl.owns(payload)
    }

    /// `upon event ⟨ pl, Init ⟩`, for the layer above to call from its own.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.sl.upon_init(ctx);
    }

    /// Sends `text` to `q` as a new message (fresh id, clocks logged as a
    /// `send`): what a layer above calls for its `⟨ pl, Send | q, m ⟩`.
    pub fn send(&mut self, ctx: &mut Context, q: &str, text: String) {
        let m = stubborn::new_message(ctx, q, text);
        self.upon_send(ctx, q, m);
    }

    /// The link's timer, for the layer above to pass on; false when the
    /// timer is not the link's.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        self.sl.upon_timeout(ctx, timer)
    }

    /// A datagram arrived, for a layer above: `⟨ pl, Deliver | p, m ⟩` if
    /// any, with the arrival logged as a `receive` (the layer above logs its
    /// own indication).
    pub fn receive_message(
        &mut self,
        ctx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
    ) -> Option<(String, Message)> {
        let (p, m) = self.receive(ctx, from, payload)?;
        ctx.events.arrive("receive", &p, Some(m.id), Some(&m.stamp), &m.text);
        Some((p, m))
    }

    /// `upon event ⟨ pl, Send | q, m ⟩`.
    pub fn upon_send(&mut self, ctx: &mut Context, q: &str, m: Message) {
        self.sl.upon_send(ctx, q, m);
    }

    /// `upon event ⟨ sl, Deliver | p, m ⟩`: returns `⟨ pl, Deliver | p, m ⟩`
    /// the first time only.
    pub fn upon_sl_deliver(&mut self, p: String, m: Message) -> Option<(String, Message)> {
        if self.delivered.insert((p.clone(), m.id)) { Some((p, m)) } else { None }
    }

    /// A datagram arrived: passes it up through sl, returning `⟨ pl, Deliver | p, m ⟩` if any.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<(String, Message)> {
        let (p, m) = self.sl.receive(ctx, from, payload)?;
        self.upon_sl_deliver(p, m)
    }
}

/// The perfect link as a module of its own, with the user as the layer above.
impl Module for PerfectPointToPointLink {
    fn help(&self) -> &'static str {
        stubborn::HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        PerfectPointToPointLink::upon_init(self, ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match (command.verb.as_str(), command.target_and_text()) {
            ("send", Some((to, text))) => {
                if ctx.check_peer(to) {
                    self.send(ctx, to, text.to_owned());
                }
            }
            _ => ctx.refuse(&command, stubborn::HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        if let Some((p, m)) = self.receive(ctx, from, payload) {
            ctx.deliver(&p, Some(m.id), Some(&m.stamp), &m.text);
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        PerfectPointToPointLink::upon_timeout(self, ctx, timer);
    }
}

/// Runs the module: `mgr-modules PerfectPointToPointLink [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let period = stubborn::parse_period(args)?;
    runtime::run(contract, PerfectPointToPointLink::new("", period, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Stamp;

    #[test]
    fn delivers_each_sender_and_id_once() {
        let mut pl = PerfectPointToPointLink::new("", Duration::from_millis(500), false);
        let m = |id| Message { id, stamp: Stamp::default(), text: "x".into() };
        assert!(pl.upon_sl_deliver("p1".into(), m(1)).is_some());
        assert!(pl.upon_sl_deliver("p1".into(), m(1)).is_none());
        assert!(pl.upon_sl_deliver("p1".into(), m(2)).is_some());
        assert!(pl.upon_sl_deliver("p2".into(), m(1)).is_some());
    }
}
