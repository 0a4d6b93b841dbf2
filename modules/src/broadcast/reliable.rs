#![doc = include_str!("reliable.md")]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::best_effort::{self, BestEffortBroadcast, HELP};
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer};

/// A message of reliable broadcast: its original sender, its number there,
/// and the text. On the wire: `DATA <s> <id> <text>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Data {
    pub sender: String,
    pub id: u64,
    pub text: String,
}

impl Data {
    fn encode(&self) -> String {
        format!("DATA {} {} {}", self.sender, self.id, self.text)
    }

    fn decode(m: &str) -> Option<Data> {
        let mut parts = m.splitn(4, ' ');
        (parts.next()? == "DATA").then_some(())?;
        let sender = parts.next()?.to_owned();
        let id = parts.next()?.parse().ok()?;
        let text = parts.next().unwrap_or("").to_owned();
        Some(Data { sender, id, text })
    }
}

/// Implements: ReliableBroadcast, instance rb (Algorithm 3.4, Eager).
/// Uses: BestEffortBroadcast, instance beb.
#[derive(Debug)]
pub struct ReliableBroadcast {
    beb: BestEffortBroadcast,
    /// The book's `delivered`, keyed by (sender, id).
    delivered: HashSet<(String, u64)>,
    /// Numbers this process gave its own broadcasts.
    broadcasts: u64,
}

impl ReliableBroadcast {
    /// An eager reliable broadcast named `instance`.
    pub fn eager(instance: &str, period: Duration) -> ReliableBroadcast {
        ReliableBroadcast { beb: BestEffortBroadcast::new(instance, period), delivered: HashSet::new(), broadcasts: 0 }
    }

    /// `upon event ⟨ rb, Init ⟩`: `delivered := ∅`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.beb.upon_init(ctx);
    }

    /// `upon event ⟨ rb, Broadcast | m ⟩`: `trigger ⟨ beb, Broadcast | [DATA, self, m] ⟩`.
    /// Returns the message's number at this process.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) -> u64 {
        self.broadcasts += 1;
        let data = Data { sender: ctx.self_name().to_owned(), id: self.broadcasts, text: m.to_owned() };
        self.beb.upon_broadcast(ctx, &data.encode());
        data.id
    }

    /// `upon event ⟨ beb, Deliver | p, [DATA, s, m] ⟩`: if `m ∉ delivered`,
    /// deliver it and broadcast it again. Returns `⟨ rb, Deliver | s, m ⟩`.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<Data> {
        let (p, m) = self.beb.receive(ctx, from, payload)?;
        let Some(data) = Data::decode(&m) else {
            eprintln!("rb: dropped a message from {p} that is not DATA: {m:?}");
            return None;
        };
        if !self.delivered.insert((data.sender.clone(), data.id)) {
            return None;
        }
        self.beb.upon_broadcast(ctx, &m);
        Some(data)
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.beb.owns(payload)
    }

    /// The links' timers; false when `timer` is not this instance's.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        self.beb.upon_timeout(ctx, timer)
    }
}

impl Module for ReliableBroadcast {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        ReliableBroadcast::upon_init(self, ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command.verb.as_str() {
            "broadcast" if !command.args.is_empty() => {
                let id = self.broadcasts + 1;
                ctx.events.record("broadcast", None, Some(id), Some(&command.args));
                self.upon_broadcast(ctx, &command.args);
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        if let Some(data) = self.receive(ctx, from, payload) {
            ctx.deliver(&data.sender, Some(data.id), None, &data.text);
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        ReliableBroadcast::upon_timeout(self, ctx, timer);
    }
}

/// Runs the module: `mgr-modules ReliableBroadcast [--algorithm eager] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--algorithm" => match it.next().map(String::as_str) {
                Some("eager") => {}
                other => {
                    return Err(RunError::Usage(format!("unknown algorithm {other:?} (known: eager)")));
                }
            },
            _ => rest.push(arg.clone()),
        }
    }
    let period = crate::links::stubborn::parse_period_or(&rest, best_effort::DEFAULT_PERIOD)?;
    runtime::run(contract, ReliableBroadcast::eager("rb", period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_reads_back_as_written() {
        let d = Data { sender: "p2".into(), id: 7, text: "hello  there".into() };
        assert_eq!(d.encode(), "DATA p2 7 hello  there");
        assert_eq!(Data::decode(&d.encode()), Some(d));
        assert_eq!(Data::decode("ACK p2 7 x"), None);
    }
}
