//! Ack-based group communication (the lab of seed report 003, issue 6 item
//! 4): three roles, each a module of its own, launched as separate runs or
//! as the roles of one run (a scenario's `discovery`, `receiver`, `client`).
//!
//! - [`AckDiscovery`]: the registry of live receivers. Receivers register
//!   and re-register every heartbeat; an entry that misses a few heartbeats
//!   expires, so a crashed receiver drops out of the answers.
//! - [`AckReceiver`]: registers, processes a request (it takes `--work-ms`),
//!   then either crashes (with probability `--crash-prob`, before acking) or
//!   acks.
//! - [`AckClient`]: for each request asks discovery for the receivers, sends
//!   to one, waits `--timeout-ms` for the ack and retries with another
//!   receiver until one acks; prints a summary and exits when all are acked.
//!
//! This file owns the roles' wire protocol (text datagrams, see [`Frame`]),
//! the registry and the client's choice of receiver. It must not use the
//! run's peers to find the other roles: the only address a receiver or a
//! client takes from its launch is discovery's (`--discovery`, or the first
//! instance of the role `discovery` of its run), and receivers are known
//! only by what discovery answers, so that the roles work the same whether
//! they share a run or not.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::runtime::{self, Command, Context, Contract, HttpRequest, HttpResponse, Module, RunError, Timer, say};

/// How often a receiver re-registers, by default.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;
/// How many heartbeats a registration outlives: after that many missed
/// heartbeats discovery forgets the receiver.
pub const MISSED_HEARTBEATS: u32 = 3;
/// How long the client waits for an ack, by default (the lab's 5 s).
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// The lab's crash probability of a receiver.
pub const DEFAULT_CRASH_PROB: f64 = 0.5;
/// How long a receiver "processes" a request, by default.
pub const DEFAULT_WORK_MS: u64 = 100;
/// How long the client waits before asking discovery again when no receiver
/// is registered (or discovery is not up yet, as the lab's client does).
const ASK_AGAIN: Duration = Duration::from_millis(500);
/// The exit code of a simulated crash, the one a Rust panic exits with, so
/// that the manager records the receiver as failed.
pub const CRASH_EXIT_CODE: i32 = 101;

/// One datagram of the protocol, as text:
///
/// | frame                               | from → to            |
/// |-------------------------------------|----------------------|
/// | `REGISTER <name>`                   | receiver → discovery |
/// | `LIST`                              | client → discovery   |
/// | `RECEIVERS <name>=<ip:port>,…`      | discovery → client   |
/// | `REQUEST <request> <attempt> <text>`| client → receiver    |
/// | `ACK <request> <attempt>`           | receiver → client    |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Register { name: String },
    List,
    Receivers(Vec<(String, SocketAddr)>),
    Request { request: u64, attempt: u64, text: String },
    Ack { request: u64, attempt: u64 },
}

impl Frame {
    pub fn encode(&self) -> String {
        match self {
            Frame::Register { name } => format!("REGISTER {name}"),
            Frame::List => "LIST".into(),
            Frame::Receivers(list) => {
                let list: Vec<String> = list.iter().map(|(name, addr)| format!("{name}={addr}")).collect();
                format!("RECEIVERS {}", list.join(","))
            }
            Frame::Request { request, attempt, text } => format!("REQUEST {request} {attempt} {text}"),
            Frame::Ack { request, attempt } => format!("ACK {request} {attempt}"),
        }
    }

    pub fn decode(payload: &[u8]) -> Option<Frame> {
        let text = std::str::from_utf8(payload).ok()?.trim_end_matches(['\n', '\r']);
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        match verb {
            "REGISTER" if !rest.is_empty() && !rest.contains(' ') => Some(Frame::Register { name: rest.into() }),
            "LIST" => Some(Frame::List),
            "RECEIVERS" => {
                let list = rest
                    .split(',')
                    .filter(|entry| !entry.is_empty())
                    .map(|entry| {
                        let (name, addr) = entry.split_once('=')?;
                        Some((name.to_owned(), addr.parse().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Frame::Receivers(list))
            }
            "REQUEST" => {
                let mut parts = rest.splitn(3, ' ');
                let request = parts.next()?.parse().ok()?;
                let attempt = parts.next()?.parse().ok()?;
                let text = parts.next().unwrap_or("").to_owned();
                Some(Frame::Request { request, attempt, text })
            }
            "ACK" => {
                let (request, attempt) = rest.split_once(' ')?;
                Some(Frame::Ack { request: request.parse().ok()?, attempt: attempt.parse().ok()? })
            }
            _ => None,
        }
    }
}

/// The most receivers discovery keeps at once: far more than a lab runs,
/// and a bound on what stray registrations can make it hold.
pub const MAX_RECEIVERS: usize = 4096;

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("{MAX_RECEIVERS} receivers are registered already")]
    Full,
    #[error("id '{id}' is registered at {addr}")]
    Taken { id: String, addr: SocketAddr },
}

/// The discovery's registry: every receiver heard from lately, by address
/// (two runs may both have a `p1`; their addresses differ).
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<SocketAddr, (String, Instant)>,
}

