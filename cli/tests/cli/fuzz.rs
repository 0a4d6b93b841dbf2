//! The fuzzer of a manager's two gRPC services (issue 11), and the
//! authorization rules of the `Peer` service.
//!
//! Two real managers, `a` (with `--allow-exec`, so that exec paths are
//! reached too) and `b`, form one group on loopback, with their state dirs
//! side by side in one temporary root. A seeded generator (`MGR_FUZZ_SEED`,
//! or a fixed default) calls every RPC of `Manager` and of `Peer` through
//! the generated clients, over mutual TLS with the group key, as a user or
//! another member holding the key would: hostile values (names with `/`,
//! `..`, NUL and control characters, 10 MB strings, huge counts, unknown
//! enums, NaN, bad launch ids, forged members and plans) mixed with valid
//! ones often enough to go deep (real runs, and real reservations,
//! preparations and starts of launches). After every call a refusal must be
//! a clear status; throughout, both managers must keep answering; at the
//! end nothing may exist in the root but the two state dirs, every run
//! folder must be a valid run name holding only its instances' files, and
//! neither manager may have panicked.
//!
//! Every address the test gives the managers is on loopback, on a port the
//! test holds (or one of the two managers' own), or is no address at all:
//! the managers dial what they are given.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write as _};
use std::future::Future;

use mgr_daemon::auth::{GroupKey, Tls};
use mgr_daemon::names::{self, Kind};
use mgr_proto::manager_client::ManagerClient;
use mgr_proto::peer_client::PeerClient;
use mgr_proto::*;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::group::{free_port, join_arg};
use crate::harness::*;

/// The seed when `MGR_FUZZ_SEED` gives none.
const DEFAULT_SEED: u64 = 0x6d67_722d_6675_7a7a;

/// How long the generator calls for, before the checks at the end: the
/// whole test stays well under a minute in a debug build on two cores.
/// `MGR_FUZZ_SECS` makes a longer session, for fuzzing by hand.
const BUDGET: Duration = Duration::from_secs(22);

/// [`BUDGET`], or `MGR_FUZZ_SECS` seconds.
fn budget() -> Duration {
    match std::env::var("MGR_FUZZ_SECS") {
        Ok(secs) => {
            Duration::from_secs(secs.parse().unwrap_or_else(|_| panic!("MGR_FUZZ_SECS={secs} is not a number")))
        }
        Err(_) => BUDGET,
    }
}

/// Fewest calls of each RPC for a run of the fuzzer to count, so that it
/// cannot pass by doing nothing.
const MIN_CALLS: usize = 10;

/// Longest wait for a call's answer: beyond it, the manager hangs. Generous,
/// because the machine may be busy with other tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest wait for each message of a stream (a followed stream never ends
/// by itself), and how many messages are read before it is dropped.
const STREAM_WAIT: Duration = Duration::from_millis(200);
const STREAM_TAKE: usize = 3;

/// The longest message of a clear refusal: a 10 MB name must not come back.
const MAX_MESSAGE: usize = 1024;

/// How often, while fuzzing, both managers must answer `ps` and `members`
/// on their Unix sockets.
const HEALTH_EVERY: Duration = Duration::from_secs(3);

/// Most 10 MB strings sent in one run: each costs a transfer and a decode.
const MAX_BIG: usize = 12;
const BIG: usize = 10 << 20;

/// The module of the valid launches: it runs until stopped and sends
/// nothing unless told to.
const MODULE: &str = "FairLossPointToPointLink";

/// The RPCs of both services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rpc {
    Launch,
    Logs,
    Ps,
    Send,
    Signal,
    Fault,
    Modules,
    Members,
    Join,
    Forget,
    Events,
    Hello,
    Reserve,
    Prepare,
    Start,
    Abort,
    Scale,
    Grow,
    Retable,
}

const ALL: [Rpc; 19] = [
    Rpc::Launch,
    Rpc::Logs,
    Rpc::Ps,
    Rpc::Send,
    Rpc::Signal,
    Rpc::Fault,
    Rpc::Modules,
    Rpc::Members,
    Rpc::Join,
    Rpc::Forget,
    Rpc::Events,
    Rpc::Hello,
    Rpc::Reserve,
    Rpc::Prepare,
    Rpc::Start,
    Rpc::Abort,
    Rpc::Scale,
    Rpc::Grow,
    Rpc::Retable,
];

/// xorshift64*: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that 0 and nearby seeds start apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// `MGR_FUZZ_SEED` (decimal, or hex with `0x`), or [`DEFAULT_SEED`].
fn seed() -> u64 {
    let Ok(text) = std::env::var("MGR_FUZZ_SEED") else { return DEFAULT_SEED };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("MGR_FUZZ_SEED={text} is not a number"))
}

/// Two managers of one group on loopback, `b` joined to `a`, their state
/// dirs `ROOT/state-a` and `ROOT/state-b`.
struct Pair {
    a: Daemon,
    b: Daemon,
    a_addr: String,
    b_addr: String,
    a_id: String,
    b_id: String,
    /// Last, so that it is removed after both managers have stopped.
    root: tempfile::TempDir,
}

impl Pair {
    fn start(a_extra: &[&str]) -> Result<Pair> {
        let root = tempfile::tempdir()?;
        let (a_addr, b_addr) = (join_arg(free_port()), join_arg(free_port()));
        let state = |name: &str| -> Result<PathBuf> {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir)?;
            Ok(dir)
        };
        let mut a_args = vec!["--name", "a", "--listen", &a_addr, "--key-file", group_key()];
        a_args.extend(a_extra);
        // Room for the runs a fuzzing session keeps running at once (each
        // instance holds a port until it ends).
        let a = Daemon::start_at(&state("state-a")?, &a_args, &port_range(200))?;
        let b_args = ["--name", "b", "--listen", &b_addr, "--key-file", group_key(), "--join", &a_addr];
        let b = Daemon::start_at(&state("state-b")?, &b_args, &port_range(200))?;
        for daemon in [&a, &b] {
            wait_until("a and b alive", || daemon.alive_members().is_ok_and(|m| m == ["a", "b"]))?;
        }
        let (a_id, b_id) = (a.member_id()?, b.member_id()?);
        Ok(Pair { a, b, a_addr, b_addr, a_id, b_id, root })
    }

    fn runs_dir(&self, on_b: bool) -> PathBuf {
        if on_b { self.b.dir.join("runs") } else { self.a.dir.join("runs") }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// Both services of one manager, reached over TCP with the group key.
#[derive(Clone)]
struct Clients {
    manager: ManagerClient<Channel>,
    peer: PeerClient<Channel>,
}

async fn clients(addr: &str) -> Result<Clients> {
    let tls = Tls::new(&GroupKey::load(Path::new(group_key()))?)?;
    let channel = mgr_daemon::auth::connect(addr, &tls).await?;
    Ok(Clients {
        manager: ManagerClient::new(channel.clone()).max_decoding_message_size(32 << 20),
        peer: PeerClient::new(channel).max_decoding_message_size(32 << 20),
    })
}

/// Why a refusal is not a clear one, if it is not: a code that says
/// nothing, or a message that is empty, not one line, holds control
/// characters, or is too long (an echo of a huge field).
fn unclear(status: &Status) -> Option<String> {
    let message = status.message();
    let why = if status.code() == Code::Unknown {
        "the code is Unknown"
    } else if message.is_empty() {
        "the message is empty"
    } else if message.len() >= MAX_MESSAGE {
        "the message is longer than 1 KiB"
    } else if message.chars().any(char::is_control) {
        "the message is not one line of text (control characters)"
    } else if message.starts_with("h2 protocol error") || message.contains("transport error") {
        "the call broke instead of being refused"
    } else {
        return None;
    };
    Some(format!("{why}: {:?} {}", status.code(), brief(&message, 300)))
}

/// `value`'s Debug text, cut at `max` bytes without formatting the rest
/// (a request may hold 10 MB strings).
fn brief(value: &impl fmt::Debug, max: usize) -> String {
    struct Limited {
        text: String,
        max: usize,
    }
    impl fmt::Write for Limited {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = self.max - self.text.len();
            if s.len() <= room {
                self.text.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.text.push('…');
            Err(fmt::Error)
        }
    }
    let mut out = Limited { text: String::new(), max };
    let _ = write!(out, "{value:?}");
    out.text
}

/// A launch this test made with `Peer` calls on one member, as another
/// member would: reserved, then perhaps prepared and started.
#[derive(Debug, Clone)]
struct Tracked {
    on_b: bool,
    launch_id: String,
    run: String,
    total: u32,
    prepared: Vec<Instance>,
    started: bool,
}

/// A run known to exist (or to have existed), and its instance count.
#[derive(Debug, Clone)]
struct Known {
    name: String,
    instances: usize,
}

/// Calls and outcomes of one RPC.
#[derive(Debug, Default)]
struct Tally {
    calls: usize,
    ok: usize,
    refused: BTreeMap<String, usize>,
    /// The first message of each code, for the report.
    examples: BTreeMap<String, String>,
}

/// The generator, its clients of both managers, what it knows of the runs
/// and launches it made (to aim later calls at them), and what it saw.
struct Fuzzer<'p> {
    pair: &'p Pair,
    seed: u64,
    rng: Rng,
    a: Clients,
    b: Clients,
    /// 127.0.0.1:P of a listener this test holds and never answers on.
    silent: String,
    /// 127.0.0.1:P of a UDP socket this test holds, for forged plans.
    sink: String,
    /// A path outside every state dir that nothing may create.
    canary: String,
    runs: Vec<Known>,
    launches: Vec<Tracked>,
    /// Names made so far by [`Fuzzer::fresh`].
    fresh: u64,
    /// 10 MB strings sent so far.
    bigs: usize,
    /// The last requests, for the message of a failure, and the member
    /// the last one went to.
    recent: VecDeque<String>,
    last_on_b: bool,
    tally: BTreeMap<Rpc, Tally>,
}

