//! `mgrctl test MODULE`: what a student runs before handing in a module.
//! It launches N instances (the `Launch` RPC, as `launch --detach`), drives
//! them with a workload of the module's abstraction family (the `Send` RPC,
//! as `mgrctl send`), lets a seeded nemesis kill processes (`Signal`, as
//! `mgrctl kill`) and cut a partition (`Fault`, as `mgrctl fault`), waits for
//! the run to quiesce, checks the book's properties exactly as `mgrctl
//! check` does, prints a summary, and stops and removes the run.
//!
//! Every random choice (the workload's targets, texts and times, the
//! nemesis's victims, blocks and times) is drawn up front from one
//! generator seeded with `--seed`, into a [`Plan`]: the same seed, module
//! and options give the same schedule, printed step by step as it is
//! carried out. The plan and the summary's statistics are pure functions,
//! tested here; this file composes RPCs the other verbs mirror and reuses
//! `check`'s quiescence and verdicts and `diagram`'s drawing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mgr_modules::check::{self, RunEvents, Verdict, is_crash_record};
use mgr_proto::{
    FaultRequest, LaunchRequest, ModulesRequest, RemoveRequest, Role, SendRequest, SignalKind, SignalRequest,
};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::client::Client;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mgrctl test BestEffortBroadcast                          3 nodes, 5 s of broadcasts, no fault
  mgrctl test ReliableBroadcast --loss 0.2 --crash 1       under 20 % loss, one process killed
  mgrctl test PerfectPointToPointLink --nodes 4 --partition --seed 42 --diagram run.html
  mgrctl test Consensus --crash 1 -- --algorithm hierarchical
  mgrctl test MyBroadcast --as BestEffortBroadcast         a module of your own (a manifest)
  mgrctl --local test AtomicRegister --time 3s             without a daemon

The workload follows the abstraction's family: links get `send q text` from random senders to
random peers; broadcasts (and total-order broadcast) `broadcast text` from random senders;
registers `write v` at p1 (the one writer) and `read` anywhere; consensus one `propose v` per
process; failure detectors and leader election get no input: the crashes are their workload
(--crash is 1 by default for them). Inputs never go to a process already killed.
The nemesis kills --crash K processes at random times in the first 60 % of --time (never all of
them) and, with --partition, splits the processes in two random blocks at a random time and
heals them before the end. Every choice comes from --seed: the same seed gives the same
schedule, printed as it is carried out: `[0.35s] p1: broadcast m7`, `[1.20s] kill p2`.

After --time: no more input; the test waits until no event at the module's interface came for
--quiesce seconds (at most 20 s, or 5 × --quiesce), then checks the properties as
`mgrctl check` does and prints a summary: requests issued, deliveries (or completions,
decisions, detections), link-level messages per delivery, latency p50/p99 from the events'
times, crashes and partitions, then one line per property with its counterexample.
A perfect failure detector (and what uses one) assumes a synchronous network: a partition
longer than its Δ makes it detect processes that did not crash, and the test says so.

