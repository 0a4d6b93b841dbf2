#![doc = include_str!("probabilistic.md")]

use std::collections::HashSet;
use std::net::SocketAddr;

use rand::seq::IndexedRandom;

use super::{Broadcast, BroadcastModule, Delivery};
use crate::links::fair_loss::FairLossPointToPointLink;
use crate::runtime::{self, Context, Contract, RunError, Stamp, Timer};

/// The default fanout k and number of rounds R.
pub const DEFAULT_FANOUT: usize = 3;
pub const DEFAULT_ROUNDS: u32 = 3;

/// A gossiped message: `[GOSSIP, s, m, r]`, with m's number at s.
/// On the wire: `<instance>:GOSSIP <stamp> <s> <id> <r> <text>`, with the
/// clocks of the send (see [`Stamp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gossip {
    pub sender: String,
    pub id: u64,
    pub rounds: u32,
    pub text: String,
}

impl Gossip {
    fn encode(&self, instance: &str, stamp: &Stamp) -> String {
        let stamp = stamp.encode();
        format!("{instance}:GOSSIP {stamp} {} {} {} {}", self.sender, self.id, self.rounds, self.text)
    }

    fn decode(instance: &str, m: &str) -> Option<(Stamp, Gossip)> {
        let m = m.strip_prefix(instance)?.strip_prefix(":GOSSIP ")?;
        let mut parts = m.splitn(5, ' ');
        let stamp = Stamp::decode(parts.next()?)?;
        let sender = parts.next()?.to_owned();
        let id = parts.next()?.parse().ok()?;
        let rounds = parts.next()?.parse().ok()?;
        let text = parts.next().unwrap_or("").to_owned();
        Some((stamp, Gossip { sender, id, rounds, text }))
    }
}

/// Implements: ProbabilisticBroadcast, instance pb (Eager Probabilistic Broadcast).
/// Uses: FairLossPointToPointLinks, instance fll.
#[derive(Debug)]
pub struct ProbabilisticBroadcast {
    fll: FairLossPointToPointLink,
    instance: String,
    /// k: how many processes each gossip goes to.
    fanout: usize,
    /// R: how many rounds a message is gossiped.
    rounds: u32,
    /// The book's `delivered`, keyed by (sender, id).
    delivered: HashSet<(String, u64)>,
    /// Numbers this process gave its own broadcasts.
    broadcasts: u64,
}

impl ProbabilisticBroadcast {
    /// An eager probabilistic broadcast named `instance`, with fanout k and R rounds.
    pub fn new(instance: &str, fanout: usize, rounds: u32) -> ProbabilisticBroadcast {
        ProbabilisticBroadcast {
            fll: FairLossPointToPointLink::default(),
            instance: instance.to_owned(),
            fanout,
            rounds,
            delivered: HashSet::new(),
            broadcasts: 0,
        }
    }

    /// `function picktargets(k)`: k processes picked at random among
    /// Π \ {self} (all of them when there are no more than k).
    fn picktargets(&self, ctx: &Context) -> Vec<String> {
        let others: Vec<String> = ctx.processes().into_iter().filter(|q| q != ctx.self_name()).collect();
        others.choose_multiple(&mut rand::rng(), self.fanout).cloned().collect()
    }

    /// `procedure gossip(msg)`: `forall t ∈ picktargets(k) do trigger ⟨ fll, Send | t, msg ⟩`.
    fn gossip(&mut self, ctx: &mut Context, msg: &Gossip) {
        for t in self.picktargets(ctx) {
            let stamp = ctx.events.send(&t, Some(msg.id), &msg.text);
            self.fll.upon_send(ctx, &t, &msg.encode(&self.instance, &stamp));
        }
    }

    /// `upon event ⟨ pb, Broadcast | m ⟩`: `delivered := delivered ∪ {m};
    /// trigger ⟨ pb, Deliver | self, m ⟩; gossip([GOSSIP, self, m, R])`.
    /// Returns the message, for the caller to deliver.
    pub fn upon_broadcast(&mut self, ctx: &mut Context, m: &str) -> Gossip {
        self.broadcasts += 1;
        let msg =
            Gossip { sender: ctx.self_name().to_owned(), id: self.broadcasts, rounds: self.rounds, text: m.into() };
        self.delivered.insert((msg.sender.clone(), msg.id));
        self.gossip(ctx, &msg);
        msg
    }