impl Fuzzer<'_> {
    /// Fails the test with the seed and the last requests.
    fn fail(&self, what: impl fmt::Display) -> ! {
        let recent: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        let mut logs = String::new();
        for (name, daemon) in [("a", &self.pair.a), ("b", &self.pair.b)] {
            let log = daemon.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let _ = write!(logs, "\nthe end of manager {name}'s log:\n  {}", tail.join("\n  "));
        }
        panic!(
            "fuzz: {what}\nseed {seed} (repeat with MGR_FUZZ_SEED={seed}); the last requests, oldest first:\n  {}{logs}",
            recent.join("\n  "),
            seed = self.seed
        );
    }

    /// Counts a call and keeps its request for the message of a failure.
    fn note(&mut self, rpc: Rpc, on_b: bool, request: &impl fmt::Debug) {
        if self.recent.len() == 8 {
            self.recent.pop_front();
        }
        let member = if on_b { "b" } else { "a" };
        self.last_on_b = on_b;
        self.recent.push_back(format!("{rpc:?} on {member}: {}", brief(request, 600)));
        self.tally.entry(rpc).or_default().calls += 1;
    }

    /// Counts a refusal, which must be clear.
    fn refused(&mut self, rpc: Rpc, status: &Status) {
        if let Some(why) = unclear(status) {
            self.fail(format!("{rpc:?} refused without a clear status: {why}"));
        }
        let tally = self.tally.entry(rpc).or_default();
        let code = format!("{:?}", status.code());
        tally.examples.entry(code.clone()).or_insert_with(|| status.message().to_owned());
        *tally.refused.entry(code).or_default() += 1;
    }

    /// Awaits a unary call (or the opening of a stream): its answer, or
    /// `None` after checking that its refusal is clear.
    async fn answer<T>(
        &mut self,
        rpc: Rpc,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Option<T> {
        let result = timed(call).await;
        if result.is_err() {
            let diagnosis = self.diagnose().await;
            self.fail(format!("{rpc:?} did not answer within {CALL_TIMEOUT:?} ({diagnosis})"));
        }
        self.judge(rpc, result)
    }

    /// After a call that did not answer: whether the manager answers a
    /// small call on the same connection, and on a new one.
    async fn diagnose(&mut self) -> String {
        let addr = if self.last_on_b { self.pair.b_addr.clone() } else { self.pair.a_addr.clone() };
        let mut same = self.clients(self.last_on_b).manager;
        let wait = Duration::from_secs(5);
        let on_same = tokio::time::timeout(wait, same.members(MembersRequest::default())).await;
        let on_new = tokio::time::timeout(wait, async {
            let mut fresh = clients(&addr).await?.manager;
            Ok::<_, anyhow::Error>(fresh.members(MembersRequest::default()).await?)
        })
        .await;
        let said = |answered: bool, ok: bool| match (answered, ok) {
            (false, _) => "does not answer",
            (true, true) => "answers",
            (true, false) => "refuses",
        };
        format!(
            "the manager at {addr} {} members on the same connection and {} on a new one",
            said(on_same.is_ok(), on_same.as_ref().is_ok_and(Result::is_ok)),
            said(on_new.is_ok(), on_new.as_ref().is_ok_and(Result::is_ok)),
        )
    }

    /// What a call came to, awaited within [`CALL_TIMEOUT`] (calls made at
    /// the same time are judged one by one).
    fn judge<T>(
        &mut self,
        rpc: Rpc,
        result: Result<Result<tonic::Response<T>, Status>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match result {
            Err(_) => self.fail(format!("{rpc:?} did not answer within {CALL_TIMEOUT:?}")),
            Ok(Ok(reply)) => {
                self.tally.entry(rpc).or_default().ok += 1;
                Some(reply.into_inner())
            }
            Ok(Err(status)) => {
                self.refused(rpc, &status);
                None
            }
        }
    }

    /// A few messages of a stream, then it is dropped. An error in the
    /// stream must be as clear as a refusal.
    async fn take<T>(
        &mut self,
        rpc: Rpc,
        call: impl Future<Output = Result<tonic::Response<Streaming<T>>, Status>>,
    ) -> Vec<T> {
        let Some(mut stream) = self.answer(rpc, call).await else { return Vec::new() };
        let mut messages = Vec::new();
        for _ in 0..STREAM_TAKE {
            match tokio::time::timeout(STREAM_WAIT, stream.message()).await {
                Err(_) | Ok(Ok(None)) => break,
                Ok(Ok(Some(message))) => messages.push(message),
                Ok(Err(status)) => {
                    if let Some(why) = unclear(&status) {
                        self.fail(format!("{rpc:?}'s stream broke without a clear status: {why}"));
                    }
                    break;
                }
            }
        }
        messages
    }

    fn clients(&self, on_b: bool) -> Clients {
        if on_b { self.b.clone() } else { self.a.clone() }
    }

    /// Both managers answer `ps` and `members` on their Unix sockets.
    fn health(&self) {
        for (name, daemon) in [("a", &self.pair.a), ("b", &self.pair.b)] {
            for verb in ["ps", "members"] {
                if let Err(err) = daemon.ok(&[verb]) {
                    self.fail(format!("manager {name} no longer answers {verb}: {err:#}"));
                }
            }
        }
    }

    /// Calls until the budget is spent, checking the managers' health.
    async fn run(&mut self) {
        let (began, budget) = (Instant::now(), budget());
        let mut checked = Instant::now();
        let mut order = ALL.to_vec();
        while began.elapsed() < budget {
            // Every RPC once per round, in an order of the seed's.
            for i in (1..order.len()).rev() {
                order.swap(i, self.rng.below(i + 1));
            }
            for &rpc in &order {
                self.call(rpc).await;
            }
            // A launch of the Peer service carried on in order, since the
            // shuffled round puts its steps in order only by chance; then
            // calls that race each other on the same run.
            self.reserve().await;
            self.prepare().await;
            self.start().await;
            self.race().await;
            // Fresh runs for the next round's targets, when the fuzz has
            // stopped or refused most of them.
            if self.runs.len() < 2 {
                self.launch(true).await;
            }
            if checked.elapsed() > HEALTH_EVERY {
                self.health();
                checked = Instant::now();
            }
        }
    }

    async fn call(&mut self, rpc: Rpc) {
        match rpc {
            Rpc::Launch => self.launch(false).await,
            Rpc::Logs => self.logs().await,
            Rpc::Ps => self.ps().await,
            Rpc::Send => self.send().await,
            Rpc::Signal => self.signal().await,
            Rpc::Fault => self.fault().await,
            Rpc::Modules => self.modules().await,
            Rpc::Members => self.members().await,
            Rpc::Join => self.join().await,
            Rpc::Forget => self.forget().await,
            Rpc::Events => self.events().await,
            Rpc::Hello => self.hello().await,
            Rpc::Reserve => self.reserve().await,
            Rpc::Prepare => self.prepare().await,
            Rpc::Start => self.start().await,
            Rpc::Abort => self.abort().await,
            Rpc::Scale => self.scale().await,
            Rpc::Grow => self.grow().await,
            Rpc::Retable => self.retable().await,
        }
    }
}