Exit status: 0 when every property holds; 1 when one is violated, or undecided (the run did
not quiesce, a member's events are missing: a test that decided nothing did not pass; FLL1
and PB1, which no finite run decides, are only said), or when the module wrote no events;
2 on a usage error; 130 on Ctrl-C.
The run is stopped and removed at the end, also on Ctrl-C (--keep keeps it, stopped, for
`mgrctl events`, `logs`, `check` and `diagram`).")]
pub struct TestArgs {
    /// The module: a built-in (see: mgrctl modules; the case does not
    /// matter), or a module from a manifest with --as.
    pub module: String,
    /// The built-in abstraction whose workload and properties to use, e.g.
    /// BestEffortBroadcast: required for a module from a manifest; for a
    /// built-in, checks it against another abstraction's properties.
    #[arg(long = "as", value_name = "ABSTRACTION")]
    pub abstraction: Option<String>,
    /// How many instances (at least 2).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: u32,
    /// How long the workload and the nemesis run, e.g. 3s or 1500ms.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub time: Duration,
    #[command(flatten)]
    pub faults: super::fault::LinkFaults,
    /// Kill K random processes at random times (fewer than --nodes)
    /// [default: 0; 1 for failure detectors and leader election].
    #[arg(long, value_name = "K")]
    pub crash: Option<u32>,
    /// Cut a random partition in two at a random time and heal it later.
    #[arg(long)]
    pub partition: bool,
    /// Seed of every random choice, to repeat a run's schedule [default: a
    /// random seed, printed].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// After the workload, wait until no new event at the module's interface
    /// came for this many seconds (link traffic such as heartbeats does not
    /// count); raise it above a failure detector's 2Δ.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub quiesce: f64,
    /// Write the run's space-time diagram to FILE (.svg, or .html for a
    /// page with tooltips).
    #[arg(long, value_name = "FILE")]
    pub diagram: Option<PathBuf>,
    /// Keep the run at the end (stopped) instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// Name of the run [default: r1, r2, …].
    #[arg(long)]
    pub name: Option<String>,
    /// How instances are spread over the group's live members: spread
    /// (round-robin), each (N on every member) or pack (this member first).
    #[arg(long, value_name = "HOW", default_value = "spread", value_parser = ["spread", "each", "pack"])]
    pub placement: String,
    /// Only on these members (names or ids, comma-separated).
    #[arg(long, value_name = "NAME,NAME", value_delimiter = ',')]
    pub on: Vec<String>,
    /// One JSON object per line: the test, each step, each property, the
    /// summary.
    #[arg(long)]
    pub json: bool,
    /// Arguments given to every instance, after `--` (e.g. --delta-ms 500).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Properties no finite run decides (fair loss speaks of messages sent
/// infinitely often, probabilistic validity of a probability): their
/// `Undecided` is their only verdict (see `check/links.rs` and
/// `check/broadcast.rs`), so it is said and does not fail a test.
const NEVER_DECIDED: &[&str] = &["FLL1", "PB1"];

/// The longest wait for quiescence, unless 5 × `--quiesce` is longer.
const QUIESCE_LIMIT: Duration = Duration::from_secs(20);

/// A usage error: told on stderr, exit status 2.
struct Usage(String);

pub async fn test(mut client: Client, args: TestArgs, local: bool) -> anyhow::Result<u8> {
    let setup = match prepare(&mut client, &args, local).await? {
        Ok(setup) => setup,
        Err(Usage(why)) => {
            crate::note!("mgrctl: {why}");
            return Ok(2);
        }
    };
    let (seed, random) = match args.seed {
        Some(seed) => (seed, false),
        None => (rand::random(), true),
    };
    // The processes' own random choices (which datagrams are lost) come
    // from the seed too, so the same seed repeats them as well.
    let mut faults = args.faults.spec();
    if !faults.is_empty() {
        faults.push_str(&format!(" seed={seed}"));
    }
    let role = Role {
        module: setup.module.clone(),
        count: args.nodes,
        args: args.args.clone(),
        placement: args.placement.clone(),
        on: args.on.clone(),
        restart: "no".to_owned(),
        ..Role::default()
    };
    let request = LaunchRequest { name: args.name.clone().unwrap_or_default(), faults, roles: vec![role] };
    let run = match client.launch(request).await {
        Ok(reply) => reply.into_inner().run.unwrap_or_default(),
        Err(status) => return Err(crate::suggest::module(&mut client, &setup.module, status).await),
    };
    // At least --nodes processes (more with --placement each), so more
    // than the crashes, as the plan needs.
    let processes: Vec<String> = run.instances.iter().map(|i| i.name.clone()).collect();
    let options = PlanOptions { time: args.time, crashes: setup.crashes, partition: args.partition };
    let plan = Plan::new(setup.family, &processes, &options, seed);
    let out = Output { json: args.json };
    out.header(&run.name, &setup, processes.len(), &args, seed, random)?;

    let body = carry_out(client.clone(), &run.name, &plan, &setup, &args, out);
    let code = tokio::select! {
        code = body => code,
        _ = tokio::signal::ctrl_c() => {
            crate::note!("mgrctl: interrupted: stopping the test");
            Ok(130)
        }
    };
    remove(&mut client, &run.name, args.keep).await;
    code
}

/// What the test runs, once the module is known.
#[derive(Debug)]
struct Setup {
    /// The module's name as the manager spells it.
    module: String,
    /// The abstraction whose workload and properties are used.
    abstraction: String,
    family: Family,
    /// The properties to check by id; empty for the module's own.
    ids: Vec<String>,
    /// How many processes the nemesis kills.
    crashes: u32,
}

/// Checks the options and finds the module's family; a usage error is
/// returned as such, an error of the manager as an `Err`.
async fn prepare(client: &mut Client, args: &TestArgs, local: bool) -> anyhow::Result<Result<Setup, Usage>> {
    let usage = |why: String| Ok(Err(Usage(why)));
    if args.nodes < 2 {
        return usage(format!("--nodes must be at least 2, not {}", args.nodes));
    }
    if args.time < Duration::from_millis(100) {
        return usage("--time must be at least 100ms".to_owned());
    }
    if !args.quiesce.is_finite() || args.quiesce < 0.0 {
        return usage(format!("--quiesce must be a number of seconds, not {}", args.quiesce));
    }
    if args.keep && local {
        return usage(
            "--keep cannot be used with --local: the embedded manager's runs end with this command".to_owned(),
        );
    }
    if let Err(err) = mgr_modules::runtime::faults::Faults::parse(&args.faults.spec()) {
        return usage(err.to_string());
    }
    if let Some(path) = &args.diagram
        && let Err(err) = super::diagram::format_of(path)
    {
        return usage(err.to_string());
    }
    let module = match client.modules(ModulesRequest { name: args.module.clone() }).await {
        Ok(reply) => reply.into_inner().modules.into_iter().next(),
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => return Err(super::status(status)),
    };
    let Some(module) = module else {
        let status = tonic::Status::not_found(format!("unknown module '{}' (see: mgrctl modules)", args.module));
        return usage(crate::suggest::module(client, &args.module, status).await.to_string());
    };
    let abstraction = match &args.abstraction {
        Some(wanted) => match mgr_modules::catalog::all().find(|m| m.name.eq_ignore_ascii_case(wanted)) {
            Some(found) => found.name.to_owned(),
            None => {
                let names = mgr_modules::catalog::all().map(|m| m.name);
                let like = crate::suggest::closest(wanted, names).map(|n| format!(": did you mean {n}?"));
                return usage(format!(
                    "--as {wanted}: no built-in abstraction of that name{}",
                    like.unwrap_or_default()
                ));
            }
        },
        // A built-in implements itself; a manifest says what it implements.
        None if !module.implements.is_empty() => module.implements.clone(),
        None => {
            return usage(format!(
                "module {} comes from a manifest ({}) that does not say what it implements: add implements = \"BestEffortBroadcast\" (say) to it, or name the abstraction with --as",
                module.name, module.manifest
            ));
        }
    };
    let Some(family) = Family::of(&abstraction) else {
        return usage(format!(
            "no workload for {abstraction}: `mgrctl test` knows the book's links, failure detectors, broadcasts, registers and consensus; run a lab application with `mgrctl up`"
        ));
    };
    // A module tested as what it declares is checked on its declared
    // properties (a manifest's `properties`, else its abstraction's); one
    // tested --as another abstraction, against that one's, by id.
    let ids = if args.abstraction.is_none() || abstraction == module.name {
        Vec::new()
    } else {
        check::properties_of(&abstraction).iter().map(|p| p.id.to_owned()).collect()
    };
    // A failure detector's workload is a crash: without one it has nothing
    // to detect.
    let crashes = args.crash.unwrap_or(if family == Family::Detectors { 1 } else { 0 });
    if crashes >= args.nodes {
        return usage(format!(
            "--crash {crashes} would kill every one of the {} processes: at most {}",
            args.nodes,
            args.nodes - 1
        ));
    }
    Ok(Ok(Setup { module: module.name, abstraction, family, ids, crashes }))
}

/// Stops the run and, unless `keep`, removes it; failures are told, not
/// returned: the test's verdict stands.
async fn remove(client: &mut Client, run: &str, keep: bool) {
    if keep {
        let request = SignalRequest { target: run.to_owned(), kind: SignalKind::Stop.into(), local: false };
        if let Err(status) = client.signal(request).await {
            crate::note!("mgrctl: cannot stop run {run}: {}", super::status(status));
        }
        return;
    }
    let request = RemoveRequest { runs: vec![run.to_owned()], force: true, local: false };
    if let Err(status) = client.remove(request).await {
        crate::note!("mgrctl: cannot remove run {run}: {}", super::status(status));
    }
}

/// The test after the launch: the schedule, quiescence, the verdicts, the
/// summary and the diagram. Returns the exit status.
async fn carry_out(
    mut client: Client,
    run: &str,
    plan: &Plan,
    setup: &Setup,
    args: &TestArgs,
    out: Output,
) -> anyhow::Result<u8> {
    let began = Instant::now();
    let mut done = Done::default();
    for step in &plan.steps {
        tokio::time::sleep_until((began + step.at).into()).await;
        out.step(step)?;
        match act(&mut client, run, &step.action).await {
            Ok(()) => done.count(&step.action),
            Err(err) => crate::note!("mgrctl: [{}] {}: {err:#}", seconds(step.at), step.action),
        }
    }
    tokio::time::sleep_until((began + plan.time).into()).await;
    // The plan heals its partition before the end; should that step have
    // failed, the run is healed now, or its liveness could not be judged.
    if done.partitions > done.heals
        && let Err(err) = act(&mut client, run, &Action::Heal).await
    {
        crate::note!("mgrctl: cannot heal the partition: {err:#}");
    }
    let quiet = Duration::from_secs_f64(args.quiesce);
    let limit = QUIESCE_LIMIT.max(quiet * 5);
    out.end(plan.time, quiet, limit)?;
    let events = crate::events::collect(&mut client, run).await?;
    let events = super::check::quiesce(&mut client, run, events, quiet, Some(limit)).await?;
    let declared = super::check::Declared::fetch(&mut client).await;
    let (verdicts, notes) = super::check::verdicts(&events, &setup.ids, &[], &declared)?;
    for note in notes {
        crate::note!("mgrctl: {note}");
    }
    if events.bad_lines > 0 {
        crate::note!("mgrctl: {} line(s) of the events files are not events and were skipped", events.bad_lines);
    }
    let stats = Stats::of(&events, setup.family);
    let mut failures = Vec::new();
    for super::check::Checked { property, verdict, .. } in &verdicts {
        match verdict {
            Verdict::Holds => {}
            Verdict::Violated(_) => failures.push(format!("{} violated", property.id)),
            Verdict::Undecided(why) if !NEVER_DECIDED.contains(&property.id) || !decisive(&events) => {
                failures.push(format!("{} undecided ({why})", property.id));
            }
            Verdict::Undecided(_) => {}
        }
    }
    // Properties over no events hold vacuously: a module that writes none
    // (no MGR_EVENTS) was not tested, whatever the verdicts say.
    if !events.all().any(|e| !is_crash_record(e)) {
        failures.push("no events: the module wrote none to its MGR_EVENTS file, so nothing was checked".to_owned());
    }
    out.summary(setup.family, &done, &stats, &events)?;
    for checked in &verdicts {
        out.line(&super::check::verdict_line(checked, args.json))?;
    }
    if let Some(path) = &args.diagram {
        match super::diagram::draw(&mut client, run, Some(path)).await {
            Ok(_) => crate::note!("mgrctl: diagram: {}", path.display()),
            Err(err) => failures.push(format!("diagram not written ({err:#})")),
        }
    }
    out.verdict(run, &failures)?;
    Ok(u8::from(!failures.is_empty()))
}

/// Whether a run's undecided verdicts are the properties' own: it quiesced
/// and no member's events are missing.
fn decisive(events: &RunEvents) -> bool {
    events.quiesced && events.missing.is_empty()
}

/// Carries out one step.
async fn act(client: &mut Client, run: &str, action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Input { process, line } => {
            let target = format!("{run}/{process}");
            let request = SendRequest { target, line: line.clone().into_bytes().into(), local: false };
            client.send(request).await.map_err(super::status)?;
        }
        Action::Kill(process) => {
            let target = format!("{run}/{process}");
            let request = SignalRequest { target, kind: SignalKind::Kill.into(), local: false };
            client.signal(request).await.map_err(super::status)?;
        }
        Action::Partition(blocks) => {
            let request = FaultRequest { run: run.to_owned(), partition: Some(blocks.clone()), ..Default::default() };
            client.fault(request).await.map_err(super::status)?;
        }
        Action::Heal => {
            let request = FaultRequest { run: run.to_owned(), heal: true, ..Default::default() };
            client.fault(request).await.map_err(super::status)?;
        }
    }
    Ok(())
}

