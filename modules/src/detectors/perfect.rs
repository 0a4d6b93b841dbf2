#![doc = include_str!("perfect.md")]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::links::perfect::PerfectPointToPointLink;
use crate::runtime::{self, Command, Context, Contract, Module, RunError, Timer};

const HEARTBEAT_REQUEST: &str = "HEARTBEATREQUEST";
const HEARTBEAT_REPLY: &str = "HEARTBEATREPLY";

/// The default timeout Δ.
pub const DEFAULT_DELTA: Duration = Duration::from_millis(1000);

const HELP: &str = "  detected   print the processes detected so far\n  help       this list";

/// Implements: PerfectFailureDetector, instance P.
/// Uses: PerfectPointToPointLinks, instance pl.
#[derive(Debug)]
pub struct PerfectFailureDetector {
    pl: PerfectPointToPointLink,
    alive: BTreeSet<String>,
    detected: BTreeSet<String>,
    delta: Duration,
    timer: String,
}

impl PerfectFailureDetector {
    /// A detector named `instance`, with timeout `delta` and links that
    /// retransmit every `period`.
    pub fn new(instance: &str, delta: Duration, period: Duration) -> PerfectFailureDetector {
        PerfectFailureDetector {
            pl: PerfectPointToPointLink::new(instance, period, true),
            alive: BTreeSet::new(),
            detected: BTreeSet::new(),
            delta,
            timer: format!("{instance}.timeout"),
        }
    }

    /// `upon event ⟨ P, Init ⟩`: `alive := Π; detected := ∅; starttimer(Δ)`.
    pub fn upon_init(&mut self, ctx: &mut Context) {
        self.alive = ctx.processes().into_iter().collect();
        self.detected.clear();
        self.pl.upon_init(ctx);
        ctx.start_timer(&self.timer, self.delta);
    }

    /// `upon event ⟨ Timeout ⟩`: returns the processes newly detected
    /// (`⟨ P, Crash | p ⟩` for each), or `None` when `timer` is not the
    /// detector's (its link may have taken it).
    pub fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Option<Vec<String>> {
        if timer != self.timer {
            return self.pl.upon_timeout(ctx, timer).then(Vec::new);
        }
        let mut crashed = Vec::new();
        for p in ctx.processes() {
            if !self.alive.contains(&p) && self.detected.insert(p.clone()) {
                crashed.push(p.clone());
            }
            // A detected process stays detected: asking it again would only
            // grow the link's retransmissions.
            if !self.detected.contains(&p) {
                self.pl.send(ctx, &p, HEARTBEAT_REQUEST.to_owned());
            }
        }
        self.alive.clear();
        ctx.start_timer(&self.timer, self.delta);
        Some(crashed)
    }

    /// `upon event ⟨ pl, Deliver | q, [HEARTBEATREQUEST] ⟩` and
    /// `⟨ pl, Deliver | p, [HEARTBEATREPLY] ⟩`. Returns false when the
    /// datagram is not this detector's.
    pub fn receive(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) -> bool {
        if !self.pl.owns(payload) {
            return false;
        }
        if let Some((q, m)) = self.pl.receive_message(ctx, from, payload) {
            match m.text.as_str() {
                HEARTBEAT_REQUEST => self.pl.send(ctx, &q, HEARTBEAT_REPLY.to_owned()),
                HEARTBEAT_REPLY => {
                    self.alive.insert(q);
                }
                other => eprintln!("P: ignored an unknown message from {q}: {other:?}"),
            }
        }
        true
    }

    /// Whether a datagram belongs to this detector (its link's frames).
    pub fn owns(&self, payload: &[u8]) -> bool {
        self.pl.owns(payload)
    }

    /// The processes detected so far.
    pub fn detected(&self) -> &BTreeSet<String> {
        &self.detected
    }
}

/// The perfect failure detector as a module of its own.
impl Module for PerfectFailureDetector {
    fn help(&self) -> &'static str {
        HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        PerfectFailureDetector::upon_init(self, ctx);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command.verb.as_str() {
            "detected" => {
                let detected: Vec<&str> = self.detected.iter().map(String::as_str).collect();
                runtime::say(format!("detected {}", detected.join(" ")).trim_end());
            }
            _ => ctx.refuse(&command, HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        self.receive(ctx, from, payload);
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        for p in PerfectFailureDetector::upon_timeout(self, ctx, timer).unwrap_or_default() {
            ctx.indicate("crash", Some(&p), "");
        }
    }
}

/// Reads `--delta-ms N` and `--period-ms N`.
pub fn parse_timing(args: &[String], default_delta: Duration) -> Result<(Duration, Duration), RunError> {
    let mut delta = default_delta;
    let mut period = crate::broadcast::best_effort::DEFAULT_PERIOD;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), rest.next().cloned()),
        };
        let ms = value
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .ok_or_else(|| RunError::Usage(format!("{name} needs a positive number of milliseconds")))?;
        match name {
            "--delta-ms" => delta = Duration::from_millis(ms),
            "--period-ms" => period = Duration::from_millis(ms),
            _ => {
                return Err(RunError::Usage(format!(
                    "unexpected argument '{arg}' (usage: --delta-ms N --period-ms N)"
                )));
            }
        }
    }
    Ok((delta, period))
}

/// Runs the module: `mgr-modules PerfectFailureDetector [--delta-ms N] [--period-ms N]`.
pub fn run(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let (delta, period) = parse_timing(args, DEFAULT_DELTA)?;
    runtime::run(contract, PerfectFailureDetector::new("pfd", delta, period))
}