// Values: hostile ones, and valid ones often enough to go deep.
impl Fuzzer<'_> {
    /// A value no name, address or id should be taken as: paths, NUL,
    /// line breaks, terminal escapes, options, near-misses of instance
    /// names, too long by one, or huge.
    fn hostile(&mut self) -> String {
        const FIXED: &[&str] = &[
            "",
            ".",
            "..",
            "../../fuzz-escape",
            "a/b",
            "p0",
            "p01",
            "p1",
            "p999999999",
            "p1234567890",
            "a\0b",
            "a\nb",
            "a\rb\t",
            "\x1b[2J",
            "-rf",
            "é",
            "a b",
            "/",
            "...",
            "%s%n",
        ];
        match self.rng.below(FIXED.len() + 3) {
            i if i < FIXED.len() => FIXED[i].to_owned(),
            i if i == FIXED.len() => self.canary.clone(),
            i if i == FIXED.len() + 1 => "x".repeat(65),
            _ => self.big(),
        }
    }

    /// Occasionally 10 MB (of letters, of two-byte characters, of
    /// newlines, of `/..`), else a string just over the manager's text
    /// bounds.
    fn big(&mut self) -> String {
        if self.bigs >= MAX_BIG || !self.rng.chance(35) {
            return "y".repeat(self.rng.pick(&[4097, 32 * 1024 + 1, 256 * 1024 + 1]));
        }
        self.bigs += 1;
        match self.rng.below(4) {
            0 => "x".repeat(BIG),
            1 => "é".repeat(BIG / 2),
            2 => "\n".repeat(BIG),
            _ => "/..".repeat(BIG / 3),
        }
    }

    /// A name no run of this test has.
    fn fresh(&mut self) -> String {
        self.fresh += 1;
        format!("fz{}-{}", self.fresh, self.rng.below(1000))
    }

    /// A launch id no manager made: 32 hex digits.
    fn launch_id(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.next(), self.rng.next())
    }

    /// Not a launch id at all.
    fn bad_launch_id(&mut self) -> String {
        match self.rng.below(6) {
            0 => String::new(),
            1 => "0".repeat(31),
            2 => "0".repeat(33),
            3 => "g".repeat(32),
            4 => "../../fuzz-escape/0123456789abcdef".into(),
            _ => self.hostile(),
        }
    }

    /// A run of this test's, a name no run has, or a hostile one.
    fn run_name(&mut self) -> String {
        match self.rng.below(10) {
            0..=5 if !self.runs.is_empty() => self.rng.pick(&self.runs).name,
            6 => self.fresh(),
            _ => self.hostile(),
        }
    }

    /// `RUN` or `RUN/pN`, valid or not.
    fn target(&mut self) -> String {
        let known = (!self.runs.is_empty()).then(|| self.rng.pick(&self.runs));
        match (self.rng.below(10), known) {
            (0..=2, Some(run)) => run.name,
            (3..=5, Some(run)) => format!("{}/p{}", run.name, 1 + self.rng.below(run.instances + 1)),
            (6, Some(run)) => format!("{}/{}", run.name, self.hostile()),
            (7, Some(run)) => format!("{}/p1/p1", run.name),
            (8, _) => format!("{}/p1", self.hostile()),
            _ => self.run_name(),
        }
    }

    /// An instance count no launch may have.
    fn count(&mut self) -> u32 {
        self.rng.pick(&[0, 256, 257, u32::MAX, 1 << 31])
    }

    /// The edges of a u64: 0, 1, past 2^40 (automatic run names), the top.
    fn u64(&mut self) -> u64 {
        let random = self.rng.next();
        self.rng.pick(&[0, 1, 2, 1 << 40, (1 << 40) + 1, u64::MAX - 1, u64::MAX, random])
    }

    /// A float no probability is, or the edges of one.
    fn f64(&mut self) -> f64 {
        self.rng.pick(&[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            2.0,
            0.0,
            -0.0,
            0.5,
            1.0,
            f64::MIN_POSITIVE,
            1e308,
        ])
    }

    /// A probability, or not one.
    fn probability(&mut self) -> f64 {
        if self.rng.chance(50) { self.rng.below(101) as f64 / 100.0 } else { self.f64() }
    }

    /// A few hostile words, or more than a role may have.
    fn words(&mut self) -> Vec<String> {
        if self.rng.chance(15) {
            return vec!["w".to_owned(); 300];
        }
        (0..1 + self.rng.below(3)).map(|_| self.hostile()).collect()
    }

    /// A role's environment: loader and interpreter hooks, the launch
    /// contract, entries that are not NAME=VALUE, too many, too long.
    fn env(&mut self) -> Vec<String> {
        if self.rng.chance(10) {
            return (0..65).map(|i| format!("V{i}=x")).collect();
        }
        let entries = [
            "LD_PRELOAD=/x.so",
            "MGR_SELF=p9",
            "MGR_EVENTS=/tmp/x",
            "=x",
            "A",
            "A=\0",
            "RUST_LOG=debug",
            "TZ=UTC",
            "TZ=:/etc/localtime",
            "1A=x",
            "A B=x",
            "NO_COLOR=1",
            "NO_COLOR=1",
        ];
        let mut env: Vec<String> = (0..1 + self.rng.below(3)).map(|_| self.rng.pick(&entries).to_owned()).collect();
        if self.rng.chance(10) {
            env.push(format!("A={}", "v".repeat(32 * 1024 + 1)));
        }
        env
    }

    /// A faults spec, mostly one that is not valid.
    fn faults_text(&mut self) -> String {
        match self.rng.below(14) {
            0 => "loss=NaN".into(),
            1 => "loss=2".into(),
            2 => "loss=-1".into(),
            3 => "dup=inf".into(),
            4 => "delay=50-10".into(),
            5 => "delay=0-18446744073709551615".into(),
            6 => "partition=p1/p9".into(),
            7 => "partition=p1,p1/p2".into(),
            8 => "partition=../x".into(),
            9 => "loss=0.5 loss=0.1".into(),
            10 => "bogus=1".into(),
            11 => "loss=0.1 dup=0.1 delay=1-5 partition=p1/p2".into(),
            // Valid names, none of them an instance, as long as allowed.
            12 => format!("partition=p1/{}", "y".repeat(4000)),
            _ => self.hostile(),
        }
    }

    /// An address a manager may dial: on loopback, at a port of this test
    /// or of the two managers, or not an address at all.
    fn address(&mut self) -> String {
        match self.rng.below(10) {
            0 => self.pair.a_addr.clone(),
            1 => self.pair.b_addr.clone(),
            2 => self.silent.clone(),
            3 => "127.0.0.1:0".into(),
            4 => "127.0.0.1:99999".into(),
            5 => "256.0.0.1:1".into(),
            6 => "127.0.0.1".into(),
            7 => ":1".into(),
            _ => self.hostile(),
        }
    }

    /// An address on loopback that a manager may dial: one of the two
    /// managers, the test's silent listener, or a port nothing listens on.
    fn loopback(&mut self) -> String {
        match self.rng.below(5) {
            0 => self.pair.a_addr.clone(),
            1 => self.pair.b_addr.clone(),
            2 => self.silent.clone(),
            3 => "127.0.0.1:0".into(),
            _ => self.address(),
        }
    }

    /// The id of the other member as the callee sees it (a live member),
    /// its own id, ids of nobody, or no id at all.
    fn member_id(&mut self, on_b: bool) -> String {
        let (other, own) = if on_b { (&self.pair.a_id, &self.pair.b_id) } else { (&self.pair.b_id, &self.pair.a_id) };
        let (other, own) = (other.clone(), own.clone());
        match self.rng.below(12) {
            0..=8 => other,
            9 => own,
            10 => format!("fuzzm{}", self.rng.below(4)),
            _ => self.hostile(),
        }
    }

    /// A member description as a caller of `Hello` gives it:
    /// mostly a stranger of the group (from a small pool, so that the
    /// managers watch a bounded number of them), sometimes the callee's
    /// real peer at its real address (a forged address for a real member
    /// would move it: the key is trusted to that extent), or nonsense.
    fn member_info(&mut self, on_b: bool) -> Option<MemberInfo> {
        if self.rng.chance(5) {
            return None;
        }
        let (id, address) = match self.rng.below(10) {
            0..=1 if on_b => (self.pair.a_id.clone(), self.pair.a_addr.clone()),
            0..=1 => (self.pair.b_id.clone(), self.pair.b_addr.clone()),
            2 => (if on_b { self.pair.b_id.clone() } else { self.pair.a_id.clone() }, self.address()),
            3 => (self.hostile(), self.address()),
            _ => (format!("fuzzm{}", self.rng.below(4)), self.loopback()),
        };
        let name = if self.rng.chance(80) { format!("fuzz{}", self.rng.below(4)) } else { self.hostile() };
        let group = match self.rng.below(10) {
            0 => "other".to_owned(),
            1 => self.hostile(),
            _ => mgr_daemon::DEFAULT_GROUP.to_owned(),
        };
        let version = if self.rng.chance(85) { mgr_daemon::PROTOCOL_VERSION } else { self.rng.pick(&[0, 2, u32::MAX]) };
        let advertise = match self.rng.below(8) {
            0 => self.hostile(),
            1 => "127.0.0.2".into(),
            _ => "127.0.0.1".into(),
        };
        Some(MemberInfo {
            id,
            name,
            address,
            group,
            version,
            allow_exec: self.rng.chance(50),
            limits: self.rng.chance(50),
            advertise,
            instances: self.rng.next() as u32,
            incarnation: self.u64(),
        })
    }
}