/// What the schedule did, as far as the manager accepted it.
#[derive(Debug, Default)]
struct Done {
    requests: usize,
    killed: Vec<String>,
    partitions: usize,
    heals: usize,
}

impl Done {
    fn count(&mut self, action: &Action) {
        match action {
            Action::Input { .. } => self.requests += 1,
            Action::Kill(process) => self.killed.push(process.clone()),
            Action::Partition(_) => self.partitions += 1,
            Action::Heal => self.heals += 1,
        }
    }
}

/// The families of abstractions, each with its workload and its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Links,
    Broadcasts,
    Registers,
    Consensus,
    Detectors,
}

impl Family {
    /// The family of a built-in abstraction, by the chapter that lists it.
    fn of(abstraction: &str) -> Option<Family> {
        let listed = |modules: &[mgr_modules::catalog::ModuleInfo]| modules.iter().any(|m| m.name == abstraction);
        // Total-order broadcast is built on consensus (chapter 6), but its
        // user broadcasts and delivers: its stdin command is `broadcast`.
        if abstraction == "TotalOrderBroadcast" || listed(mgr_modules::broadcast::MODULES) {
            Some(Family::Broadcasts)
        } else if listed(mgr_modules::links::MODULES) {
            Some(Family::Links)
        } else if listed(mgr_modules::registers::MODULES) {
            Some(Family::Registers)
        } else if listed(mgr_modules::consensus::MODULES) {
            Some(Family::Consensus)
        } else if listed(mgr_modules::detectors::MODULES) {
            Some(Family::Detectors)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Links => "links",
            Family::Broadcasts => "broadcasts",
            Family::Registers => "registers",
            Family::Consensus => "consensus",
            Family::Detectors => "failure detectors",
        }
    }