impl Registry {
    /// Notes a registration (or heartbeat) at `now`; true when the receiver
    /// is new (or came back after expiring, or under another name).
    pub fn register(&mut self, name: &str, addr: SocketAddr, now: Instant) -> Result<bool, RegisterError> {
        if self.entries.len() >= MAX_RECEIVERS && !self.entries.contains_key(&addr) {
            return Err(RegisterError::Full);
        }
        Ok(match self.entries.insert(addr, (name.to_owned(), now)) {
            Some((old, _)) => old != name,
            None => true,
        })
    }

    /// A registration over HTTP: like [`Registry::register`], but the id
    /// must not be live at another address (HTTP clients find receivers
    /// by id).
    pub fn register_id(&mut self, id: &str, addr: SocketAddr, now: Instant) -> Result<bool, RegisterError> {
        if let Some(other) = self.address_of(id).filter(|other| *other != addr) {
            return Err(RegisterError::Taken { id: id.to_owned(), addr: other });
        }
        self.register(id, addr, now)
    }

    /// Where the receiver `id` is registered.
    pub fn address_of(&self, id: &str) -> Option<SocketAddr> {
        self.entries.iter().find(|(_, (name, _))| name == id).map(|(addr, _)| *addr)
    }

    /// A heartbeat of the receiver `id`: false when it is not registered
    /// (it expired, or never came), and must register again.
    pub fn heartbeat(&mut self, id: &str, now: Instant) -> bool {
        match self.entries.values_mut().find(|(name, _)| name == id) {
            Some((_, seen)) => {
                *seen = now;
                true
            }
            None => false,
        }
    }

    /// Forgets the receivers last heard from more than `ttl` before `now`;
    /// returns them.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> Vec<(String, SocketAddr)> {
        let old: Vec<SocketAddr> = self
            .entries
            .iter()
            .filter(|(_, (_, seen))| now.saturating_duration_since(*seen) > ttl)
            .map(|(addr, _)| *addr)
            .collect();
        old.into_iter().filter_map(|addr| self.entries.remove(&addr).map(|(name, _)| (name, addr))).collect()
    }

    /// The live receivers, ordered by name then address, so that answers
    /// (and seeded clients' choices) do not depend on registration order.
    pub fn live(&self) -> Vec<(String, SocketAddr)> {
        let mut live: Vec<(String, SocketAddr)> =
            self.entries.iter().map(|(addr, (name, _))| (name.clone(), *addr)).collect();
        live.sort();
        live
    }
}

/// Reads `--name value` and `--name=value` arguments into a map, refusing
/// names outside `known`.
fn parse_options(args: &[String], known: &[&str], usage: &str) -> Result<BTreeMap<String, String>, RunError> {
    let mut options = BTreeMap::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), it.next().cloned()),
        };
        if !known.contains(&name) {
            return Err(RunError::Usage(format!("unexpected argument '{arg}' (usage: {usage})")));
        }
        let value = value.ok_or_else(|| RunError::Usage(format!("{name} needs a value")))?;
        options.insert(name.to_owned(), value);
    }
    Ok(options)
}

/// The value of option `name` parsed as `T`, or `default` when absent.
fn option<T: std::str::FromStr>(
    options: &BTreeMap<String, String>,
    name: &str,
    default: T,
    what: &str,
) -> Result<T, RunError> {
    match options.get(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| RunError::Usage(format!("{name} needs {what}, not '{value}'"))),
    }
}

/// The role whose first instance is the discovery when `--discovery` is not given.
pub const DISCOVERY_ROLE: &str = "discovery";

/// The discovery's address every role but discovery needs: `--discovery
/// ip:port`, else the first instance of the role `discovery` of the run.
fn discovery_addr(options: &BTreeMap<String, String>, contract: &Contract) -> Result<SocketAddr, RunError> {
    match options.get("--discovery") {
        Some(value) => value.parse().map_err(|_| RunError::Usage(format!("--discovery needs IP:PORT, not '{value}'"))),
        None => contract.first_of_role(DISCOVERY_ROLE).map(|(_, addr)| addr).ok_or_else(|| {
            RunError::Usage(format!(
                "--discovery IP:PORT is required when the run has no role '{DISCOVERY_ROLE}' (MGR_ROLES)"
            ))
        }),
    }
}

/// A random number generator seeded with `seed` (mixed with `salt`, so that
/// the processes of one run given the same seed still draw differently), or
/// from the system's entropy without a seed.
fn rng(seed: Option<u64>, salt: u64) -> StdRng {
    match seed {
        Some(seed) => StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(salt)),
        None => StdRng::from_os_rng(),
    }
}

// ---------------------------------------------------------------------------
// Discovery

const DISCOVERY_HELP: &str = "  list   print the live receivers\n  help   this list";

/// The registry of live receivers, as a service on its UDP socket and, for
/// the lab report's HTTP clients, on the TCP port of the same number.
#[derive(Debug)]
pub struct AckDiscovery {
    registry: Registry,
    heartbeat: Duration,
    /// The number of the last id given to a receiver that registered over
    /// HTTP without one (`r1`, `r2`…).
    given: u64,
}

/// The longest id a receiver may register under.
pub const MAX_ID: usize = 64;