// The Manager service.
impl Fuzzer<'_> {
    /// A launch that should succeed: a few instances of the module spread,
    /// packed or on each member, an exec on `a`, or two named roles.
    fn valid_launch(&mut self) -> LaunchRequest {
        let role = if self.rng.chance(20) {
            let command = match self.rng.below(3) {
                0 => vec!["sleep".to_owned(), "5".to_owned()],
                1 => vec!["cat".to_owned()],
                _ => vec!["true".to_owned()],
            };
            Role { command, count: 1 + self.rng.below(2) as u32, on: vec!["a".into()], ..Default::default() }
        } else {
            let placement = self.rng.pick(&["", "spread", "pack", "each"]).to_owned();
            Role { module: MODULE.into(), count: 1 + self.rng.below(3) as u32, placement, ..Default::default() }
        };
        let name = if self.rng.chance(50) { self.fresh() } else { String::new() };
        let faults = if self.rng.chance(20) { "loss=0.1 dup=0.1 delay=1-5".to_owned() } else { String::new() };
        if role.command.is_empty() && self.rng.chance(20) {
            // A scenario's run: named roles, numbered across.
            let roles = ["peer", "cmp"].map(|name| Role {
                name: name.into(),
                module: MODULE.into(),
                count: 1,
                ..Default::default()
            });
            return LaunchRequest { name, faults, roles: roles.to_vec() };
        }
        LaunchRequest { name, faults, roles: vec![role] }
    }

    /// One hostile change to a launch.
    fn mutate_launch(&mut self, req: &mut LaunchRequest) {
        let choice = self.rng.below(20);
        match choice {
            0 => req.name = self.hostile(),
            1 => req.roles.clear(),
            2 => req.faults = self.faults_text(),
            3 => {
                req.roles = (0..257)
                    .map(|i| Role { name: format!("r{i}"), module: MODULE.into(), count: 1, ..Default::default() })
                    .collect()
            }
            4 => {
                let first = req.roles.first().cloned().unwrap_or_default();
                let second = if self.rng.chance(50) { "peer".to_owned() } else { self.hostile() };
                let names = [self.hostile(), second];
                req.roles = names.into_iter().map(|name| Role { name, ..first.clone() }).collect();
            }
            5 if !self.runs.is_empty() => req.name = self.rng.pick(&self.runs).name,
            _ => {}
        }
        let Some(role) = req.roles.first_mut() else { return };
        match choice {
            6 => role.count = self.count(),
            7 => role.module = self.hostile(),
            8 => {
                role.command = match self.rng.below(6) {
                    // A program that does not exist, an empty one, or one
                    // that only reads what it is given.
                    0 => vec![self.hostile()],
                    1 => vec!["cat".into(), self.hostile()],
                    2 => vec![],
                    3 => vec![String::new()],
                    4 => vec!["true".into(); 300],
                    _ => vec!["sleep".into(), "5".into()],
                }
            }
            9 => role.args = self.words(),
            10 => role.env = self.env(),
            11 => {
                let hostile = self.hostile();
                role.placement = self.rng.pick(&["each".to_owned(), "pack".to_owned(), "random".to_owned(), hostile]);
            }
            12 => {
                role.on = match self.rng.below(7) {
                    0 => vec!["a".into()],
                    1 => vec!["b".into()],
                    2 => vec![self.pair.b_id.clone()],
                    3 => vec!["nobody".into()],
                    4 => vec!["a".into(); 300],
                    5 => vec!["a".into(), "a".into()],
                    _ => vec![self.hostile()],
                }
            }
            13 => {
                let hostile = self.hostile();
                role.restart = self.rng.pick(&["on-failure".to_owned(), "no".to_owned(), "always".to_owned(), hostile]);
                role.max_restarts = self.rng.pick(&[0, 1, 1000, 1001, u32::MAX]);
                role.restart_backoff_ms = self.rng.pick(&[0, 3_600_000, 3_600_001, u32::MAX]);
            }
            14 => role.instances = self.words(),
            15 => role.name = self.hostile(),
            // Deep, and refused before any process starts: a module that
            // no member has, on every member.
            16 => {
                role.count = 255;
                role.module = "NoSuchModule".into();
                role.command.clear();
            }
            17 => {
                role.count = 256;
                role.placement = "each".into();
            }
            18 => {
                role.module.clear();
                role.command.clear();
            }
            // A program that does not exist, where exec is allowed: the
            // error names it.
            19 => {
                role.command = vec![self.hostile()];
                role.on = vec!["a".into()];
            }
            _ => {}
        }
    }

    /// A launch, valid or changed once to three times; a run it makes is
    /// a target of later calls.
    async fn launch(&mut self, valid: bool) {
        let on_b = self.rng.chance(30);
        let mut req = self.valid_launch();
        if !valid && self.rng.chance(55) {
            for _ in 0..1 + self.rng.below(3) {
                self.mutate_launch(&mut req);
            }
        }
        self.note(Rpc::Launch, on_b, &req);
        let mut client = self.clients(on_b).manager;
        if let Some(LaunchReply { run: Some(run), .. }) = self.answer(Rpc::Launch, client.launch(req)).await {
            self.runs.push(Known { name: run.name, instances: run.instances.len() });
        }
    }

    async fn logs(&mut self) {
        let on_b = self.rng.chance(50);
        let req = LogsRequest {
            target: self.target(),
            since: if self.rng.chance(50) { 0 } else { self.u64() },
            follow: self.rng.chance(40),
            tail: if self.rng.chance(50) { 0 } else { self.u64() },
            local: self.rng.chance(25),
        };
        self.note(Rpc::Logs, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.take(Rpc::Logs, client.logs(req)).await;
    }

    async fn ps(&mut self) {
        let on_b = self.rng.chance(50);
        let run = if self.rng.chance(30) { String::new() } else { self.run_name() };
        let req = PsRequest { run, local: self.rng.chance(25) };
        self.note(Rpc::Ps, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Ps, client.ps(req)).await;
    }

    async fn send(&mut self) {
        let on_b = self.rng.chance(50);
        let line: Vec<u8> = match self.rng.below(9) {
            0 => b"send p2 hello".to_vec(),
            1 => b"send p9 x".to_vec(),
            // What only the control pipe may say.
            2 => b"#mgr faults loss=1".to_vec(),
            3 => Vec::new(),
            4 => b"\0\n\x1b[2J\r".to_vec(),
            5 => vec![b'a'; mgr_daemon::supervisor::STDIN_BYTES - 1],
            6 => vec![b'a'; mgr_daemon::supervisor::STDIN_BYTES],
            7 => self.big().into_bytes(),
            _ => self.hostile().into_bytes(),
        };
        let req = SendRequest { target: self.target(), line: line.into(), local: self.rng.chance(25) };
        self.note(Rpc::Send, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Send, client.send(req)).await;
    }

    async fn signal(&mut self) {
        let on_b = self.rng.chance(50);
        let kind = if self.rng.chance(60) {
            self.rng.pick(&[
                SignalKind::Pause,
                SignalKind::Resume,
                SignalKind::Restart,
                SignalKind::Stop,
                SignalKind::Kill,
            ]) as i32
        } else {
            self.rng.pick(&[0, 6, 99, -1, i32::MAX, i32::MIN])
        };
        let req = SignalRequest { target: self.target(), kind, local: self.rng.chance(25) };
        self.note(Rpc::Signal, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Signal, client.signal(req)).await;
    }

    async fn fault(&mut self) {
        let on_b = self.rng.chance(50);
        let delay = match self.rng.below(6) {
            0 => Some("10-50".to_owned()),
            1 => Some("50-10".to_owned()),
            2 => Some("0-18446744073709551615".to_owned()),
            3 => Some(self.hostile()),
            _ => None,
        };
        let partition = match self.rng.below(8) {
            0 => Some("p1/p2".to_owned()),
            1 => Some("p1,p2/p3".to_owned()),
            2 => Some("p9/p1".to_owned()),
            3 => Some("p0/p1".to_owned()),
            4 => Some(self.hostile()),
            5 => Some(format!("p1/{}", "y".repeat(4000))),
            _ => None,
        };
        let req = FaultRequest {
            run: self.run_name(),
            loss: self.rng.chance(50).then(|| self.probability()),
            dup: self.rng.chance(40).then(|| self.probability()),
            delay,
            partition,
            heal: self.rng.chance(20),
            local: self.rng.chance(25),
        };
        self.note(Rpc::Fault, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Fault, client.fault(req)).await;
    }

    async fn modules(&mut self) {
        let on_b = self.rng.chance(50);
        let name = match self.rng.below(3) {
            0 => String::new(),
            1 => MODULE.to_owned(),
            _ => self.hostile(),
        };
        let req = ModulesRequest { name };
        self.note(Rpc::Modules, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Modules, client.modules(req)).await;
    }

    async fn members(&mut self) {
        let on_b = self.rng.chance(50);
        self.note(Rpc::Members, on_b, &MembersRequest::default());
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Members, client.members(MembersRequest::default())).await;
    }

    async fn join(&mut self) {
        let on_b = self.rng.chance(50);
        // The silent listener costs the connect timeout: rarely.
        let address = loop {
            let address = self.address();
            if address != self.silent || self.rng.chance(15) {
                break address;
            }
        };
        let req = JoinRequest { address };
        self.note(Rpc::Join, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Join, client.join(req)).await;
    }

    async fn forget(&mut self) {
        let on_b = self.rng.chance(50);
        let member = match self.rng.below(6) {
            0 => self.rng.pick(&["a", "b"]).to_owned(),
            1 => self.pair.a_id.clone(),
            2 => self.pair.b_id.clone(),
            3 => format!("fuzzm{}", self.rng.below(4)),
            4 => format!("fuzz{}", self.rng.below(4)),
            _ => self.hostile(),
        };
        let req = ForgetRequest { member };
        self.note(Rpc::Forget, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Forget, client.forget(req)).await;
    }

    async fn events(&mut self) {
        let on_b = self.rng.chance(50);
        let req = EventsRequest { run: self.run_name(), follow: self.rng.chance(40), local: self.rng.chance(25) };
        self.note(Rpc::Events, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.take(Rpc::Events, client.events(req)).await;
    }
}