    /// Inputs per second of the workload: enough to exercise the module,
    /// few enough that a student reads the schedule.
    fn rate(self) -> f64 {
        match self {
            Family::Links | Family::Broadcasts => 8.0,
            Family::Registers => 6.0,
            Family::Consensus | Family::Detectors => 0.0,
        }
    }

    /// The events that answer the workload, as the summary counts them.
    fn answers(self) -> &'static [&'static str] {
        match self {
            Family::Links | Family::Broadcasts => &["deliver"],
            Family::Registers => &["readreturn", "writereturn"],
            Family::Consensus => &["decide"],
            Family::Detectors => &["crash", "suspect", "leader", "trust"],
        }
    }

    /// What the summary calls those answers.
    fn answered(self) -> &'static str {
        match self {
            Family::Links | Family::Broadcasts => "deliveries",
            Family::Registers => "completions",
            Family::Consensus => "decisions",
            Family::Detectors => "detections",
        }
    }
}

/// One step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// A line to a process's stdin.
    Input { process: String, line: String },
    /// A crash (SIGKILL).
    Kill(String),
    /// A partition, as `mgrctl fault --partition` takes it.
    Partition(String),
    /// The end of the partition.
    Heal,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Input { process, line } => write!(f, "{process}: {line}"),
            Action::Kill(process) => write!(f, "kill {process}"),
            Action::Partition(blocks) => write!(f, "partition {blocks}"),
            Action::Heal => write!(f, "heal"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// When, after the launch.
    at: Duration,
    action: Action,
}

/// What shapes a plan besides the family and the processes.
#[derive(Debug, Clone)]
struct PlanOptions {
    time: Duration,
    crashes: u32,
    partition: bool,
}

/// The whole schedule of a test, drawn from one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    time: Duration,
    /// In order of time.
    steps: Vec<Step>,
}