/// Whether `id` may name a receiver: 1 to [`MAX_ID`] letters, digits, `-`,
/// `_`, `.` or `:`, so that it reads back from every answer unchanged.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl AckDiscovery {
    pub fn new(heartbeat: Duration) -> AckDiscovery {
        AckDiscovery { registry: Registry::default(), heartbeat, given: 0 }
    }

    fn ttl(&self) -> Duration {
        self.heartbeat * MISSED_HEARTBEATS
    }

    /// `POST /register {"address": "ip:port", "id": "name"}` (the id is
    /// optional): answers the id, the heartbeat period and the expiry.
    fn http_register(&mut self, ctx: &mut Context, body: &serde_json::Value) -> HttpResponse {
        let Some(address) = body.get("address").and_then(serde_json::Value::as_str) else {
            return HttpResponse::error(400, "register needs {\"address\": \"ip:port\"} (and optionally \"id\")");
        };
        let Ok(addr) = address.parse::<SocketAddr>() else {
            return HttpResponse::error(400, format!("address '{address}' is not an ip:port"));
        };
        let id = match body.get("id") {
            None | Some(serde_json::Value::Null) => match self.registry.entries.get(&addr) {
                // A receiver registering again without its id keeps it.
                Some((name, _)) => name.clone(),
                None => {
                    self.given += 1;
                    format!("r{}", self.given)
                }
            },
            Some(serde_json::Value::String(id)) if valid_id(id) => id.clone(),
            Some(other) => {
                return HttpResponse::error(
                    400,
                    format!("id {other} is not 1 to {MAX_ID} letters, digits, '-', '_', '.' or ':'"),
                );
            }
        };
        match self.registry.register_id(&id, addr, Instant::now()) {
            Ok(new) => {
                if new {
                    ctx.indicate("registered", Some(&id), address);
                }
                HttpResponse::json(
                    200,
                    &serde_json::json!({
                        "id": id,
                        "address": addr.to_string(),
                        "heartbeat_ms": self.heartbeat.as_millis() as u64,
                        "expires_ms": self.ttl().as_millis() as u64,
                    }),
                )
            }
            Err(err @ RegisterError::Taken { .. }) => HttpResponse::error(409, err),
            Err(err @ RegisterError::Full) => HttpResponse::error(503, err),
        }
    }

    /// `POST /heartbeat {"id": "name"}`: 404 once the registration expired.
    fn http_heartbeat(&mut self, body: &serde_json::Value) -> HttpResponse {
        let Some(id) = body.get("id").and_then(serde_json::Value::as_str) else {
            return HttpResponse::error(400, "heartbeat needs {\"id\": \"...\"}");
        };
        if self.registry.heartbeat(id, Instant::now()) {
            HttpResponse::json(200, &serde_json::json!({ "id": id }))
        } else {
            HttpResponse::error(404, format!("receiver '{id}' is not registered (it expired?): register again"))
        }
    }

    /// `GET /receivers`: the live receivers, `[{"id": …, "address": …}]`.
    fn http_receivers(&self) -> HttpResponse {
        let live: Vec<serde_json::Value> = self
            .registry
            .live()
            .into_iter()
            .map(|(id, addr)| serde_json::json!({ "id": id, "address": addr.to_string() }))
            .collect();
        HttpResponse::json(200, &serde_json::Value::Array(live))
    }
}

impl Module for AckDiscovery {
    fn help(&self) -> &'static str {
        DISCOVERY_HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        ctx.start_timer("disc.expire", self.heartbeat);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match command.verb.as_str() {
            "list" => {
                let live: Vec<String> =
                    self.registry.live().iter().map(|(name, addr)| format!("{name}={addr}")).collect();
                say(format_args!("receivers {}", live.join(",")));
            }
            _ => ctx.refuse(&command, DISCOVERY_HELP),
        }
    }

    fn tcp(&self) -> Option<runtime::Service> {
        Some(runtime::Service::Http)
    }

    fn upon_http(&mut self, ctx: &mut Context, request: HttpRequest) -> HttpResponse {
        let body = || -> Result<serde_json::Value, HttpResponse> {
            serde_json::from_slice(&request.body)
                .map_err(|err| HttpResponse::error(400, format!("the body is not JSON: {err}")))
        };
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/register") => body().map_or_else(|e| e, |body| self.http_register(ctx, &body)),
            ("POST", "/heartbeat") => body().map_or_else(|e| e, |body| self.http_heartbeat(&body)),
            ("GET", "/receivers") => self.http_receivers(),
            (_, "/register" | "/heartbeat" | "/receivers") => {
                HttpResponse::error(405, format!("{} {} is not served", request.method, request.path))
            }
            _ => HttpResponse::error(
                404,
                format!("no {}: try POST /register, POST /heartbeat or GET /receivers", request.path),
            ),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        match Frame::decode(payload) {
            Some(Frame::Register { name }) => match self.registry.register(&name, from, Instant::now()) {
                Ok(true) => ctx.indicate("registered", Some(&name), &from.to_string()),
                Ok(false) => {}
                Err(err) => eprintln!("discovery: refused the registration of {name} at {from}: {err}"),
            },
            Some(Frame::List) => {
                ctx.send_datagram(from, Frame::Receivers(self.registry.live()).encode().as_bytes());
            }
            _ => eprintln!("discovery: dropped a datagram from {from} that is not REGISTER or LIST: {payload:?}"),
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, _timer: Timer<'_>) {
        for (name, addr) in self.registry.expire(Instant::now(), self.ttl()) {
            ctx.indicate("expire", Some(&name), &addr.to_string());
        }
        ctx.start_timer("disc.expire", self.heartbeat);
    }
}

