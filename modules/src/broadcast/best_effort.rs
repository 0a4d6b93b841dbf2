#![doc = include_str!("best_effort.md")]

use std::net::SocketAddr;
use std::time::Duration;

use super::{Broadcast, BroadcastModule, Delivery};
use crate::links::perfect::PerfectPointToPointLink;
use crate::runtime::{self, Context, Contract, RunError, Timer};

/// The retransmission period of the perfect links below broadcasts.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(100);

/// Implements: BestEffortBroadcast, instance beb.
/// Uses: PerfectPointToPointLinks, instance pl.
#[derive(Debug)]
pub struct BestEffortBroadcast {
    pl: PerfectPointToPointLink,
}

impl BestEffortBroadcast {
    /// A beb instance named `instance` (its link's frames carry the name).
    pub fn new(instance: &str, period: Duration) -> BestEffortBroadcast {
        BestEffortBroadcast { pl: PerfectPointToPointLink::new(instance, period, true) }
    }

    /// `upon event ⟨ beb, Init ⟩`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.pl.upon_init(ctx);
    }

    /// `upon event ⟨ beb, Broadcast | m ⟩`: `forall q ∈ Π do trigger ⟨ pl, Send | q, m ⟩`.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) {
        for q in ctx.processes() {
            self.pl.send(ctx, &q, m.to_owned());
        }
    }

    /// `upon event ⟨ pl, Deliver | p, m ⟩`: returns `⟨ beb, Deliver | p, m ⟩`.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<(String, String)> {
        self.pl.receive_message(ctx, from, payload).map(|(p, m)| (p, m.text))
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.pl.owns(payload)
    }

    /// The link's timers; false when `timer` is not this instance's.
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> bool {
        self.pl.upon_timeout(ctx, timer)
    }
}

/// Best-effort broadcast as a module of its own, with the user above. Each
/// broadcast carries its number at the sender, so that the events file can
/// pair a `broadcast` with its `deliver`s.
#[derive(Debug)]
pub struct BestEffortBroadcastModule {
    beb: BestEffortBroadcast,
    broadcasts: u64,
}

/// Best-effort broadcast as the user sees it (see [`BroadcastModule`]).
impl Broadcast for BestEffortBroadcastModule {
    fn upon_init(&mut self, ctx: &mut Context) {
        // Numbers go on from this incarnation's first id, so that a
        // restarted process never reuses one of its earlier lives.
        self.broadcasts = ctx.first_message_id() - 1;
        self.beb.upon_init(ctx);
    }

    fn next_id(&self) -> u64 {
        self.broadcasts + 1
    }

    fn broadcast(&mut self, ctx: &mut Context, m: &str) -> Vec<Delivery> {
        self.broadcasts += 1;
        self.beb.upon_broadcast(ctx, &format!("{} {m}", self.broadcasts));
        Vec::new()
    }

    fn deliveries(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<Delivery> {
        let Some((p, m)) = self.beb.receive(ctx, from, payload) else { return Vec::new() };
        match m.split_once(' ').and_then(|(id, text)| Some((id.parse::<u64>().ok()?, text))) {
            Some((id, text)) => vec![Delivery { sender: p, id, text: text.to_owned() }],
            None => {
                eprintln!("beb: dropped a message from {p} without a broadcast number: {m:?}");
                Vec::new()
            }
        }
    }

    fn timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Vec<Delivery> {
        self.beb.upon_timeout(ctx, timer);
        Vec::new()
    }
}

/// Runs the module: `mgr-modules BestEffortBroadcast [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let period = crate::links::stubborn::parse_period_or(args, DEFAULT_PERIOD)?;
    let beb = BestEffortBroadcastModule { beb: BestEffortBroadcast::new("beb", period), broadcasts: 0 };
    runtime::run(contract, BroadcastModule(beb))
}