impl Plan {
    /// Draws the schedule: the nemesis first (the workload needs to know
    /// who is dead when), then the workload. `processes` has at least two
    /// names and more than `options.crashes`.
    fn new(family: Family, processes: &[String], options: &PlanOptions, seed: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let total = options.time.as_millis().max(1) as u64;
        // A time in [from, to) fractions of the test, in whole milliseconds
        // so that a printed schedule is exactly the schedule.
        let at = |rng: &mut StdRng, from: f64, to: f64| -> u64 {
            let (lo, hi) = ((total as f64 * from) as u64, (total as f64 * to) as u64);
            if hi > lo { rng.random_range(lo..hi) } else { lo }
        };
        let mut steps: Vec<(u64, Action)> = Vec::new();

        // Crashes early enough that a failure detector (2Δ) notices them
        // before the test looks for quiescence.
        let mut victims = processes.to_vec();
        victims.shuffle(&mut rng);
        let mut killed_at: BTreeMap<String, u64> = BTreeMap::new();
        for victim in victims.into_iter().take(options.crashes as usize) {
            let when = at(&mut rng, 0.1, 0.6);
            killed_at.insert(victim.clone(), when);
            steps.push((when, Action::Kill(victim)));
        }
        if options.partition {
            let mut order = processes.to_vec();
            order.shuffle(&mut rng);
            let split = rng.random_range(1..order.len());
            let block = |names: &[String]| {
                let mut names = names.to_vec();
                names.sort_by_key(|n| processes.iter().position(|p| p == n));
                names.join(",")
            };
            let (cut, healed) = (at(&mut rng, 0.1, 0.5), at(&mut rng, 0.6, 0.9));
            steps.push((cut, Action::Partition(format!("{}/{}", block(&order[..split]), block(&order[split..])))));
            steps.push((healed, Action::Heal));
        }

        let alive = |process: &String, when: u64| killed_at.get(process).is_none_or(|k| *k > when);
        let count = (family.rate() * options.time.as_secs_f64()).round().max(1.0) as usize;
        match family {
            Family::Links | Family::Broadcasts => {
                let mut times: Vec<u64> = (0..count).map(|_| at(&mut rng, 0.0, 1.0)).collect();
                times.sort_unstable();
                for (k, when) in times.into_iter().enumerate() {
                    let living: Vec<&String> = processes.iter().filter(|p| alive(p, when)).collect();
                    let Some(sender) = living.choose(&mut rng).map(|p| (*p).clone()) else { continue };
                    let line = if family == Family::Links {
                        let others: Vec<&String> = processes.iter().filter(|p| **p != sender).collect();
                        let to = others.choose(&mut rng).map_or(String::new(), |p| (*p).clone());
                        format!("send {to} m{}", k + 1)
                    } else {
                        format!("broadcast m{}", k + 1)
                    };
                    steps.push((when, Action::Input { process: sender, line }));
                }
            }
            Family::Registers => {
                // p1 (the first process) is the one writer. A process runs
                // one operation at a time, so its inputs are spaced.
                let gap = 100;
                let writer = &processes[0];
                let mut last: BTreeMap<&String, u64> = BTreeMap::new();
                let mut times: Vec<u64> = (0..count).map(|_| at(&mut rng, 0.0, 1.0)).collect();
                times.sort_unstable();
                for (k, when) in times.into_iter().enumerate() {
                    let ready = |p: &String| alive(p, when) && last.get(p).is_none_or(|t| when >= t + gap);
                    let write = rng.random_bool(1.0 / 3.0) && ready(writer);
                    let readers: Vec<&String> = processes.iter().filter(|p| ready(p)).collect();
                    let (process, line) = match (write, readers.choose(&mut rng)) {
                        (true, _) => (writer, format!("write v{}", k + 1)),
                        (false, Some(reader)) => (*reader, "read".to_owned()),
                        (false, None) => continue,
                    };
                    last.insert(process, when);
                    steps.push((when, Action::Input { process: process.clone(), line }));
                }
            }
            Family::Consensus => {
                // One consensus instance per run: each process proposes
                // once, in the first half, while alive.
                for process in processes {
                    let (when, value) = (at(&mut rng, 0.0, 0.5), rng.random_range(1..100));
                    if alive(process, when) {
                        steps
                            .push((when, Action::Input { process: process.clone(), line: format!("propose {value}") }));
                    }
                }
            }
            Family::Detectors => {}
        }
        // Stable: steps drawn at the same millisecond keep their order.
        steps.sort_by_key(|(when, _)| *when);
        let steps = steps.into_iter().map(|(when, action)| Step { at: Duration::from_millis(when), action }).collect();
        Plan { time: options.time, steps }
    }
}

/// The summary's numbers, from the run's events.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    /// The events that answer the workload (see [`Family::answers`]).
    answers: usize,
    /// Link-level `send` events.
    sends: usize,
    /// Milliseconds from each request to each of its answers, sorted.
    latencies: Vec<u64>,
}

impl Stats {
    fn of(run: &RunEvents, family: Family) -> Stats {
        let answers = run.all().filter(|e| !is_crash_record(e) && family.answers().contains(&e.event.as_str())).count();
        let sends = run.all().filter(|e| e.event == "send").count();
        let mut latencies = latencies(run, family);
        latencies.sort_unstable();
        Stats { answers, sends, latencies }
    }

    /// The nearest-rank percentile `p` (0 to 100) of the latencies.
    fn percentile(&self, p: f64) -> Option<u64> {
        let n = self.latencies.len();
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        self.latencies.get(rank.min(n).checked_sub(1)?).copied()
    }
}