/// Runs the module: `mgr-modules AckDiscovery [--heartbeat-ms MS]`.
pub fn run_discovery(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let options = parse_options(args, &["--heartbeat-ms"], "--heartbeat-ms MS")?;
    let heartbeat = option(&options, "--heartbeat-ms", DEFAULT_HEARTBEAT_MS, "a number of milliseconds")?;
    if heartbeat == 0 {
        return Err(RunError::Usage("--heartbeat-ms needs a positive number".into()));
    }
    runtime::run(contract, AckDiscovery::new(Duration::from_millis(heartbeat)))
}

// ---------------------------------------------------------------------------
// Receiver

const RECEIVER_HELP: &str = "  help   this list";

/// A processing node: registers with discovery, processes requests, acks
/// them or crashes first.
#[derive(Debug)]
pub struct AckReceiver {
    discovery: SocketAddr,
    crash_prob: f64,
    work: Duration,
    heartbeat: Duration,
    seed: Option<u64>,
    rng: StdRng,
    /// The requests being processed, by the name of the timer that ends
    /// their work: (client address, request, attempt, text).
    working: BTreeMap<String, (SocketAddr, u64, u64, String)>,
}

impl AckReceiver {
    fn register(&self, ctx: &mut Context) {
        let frame = Frame::Register { name: ctx.self_name().to_owned() };
        ctx.send_datagram(self.discovery, frame.encode().as_bytes());
    }
}

impl Module for AckReceiver {
    fn help(&self) -> &'static str {
        RECEIVER_HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        // Each process of the run draws its own crashes from the shared
        // seed, and so does each start of it: a restarted receiver that drew
        // the same crash again would crash on its first request forever.
        // The rank is within the role, so that the receivers draw the same
        // whether they are a run of their own or a role after others.
        let rank = ctx.contract.rank_in_role() as u64;
        let starts = count_start(ctx);
        self.rng = rng(self.seed, crash_salt(rank, starts));
        self.register(ctx);
        // The first registration of each start is an event (the heartbeats
        // that repeat it are not): with discovery's `registered`, it is
        // drawn as an arrow from this receiver to discovery.
        let discovery = self.discovery.to_string();
        let name = ctx.contract.peer_name(self.discovery).map(str::to_owned);
        ctx.events.record("register", Some(name.as_deref().unwrap_or(&discovery)), None, Some(&discovery));
        ctx.start_timer("recv.heartbeat", self.heartbeat);
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        ctx.refuse(&command, RECEIVER_HELP);
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        let Some(Frame::Request { request, attempt, text }) = Frame::decode(payload) else {
            eprintln!("receiver: dropped a datagram from {from} that is not a REQUEST: {payload:?}");
            return;
        };
        let client = ctx.sender_name(from);
        ctx.deliver(&client, Some(request), None, &text);
        // A timer per request, so that requests of several clients are
        // processed side by side.
        let timer = format!("recv.work.{from}.{request}.{attempt}");
        ctx.start_timer(&timer, self.work);
        self.working.insert(timer, (from, request, attempt, text));
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        if timer == "recv.heartbeat" {
            self.register(ctx);
            ctx.start_timer("recv.heartbeat", self.heartbeat);
            return;
        }
        let Some((from, request, attempt, _text)) = self.working.remove(timer) else { return };
        let client = ctx.sender_name(from);
        if self.rng.random::<f64>() < self.crash_prob {
            // The lab's artificial failure: the process dies before acking,
            // and the manager sees an abnormal exit.
            say(format_args!("crash while processing request {request} from {client}"));
            std::process::exit(CRASH_EXIT_CODE);
        }
        ctx.events.record("ack", Some(&client), Some(request), None);
        ctx.send_datagram(from, Frame::Ack { request, attempt }.encode().as_bytes());
        say(format_args!("ack request {request} to {client}"));
    }
}

/// What a receiver mixes into the seed: its rank and how many times it
/// started before.
fn crash_salt(rank: u64, starts: u64) -> u64 {
    rank + (starts << 16)
}

/// Counts this start in `<MGR_DIR>/<self>.ack-starts` (kept across restarts)
/// and returns how many starts came before; 0 without a directory.
fn count_start(ctx: &Context) -> u64 {
    let Some(dir) = &ctx.contract.dir else { return 0 };
    let path = dir.join(format!("{}.ack-starts", ctx.self_name()));
    let before = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0u64);
    if let Err(err) = std::fs::write(&path, format!("{}\n", before + 1)) {
        eprintln!("receiver: cannot count starts in {}: {err}", path.display());
    }
    before
}

/// Runs the module: `mgr-modules AckReceiver [--discovery IP:PORT]
/// [--crash-prob P] [--seed S] [--work-ms MS] [--heartbeat-ms MS]`.
pub fn run_receiver(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let receiver = parse_receiver(args, &contract)?;
    runtime::run(contract, receiver)
}