// The Peer service, as another member holding the key would call it.
impl Fuzzer<'_> {
    async fn hello(&mut self) {
        let on_b = self.rng.chance(50);
        let req = HelloRequest { from: self.member_info(on_b) };
        self.note(Rpc::Hello, on_b, &req);
        let mut client = self.clients(on_b).peer;
        self.answer(Rpc::Hello, client.hello(req)).await;
    }

    /// A launch of this test on one member, most of the time.
    fn tracked(&mut self, percent: u64, want: impl Fn(&Tracked) -> bool) -> Option<Tracked> {
        let candidates: Vec<Tracked> = self.launches.iter().filter(|t| want(t)).cloned().collect();
        (!candidates.is_empty() && self.rng.chance(percent)).then(|| self.rng.pick(&candidates))
    }

    async fn reserve(&mut self) {
        let on_b = self.rng.chance(60);
        let reused = self.tracked(25, |t| t.on_b == on_b && t.prepared.is_empty());
        let launch_id = match (&reused, self.rng.below(10)) {
            (Some(t), _) => t.launch_id.clone(),
            (None, 0) => self.bad_launch_id(),
            _ => self.launch_id(),
        };
        let run = match self.rng.below(10) {
            0..=3 => String::new(),
            4..=6 => self.fresh(),
            7 if !self.runs.is_empty() => self.rng.pick(&self.runs).name,
            _ => self.hostile(),
        };
        let from = if self.rng.chance(70) { self.rng.below(10) as u64 } else { self.u64() };
        let req = ReserveRequest { run, launch_id: launch_id.clone(), from, coordinator: self.member_id(on_b) };
        self.note(Rpc::Reserve, on_b, &req);
        let mut client = self.clients(on_b).peer;
        let Some(reply) = self.answer(Rpc::Reserve, client.reserve(req)).await else { return };
        if let Err(err) = names::check(Kind::Run, &reply.run) {
            self.fail(format!("Reserve held a name that is not one: {err}"));
        }
        // A launch holds one name at a time on a member: the new one.
        self.launches.retain(|t| !(t.on_b == on_b && t.launch_id == launch_id));
        let total = 1 + self.rng.below(2) as u32;
        self.launches.push(Tracked { on_b, launch_id, run: reply.run, total, prepared: Vec::new(), started: false });
        // The oldest launch is undone rather than forgotten, so that
        // nothing this test prepared waits for its expiry.
        if self.launches.len() > 12 {
            let oldest = self.launches.remove(0);
            let req = AbortRequest { run: oldest.run, launch_id: oldest.launch_id };
            self.note(Rpc::Abort, oldest.on_b, &req);
            let mut client = self.clients(oldest.on_b).peer;
            self.answer(Rpc::Abort, client.abort(req)).await;
        }
    }

    async fn prepare(&mut self) {
        let tracked = self.tracked(80, |t| t.prepared.is_empty());
        let on_b = tracked.as_ref().map_or_else(|| self.rng.chance(60), |t| t.on_b);
        let (run, launch_id, total) = match &tracked {
            Some(t) => (t.run.clone(), t.launch_id.clone(), t.total),
            None => (self.run_name(), self.launch_id(), 1),
        };
        // This member hosts p1; with a total of 2, p2 is another member's.
        let role = Role { module: MODULE.into(), instances: vec!["p1".into()], ..Default::default() };
        let mut req = PrepareRequest { run, launch_id, roles: vec![role], total, ..Default::default() };
        if self.rng.chance(40) {
            for _ in 0..1 + self.rng.below(3) {
                self.mutate_prepare(&mut req);
            }
        }
        self.note(Rpc::Prepare, on_b, &req);
        let launch_id = req.launch_id.clone();
        let mut client = self.clients(on_b).peer;
        let Some(reply) = self.answer(Rpc::Prepare, client.prepare(req)).await else { return };
        if let Some(t) = self.launches.iter_mut().find(|t| t.on_b == on_b && t.launch_id == launch_id) {
            t.prepared = reply.instances;
        }
    }

    /// One hostile change to a preparation.
    fn mutate_prepare(&mut self, req: &mut PrepareRequest) {
        let choice = self.rng.below(17);
        match choice {
            0 => req.total = self.rng.pick(&[0, 255, 256, 257, u32::MAX]),
            1 => req.roles.clear(),
            // Copies of a plain role, never of one a change made huge: 257
            // copies of a 10 MB field would take this test longer to encode
            // than any call may take.
            2 => {
                let plain = Role { module: MODULE.into(), instances: vec!["p1".into()], ..Default::default() };
                req.roles = vec![plain; 257];
            }
            3 => req.faults = self.faults_text(),
            4 => {
                req.role_table = match self.rng.below(3) {
                    0 => "peer=p1\0".to_owned(),
                    1 => self.hostile(),
                    _ => self.big(),
                }
            }
            // Never a multicast group: the instances would use it.
            5 => {
                let hostile = self.hostile();
                let invalid = ["127.0.0.1:5".to_owned(), "239.255.0.1".to_owned(), "0.0.0.0:0".to_owned(), hostile];
                req.multicast = self.rng.pick(&invalid);
            }
            6 => req.run = self.hostile(),
            7 => req.launch_id = self.bad_launch_id(),
            _ => {}
        }
        let Some(role) = req.roles.first_mut() else { return };
        match choice {
            8 => {
                role.instances = match self.rng.below(4) {
                    0 => vec!["p1".into(), "p1".into()],
                    1 => vec!["p3".into()],
                    2 => (1..=300).map(|i| format!("p{i}")).collect(),
                    _ => self.words(),
                }
            }
            9 => role.module = self.hostile(),
            10 => {
                role.module.clear();
                role.command = vec!["true".into()];
            }
            11 => role.env = self.env(),
            12 => role.name = self.hostile(),
            13 => role.args = self.words(),
            14 => role.on = self.words(),
            15 => {
                role.restart = self.hostile();
                role.max_restarts = u32::MAX;
            }
            16 => role.placement = self.hostile(),
            _ => {}
        }
    }

    async fn start(&mut self) {
        let tracked = self.tracked(85, |t| !t.prepared.is_empty() && !t.started);
        let on_b = tracked.as_ref().map_or_else(|| self.rng.chance(60), |t| t.on_b);
        let (run, launch_id, total, mut plan) = match &tracked {
            Some(t) => (t.run.clone(), t.launch_id.clone(), t.total, t.prepared.clone()),
            None => {
                let placed = Instance {
                    name: "p1".into(),
                    member: "b".into(),
                    member_id: self.pair.b_id.clone(),
                    address: self.sink.clone(),
                    ..Default::default()
                };
                (self.run_name(), self.launch_id(), 1, vec![placed])
            }
        };
        self.add_ghosts(&mut plan, total);
        for _ in 0..self.rng.pick(&[0, 0, 1, 1, 2]) {
            if plan.is_empty() {
                break;
            }
            match self.rng.below(9) {
                0 => plan.clear(),
                1 => plan[0].address = self.sink.clone(),
                2 => plan[0].name = self.hostile(),
                3 => plan[0].member_id = self.hostile(),
                4 => plan[0].member = self.hostile(),
                5 => {
                    let hostile = self.hostile();
                    plan[0].address = self.rng.pick(&["127.0.0.1".to_owned(), "p1".to_owned(), hostile]);
                }
                6 => {
                    plan[0].role = self.hostile();
                    plan[0].module = self.hostile();
                }
                // Copies of a plain entry (see mutate_prepare).
                7 => {
                    let plain = Instance { name: "p1".into(), address: self.sink.clone(), ..Default::default() };
                    plan = vec![plain; 257];
                }
                _ => plan.push(plan[0].clone()),
            }
        }
        let req = StartRequest { run: run.clone(), launch_id: launch_id.clone(), plan };
        self.note(Rpc::Start, on_b, &req);
        let mut client = self.clients(on_b).peer;
        let Some(reply) = self.answer(Rpc::Start, client.start(req)).await else { return };
        if let Some(t) = self.launches.iter_mut().find(|t| t.on_b == on_b && t.launch_id == launch_id) {
            t.started = true;
        }
        let instances = reply.run.map_or(1, |r| r.instances.len());
        self.runs.push(Known { name: run, instances: instances.max(total as usize) });
    }

    /// The rest of a run of `total` instances, placed on a member that does
    /// not exist, at the address of a socket of this test.
    fn add_ghosts(&self, plan: &mut Vec<Instance>, total: u32) {
        for n in 2..=total {
            plan.push(Instance {
                name: format!("p{n}"),
                member: "ghost".into(),
                member_id: "fuzzghost".into(),
                address: self.sink.clone(),
                module: MODULE.into(),
                ..Default::default()
            });
        }
    }

    async fn abort(&mut self) {
        let tracked = self.tracked(60, |_| true);
        let on_b = tracked.as_ref().map_or_else(|| self.rng.chance(60), |t| t.on_b);
        let req = match (&tracked, self.rng.below(8)) {
            (Some(t), 0) => AbortRequest { run: self.hostile(), launch_id: t.launch_id.clone() },
            (Some(t), _) => AbortRequest { run: t.run.clone(), launch_id: t.launch_id.clone() },
            // Another launch's id: whatever it names must stay.
            (None, 0..=4) => AbortRequest { run: self.run_name(), launch_id: self.launch_id() },
            (None, _) => AbortRequest { run: self.run_name(), launch_id: self.bad_launch_id() },
        };
        self.note(Rpc::Abort, on_b, &req);
        let mut client = self.clients(on_b).peer;
        let undone = req.clone();
        if self.answer(Rpc::Abort, client.abort(req)).await.is_none() {
            return;
        }
        if let Some(t) = tracked.filter(|t| t.launch_id == undone.launch_id) {
            self.launches.retain(|l| !(l.on_b == t.on_b && l.launch_id == t.launch_id));
            if t.run == undone.run && t.started {
                self.runs.retain(|r| r.name != t.run);
            }
        }
    }
}