    /// A datagram arrived: `⟨ fll, Deliver | p, [GOSSIP, s, m, r] ⟩`, handed
    /// to [`Self::upon_fll_deliver`]. Returns `⟨ pb, Deliver | s, m ⟩` if any.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Option<Gossip> {
        let (p, m) = self.fll.receive(ctx, from, payload);
        let Some((stamp, msg)) = Gossip::decode(&self.instance, &m) else {
            eprintln!("pb: dropped a message from {p} that is not GOSSIP: {m:?}");
            return None;
        };
        ctx.events.arrive("receive", &p, Some(msg.id), Some(&stamp), &msg.text);
        self.upon_fll_deliver(ctx, msg)
    }

    /// `upon event ⟨ fll, Deliver | p, [GOSSIP, s, m, r] ⟩`:
    /// `if m ∉ delivered then delivered := delivered ∪ {m}; trigger ⟨ pb, Deliver | s, m ⟩`;
    /// `if r > 1 then gossip([GOSSIP, s, m, r − 1])`.
    fn upon_fll_deliver(&mut self, ctx: &mut Context, msg: Gossip) -> Option<Gossip> {
        let fresh = self.delivered.insert((msg.sender.clone(), msg.id));
        if msg.rounds > 1 {
            self.gossip(ctx, &Gossip { rounds: msg.rounds - 1, ..msg.clone() });
        }
        fresh.then_some(msg)
    }

    /// Whether a datagram belongs to this instance.
    pub fn owns(&self, payload: &[u8]) -> bool {
        payload.strip_prefix(self.instance.as_bytes()).is_some_and(|rest| rest.first() == Some(&b':'))
    }
}

/// Probabilistic broadcast as the user sees it (see [`BroadcastModule`]):
/// the broadcaster delivers its own message at once.
impl Broadcast for ProbabilisticBroadcast {
    fn upon_init(&mut self, ctx: &mut Context) {
        // Numbers go on from this incarnation's first id, so that a
        // restarted process never reuses one of its earlier lives.
        self.broadcasts = ctx.first_message_id() - 1;
    }

    fn next_id(&self) -> u64 {
        self.broadcasts + 1
    }

    fn broadcast(&mut self, ctx: &mut Context, m: &str) -> Vec<Delivery> {
        let msg = self.upon_broadcast(ctx, m);
        vec![Delivery { sender: msg.sender, id: msg.id, text: msg.text }]
    }

    fn deliveries(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> Vec<Delivery> {
        self.receive(ctx, from, payload)
            .map(|m| Delivery { sender: m.sender, id: m.id, text: m.text })
            .into_iter()
            .collect()
    }

    fn timeout(&mut self, _ctx: &mut Context, _timer: Timer<'_>) -> Vec<Delivery> {
        Vec::new()
    }
}

/// Reads `--fanout k` and `--rounds R` (both positive).
fn parse_args(args: &[String]) -> Result<(usize, u32), RunError> {
    let (mut fanout, mut rounds) = (DEFAULT_FANOUT, DEFAULT_ROUNDS as usize);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), it.next().cloned()),
        };
        let target = match name {
            "--fanout" => &mut fanout,
            "--rounds" => &mut rounds,
            _ => {
                return Err(RunError::Usage(format!("unexpected argument '{arg}' (usage: --fanout k --rounds R)")));
            }
        };
        *target = value
            .as_deref()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| RunError::Usage(format!("{name} needs a positive number")))?;
    }
    let rounds = u32::try_from(rounds).map_err(|_| RunError::Usage("--rounds is too large".into()))?;
    Ok((fanout, rounds))
}

/// Runs the module: `mgr-modules ProbabilisticBroadcast [--fanout k] [--rounds R]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (fanout, rounds) = parse_args(args)?;
    runtime::run(contract, BroadcastModule(ProbabilisticBroadcast::new("pb", fanout, rounds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_reads_back_as_written() {
        let g = Gossip { sender: "p3".into(), id: 2, rounds: 3, text: "a  b".into() };
        let stamp = Stamp { lamport: 4, vc: vec![1, 0, 3] };
        assert_eq!(g.encode("pb", &stamp), "pb:GOSSIP 4/1.0.3 p3 2 3 a  b");
        assert_eq!(Gossip::decode("pb", &g.encode("pb", &stamp)), Some((stamp.clone(), g.clone())));
        assert_eq!(Gossip::decode("x", &g.encode("pb", &stamp)), None);
        assert_eq!(Gossip::decode("pb", "pb:GOSSIP 1/1 p3 x 3 a"), None);
    }

    #[test]
    fn fanout_and_rounds_are_positive_numbers() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_args(&[]).unwrap(), (3, 3));
        assert_eq!(parse_args(&args(&["--fanout", "2", "--rounds=5"])).unwrap(), (2, 5));
        assert!(parse_args(&args(&["--fanout", "0"])).is_err());
        assert!(parse_args(&args(&["--rounds"])).is_err());
        assert!(parse_args(&args(&["--period-ms", "5"])).is_err());
    }
}