fn parse_receiver(args: &[String], contract: &Contract) -> Result<AckReceiver, RunError> {
    let known = ["--discovery", "--crash-prob", "--seed", "--work-ms", "--heartbeat-ms"];
    let usage = "[--discovery IP:PORT] [--crash-prob P] [--seed S] [--work-ms MS] [--heartbeat-ms MS]";
    let options = parse_options(args, &known, usage)?;
    let crash_prob = option(&options, "--crash-prob", DEFAULT_CRASH_PROB, "a probability")?;
    if !(0.0..=1.0).contains(&crash_prob) {
        return Err(RunError::Usage("--crash-prob needs a probability between 0 and 1".into()));
    }
    let heartbeat = option(&options, "--heartbeat-ms", DEFAULT_HEARTBEAT_MS, "a number of milliseconds")?;
    if heartbeat == 0 {
        return Err(RunError::Usage("--heartbeat-ms needs a positive number".into()));
    }
    let seed = match options.get("--seed") {
        None => None,
        Some(_) => Some(option(&options, "--seed", 0u64, "a number")?),
    };
    Ok(AckReceiver {
        discovery: discovery_addr(&options, contract)?,
        crash_prob,
        work: Duration::from_millis(option(&options, "--work-ms", DEFAULT_WORK_MS, "a number of milliseconds")?),
        heartbeat: Duration::from_millis(heartbeat),
        seed,
        rng: rng(seed, 0),
        working: BTreeMap::new(),
    })
}

// ---------------------------------------------------------------------------
// Client

const CLIENT_HELP: &str = "  list                     ask discovery for the live receivers
  request text             send one more request (to a receiver picked at random)
  request --to ID text     send it to the receiver ID of the list first
  help                     this list";

/// Picks the receiver for the next attempt: at random among the live
/// receivers that have not failed this request yet; when every one has,
/// among those other than the last one that failed (it may be down), and
/// when that leaves none, the only one there is.
pub fn pick<'a>(
    live: &'a [(String, SocketAddr)],
    failed: &HashSet<SocketAddr>,
    last_failed: Option<SocketAddr>,
    rng: &mut impl Rng,
) -> Option<&'a (String, SocketAddr)> {
    let fresh: Vec<&(String, SocketAddr)> = live.iter().filter(|(_, addr)| !failed.contains(addr)).collect();
    if !fresh.is_empty() {
        return fresh.choose(rng).copied();
    }
    let others: Vec<&(String, SocketAddr)> = live.iter().filter(|(_, addr)| Some(*addr) != last_failed).collect();
    if !others.is_empty() {
        return others.choose(rng).copied();
    }
    live.choose(rng)
}

/// Where the client is with its current request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No request in hand.
    Idle,
    /// Asked discovery for the receivers.
    Asking,
    /// Sent attempt `attempt` to the receiver `name` at `addr`.
    Waiting { name: String, addr: SocketAddr, attempt: u64 },
}

/// The lab's client: sends each request to a receiver until one acks.
#[derive(Debug)]
pub struct AckClient {
    discovery: SocketAddr,
    timeout: Duration,
    /// Whether to print the summary and exit once the queue drains (the
    /// `--requests K` mode), or to wait for more `request` commands.
    exit_when_done: bool,
    seed: Option<u64>,
    rng: StdRng,
    /// Requests waiting: the text, and the receiver the user chose, if any.
    queue: VecDeque<(String, Option<String>)>,
    /// The request in hand: its number and text.
    current: Option<(u64, String)>,
    /// The receiver the user chose for the request in hand: its first
    /// attempt goes there, the retries (it may have crashed) anywhere.
    chosen: Option<String>,
    /// Whether the user asked for `list` and waits for the answer.
    listing: bool,
    phase: Phase,
    /// Receivers that did not ack the current request in time.
    failed: HashSet<SocketAddr>,
    /// Receivers the current request was sent to: the only ones whose ack
    /// counts (an ack from anywhere else acks nothing the client sent there).
    asked: HashSet<SocketAddr>,
    last_failed: Option<SocketAddr>,
    /// Attempts of the current request.
    tries: u64,
    /// Whether the client said that no receiver is registered.
    said_none: bool,
    requests: u64,
    acked: u64,
    attempts: u64,
    timeouts: u64,
}

impl AckClient {
    /// Starts the next queued request, if the client is free.
    fn next(&mut self, ctx: &mut Context) {
        if self.current.is_some() {
            return;
        }
        match self.queue.pop_front() {
            Some((text, chosen)) => {
                self.requests += 1;
                self.current = Some((self.requests, text));
                self.chosen = chosen;
                self.failed.clear();
                self.asked.clear();
                self.tries = 0;
                self.ask(ctx);
            }
            None => {
                say(format_args!(
                    "summary: {} requests acked, {} attempts, {} timeouts",
                    self.acked, self.attempts, self.timeouts
                ));
                if self.exit_when_done {
                    // The summary's counts depend on crashes and timing;
                    // this line does not, so a scenario can expect it.
                    say(format_args!("all {} requests acked", self.acked));
                    std::process::exit(0);
                }
            }
        }
    }

    /// Asks discovery for the live receivers; asks again if no answer
    /// comes within the timeout.
    fn ask(&mut self, ctx: &mut Context) {
        self.phase = Phase::Asking;
        ctx.send_datagram(self.discovery, Frame::List.encode().as_bytes());
        ctx.start_timer("client.wait", self.timeout);
    }