// A scale of a live run, and its two phases called by hand: the fuzz's
// runs are of a book module, which refuses a scale; hostile names, ids,
// counts, plans and tables are refused at the edge.
impl Fuzzer<'_> {
    async fn scale(&mut self) {
        let on_b = self.rng.chance(50);
        let role = match self.rng.below(4) {
            0 => self.hostile(),
            1 => "peer".to_owned(),
            _ => String::new(),
        };
        let count = match self.rng.below(3) {
            0 => self.count(),
            _ => 1 + self.rng.below(4) as u32,
        };
        let req = ScaleRequest { run: self.run_name(), role, count };
        self.note(Rpc::Scale, on_b, &req);
        let mut client = self.clients(on_b).manager;
        self.answer(Rpc::Scale, client.scale(req)).await;
    }

    fn instance_names(&mut self) -> Vec<String> {
        match self.rng.below(5) {
            0 => vec![self.hostile()],
            1 => (0..300).map(|n| format!("p{}", 1000 + n)).collect(),
            2 => vec!["p1".to_owned()],
            _ => vec![format!("p{}", 100 + self.rng.below(100))],
        }
    }

    async fn grow(&mut self) {
        let on_b = self.rng.chance(50);
        let scale_id = if self.rng.chance(70) { self.launch_id() } else { self.bad_launch_id() };
        let role = if self.rng.chance(30) { self.hostile() } else { String::new() };
        let req = GrowRequest { run: self.run_name(), scale_id, role, instances: self.instance_names() };
        self.note(Rpc::Grow, on_b, &req);
        let mut client = self.clients(on_b).peer;
        self.answer(Rpc::Grow, client.grow(req)).await;
    }

    async fn retable(&mut self) {
        let on_b = self.rng.chance(50);
        let scale_id = if self.rng.chance(70) { self.launch_id() } else { self.bad_launch_id() };
        let mut plan = Vec::new();
        let total = 1 + self.rng.below(4) as u32;
        self.add_ghosts(&mut plan, total);
        if self.rng.chance(30) {
            plan.push(Instance { name: self.hostile(), address: self.address(), ..Default::default() });
        }
        let role_table = match self.rng.below(4) {
            0 => self.hostile(),
            1 => format!("x={}", "p1,".repeat(30_000)),
            _ => String::new(),
        };
        let req = RetableRequest {
            run: self.run_name(),
            scale_id,
            plan,
            role_table,
            removed: if self.rng.chance(30) { self.instance_names() } else { Vec::new() },
            abort: self.rng.chance(40),
        };
        self.note(Rpc::Retable, on_b, &req);
        let mut client = self.clients(on_b).peer;
        self.answer(Rpc::Retable, client.retable(req)).await;
    }
}

/// A call that must answer within [`CALL_TIMEOUT`].
fn timed<F: Future>(call: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(CALL_TIMEOUT, call)
}

// Calls at the same time: each manager's supervisor takes them one by one,
// and every caller must still get an answer; of two launches of one name,
// at most one may succeed.
impl Fuzzer<'_> {
    async fn race(&mut self) {
        if let Some(t) = self.tracked(100, |t| !t.prepared.is_empty() && !t.started) {
            let mut plan = t.prepared.clone();
            self.add_ghosts(&mut plan, t.total);
            let start = StartRequest { run: t.run.clone(), launch_id: t.launch_id.clone(), plan };
            let abort = AbortRequest { run: t.run.clone(), launch_id: t.launch_id.clone() };
            self.note(Rpc::Start, t.on_b, &start);
            self.note(Rpc::Abort, t.on_b, &abort);
            let (mut one, mut other) = (self.clients(t.on_b).peer, self.clients(t.on_b).peer);
            let (started, aborted) = tokio::join!(timed(one.start(start)), timed(other.abort(abort)));
            let started = self.judge(Rpc::Start, started).is_some();
            self.judge(Rpc::Abort, aborted);
            self.launches.retain(|l| !(l.on_b == t.on_b && l.launch_id == t.launch_id));
            if started {
                self.runs.push(Known { name: t.run, instances: t.total as usize });
            }
        }

        let name = self.fresh();
        let mut launches = [self.valid_launch(), self.valid_launch()];
        for launch in &mut launches {
            launch.name = name.clone();
        }
        self.note(Rpc::Launch, false, &launches[0]);
        self.note(Rpc::Launch, true, &launches[1]);
        let (mut on_a, mut on_b) = (self.a.manager.clone(), self.b.manager.clone());
        let [first, second] = launches;
        let (first, second) = tokio::join!(timed(on_a.launch(first)), timed(on_b.launch(second)));
        let first = self.judge(Rpc::Launch, first);
        let second = self.judge(Rpc::Launch, second);
        if first.is_some() && second.is_some() {
            self.fail(format!("two launches of run {name} at once both succeeded"));
        }
        if let Some(run) = first.or(second).and_then(|reply| reply.run) {
            self.runs.push(Known { name: run.name, instances: run.instances.len() });
        }

        if self.runs.is_empty() {
            return;
        }
        let run = self.rng.pick(&self.runs);
        let kinds = [SignalKind::Pause, SignalKind::Resume, SignalKind::Restart, SignalKind::Stop, SignalKind::Kill];
        let mut signals = Vec::new();
        for _ in 0..2 {
            let target = if self.rng.chance(50) { run.name.clone() } else { format!("{}/p1", run.name) };
            let on_b = self.rng.chance(50);
            let req = SignalRequest { target, kind: self.rng.pick(&kinds) as i32, local: false };
            self.note(Rpc::Signal, on_b, &req);
            signals.push((self.clients(on_b).manager, req));
        }
        let send = SendRequest { target: run.name.clone(), line: "send p2 race".into(), local: false };
        self.note(Rpc::Send, false, &send);
        let mut sender = self.a.manager.clone();
        let [(mut one, first), (mut other, second)] = <[_; 2]>::try_from(signals).expect("two signals");
        let (first, second, sent) =
            tokio::join!(timed(one.signal(first)), timed(other.signal(second)), timed(sender.send(send)));
        self.judge(Rpc::Signal, first);
        self.judge(Rpc::Signal, second);
        self.judge(Rpc::Send, sent);
    }
}

