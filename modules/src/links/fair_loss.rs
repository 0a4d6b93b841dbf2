#![doc = include_str!("fair_loss.md")]
//!
//! # Implementation notes
//!
//! There is no algorithm here: UDP itself is the fair-loss link. A datagram
//! may be lost, duplicated by the network, or reordered, which is all that the
//! properties allow. The sender of a datagram is recognised by its source
//! address in the peer table; a datagram from an address outside the run (for
//! instance `nc -u 127.0.0.1 7002`) is delivered with `ip:port` as the
//! sender's name rather than dropped, so that a user can poke a process by
//! hand. One trailing line ending is removed from the payload, because `nc`
//! sends the newline of the typed line.

use std::net::SocketAddr;

use crate::runtime::{self, Command, Context, Contract, Module, RunError};

/// The stdin commands of the fair-loss link.
pub const HELP: &str =
    "  send q text   send text to process q (p2) or to any ip:port, e.g. send p2 hello\n  help          this list";

/// Implements: FairLossPointToPointLinks, instance fll.
#[derive(Debug, Default)]
pub struct FairLossPointToPointLink {}

impl FairLossPointToPointLink {
    /// `upon event ⟨ fll, Send | q, m ⟩`: one datagram to `q` carrying `m`.
    pub fn upon_send(&mut self, ctx: &mut Context, q: &str, m: &str) {
        match ctx.contract.peer_addr(q) {
            Some(addr) => ctx.send_datagram(addr, m.as_bytes()),
            // Callers check names given by the user; an unknown name here is
            // a bug in a module, reported rather than a reason to crash.
            None => eprintln!("fll: send to unknown process '{q}' dropped"),
        }
    }

    /// A datagram arrived: returns the indication `⟨ fll, Deliver | p, m ⟩`.
    pub fn receive(&mut self, ctx: &Context, from: SocketAddr, payload: &[u8]) -> (String, String) {
        let p = ctx.sender_name(from);
        let mut m = String::from_utf8_lossy(payload).into_owned();
        if m.ends_with('\n') {
            m.pop();
            if m.ends_with('\r') {
                m.pop();
            }
        }
        (p, m)
    }
}

/// The fair-loss link as a module of its own, with the user as the layer above.
impl Module for FairLossPointToPointLink {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match (command.verb.as_str(), command.target_and_text()) {
            ("send", Some((to, text))) => {
                let (to, text) = (to.to_owned(), text.to_owned());
                // An address outside the run is allowed too, so that a user
                // can talk to a module of another run or language, or to nc.
                if let (None, Ok(addr)) = (ctx.contract.peer_addr(&to), to.parse::<SocketAddr>()) {
                    ctx.events.send(&to, None, &text);
                    ctx.send_datagram(addr, text.as_bytes());
                } else if ctx.check_peer(&to) {
                    // A fair-loss payload is bare text, so there is no message id.
                    ctx.events.send(&to, None, &text);
                    self.upon_send(ctx, &to, &text);
                }
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        let (p, m) = self.receive(ctx, from, payload);
        ctx.deliver(&p, None, None, &m);
    }
}

/// Runs the module: `mgr-modules FairLossPointToPointLink` (no arguments).
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    runtime::no_args(args)?;
    runtime::run(contract, FairLossPointToPointLink::default())
}