    /// Discovery answered: sends the request to one of the receivers.
    fn upon_receivers(&mut self, ctx: &mut Context, live: Vec<(String, SocketAddr)>) {
        let Some((request, text)) = self.current.clone() else { return };
        let picked = match self.chosen.take() {
            Some(id) => match live.iter().find(|(name, _)| *name == id) {
                Some(receiver) => Some(receiver),
                None => {
                    // The user's choice is gone (crashed, expired): the
                    // request is not sent anywhere else behind their back.
                    let names: Vec<&str> = live.iter().map(|(name, _)| name.as_str()).collect();
                    say(format_args!(
                        "error: request {request} not sent: no live receiver '{id}' (live: {})",
                        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                    ));
                    ctx.cancel_timer("client.wait");
                    self.current = None;
                    self.phase = Phase::Idle;
                    self.requests -= 1;
                    self.next(ctx);
                    return;
                }
            },
            None => pick(&live, &self.failed, self.last_failed, &mut self.rng),
        };
        let Some((name, addr)) = picked.cloned() else {
            // Said once per request, not every half second while none is up.
            if !self.said_none {
                say(format_args!("no receiver registered for request {request}, asking again"));
                self.said_none = true;
            }
            self.phase = Phase::Idle;
            ctx.start_timer("client.ask", ASK_AGAIN);
            return;
        };
        self.said_none = false;
        self.tries += 1;
        self.attempts += 1;
        let attempt = self.tries;
        ctx.events.send(&name, Some(request), &text);
        self.asked.insert(addr);
        ctx.send_datagram(addr, Frame::Request { request, attempt, text }.encode().as_bytes());
        say(format_args!("attempt {attempt} request {request} → {name} at {addr}"));
        self.phase = Phase::Waiting { name, addr, attempt };
        ctx.start_timer("client.wait", self.timeout);
    }

    /// An ack came: the current request is done (a late ack from an
    /// earlier attempt counts too: that receiver did process it).
    fn upon_ack(&mut self, ctx: &mut Context, from: SocketAddr, request: u64) {
        let Some((current, _)) = &self.current else { return };
        if *current != request {
            return;
        }
        if !self.asked.contains(&from) {
            eprintln!("client: dropped an ack of request {request} from {from}, which was never sent it");
            return;
        }
        let name = match &self.phase {
            Phase::Waiting { name, addr, .. } if *addr == from => name.clone(),
            _ => ctx.sender_name(from),
        };
        ctx.cancel_timer("client.wait");
        ctx.cancel_timer("client.ask");
        self.acked += 1;
        ctx.events.record("acked", Some(&name), Some(request), None);
        say(format_args!("acked request {request} by {name} after {} attempts", self.tries));
        self.current = None;
        self.phase = Phase::Idle;
        self.next(ctx);
    }
}

impl Module for AckClient {
    fn help(&self) -> &'static str {
        CLIENT_HELP
    }

    fn upon_init(&mut self, ctx: &mut Context) {
        let rank = ctx.contract.rank_in_role() as u64;
        self.rng = rng(self.seed, rank);
        if !self.queue.is_empty() {
            self.next(ctx);
        }
    }

    fn upon_command(&mut self, ctx: &mut Context, command: Command) {
        match (command.verb.as_str(), command.target_and_text()) {
            ("list", _) if command.args.is_empty() => {
                self.listing = true;
                ctx.send_datagram(self.discovery, Frame::List.encode().as_bytes());
            }
            ("request", Some(("--to", rest))) => match rest.split_once(char::is_whitespace) {
                Some((to, text)) if !text.trim().is_empty() => {
                    self.queue.push_back((text.trim().to_owned(), Some(to.to_owned())));
                    self.next(ctx);
                }
                _ => say("error: usage: request --to ID text"),
            },
            ("request", _) if command.args == "--to" => say("error: usage: request --to ID text"),
            ("request", _) if !command.args.is_empty() && !command.args.starts_with("--to") => {
                self.queue.push_back((command.args, None));
                self.next(ctx);
            }
            _ => ctx.refuse(&command, CLIENT_HELP),
        }
    }

    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]) {
        if from == self.discovery
            && self.listing
            && let Some(Frame::Receivers(live)) = Frame::decode(payload)
        {
            self.listing = false;
            say(format_args!("receivers {}", live.len()));
            for (name, addr) in &live {
                say(format_args!("  {name} {addr}"));
            }
        }
        match Frame::decode(payload) {
            Some(Frame::Receivers(live)) if from == self.discovery && self.phase == Phase::Asking => {
                self.upon_receivers(ctx, live);
            }
            Some(Frame::Ack { request, .. }) => self.upon_ack(ctx, from, request),
            // A late answer from discovery, after the client asked again.
            Some(Frame::Receivers(_)) => {}
            _ => eprintln!("client: dropped a datagram from {from} that is not RECEIVERS or ACK: {payload:?}"),
        }
    }

    fn upon_timeout(&mut self, ctx: &mut Context, timer: Timer<'_>) {
        let Some((request, _)) = &self.current else { return };
        let request = *request;
        match (timer, self.phase.clone()) {
            ("client.ask", _) => self.ask(ctx),
            ("client.wait", Phase::Asking) => {
                say(format_args!("discovery {} did not answer, asking again", self.discovery));
                self.ask(ctx);
            }
            ("client.wait", Phase::Waiting { name, addr, attempt }) => {
                self.timeouts += 1;
                self.failed.insert(addr);
                self.last_failed = Some(addr);
                // Logged, not printed: the line below says it for the user.
                ctx.events.record("timeout", Some(&name), Some(request), Some(&format!("attempt {attempt}")));
                say(format_args!(
                    "timeout request {request}: no ack from {name} at {addr} within {} ms, retrying",
                    self.timeout.as_millis()
                ));
                self.ask(ctx);
            }
            _ => {}
        }
    }
}