// The end: every run stopped, every launch undone, and the checks.
impl Fuzzer<'_> {
    /// Undoes every launch still tracked and stops every live run.
    async fn clean_up(&mut self) {
        for t in std::mem::take(&mut self.launches) {
            let mut client = self.clients(t.on_b).peer;
            let req = AbortRequest { run: t.run, launch_id: t.launch_id };
            self.note(Rpc::Abort, t.on_b, &req);
            self.answer(Rpc::Abort, client.abort(req)).await;
        }
        // Every run of the group, wherever it is, whoever made it.
        let mut client = self.a.manager.clone();
        let Some(listed) = self.answer(Rpc::Ps, client.ps(PsRequest::default())).await else {
            self.fail("ps of the group is refused at the end");
        };
        for run in listed.runs {
            if !run.instances.iter().any(|i| matches!(i.state.as_str(), "running" | "paused" | "restarting")) {
                continue;
            }
            let req = SignalRequest { target: run.name.clone(), kind: SignalKind::Stop as i32, local: false };
            self.note(Rpc::Signal, false, &req);
            self.answer(Rpc::Signal, client.signal(req)).await;
        }
    }

    /// What may be in a state dir besides `runs/`, each run folder holding
    /// only files of its instances (`pN.log`, `pN.events.jsonl`, and what a
    /// module writes under its own `pN.` prefix).
    fn check_files(&self) {
        let mut problems = Vec::new();
        let root = self.pair.root.path();
        for entry in std::fs::read_dir(root).expect("the root") {
            let name = entry.expect("an entry").file_name().to_string_lossy().into_owned();
            if name != "state-a" && name != "state-b" {
                problems.push(format!("{} appeared in the root", root.join(&name).display()));
            }
        }
        for on_b in [false, true] {
            let state = self.pair.runs_dir(on_b);
            let top = state.parent().expect("a state dir");
            for entry in std::fs::read_dir(top).expect("a state dir") {
                let name = entry.expect("an entry").file_name().to_string_lossy().into_owned();
                if !["lock", "member-id", "runs", "data", "mgr.sock", "mgr.log", "modules", "pid"]
                    .contains(&name.as_str())
                {
                    problems.push(format!("{} appeared in a state dir", top.join(&name).display()));
                }
            }
            for entry in std::fs::read_dir(&state).expect("a runs dir") {
                let entry = entry.expect("an entry");
                let run = entry.file_name().to_string_lossy().into_owned();
                if names::check(Kind::Run, &run).is_err() || !entry.path().is_dir() {
                    problems.push(format!("{} is not a run folder", entry.path().display()));
                    continue;
                }
                for file in std::fs::read_dir(entry.path()).expect("a run folder") {
                    let file = file.expect("an entry");
                    let name = file.file_name().to_string_lossy().into_owned();
                    let instance = name.split_once('.').map(|(instance, _)| instance);
                    // The run's record is the manager's (see history.rs).
                    let record = name == "run.json" || name == ".run.json.new";
                    let ours = record || instance.is_some_and(|i| names::check(Kind::Instance, i).is_ok());
                    if !ours || !file.path().is_file() {
                        problems.push(format!("{} is not a file of an instance", file.path().display()));
                    }
                }
            }
        }
        // Nothing anywhere under the root carries the hostile names.
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains("fuzz-escape") || name.contains("canary") {
                    problems.push(format!("{} exists", entry.path().display()));
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        let canary = Path::new(&self.canary);
        let prefix = canary.file_name().expect("a name").to_string_lossy().into_owned();
        for entry in std::fs::read_dir(canary.parent().expect("/tmp")).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                problems.push(format!("{} exists", entry.path().display()));
            }
        }
        for escape in ["fuzz-escape", "../fuzz-escape", "../../fuzz-escape", "a/b"] {
            if Path::new(escape).exists() {
                problems.push(format!("{escape} exists beside the test"));
            }
        }
        for (name, daemon) in [("a", &self.pair.a), ("b", &self.pair.b)] {
            if let Some(line) = daemon.log().lines().find(|l| l.contains("panicked")) {
                problems.push(format!("manager {name} panicked: {line}"));
            }
        }
        if !problems.is_empty() {
            self.fail(problems.join("\n"));
        }
    }

    /// Calls and outcomes of each RPC, with a message of each code.
    fn report(&self, took: Duration) -> String {
        let mut text = format!("fuzz: seed {}, {took:.1?}\n", self.seed);
        for (rpc, tally) in &self.tally {
            let _ = writeln!(text, "  {rpc:?}: {} calls, {} ok, refused {:?}", tally.calls, tally.ok, tally.refused);
            for (code, message) in &tally.examples {
                let _ = writeln!(text, "    {code}: {message}");
            }
        }
        text
    }
}

#[test]
fn every_rpc_of_both_services_survives_hostile_requests() -> Result<()> {
    let began = Instant::now();
    let seed = seed();
    eprintln!("fuzz: seed {seed} (set MGR_FUZZ_SEED to repeat or vary it)");
    let pair = Pair::start(&["--allow-exec"])?;
    // Held for the whole test, so no one else's server can be on these
    // ports: one that accepts and never answers, one that takes datagrams.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let sink = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let rt = runtime()?;
    let (a, b) =
        rt.block_on(async { Ok::<_, anyhow::Error>((clients(&pair.a_addr).await?, clients(&pair.b_addr).await?)) })?;
    let mut fuzzer = Fuzzer {
        pair: &pair,
        seed,
        rng: Rng::new(seed),
        a,
        b,
        silent: silent.local_addr()?.to_string(),
        sink: sink.local_addr()?.to_string(),
        canary: format!("/tmp/mgr-fuzz-canary-{}", std::process::id()),
        runs: Vec::new(),
        launches: Vec::new(),
        fresh: 0,
        bigs: 0,
        recent: VecDeque::new(),
        last_on_b: false,
        tally: BTreeMap::new(),
    };
    rt.block_on(async {
        fuzzer.run().await;
        fuzzer.clean_up().await;
    });
    fuzzer.health();
    for daemon in [&pair.a, &pair.b] {
        if daemon.alive_members()? != ["a", "b"] {
            fuzzer.fail(format!("the group came apart: {:?}", daemon.members()?));
        }
    }
    fuzzer.check_files();
    let report = fuzzer.report(began.elapsed());
    eprint!("{report}");
    for rpc in ALL {
        let tally = fuzzer.tally.get(&rpc).map_or(0, |t| t.calls);
        assert!(tally >= MIN_CALLS, "{rpc:?} was called only {tally} times\n{report}");
    }
    let deep = [Rpc::Launch, Rpc::Reserve, Rpc::Prepare, Rpc::Start, Rpc::Signal, Rpc::Send];
    for rpc in deep {
        assert!(fuzzer.tally[&rpc].ok > 0, "no {rpc:?} succeeded: the fuzz did not go deep\n{report}");
    }
    Ok(())
}

// The authorization rules of the Peer service, one at a time, against real
// managers and with the key: holding the key lets a caller speak as a
// member, not act on what another launch made.

/// A launch id of nobody's: 128 bits from the clock and a counter.
fn stranger_launch_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mix = Rng::new(nanos as u64 ^ NEXT.fetch_add(1, Ordering::SeqCst)).next();
    format!("{:016x}{mix:016x}", std::process::id())
}

/// A run `kept` of one instance on `b`, launched by `a` as users do.
fn kept_on_b(pair: &Pair) -> Result<Value> {
    pair.a.ok(&["launch", MODULE, "1", "--on", "b", "--name", "kept", "-d"])?;
    let p1 = pair.b.instance("kept", "p1")?;
    assert_eq!(p1["state"], "running", "{p1}");
    assert!(pair.runs_dir(true).join("kept/p1.log").is_file());
    Ok(p1)
}

/// `kept` on `b` is as it was: the same process, running, its log there.
fn still_kept(pair: &Pair, before: &Value) -> Result<()> {
    let now = pair.b.instance("kept", "p1")?;
    assert_eq!((&now["state"], &now["pid"], &now["starts"]), (&before["state"], &before["pid"], &before["starts"]));
    assert!(pair.runs_dir(true).join("kept/p1.log").is_file(), "the log of kept is gone");
    Ok(())
}