/// The time from each request to each answer, matched as the family's
/// events pair them: a link's send (sender, destination, id) to its
/// deliver; a broadcast (sender, id) to every deliver of it; a register
/// operation to the next return at the same process; a proposal to the
/// same process's decision (or the first proposal, for a process that
/// decided before proposing); a crash to each other process's first
/// indication after it (a detection or suspicion of the crashed process,
/// or a new leader). Wall-clock `time_ms`: across machines, their clocks'
/// difference is in the numbers.
fn latencies(run: &RunEvents, family: Family) -> Vec<u64> {
    let since = |from: u64, to: u64| to.saturating_sub(from);
    let mut found = Vec::new();
    match family {
        Family::Links => {
            // Fair-loss messages have no id: their text tells them apart
            // (the workload's texts are unique).
            let key = |e: &check::Event| (e.id, if e.id.is_none() { e.text.clone() } else { None });
            let mut sent = BTreeMap::new();
            for e in run.all().filter(|e| e.event == "send") {
                sent.entry((e.process.as_str(), e.peer.as_deref().unwrap_or(""), key(e))).or_insert(e.time_ms);
            }
            for e in run.all().filter(|e| e.event == "deliver") {
                if let Some(t) = sent.get(&(e.peer.as_deref().unwrap_or(""), e.process.as_str(), key(e))) {
                    found.push(since(*t, e.time_ms));
                }
            }
        }
        Family::Broadcasts => {
            let mut sent = BTreeMap::new();
            for e in run.all().filter(|e| e.event == "broadcast") {
                sent.entry((e.process.as_str(), e.id)).or_insert(e.time_ms);
            }
            for e in run.all().filter(|e| e.event == "deliver") {
                if let Some(t) = sent.get(&(e.peer.as_deref().unwrap_or(""), e.id)) {
                    found.push(since(*t, e.time_ms));
                }
            }
        }
        Family::Registers => {
            for events in run.by_process.values() {
                let mut invoked = None;
                for e in events {
                    match e.event.as_str() {
                        "read" | "write" => invoked = Some(e.time_ms),
                        "readreturn" | "writereturn" => found.extend(invoked.take().map(|t| since(t, e.time_ms))),
                        _ => {}
                    }
                }
            }
        }
        Family::Consensus => {
            let first = run.all().filter(|e| e.event == "propose").map(|e| e.time_ms).min();
            for events in run.by_process.values() {
                let mut proposed = None;
                for e in events {
                    match e.event.as_str() {
                        "propose" => proposed = Some(e.time_ms),
                        "decide" => found.extend(proposed.or(first).map(|t| since(t, e.time_ms))),
                        _ => {}
                    }
                }
            }
        }
        Family::Detectors => {
            for crash in run.all().filter(|e| is_crash_record(e)) {
                let gone = crash.process.as_str();
                for (_, events) in run.by_process.iter().filter(|(p, _)| p.as_str() != gone) {
                    let noticed = events.iter().find(|e| {
                        e.time_ms >= crash.time_ms
                            && !is_crash_record(e)
                            && match e.event.as_str() {
                                "crash" | "suspect" => e.peer.as_deref() == Some(gone),
                                "leader" | "trust" => e.peer.as_deref() != Some(gone),
                                _ => false,
                            }
                    });
                    if let Some(e) = noticed {
                        found.push(since(crash.time_ms, e.time_ms));
                    }
                }
            }
        }
    }
    found
}

/// `1.20s`.
fn seconds(at: Duration) -> String {
    format!("{:.2}s", at.as_secs_f64())
}