/// Runs the module: `mgr-modules AckClient [--discovery IP:PORT]
/// [--timeout-ms MS] [--requests K] [--seed S]`.
pub fn run_client(contract: Contract, args: &[String]) -> Result<(), RunError> {
    let client = parse_client(args, &contract)?;
    runtime::run(contract, client)
}

fn parse_client(args: &[String], contract: &Contract) -> Result<AckClient, RunError> {
    let known = ["--discovery", "--timeout-ms", "--requests", "--seed"];
    let usage = "[--discovery IP:PORT] [--timeout-ms MS] [--requests K] [--seed S]";
    let options = parse_options(args, &known, usage)?;
    let timeout = option(&options, "--timeout-ms", DEFAULT_TIMEOUT_MS, "a number of milliseconds")?;
    if timeout == 0 {
        return Err(RunError::Usage("--timeout-ms needs a positive number".into()));
    }
    let requests: u64 = option(&options, "--requests", 1, "a number")?;
    let seed = match options.get("--seed") {
        None => None,
        Some(_) => Some(option(&options, "--seed", 0u64, "a number")?),
    };
    Ok(AckClient {
        discovery: discovery_addr(&options, contract)?,
        timeout: Duration::from_millis(timeout),
        exit_when_done: requests > 0,
        seed,
        rng: rng(seed, 0),
        queue: (1..=requests).map(|r| (format!("req{r}"), None)).collect(),
        current: None,
        chosen: None,
        listing: false,
        phase: Phase::Idle,
        failed: HashSet::new(),
        asked: HashSet::new(),
        last_failed: None,
        tries: 0,
        said_none: false,
        requests: 0,
        acked: 0,
        attempts: 0,
        timeouts: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::contract::for_tests;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn frames_read_back_as_written() {
        let frames = [
            Frame::Register { name: "p2".into() },
            Frame::List,
            Frame::Receivers(vec![]),
            Frame::Receivers(vec![("p1".into(), addr(1)), ("p2".into(), addr(2))]),
            Frame::Request { request: 3, attempt: 2, text: "a  b".into() },
            Frame::Ack { request: 3, attempt: 2 },
        ];
        for frame in frames {
            assert_eq!(Frame::decode(frame.encode().as_bytes()), Some(frame.clone()), "{}", frame.encode());
        }
        assert_eq!(Frame::Receivers(vec![("p1".into(), addr(1))]).encode(), "RECEIVERS p1=127.0.0.1:1");
        assert_eq!(Frame::decode(b"RECEIVERS p1=nowhere"), None);
        assert_eq!(Frame::decode(b"ACK 1"), None);
        assert_eq!(Frame::decode(b"HELLO"), None);
    }

    #[test]
    fn registrations_expire_after_missed_heartbeats() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3);
        let mut registry = Registry::default();
        assert!(registry.register("p2", addr(2), t0).unwrap());
        assert!(registry.register("p1", addr(1), t0).unwrap());
        assert!(!registry.register("p1", addr(1), t0 + Duration::from_secs(1)).unwrap(), "a heartbeat is not news");
        assert_eq!(registry.live(), [("p1".into(), addr(1)), ("p2".into(), addr(2))]);
        // p1 heartbeats on; p2 (crashed) is silent after t0.
        assert!(registry.expire(t0 + Duration::from_secs(3), ttl).is_empty());
        registry.register("p1", addr(1), t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(registry.expire(t0 + Duration::from_millis(3500), ttl), [("p2".to_owned(), addr(2))]);
        assert_eq!(registry.live(), [("p1".to_owned(), addr(1))]);
        // A restarted receiver registers afresh.
        assert!(registry.register("p2", addr(2), t0 + Duration::from_secs(4)).unwrap());
        assert_eq!(registry.live().len(), 2);
    }

    #[test]
    fn http_ids_are_unique_heartbeats_need_a_registration_and_the_registry_is_bounded() {
        let t0 = Instant::now();
        let mut registry = Registry::default();
        assert!(registry.register_id("brenda", addr(1), t0).unwrap());
        assert_eq!(
            registry.register_id("brenda", addr(2), t0),
            Err(RegisterError::Taken { id: "brenda".into(), addr: addr(1) })
        );
        assert!(!registry.register_id("brenda", addr(1), t0).unwrap(), "again at the same address");
        assert!(registry.heartbeat("brenda", t0 + Duration::from_secs(2)));
        assert!(!registry.heartbeat("carl", t0));
        registry.expire(t0 + Duration::from_secs(10), Duration::from_secs(3));
        assert!(!registry.heartbeat("brenda", t0 + Duration::from_secs(10)), "expired: register again");
        for port in 0..MAX_RECEIVERS as u16 {
            registry.register(&format!("r{port}"), addr(port), t0).unwrap();
        }
        assert_eq!(registry.register("one-more", addr(60000), t0), Err(RegisterError::Full));
        assert!(registry.register("r1", addr(1), t0).is_ok(), "a known receiver still heartbeats");
        assert!(
            valid_id("p2") && valid_id("recv-1.a") && !valid_id("") && !valid_id("a b") && !valid_id(&"x".repeat(65))
        );
    }

    #[test]
    fn the_client_retries_with_another_receiver() {
        let live = vec![("p1".to_owned(), addr(1)), ("p2".to_owned(), addr(2)), ("p3".to_owned(), addr(3))];
        let mut rng = StdRng::seed_from_u64(1);
        let mut failed = HashSet::new();
        // Each failure leaves fewer choices, never one that failed already.
        for _ in 0..3 {
            let (_, chosen) = pick(&live, &failed, failed.iter().next().copied(), &mut rng).unwrap();
            assert!(!failed.contains(chosen));
            failed.insert(*chosen);
        }
        // Every one failed: anyone but the last one that failed.
        for _ in 0..20 {
            let (_, chosen) = pick(&live, &failed, Some(addr(2)), &mut rng).unwrap();
            assert_ne!(*chosen, addr(2));
        }
        // Only the one that failed is left: it is tried again.
        let one = &live[1..2];
        assert_eq!(pick(one, &failed, Some(addr(2)), &mut rng).unwrap().1, addr(2));
        assert!(pick(&[], &failed, None, &mut rng).is_none());
    }

    #[test]
    fn a_seed_makes_choices_and_crashes_reproducible() {
        let draws = |seed, salt| {
            let mut r = rng(Some(seed), salt);
            (0..5).map(|_| r.random::<f64>()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7, 1), draws(7, 1));
        assert_ne!(draws(7, 0), draws(7, 1), "processes of a run draw differently");
    }

    #[test]
    fn seed_8_crashes_p1_at_once_and_spares_p2_and_p3() {
        // cli/tests/cli/apps_ack.rs counts on these draws: with seed 8 and
        // --crash-prob 0.5, p1 crashes on its first request while p2 and p3
        // ack their first three, so every request ends acked without restarts.
        let crashes = |rank, starts| {
            let mut r = rng(Some(8), crash_salt(rank, starts));
            (0..3).map(|_| r.random::<f64>() < 0.5).collect::<Vec<_>>()
        };
        assert!(crashes(0, 0)[0]);
        assert_eq!(crashes(1, 0), [false; 3]);
        assert_eq!(crashes(2, 0), [false; 3]);
        let first = |starts| rng(Some(8), crash_salt(0, starts)).random::<f64>();
        assert_ne!(first(0), first(1), "a restart draws afresh");
    }

    #[test]
    fn arguments_are_checked() {
        let alone = for_tests("p1", 3, None);
        let parse_receiver = |a: &[&str]| parse_receiver(&args(a), &alone);
        let parse_client = |a: &[&str]| parse_client(&args(a), &alone);
        let err = parse_receiver(&[]).unwrap_err().to_string();
        assert_eq!(err, "--discovery IP:PORT is required when the run has no role 'discovery' (MGR_ROLES)");
        let r = parse_receiver(&["--discovery", "127.0.0.1:9", "--crash-prob=0.2", "--seed", "7"]).unwrap();
        assert_eq!((r.discovery, r.crash_prob, r.seed), (addr(9), 0.2, Some(7)));
        assert!(parse_receiver(&["--discovery", "127.0.0.1:9", "--crash-prob", "2"]).is_err());
        assert!(parse_receiver(&["--discovery", "nowhere"]).is_err());
        let c = parse_client(&["--discovery", "127.0.0.1:9", "--requests", "3", "--timeout-ms", "500"]).unwrap();
        assert_eq!(c.queue, [("req1".into(), None), ("req2".into(), None), ("req3".into(), None)]);
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert!(c.exit_when_done);
        assert!(!parse_client(&["--discovery", "127.0.0.1:9", "--requests", "0"]).unwrap().exit_when_done);
        assert!(parse_client(&["--discovery", "127.0.0.1:9", "--timeout-ms", "0"]).is_err());
        assert!(parse_client(&["--discovery", "127.0.0.1:9", "--port", "1"]).is_err());
    }

    #[test]
    fn in_a_run_with_roles_discovery_is_the_instance_of_its_role() {
        let roles = "discovery=p1;receiver=p2,p3,p4;client=p5";
        let receiver = parse_receiver(&[], &for_tests("p3", 5, Some(roles))).unwrap();
        assert_eq!(receiver.discovery, addr(7001));
        let client = parse_client(&args(&["--requests", "2"]), &for_tests("p5", 5, Some(roles))).unwrap();
        assert_eq!(client.discovery, addr(7001));
        // --discovery still wins, e.g. for a discovery shared by several runs.
        let given = parse_client(&args(&["--discovery", "127.0.0.1:9"]), &for_tests("p5", 5, Some(roles))).unwrap();
        assert_eq!(given.discovery, addr(9));
        // A run whose roles have no discovery still needs the argument.
        assert!(parse_client(&[], &for_tests("p2", 2, Some("receiver=p1;client=p2"))).is_err());
        // The receivers rank themselves within their role, as in a run of
        // their own, so that a seed draws the same crashes either way.
        assert_eq!(for_tests("p2", 5, Some(roles)).rank_in_role(), 0);
        assert_eq!(for_tests("p4", 5, Some(roles)).rank_in_role(), 2);
    }
}