/// The names in a manager's runs folder, sorted.
fn run_folders(pair: &Pair, on_b: bool) -> Result<Vec<String>> {
    // A member that hosts nothing of a run keeps only its record (the
    // plan, to list the run if its members die): not a run of its own.
    let hosts = |dir: &Path| {
        std::fs::read_dir(dir).into_iter().flatten().flatten().any(|f| f.file_name().to_string_lossy() != "run.json")
    };
    let mut names: Vec<String> = std::fs::read_dir(pair.runs_dir(on_b))?
        .map(|e| e.map_err(anyhow::Error::from))
        .filter(|e| e.as_ref().map_or(true, |e| hosts(&e.path())))
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

/// The code of a refusal, which must be clear; `None` if the call passed.
fn refusal<T>(result: std::result::Result<tonic::Response<T>, Status>) -> Option<Code> {
    let status = result.err()?;
    assert_eq!(unclear(&status), None, "{status:?}");
    Some(status.code())
}

fn plain_role(instances: &[&str]) -> Role {
    Role { module: MODULE.into(), instances: instances.iter().map(|&i| i.to_owned()).collect(), ..Default::default() }
}

#[test]
fn peer_abort_with_another_launch_id_leaves_a_run_alone() -> Result<()> {
    let pair = Pair::start(&[])?;
    let before = kept_on_b(&pair)?;
    let rt = runtime()?;
    rt.block_on(async {
        for addr in [&pair.b_addr, &pair.a_addr] {
            let mut peer = clients(addr).await?.peer;
            let abort = AbortRequest { run: "kept".into(), launch_id: stranger_launch_id() };
            // Said to be done (an abort undoes what its launch did, here
            // nothing) or refused: either way, nothing else changes.
            refusal(peer.abort(abort).await);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    still_kept(&pair, &before)?;
    pair.b.wait_log(&["ignored an abort from another launch", "kept"])?;
    pair.b.ok(&["send", "kept/p1", "still here"])?;
    pair.a.ok(&["stop", "kept"])?;
    Ok(())
}

#[test]
fn peer_prepare_and_start_without_a_reservation_are_refused_and_make_nothing() -> Result<()> {
    let pair = Pair::start(&[])?;
    let before = kept_on_b(&pair)?;
    let folders = run_folders(&pair, true)?;
    let sink = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut peer = clients(&pair.b_addr).await?.peer;
        let id = stranger_launch_id();
        for run in ["ghost", "kept"] {
            let prepare = PrepareRequest {
                run: run.into(),
                launch_id: id.clone(),
                roles: vec![plain_role(&["p1"])],
                total: 1,
                ..Default::default()
            };
            assert_eq!(refusal(peer.prepare(prepare).await), Some(Code::FailedPrecondition), "prepare of {run}");
        }
        // The plan of kept as it is, and a plan of a run no one prepared.
        let plan = |address: String| {
            vec![Instance {
                name: "p1".into(),
                member: "b".into(),
                member_id: pair.b_id.clone(),
                address,
                ..Default::default()
            }]
        };
        let kept = plan(before["address"].as_str().context("an address")?.to_owned());
        let ghost = plan(sink.local_addr()?.to_string());
        for (run, plan) in [("kept", kept), ("ghost", ghost)] {
            let start = StartRequest { run: run.into(), launch_id: id.clone(), plan };
            assert_eq!(refusal(peer.start(start).await), Some(Code::FailedPrecondition), "start of {run}");
        }

        // Reserved by one launch, the name is no other launch's to prepare
        // or start; its own launch prepares it.
        let owner = stranger_launch_id();
        let reserve =
            ReserveRequest { run: "held".into(), launch_id: owner.clone(), from: 0, coordinator: pair.a_id.clone() };
        assert_eq!(peer.reserve(reserve).await?.into_inner().run, "held");
        let prepare = |launch_id: &str| PrepareRequest {
            run: "held".into(),
            launch_id: launch_id.to_owned(),
            roles: vec![plain_role(&["p1"])],
            total: 1,
            ..Default::default()
        };
        assert_eq!(refusal(peer.prepare(prepare(&id)).await), Some(Code::FailedPrecondition));
        let prepared = peer.prepare(prepare(&owner)).await?.into_inner().instances;
        let held = plan(prepared[0].address.clone());
        let start = StartRequest { run: "held".into(), launch_id: id.clone(), plan: held };
        assert_eq!(refusal(peer.start(start).await), Some(Code::FailedPrecondition));
        peer.abort(AbortRequest { run: "held".into(), launch_id: owner }).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    still_kept(&pair, &before)?;
    assert_eq!(run_folders(&pair, true)?, folders, "a refused call made a run folder");
    assert_eq!(run_folders(&pair, false)?, Vec::<String>::new());
    let listed = pair.a.ok(&["ps"])?;
    assert!(!listed.contains("ghost") && !listed.contains("held"), "{listed}");
    pair.a.ok(&["stop", "kept"])?;
    Ok(())
}

#[test]
fn peer_reserve_for_a_coordinator_that_is_not_a_live_member_is_refused() -> Result<()> {
    let pair = Pair::start(&[])?;
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut peer = clients(&pair.b_addr).await?.peer;
        // A stranger that said hello is joining, never alive: b cannot
        // reach it at the address it gave.
        let hello = HelloRequest {
            from: Some(MemberInfo {
                id: "fuzzghost".into(),
                name: "ghost".into(),
                address: silent.local_addr()?.to_string(),
                group: mgr_daemon::DEFAULT_GROUP.into(),
                version: mgr_daemon::PROTOCOL_VERSION,
                advertise: "127.0.0.1".into(),
                ..Default::default()
            }),
        };
        peer.hello(hello).await?;
        let reserve = |coordinator: &str| ReserveRequest {
            run: "wanted".into(),
            launch_id: stranger_launch_id(),
            from: 0,
            coordinator: coordinator.to_owned(),
        };
        for coordinator in ["fuzzghost", "nobody", "", &pair.b_id, "../../fuzz-escape", "a"] {
            let refused = refusal(peer.reserve(reserve(coordinator)).await);
            assert_eq!(refused, Some(Code::PermissionDenied), "coordinator {coordinator:?}");
        }
        // Nothing was held: a live member's launch gets the name.
        let granted = reserve(&pair.a_id);
        let launch_id = granted.launch_id.clone();
        assert_eq!(peer.reserve(granted).await?.into_inner().run, "wanted");
        peer.abort(AbortRequest { run: "wanted".into(), launch_id }).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    assert_eq!(run_folders(&pair, true)?, Vec::<String>::new());
    Ok(())
}

#[test]
fn a_name_taken_on_b_cannot_be_reserved_on_b_by_another_launch() -> Result<()> {
    let pair = Pair::start(&[])?;
    let before = kept_on_b(&pair)?;
    let rt = runtime()?;
    let holder = stranger_launch_id();
    rt.block_on(async {
        let mut peer = clients(&pair.b_addr).await?.peer;
        let reserve = |run: &str, launch_id: &str| ReserveRequest {
            run: run.to_owned(),
            launch_id: launch_id.to_owned(),
            from: 0,
            coordinator: pair.a_id.clone(),
        };
        assert_eq!(peer.reserve(reserve("held", &holder)).await?.into_inner().run, "held");
        for run in ["held", "kept"] {
            let refused = refusal(peer.reserve(reserve(run, &stranger_launch_id())).await);
            assert_eq!(refused, Some(Code::AlreadyExists), "{run}");
        }
        // An automatic name skips both.
        let auto = peer.reserve(reserve("", &stranger_launch_id())).await?.into_inner().run;
        assert!(auto != "held" && auto != "kept", "{auto}");
        Ok::<_, anyhow::Error>(())
    })?;
    // A user's launch of either name fails on b, cleanly, for the whole group.
    for run in ["held", "kept"] {
        let err = pair.a.err(&["launch", MODULE, "1", "--name", run, "-d"])?;
        assert!(err.contains(&format!("a run named '{run}' exists already")), "{err}");
    }
    still_kept(&pair, &before)?;
    assert_eq!(run_folders(&pair, false)?, Vec::<String>::new(), "the failed launches left nothing on a");
    rt.block_on(async {
        let mut peer = clients(&pair.b_addr).await?.peer;
        peer.abort(AbortRequest { run: "held".into(), launch_id: holder }).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    pair.a.ok(&["stop", "kept"])?;
    Ok(())
}

/// Followers that hang up (a Ctrl-C of `mgrctl logs -f` or `events -f`)
/// free what they held at once, on both members, even when the instance
/// they followed stays quiet: each forwarded stream takes one of the 256
/// the connection between two members may have open, and more than that,
/// left open, cut every call between them.
#[test]
fn followers_that_hang_up_release_the_members_they_followed() -> Result<()> {
    let pair = Pair::start(&[])?;
    pair.a.ok(&["launch", MODULE, "1", "--on", "b", "--name", "quiet", "-d"])?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut manager = clients(&pair.a_addr).await?.manager;
        for i in 0..300 {
            // From past the end of the log: nothing to send until the
            // instance writes again, which it does not.
            let logs = LogsRequest { target: "quiet".into(), follow: true, since: 1 << 20, ..Default::default() };
            drop(manager.logs(logs).await.with_context(|| format!("logs -f number {i}"))?);
            let events = EventsRequest { run: "quiet".into(), follow: true, local: false };
            drop(manager.events(events).await.with_context(|| format!("events -f number {i}"))?);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // a still reaches b for every call.
    assert_eq!(pair.a.instance("quiet", "p1")?["state"], "running");
    pair.a.ok(&["send", "quiet/p1", "hello"])?;
    let logs = pair.a.ok(&["logs", "quiet"])?;
    assert!(logs.contains("p1"), "{logs}");
    pair.a.ok(&["stop", "quiet"])?;
    // A line for a run none of whose instances runs is refused in one
    // plain sentence.
    assert_eq!(pair.a.err(&["send", "quiet", "hello"])?, "mgrctl: run 'quiet' is not running");
    Ok(())
}

/// What the fuzzer found echoed back raw, each once: a refusal quotes a
/// hostile field escaped and short, or refuses the field itself first.
#[test]
fn refusals_quote_hostile_fields_escaped_and_short() -> Result<()> {
    let pair = Pair::start(&["--allow-exec"])?;
    pair.a.ok(&["launch", MODULE, "1", "--on", "a", "--name", "quoted", "-d"])?;
    let rt = runtime()?;
    let refusals = rt.block_on(async {
        let Clients { mut manager, mut peer } = clients(&pair.a_addr).await?;
        let mut refusals = Vec::new();
        let fault = FaultRequest { run: "quoted".into(), delay: Some("a\0b\x1b[2J".into()), ..Default::default() };
        refusals.push(manager.fault(fault).await.err());
        let partition = FaultRequest {
            run: "quoted".into(),
            partition: Some(format!("p1/{}", "y".repeat(4000))),
            ..Default::default()
        };
        refusals.push(manager.fault(partition).await.err());
        let exec = Role { command: vec!["\x1b[2Jno-such-program".into()], count: 1, ..Default::default() };
        refusals.push(manager.launch(LaunchRequest { roles: vec![exec], ..Default::default() }).await.err());
        for name in ["\x1b[2J".to_owned(), "y".repeat(1 << 20)] {
            let role = Role {
                name,
                module: MODULE.into(),
                env: (0..65).map(|i| format!("V{i}=x")).collect(),
                instances: vec!["p1".into()],
                ..Default::default()
            };
            let prepare = PrepareRequest {
                run: "quoted2".into(),
                launch_id: stranger_launch_id(),
                roles: vec![role],
                total: 1,
                ..Default::default()
            };
            refusals.push(peer.prepare(prepare).await.err());
        }
        Ok::<_, anyhow::Error>(refusals)
    })?;
    for refusal in refusals {
        let status = refusal.context("a hostile request was not refused")?;
        assert_eq!(unclear(&status), None, "{status:?}");
    }
    pair.a.ok(&["stop", "quoted"])?;
    Ok(())
}