/// Where the test's lines go: stdout, as text or JSON objects.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn line(&self, line: &str) -> anyhow::Result<()> {
        let mut out = crate::stdout::lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }

    fn header(
        &self,
        run: &str,
        setup: &Setup,
        processes: usize,
        args: &TestArgs,
        seed: u64,
        random: bool,
    ) -> anyhow::Result<()> {
        let faults = args.faults.spec();
        if self.json {
            let value = serde_json::json!({
                "run": run, "module": setup.module, "abstraction": setup.abstraction,
                "family": setup.family.name(), "processes": processes, "time_ms": args.time.as_millis() as u64,
                "seed": seed, "faults": faults, "crash": args.crash, "partition": args.partition,
            });
            return self.line(&value.to_string());
        }
        let mut text = format!("test {}: {processes} × {}", run, setup.module);
        if setup.abstraction != setup.module {
            let _ = write!(text, " as {}", setup.abstraction);
        }
        let _ = write!(text, " ({}), {}", setup.family.name(), humantime::format_duration(args.time));
        if !faults.is_empty() {
            let _ = write!(text, ", {faults}");
        }
        let _ = write!(text, ", seed {seed}");
        if random {
            let _ = write!(text, " (repeat with --seed {seed})");
        }
        self.line(&text)
    }

    fn step(&self, step: &Step) -> anyhow::Result<()> {
        if !self.json {
            return self.line(&format!("[{}] {}", seconds(step.at), step.action));
        }
        let at = step.at.as_millis() as u64;
        let value = match &step.action {
            Action::Input { process, line } => {
                serde_json::json!({"at_ms": at, "action": "input", "process": process, "line": line})
            }
            Action::Kill(process) => serde_json::json!({"at_ms": at, "action": "kill", "process": process}),
            Action::Partition(blocks) => serde_json::json!({"at_ms": at, "action": "partition", "blocks": blocks}),
            Action::Heal => serde_json::json!({"at_ms": at, "action": "heal"}),
        };
        self.line(&value.to_string())
    }

    fn end(&self, time: Duration, quiet: Duration, limit: Duration) -> anyhow::Result<()> {
        if self.json {
            return Ok(());
        }
        self.line(&format!(
            "[{}] end of input: waiting for quiescence ({} without an event at the interface, at most {})",
            seconds(time),
            humantime::format_duration(quiet),
            humantime::format_duration(limit)
        ))
    }

    fn summary(&self, family: Family, done: &Done, stats: &Stats, events: &RunEvents) -> anyhow::Result<()> {
        let per_answer = (stats.answers > 0).then(|| stats.sends as f64 / stats.answers as f64);
        let (p50, p99) = (stats.percentile(50.0), stats.percentile(99.0));
        // Crashes the nemesis did not cause: the module's own (a panic, an
        // exit), which a student wants to hear about.
        let own: Vec<String> = events.crashed().into_iter().filter(|p| !done.killed.contains(p)).collect();
        if self.json {
            let value = serde_json::json!({
                "requests": done.requests, family.answered(): stats.answers, "sends": stats.sends,
                "messages_per_delivery": per_answer, "latency_ms": {"p50": p50, "p99": p99, "matched": stats.latencies.len()},
                "killed": done.killed, "partitions": done.partitions, "crashed_by_themselves": own,
                "quiesced": events.quiesced,
            });
            return self.line(&value.to_string());
        }
        let requests = match family {
            Family::Detectors => "none: the crashes are the workload".to_owned(),
            _ => done.requests.to_string(),
        };
        let per_answer = per_answer.map_or("-".to_owned(), |r| format!("{r:.1}"));
        let latency = match (p50, p99) {
            (Some(p50), Some(p99)) => format!("p50 {p50} ms, p99 {p99} ms ({} matched)", stats.latencies.len()),
            _ => "none matched".to_owned(),
        };
        let killed = match done.killed.len() {
            0 => "none".to_owned(),
            n => format!("{n} ({})", done.killed.join(", ")),
        };
        let mut lines = vec![
            format!("requests     {requests}"),
            format!("{:<12} {} ({per_answer} link messages each)", family.answered(), stats.answers),
            format!("latency      {latency}"),
            format!("crashes      {killed}; partitions {}", done.partitions),
        ];
        if !own.is_empty() {
            lines.push(format!("crashed by themselves: {}", own.join(", ")));
        }
        if !events.quiesced {
            lines.push("the run did not quiesce: liveness properties are undecided".to_owned());
        }
        for member in &events.missing {
            lines.push(format!("the events of member {member} are missing: it is dead or out of reach"));
        }
        self.line(&lines.join("\n"))
    }

    fn verdict(&self, run: &str, failures: &[String]) -> anyhow::Result<()> {
        if self.json {
            return self.line(&serde_json::json!({"passed": failures.is_empty(), "failures": failures}).to_string());
        }
        if failures.is_empty() {
            self.line(&format!("test {run}: passed"))
        } else {
            self.line(&format!("test {run}: FAILED: {}", failures.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use mgr_modules::check::{Event, RunEvents};

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("p{i}")).collect()
    }

    fn options(crashes: u32, partition: bool) -> PlanOptions {
        PlanOptions { time: Duration::from_secs(3), crashes, partition }
    }

    #[test]
    fn the_same_seed_draws_the_same_plan_and_another_seed_another() {
        let processes = names(4);
        for family in [Family::Links, Family::Broadcasts, Family::Registers, Family::Consensus, Family::Detectors] {
            let one = Plan::new(family, &processes, &options(2, true), 7);
            assert_eq!(one, Plan::new(family, &processes, &options(2, true), 7), "{family:?}");
            assert_ne!(one, Plan::new(family, &processes, &options(2, true), 8), "{family:?}");
            assert!(one.steps.windows(2).all(|w| w[0].at <= w[1].at), "{family:?}: in order of time");
            assert!(one.steps.iter().all(|s| s.at < one.time), "{family:?}: within the time");
        }
    }

    #[test]
    fn the_nemesis_kills_k_distinct_processes_early_and_heals_its_partition() {
        let processes = names(3);
        for seed in 0..50 {
            let plan = Plan::new(Family::Broadcasts, &processes, &options(2, true), seed);
            let mut killed: Vec<&str> = plan
                .steps
                .iter()
                .filter_map(|s| match &s.action {
                    Action::Kill(p) => Some(p.as_str()),
                    _ => None,
                })
                .collect();
            assert!(plan.steps.iter().filter(|s| matches!(s.action, Action::Kill(_))).all(|s| s.at.as_millis() < 1800));
            killed.sort_unstable();
            killed.dedup();
            assert_eq!(killed.len(), 2, "seed {seed}");
            let cut = plan.steps.iter().position(|s| matches!(s.action, Action::Partition(_))).unwrap();
            let heal = plan.steps.iter().position(|s| s.action == Action::Heal).unwrap();
            assert!(cut < heal, "seed {seed}");
            let Action::Partition(blocks) = &plan.steps[cut].action else { unreachable!() };
            let blocks = mgr_modules::runtime::faults::parse_partition(blocks).unwrap();
            assert_eq!(blocks.len(), 2, "two blocks: {blocks:?}");
            assert_eq!(blocks.iter().map(Vec::len).sum::<usize>(), 3, "every process in one block: {blocks:?}");
        }
    }

    #[test]
    fn inputs_go_to_living_processes_in_the_family_s_commands() {
        let processes = names(3);
        for seed in 0..30 {
            for family in [Family::Links, Family::Broadcasts, Family::Registers, Family::Consensus] {
                let plan = Plan::new(family, &processes, &options(1, false), seed);
                let kill = plan.steps.iter().find_map(|s| match &s.action {
                    Action::Kill(p) => Some((p.clone(), s.at)),
                    _ => None,
                });
                let (victim, killed_at) = kill.unwrap();
                for step in &plan.steps {
                    let Action::Input { process, line } = &step.action else { continue };
                    assert!(
                        !(process == &victim && step.at >= killed_at),
                        "{family:?} seed {seed}: {line} to dead {process}"
                    );
                    let verb = line.split(' ').next().unwrap();
                    match family {
                        Family::Links => {
                            let to = line.split(' ').nth(1).unwrap();
                            assert!(verb == "send" && to != process && processes.iter().any(|p| p == to), "{line}");
                        }
                        Family::Broadcasts => assert_eq!(verb, "broadcast"),
                        Family::Registers => assert!(line == "read" || (verb == "write" && process == "p1"), "{line}"),
                        Family::Consensus => assert!(verb == "propose" && line[8..].parse::<u32>().is_ok(), "{line}"),
                        Family::Detectors => unreachable!(),
                    }
                }
            }
        }
        let detectors = Plan::new(Family::Detectors, &processes, &options(1, false), 1);
        assert_eq!(detectors.steps.len(), 1, "a detector's workload is its crash: {detectors:?}");
        let consensus = Plan::new(Family::Consensus, &processes, &options(0, false), 1);
        assert_eq!(consensus.steps.len(), 3, "one proposal each: {consensus:?}");
    }

    #[test]
    fn every_built_in_abstraction_of_the_book_has_a_family() {
        assert_eq!(Family::of("PerfectPointToPointLink"), Some(Family::Links));
        assert_eq!(Family::of("ReliableBroadcast"), Some(Family::Broadcasts));
        assert_eq!(Family::of("TotalOrderBroadcast"), Some(Family::Broadcasts));
        assert_eq!(Family::of("AtomicRegister"), Some(Family::Registers));
        assert_eq!(Family::of("UniformConsensus"), Some(Family::Consensus));
        assert_eq!(Family::of("LeaderElection"), Some(Family::Detectors));
        assert_eq!(Family::of("MulticastPeer"), None);
        for chapter in [
            mgr_modules::links::MODULES,
            mgr_modules::detectors::MODULES,
            mgr_modules::broadcast::MODULES,
            mgr_modules::registers::MODULES,
            mgr_modules::consensus::MODULES,
        ] {
            for module in chapter {
                assert!(Family::of(module.name).is_some(), "{}", module.name);
                assert!(!check::properties_of(module.name).is_empty(), "{}", module.name);
            }
        }
    }

    fn at(process: &str, event: &str, peer: Option<&str>, id: Option<u64>, time_ms: u64) -> Event {
        Event {
            process: process.into(),
            event: event.into(),
            peer: peer.map(Into::into),
            id,
            time_ms,
            ..Default::default()
        }
    }

    #[test]
    fn latencies_pair_requests_with_their_answers() {
        let links = RunEvents::from_events(
            2,
            [
                at("p1", "send", Some("p2"), Some(1), 100),
                at("p1", "send", Some("p2"), Some(2), 110),
                at("p2", "deliver", Some("p1"), Some(2), 140),
                at("p2", "deliver", Some("p1"), Some(1), 150),
                at("p2", "deliver", Some("p1"), Some(9), 150),
            ],
        );
        let stats = Stats::of(&links, Family::Links);
        assert_eq!(stats, Stats { answers: 3, sends: 2, latencies: vec![30, 50] });
        assert_eq!((stats.percentile(50.0), stats.percentile(99.0)), (Some(30), Some(50)));

        let beb = RunEvents::from_events(
            3,
            [
                at("p1", "broadcast", None, Some(1), 100),
                at("p1", "deliver", Some("p1"), Some(1), 100),
                at("p2", "deliver", Some("p1"), Some(1), 120),
                at("p3", "deliver", Some("p1"), Some(1), 180),
            ],
        );
        assert_eq!(Stats::of(&beb, Family::Broadcasts).latencies, [0, 20, 80]);

        let register = RunEvents::from_events(
            2,
            [
                at("p1", "write", None, None, 100),
                at("p1", "writereturn", None, None, 130),
                at("p2", "read", None, None, 200),
                at("p2", "readreturn", None, None, 201),
            ],
        );
        assert_eq!(Stats::of(&register, Family::Registers).latencies, [1, 30]);

        let consensus = RunEvents::from_events(
            2,
            [
                at("p1", "propose", None, None, 100),
                at("p1", "decide", None, None, 400),
                at("p2", "decide", None, None, 450),
            ],
        );
        assert_eq!(Stats::of(&consensus, Family::Consensus).latencies, [300, 350]);

        let crash = Event { by: Some("mgr".into()), ..at("p3", "crash", None, None, 1000) };
        let detectors = RunEvents::from_events(
            3,
            [
                crash,
                at("p1", "crash", Some("p3"), None, 2500),
                at("p2", "leader", Some("p1"), None, 900),
                at("p2", "crash", Some("p3"), None, 2200),
            ],
        );
        let stats = Stats::of(&detectors, Family::Detectors);
        assert_eq!((stats.answers, stats.latencies.clone()), (3, vec![1200, 1500]));
        assert_eq!(Stats::default().percentile(50.0), None);
    }
}
