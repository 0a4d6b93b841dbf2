//! The supervisor: runs and their instance processes on this member.
//!
//! One task owns every run; others talk to it through a [`Supervisor`]
//! handle, whose calls are messages on a channel. The task never waits on a
//! process: each started instance gets a *pump* task that drains its stdout
//! and stderr into its log (see [`crate::output`]) and reports its exit back
//! as a message, and each stop gets a timer that escalates to `SIGKILL`.
//!
//! Each instance is a process group of its own, so signals reach everything
//! it started. It knows nothing of gRPC: control converts at its edge.

mod cgroup;
mod history;
mod ports;
mod pump;
mod spawner;
mod sweep;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::output::{self, LogHandle, Unopened, Writer};
use crate::registry::{Registry, SocketMode};
use cgroup::{Cgroups, InstanceCgroup, Limits};
use mgr_modules::runtime::faults::{self, Faults};
use ports::Ports;
use spawner::Spawner;
use sweep::sweep;

/// Most instances one launch may ask for.
pub const MAX_INSTANCES: u32 = 256;

/// Lines, and bytes, waiting to be written to one instance's stdin before
/// `send` is refused (the process is not reading its input). Both bound
/// the memory a user's input can take in the manager: the lines the
/// overhead of many small ones, the bytes a few large ones.
const STDIN_QUEUE: usize = 1024;
pub const STDIN_BYTES: usize = 1 << 20;

/// The highest number of an automatic run name (`r1`…): far more runs than
/// a manager will ever make, and far from overflowing a count.
const MAX_AUTO_RUN: u64 = 1 << 40;

/// Launches in progress (names reserved, runs prepared and not started)
/// that one member holds at once; more is a flood, not a lab.
const MAX_RESERVATIONS: usize = 1024;

/// Why a supervisor call failed. Control maps each to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown module '{0}' (see: mgrctl modules)")]
    UnknownModule(String),
    #[error("instance count must be between 1 and {MAX_INSTANCES}, not {0}")]
    BadCount(u32),
    #[error(transparent)]
    BadName(#[from] crate::names::BadName),
    #[error("a run named '{0}' exists already")]
    RunExists(String),
    #[error("run '{0}' is not held by this launch (it was never reserved, or its reservation expired)")]
    NotReserved(String),
    #[error("run '{0}' was not prepared by this launch")]
    OtherLaunch(String),
    #[error("too many launches in progress on this member ({MAX_RESERVATIONS}); try again shortly")]
    TooManyLaunches,
    #[error("no free port left in the range {lo}-{hi} on {ip} (start mgr with a larger --ports)")]
    PortsExhausted { ip: IpAddr, lo: u16, hi: u16 },
    #[error("unknown run '{0}' (see: mgrctl ps)")]
    UnknownRun(String),
    #[error("run '{run}' has no instance '{instance}'")]
    UnknownInstance { run: String, instance: String },
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("{0} is not paused")]
    NotPaused(String),
    #[error("instance {who} is not reading its input ({} queued)", output::human(*.queued as u64))]
    StdinFull { who: String, queued: usize },
    #[error("a line of {0} bytes is longer than an instance's input may hold ({max})", max = output::human(STDIN_BYTES as u64))]
    LineTooLong(usize),
    #[error(
        "role '{role}': {var} is not allowed on member {member}: without --allow-exec a role may set only the \
         variables its module's manifest declares (env = [...]) and {}", crate::env::SAFE.join(", ")
    )]
    EnvNotAllowed { role: String, var: String, member: String },
    #[error("exec is not allowed on this manager (start it with mgr start --allow-exec)")]
    ExecNotAllowed,
    #[error("exec needs a command")]
    NoCommand,
    #[error("cannot start {what}: {source}")]
    Spawn { what: String, source: std::io::Error },
    #[error("cannot write the state of run '{run}': {source}")]
    State { run: String, source: std::io::Error },
    #[error("the supervisor has stopped")]
    Stopped,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("bad faults: {0}")]
    BadFaults(String),
    #[error("run '{run}' cannot take network faults: {why}")]
    FaultsNotApplied { run: String, why: String },
    #[error("member {member} cannot limit an instance's memory, cpus or pids: {why}")]
    LimitsOff { member: String, why: String },
    #[error("run '{0}' has live instances: stop it first, or remove it with --force")]
    RunLive(String),
    #[error("run '{0}' is from before this manager restarted: it can be read, not started again (launch it anew)")]
    HistoryRun(String),
}

/// Settings the supervisor needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub member_name: String,
    pub member_id: String,
    pub advertise: IpAddr,
    pub ports: RangeInclusive<u16>,
    pub allow_exec: bool,
    /// Which modules can be launched, and how.
    pub registry: Registry,
    /// Where run folders go.
    pub runs_dir: PathBuf,
    /// The folder modules keep data in across runs (`MGR_DATA`).
    pub data_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// How many ended runs this member keeps.
    pub retention: Retention,
    /// Most bytes an instance's log keeps unless its role says.
    pub max_log_bytes: u64,
    /// Processes and threads an instance may have unless its role says:
    /// a fork bomb stops there.
    pub default_pids: u32,
}

/// How many ended runs a member keeps, and how many bytes of them: past
/// either, the oldest ended runs are deleted (and the log says so). Live
/// runs are never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep_runs: usize,
    pub keep_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { keep_runs: 1000, keep_bytes: 8 << 30 }
    }
}

/// This member's share of a run: the first phase of a launch binds its
/// addresses; nothing starts until [`Supervisor::start_run`] brings the whole
/// peer table.
#[derive(Debug, Clone, Default)]
pub struct PrepareSpec {
    /// The run name, chosen by the member that coordinates the launch.
    pub run: String,
    /// The launch that reserved the name; only it may prepare, start and
    /// abort the run.
    pub launch_id: String,
    /// What runs: one role with an empty name for a plain launch, or the
    /// roles of a scenario. Each lists the instances this member hosts.
    pub roles: Vec<RoleSpec>,
    /// Network faults from the start (see [`Faults`]); empty for none.
    pub faults: String,
    /// Instances in the whole run, on every member.
    pub total: u32,
    /// Every role and its instances on every member
    /// (`peer=p1,p2;comparator=p3`, given as `MGR_ROLES`); empty for a plain
    /// launch.
    pub role_table: String,
    /// The run's IP multicast group (`MGR_MULTICAST`), the same on every
    /// member; empty for none.
    pub multicast: String,
}

/// One role of a run, as far as this member is concerned.
#[derive(Debug, Clone, Default)]
pub struct RoleSpec {
    /// Empty for a plain launch (no `MGR_ROLE` is given then).
    pub name: String,
    /// A registered module, or `None` for `exec`.
    pub module: Option<String>,
    /// For `exec`: program and arguments.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// Extra environment of its instances.
    pub env: Vec<(String, String)>,
    /// The names of its instances this member hosts ("p1", "p3").
    pub instances: Vec<String>,
    /// Restart instances that fail by themselves; `None`: never.
    pub restart: Option<RestartPolicy>,
    /// Most bytes each instance's log keeps; 0 for the member's default.
    pub max_log_bytes: u64,
    /// Limits of each instance (0: none; pids 0: the member's default).
    pub memory: u64,
    pub cpus: f64,
    pub pids: u32,
    /// For `exec`: how the command gets its socket (`None`: it binds
    /// `MGR_ADDR`); a module's manifest says it for a module.
    pub socket: Option<SocketMode>,
}

/// Restarting instances that fail by themselves (`--restart on-failure`):
/// at most `max` times per instance, each after `backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max: u32,
    pub backoff: Duration,
}

/// One instance of a run's plan, wherever it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub name: String,
    pub member_id: String,
    pub member_name: String,
    pub address: SocketAddr,
    /// Its role and module, so that `ps` can say what a lost instance ran.
    pub role: String,
    pub module: String,
}

/// How long a prepared run waits for its start before its ports are freed
/// (the member that coordinated the launch went away between the phases).
const PREPARED_TTL: Duration = Duration::from_secs(30);

/// A change of a run's faults: each field set replaces that fault.
#[derive(Debug, Clone, Default)]
pub struct FaultChange {
    pub loss: Option<f64>,
    pub dup: Option<f64>,
    pub delay: Option<String>,
    pub partition: Option<String>,
    pub heal: bool,
}

impl FaultChange {
    /// Whether the change changes nothing: a question about the faults.
    pub fn is_empty(&self) -> bool {
        self.loss.is_none() && self.dup.is_none() && self.delay.is_none() && self.partition.is_none() && !self.heal
    }
}

/// Which instances a call is about: `RUN` or `RUN/p1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub run: String,
    pub instance: Option<String>,
}

impl Target {
    /// Parses `RUN` or `RUN/p1`, each part checked against the grammar of
    /// names.
    pub fn parse(text: &str) -> Result<Target, crate::names::BadName> {
        use crate::names::{Kind, check};
        match text.split_once('/') {
            Some((run, instance)) => {
                check(Kind::Run, run)?;
                check(Kind::Instance, instance)?;
                Ok(Target { run: run.to_owned(), instance: Some(instance.to_owned()) })
            }
            None => {
                check(Kind::Run, text)?;
                Ok(Target { run: text.to_owned(), instance: None })
            }
        }
    }
}

/// What `stop`, `kill`, `pause`, `resume` and `restart` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Kill,
    Pause,
    Resume,
    Restart,
}

/// The life of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Prepared (its address is bound), waiting for the launch to start it.
    Starting,
    Running,
    Paused,
    /// Exited by itself with code 0.
    Exited,
    /// Exited by itself with another code, or died of a signal nobody sent.
    Failed,
    /// Ended by `stop`.
    Stopped,
    /// Ended by `kill`.
    Killed,
    /// Failed, and to be started again when its restart policy's backoff
    /// is over. Only views ([`InstanceInfo`]) show it; the instance itself
    /// is `Failed` meanwhile.
    Restarting,
    /// It was running when its manager stopped without stopping it (a
    /// crash, kill -9): found so in the history at the next start.
    Lost,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Paused => "paused",
            State::Exited => "exited",
            State::Failed => "failed",
            State::Stopped => "stopped",
            State::Killed => "killed",
            State::Restarting => "restarting",
            State::Lost => "lost",
        }
    }

    /// The state a record names, as [`State::as_str`] wrote it.
    fn parse(text: &str) -> Option<State> {
        [
            State::Starting,
            State::Running,
            State::Paused,
            State::Exited,
            State::Failed,
            State::Stopped,
            State::Killed,
            State::Restarting,
            State::Lost,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn is_live(self) -> bool {
        matches!(self, State::Running | State::Paused | State::Restarting)
    }
}

/// A view of one instance.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    pub run: String,
    pub name: String,
    pub member: String,
    pub member_id: String,
    pub address: SocketAddr,
    pub pid: Option<u32>,
    pub state: State,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub starts: u32,
    /// When its current (or last) process started (Unix ms); 0 before.
    pub started_ms: u64,
    pub last_seq: u64,
    /// Its role in a run of several roles; empty otherwise.
    pub role: String,
    /// The module it runs ("exec" for a command).
    pub module: String,
    /// More about its state, e.g. why it is lost; empty when nothing.
    pub detail: String,
    /// Lines of its output dropped because its log could not be written.
    pub unwritten: u64,
}

/// A view of one run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub name: String,
    pub module: String,
    pub args: Vec<String>,
    pub created_ms: u64,
    /// This member's instances of the run.
    pub instances: Vec<InstanceInfo>,
    /// Every instance of the run, on every member (empty while prepared).
    pub plan: Vec<Placed>,
    /// What was last seen of the instances other members host, by name
    /// (see [`Supervisor::remember`]).
    pub remembered: BTreeMap<String, Seen>,
    /// The run's folder on this member (logs, events files).
    pub dir: PathBuf,
}

/// An instance of another member as last seen (in a `ps` over the group):
/// what `ps` says of it once its member is dead.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    pub state: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub pid: u32,
    pub starts: u32,
    pub started_ms: u64,
    pub last_seq: u64,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Msg {
    Reserve {
        run: Option<String>,
        from: u64,
        launch_id: String,
        reply: Reply<String>,
    },
    Prepare(PrepareSpec, Reply<Vec<(String, SocketAddr)>>),
    Start {
        run: String,
        launch_id: String,
        plan: Vec<Placed>,
        reply: Reply<RunInfo>,
    },
    Abort {
        run: String,
        launch_id: String,
        reply: oneshot::Sender<()>,
    },
    Ps(Option<String>, Reply<Vec<RunInfo>>),
    Logs(Target, Reply<Vec<LogHandle>>),
    Send(Target, Bytes, Reply<Vec<String>>),
    Act(Target, Action, Reply<Vec<InstanceInfo>>),
    Fault(String, FaultChange, Reply<(String, Vec<String>)>),
    Remove(Vec<String>, bool, Reply<Vec<String>>),
    Remember(String, Vec<(String, Seen)>),
    Prune(Duration, Reply<Vec<String>>),
    Count(oneshot::Sender<usize>),
    /// From a pump: the process of `start` ended.
    Exited {
        run: String,
        instance: String,
        start: u32,
        status: std::io::Result<pump::Exit>,
        writer: Writer,
    },
    /// From a stop timer: the grace period of `start` is over.
    Escalate {
        run: String,
        instance: String,
        start: u32,
    },
    /// From a timer: a prepared run that is still not started goes.
    Expire {
        run: String,
        launch_id: String,
    },
    /// From a timer: the backoff of a failed instance (`start`) is over.
    Revive {
        run: String,
        instance: String,
        start: u32,
    },
    /// Stop everything; reply when every instance has ended.
    Shutdown(oneshot::Sender<()>),
    Grow(GrowSpec, Reply<Vec<(String, SocketAddr)>>),
    Retable(RetableSpec, Reply<()>),
    /// From a timer: instances a scale grew and never started go.
    ExpireGrowth {
        run: String,
        scale_id: String,
    },
}

/// The first phase of a scale on this member: new instances of a role.
#[derive(Debug, Clone)]
pub struct GrowSpec {
    pub run: String,
    pub scale_id: String,
    pub role: String,
    pub instances: Vec<String>,
}

/// The second phase of a scale (or its undoing), on every member.
#[derive(Debug, Clone)]
pub struct RetableSpec {
    pub run: String,
    pub scale_id: String,
    pub plan: Vec<Placed>,
    pub role_table: String,
    pub removed: Vec<String>,
    pub abort: bool,
}

/// The handle to the supervisor task. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    tx: mpsc::Sender<Msg>,
    /// Why per-instance limits are off here, if they are.
    limits_off: Option<String>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Supervisor")
    }
}

impl Supervisor {
    /// Starts the supervisor task (and its spawner thread).
    pub fn start(config: SupervisorConfig) -> std::io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel(256);
        let spawner = Spawner::start()?;
        // What a killed earlier run of this manager left goes first.
        let cgroups = Cgroups::open(&config.member_id);
        let swept = sweep(&config.member_id) + cgroups.kill_all();
        if swept > 0 {
            tracing::warn!(swept, "killed processes left behind by an earlier run of this manager");
        }
        if let Some(dir) = cgroups.path() {
            tracing::debug!(cgroup = %dir.display(), "instances go in cgroups of their own");
        }
        match cgroups.limits_off() {
            Some(why) => tracing::warn!("per-instance limits (memory, cpus, pids) are off: {why}"),
            None => tracing::debug!("per-instance limits are on"),
        }
        // Nothing an instance started may outlive a kill -9 of the manager.
        if let Some(kill) = cgroups.kill_file()
            && let Err(err) = spawner::spawn_guard(&kill)
        {
            tracing::warn!(%err, "cannot start the guard that ends the instances if the manager is killed");
        }
        let limits_off = cgroups.limits_off().map(str::to_owned);
        let mut task = Task {
            cgroups: Some(cgroups),
            ports: Ports::new(config.ports.clone()),
            config: Arc::new(config),
            runs: BTreeMap::new(),
            spawner,
            tx: tx.downgrade(),
            shutting_down: None,
            next_run: 1,
            reserved: BTreeMap::new(),
        };
        task.load_history();
        tokio::spawn(task.run(rx));
        Ok(Supervisor { tx, limits_off })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Msg) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Holds a run name for the launch `launch_id` (phase zero of a
    /// launch): `wanted`, or the first free `rN` with N ≥ `from`. The name
    /// stays taken here until the launch prepares it, aborts, or
    /// [`PREPARED_TTL`] passes; a launch holds one name at a time, so a new
    /// reservation of the same launch replaces its old one.
    pub async fn reserve(&self, wanted: Option<String>, from: u64, launch_id: String) -> Result<String, Error> {
        self.call(|reply| Msg::Reserve { run: wanted, from, launch_id, reply }).await
    }

    /// Binds the addresses of this member's share of a run; returns them.
    /// The run's name must be reserved by the same launch.
    pub async fn prepare(&self, spec: PrepareSpec) -> Result<Vec<(String, SocketAddr)>, Error> {
        self.call(|r| Msg::Prepare(spec, r)).await
    }

    /// Starts the prepared instances of `run` with the whole plan as their
    /// peer table. On failure none of them is left running.
    pub async fn start_run(&self, run: String, launch_id: String, plan: Vec<Placed>) -> Result<RunInfo, Error> {
        self.call(|reply| Msg::Start { run, launch_id, plan, reply }).await
    }

    /// Undoes what the launch `launch_id` did here: its reservation, or its
    /// prepared or started run (instances killed, ports and folder freed).
    /// A run of another launch is left alone.
    pub async fn abort(&self, run: String, launch_id: String) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Abort { run, launch_id, reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Every run, or one.
    pub async fn ps(&self, run: Option<String>) -> Result<Vec<RunInfo>, Error> {
        self.call(|r| Msg::Ps(run, r)).await
    }

    /// The logs of the target's instances.
    pub async fn logs(&self, target: Target) -> Result<Vec<LogHandle>, Error> {
        self.call(|r| Msg::Logs(target, r)).await
    }

    /// Writes `line` (a newline is added) to the stdin of the target's
    /// running instances; returns their names.
    pub async fn send(&self, target: Target, line: Bytes) -> Result<Vec<String>, Error> {
        self.call(|r| Msg::Send(target, line, r)).await
    }

    /// Stops, kills, pauses, resumes or restarts; returns when done.
    pub async fn act(&self, target: Target, action: Action) -> Result<Vec<InstanceInfo>, Error> {
        self.call(|r| Msg::Act(target, action, r)).await
    }

    /// Changes the faults of a live run; returns the faults now in force and
    /// the instances told.
    pub async fn fault(&self, run: String, change: FaultChange) -> Result<(String, Vec<String>), Error> {
        self.call(|r| Msg::Fault(run, change, r)).await
    }

    /// Binds addresses for new instances of a role of a run hosted here
    /// (the first phase of a scale).
    pub async fn grow(&self, spec: GrowSpec) -> Result<Vec<(String, SocketAddr)>, Error> {
        self.call(|r| Msg::Grow(spec, r)).await
    }

    /// Gives a run its new peer table after a scale: live instances are
    /// told, grown ones start, removed ones stop (or, with `abort`, the
    /// scale's grown instances go).
    pub async fn retable(&self, spec: RetableSpec) -> Result<(), Error> {
        self.call(|r| Msg::Retable(spec, r)).await
    }

    /// Deletes runs (see [`Retention`] for the automatic kind); a run with
    /// live instances only with `force`. Returns those this member had.
    pub async fn remove(&self, runs: Vec<String>, force: bool) -> Result<Vec<String>, Error> {
        self.call(|r| Msg::Remove(runs, force, r)).await
    }

    /// Keeps what was seen of other members' instances of `run` (best
    /// effort: a busy supervisor may skip it).
    pub fn remember(&self, run: String, seen: Vec<(String, Seen)>) {
        let _ = self.tx.try_send(Msg::Remember(run, seen));
    }

    /// Deletes the runs that ended more than `older_than` ago.
    pub async fn prune(&self, older_than: Duration) -> Result<Vec<String>, Error> {
        self.call(|r| Msg::Prune(older_than, r)).await
    }

    /// Why per-instance limits (memory, cpus, pids) are off on this member,
    /// if they are.
    pub fn limits_off(&self) -> Option<&str> {
        self.limits_off.as_deref()
    }

    /// How many instances are live.
    pub async fn live_instances(&self) -> usize {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Count(reply)).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Stops every instance (SIGTERM, SIGKILL after the grace period) and
    /// returns when all have ended.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Why an instance is being ended, which decides how its end is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Stop,
    Kill,
    Restart,
}

struct Instance {
    name: String,
    address: SocketAddr,
    state: State,
    pid: Option<u32>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    starts: u32,
    /// When its current (or last) process started (Unix ms); 0 before.
    started_ms: u64,
    intent: Option<Intent>,
    stdin: Option<pump::StdinQueue>,
    /// The log writer while no pump holds it.
    writer: Option<Writer>,
    /// Notes for the log while a pump holds the writer.
    notes: Option<mpsc::UnboundedSender<String>>,
    log: LogHandle,
    /// Callers waiting for the current `intent` to complete.
    waiters: Vec<Reply<Vec<InstanceInfo>>>,
    /// Index of its role in the run's `roles`.
    role: usize,
    /// Automatic restarts done under its role's restart policy.
    restarts: u32,
    /// Failed, and to be started again when the backoff is over: its log
    /// stays open so that viewers follow it across the restart.
    revive_pending: bool,
    /// When it last ended (Unix ms).
    ended_ms: Option<u64>,
    /// More about its state, for `ps` (why it is lost, or what its cgroup
    /// says of its end).
    detail: Option<&'static str>,
    /// Its cgroup while it runs.
    cgroup: Option<InstanceCgroup>,
    /// Taken out of the run by a scale: stopped, out of the peer table,
    /// never started again.
    removed: bool,
}

impl Instance {
    /// An instance about to start for the first time, with its log (and
    /// the log's writer, unless it is still being opened).
    fn fresh(name: String, role: usize, address: SocketAddr, log: LogHandle, writer: Option<Writer>) -> Instance {
        Instance {
            name,
            role,
            address,
            state: State::Starting,
            pid: None,
            exit_code: None,
            signal: None,
            starts: 0,
            started_ms: 0,
            intent: None,
            stdin: None,
            writer,
            notes: None,
            log,
            waiters: Vec::new(),
            restarts: 0,
            revive_pending: false,
            ended_ms: None,
            detail: None,
            cgroup: None,
            removed: false,
        }
    }
}

/// Binds `count` sockets on `ip`, each on a port of the range free for UDP
/// and TCP; all or none (the ports taken go back on a failure).
fn take_ports(ports: &mut Ports, ip: IpAddr, count: usize) -> Result<Vec<(u16, UdpSocket)>, Error> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        match ports.take(ip) {
            Some(taken) => sockets.push(taken),
            None => {
                for (port, _) in &sockets {
                    ports.release(*port);
                }
                let (lo, hi) = (*ports.range().start(), *ports.range().end());
                return Err(Error::PortsExhausted { ip, lo, hi });
            }
        }
    }
    Ok(sockets)
}

/// What a prepared run holds until it starts.
struct Pending {
    sockets: Vec<(usize, UdpSocket)>,
    opening: JoinHandle<std::io::Result<Vec<Writer>>>,
}

/// A role of a run on this member: what its instances run.
struct RoleRun {
    name: String,
    /// The module's name, or "exec".
    module: String,
    /// Program and arguments every instance of the role runs.
    program: Vec<String>,
    env: Vec<(String, String)>,
    /// Restart instances that fail by themselves.
    restart: Option<RestartPolicy>,
    /// Most bytes each instance's log keeps.
    max_log_bytes: u64,
    /// Limits of each instance, asked by the launch (pids 0: the member's
    /// default).
    limits: Limits,
    /// How its instances get their sockets.
    socket: SocketMode,
    /// Whether its program applies the run's faults.
    faults: bool,
}

struct Run {
    name: String,
    /// The launch that made it: only that launch may start or abort it.
    launch_id: String,
    /// Found in the state dir at start (a run of an earlier life of this
    /// manager): it can be read and removed, not started again.
    history: bool,
    /// Bytes its folder takes, measured when it ended (None before).
    bytes: Option<u64>,
    /// The instances of other members as last seen, for when they are lost.
    remembered: BTreeMap<String, Seen>,
    /// The module (or "exec"); the roles' modules joined by '+' for a run of
    /// several roles.
    module: String,
    /// Every instance of the run, on every member.
    plan: Vec<Placed>,
    /// Instances in the whole run (partitions may name any of them).
    total: u32,
    /// Set between prepare and start.
    pending: Option<Pending>,
    roles: Vec<RoleRun>,
    /// `MGR_ROLES` and `MGR_MULTICAST`; empty when not given.
    role_table: String,
    multicast: String,
    /// The arguments of a plain launch, for `ps`.
    args: Vec<String>,
    peers: String,
    /// Network faults in force, given to every (re)started instance.
    faults: Faults,
    /// The control message of the faults in force, which each live
    /// instance's pump writes to its control pipe when it changes.
    control: tokio::sync::watch::Sender<Bytes>,
    dir: PathBuf,
    created_ms: u64,
    instances: Vec<Instance>,
    /// Instances a scale bound here and has not started yet.
    growing: Option<Growing>,
    /// Whether a scale changed its peer table since the launch: then the
    /// control pipes carry the table too (`peers`, `roles`).
    retabled: bool,
}

/// What a scale prepared on this member until it starts (or is undone).
struct Growing {
    scale_id: String,
    sockets: Vec<(usize, UdpSocket)>,
}

impl Run {
    /// Nothing of it runs, nor will without a user: no instance live or
    /// waiting to be restarted, and it is not a launch in progress.
    fn ended(&self) -> bool {
        self.pending.is_none() && self.instances.iter().all(|i| !i.state.is_live() && !i.revive_pending)
    }

    /// When its last instance ended.
    fn ended_ms(&self) -> Option<u64> {
        self.instances.iter().filter_map(|i| i.ended_ms).max()
    }
}

struct Task {
    config: Arc<SupervisorConfig>,
    /// `None` once removed at shutdown.
    cgroups: Option<Cgroups>,
    runs: BTreeMap<String, Run>,
    ports: Ports,
    spawner: Spawner,
    /// To hand to pumps and timers; weak so that the task ends when every
    /// handle is gone.
    tx: mpsc::WeakSender<Msg>,
    shutting_down: Option<oneshot::Sender<()>>,
    /// Where the search for an unused `rN` run name starts.
    next_run: u64,
    /// Run names held for launches in progress: name → (launch, expiry).
    reserved: BTreeMap<String, (String, Instant)>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Appends a `crash` event, in the format of the module runtime's events
/// (one JSON object per line, one `write` so lines never interleave).
/// `inc` is the incarnation that ended (`MGR_INCARNATION` of its start).
fn record_crash(path: &std::path::Path, run: &str, process: &str, inc: u32, cause: &str) -> std::io::Result<()> {
    use std::io::Write;
    let record = serde_json::json!({
        "time_ms": now_ms(),
        "run": run,
        "process": process,
        "event": "crash",
        "by": "mgr",
        "inc": inc,
        "text": cause,
    });
    let mut line = record.to_string().into_bytes();
    line.push(b'\n');
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(&line)
}

/// Checks the instances a prepare names: each `pN` with N within the run's
/// total, each once. They become file names here and names in every
/// peer's table.
fn check_instances(spec: &PrepareSpec) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for name in spec.roles.iter().flat_map(|r| &r.instances) {
        crate::names::check(crate::names::Kind::Instance, name)?;
        let n = crate::names::instance_number(name).unwrap_or(0);
        if n > spec.total {
            return Err(Error::BadRequest(format!("instance {name} is beyond the run's {} instances", spec.total)));
        }
        if !seen.insert(n) {
            return Err(Error::BadRequest(format!("instance {name} is given twice")));
        }
    }
    for role in spec.roles.iter().filter(|r| !r.name.is_empty()) {
        crate::names::check(crate::names::Kind::Role, &role.name)?;
    }
    Ok(())
}

/// Refuses faults for a run that has a role whose program would not apply
/// them: they would change nothing, and a user who set `--loss 1.0` would
/// believe the run survived a total loss.
fn faults_applied(run: &str, roles: &[RoleRun]) -> Result<(), Error> {
    match roles.iter().find(|r| !r.faults) {
        None => Ok(()),
        Some(role) => {
            let why = if role.module == "exec" {
                "faults are applied by the module runtime, and it runs a command (exec)".to_owned()
            } else {
                format!(
                    "module {} does not apply them (its manifest does not say faults = true), so they would change nothing",
                    role.module
                )
            };
            Err(Error::FaultsNotApplied { run: run.to_owned(), why })
        }
    }
}

/// Checks that a partition names only instances of the run (`p1`…`pN`).
fn check_partition(faults: &Faults, count: u32) -> Result<(), Error> {
    for name in faults.partition.iter().flatten() {
        let known =
            name.strip_prefix('p').and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| (1..=count).contains(&n));
        if !known {
            return Err(Error::BadFaults(format!(
                "the partition names {}, which is not an instance of the run (p1 to p{count})",
                crate::names::printable(name, 40)
            )));
        }
    }
    Ok(())
}

/// Ends processes that started but cannot be supervised (their logs could
/// not be made), and returns `err`.
fn abandon(spawned: Vec<std::io::Result<spawner::Spawned>>, err: Error) -> Error {
    for child in spawned.into_iter().flatten() {
        let pid = Pid::from_raw(child.pid as i32);
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    err
}

/// Gives freed memory back to the system once a run has ended: a smaller
/// manager forks its next instances faster and idles small.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// What the control pipe of an instance gets when a run's faults change:
/// the whole new state, one line.
fn control_message(faults: &Faults) -> Bytes {
    Bytes::from(format!("{} {faults}\n", faults::CONTROL_FAULTS))
}

/// The control message of a run: its faults and, once a scale changed its
/// peer table, the table (`peers MGR_PEERS [MGR_ROLES]`, one line).
fn run_control_message(run: &Run) -> Bytes {
    let mut message = format!("{} {}\n", faults::CONTROL_FAULTS, run.faults);
    if run.retabled {
        message.push_str(&format!("{} {} {}\n", faults::CONTROL_PEERS, run.peers, run.role_table));
    }
    Bytes::from(message)
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Reserve { run, from, launch_id, reply } => {
                    let _ = reply.send(self.reserve(run, from, launch_id));
                }
                Msg::Prepare(spec, reply) => {
                    let _ = reply.send(self.prepare(spec));
                }
                Msg::Start { run, launch_id, plan, reply } => {
                    let result = self.start(&run, &launch_id, plan).await;
                    let _ = reply.send(result);
                }
                Msg::Abort { run, launch_id, reply } => {
                    self.abort_launch(&run, &launch_id);
                    let _ = reply.send(());
                }
                Msg::Expire { run, launch_id } => {
                    // Only the run of that launch: the name may have been
                    // freed and prepared again by another since.
                    if self.runs.get(&run).is_some_and(|r| r.pending.is_some() && r.launch_id == launch_id) {
                        tracing::warn!(run, "a prepared run was never started: freeing its addresses");
                        self.abort(&run);
                    }
                }
                Msg::Ps(run, reply) => {
                    let _ = reply.send(self.ps(run.as_deref()));
                }
                Msg::Logs(target, reply) => {
                    let _ =
                        reply.send(self.select(&target).map(|found| {
                            found.into_iter().map(|(r, i)| self.runs[&r].instances[i].log.clone()).collect()
                        }));
                }
                Msg::Send(target, line, reply) => {
                    let _ = reply.send(self.send(&target, line));
                }
                Msg::Act(target, action, reply) => self.act(&target, action, reply).await,
                Msg::Fault(run, change, reply) => {
                    let _ = reply.send(self.fault(&run, change));
                }
                Msg::Count(reply) => {
                    let live = self.runs.values().flat_map(|r| &r.instances).filter(|i| i.state.is_live()).count();
                    let _ = reply.send(live);
                }
                Msg::Exited { run, instance, start, status, writer } => {
                    self.exited(&run, &instance, start, status, writer).await;
                }
                Msg::Escalate { run, instance, start } => self.escalate(&run, &instance, start),
                Msg::Revive { run, instance, start } => self.revive(&run, &instance, start).await,
                Msg::Shutdown(reply) => self.shutdown(reply),
                Msg::Remove(names, force, reply) => {
                    let _ = reply.send(self.remove(&names, force));
                }
                Msg::Prune(older_than, reply) => {
                    let _ = reply.send(Ok(self.prune(older_than)));
                }
                Msg::Remember(run, seen) => self.remember(&run, seen),
                Msg::Grow(spec, reply) => {
                    let _ = reply.send(self.grow(spec));
                }
                Msg::Retable(spec, reply) => {
                    let result = self.retable(spec).await;
                    let _ = reply.send(result);
                }
                Msg::ExpireGrowth { run, scale_id } => {
                    if let Some(r) = self.runs.get(&run)
                        && r.growing.as_ref().is_some_and(|g| g.scale_id == scale_id)
                    {
                        tracing::warn!(run, "a scale never started its new instances: freeing their addresses");
                        self.forget_growth(&run, &scale_id);
                    }
                }
            }
            if !self.any_live()
                && let Some(reply) = self.shutting_down.take()
            {
                // Whatever instances left behind (even outside their process
                // groups) goes with them.
                if let Some(cgroups) = self.cgroups.take() {
                    cgroups.remove();
                }
                let _ = reply.send(());
            }
        }
    }

    /// Writes the record of a run (see [`history`]); a failure is logged,
    /// not fatal: the run goes on, only its history is behind.
    fn save(&self, name: &str) {
        let Some(run) = self.runs.get(name) else { return };
        let mut record =
            history::RunRecord::new(run.name.clone(), run.module.clone(), run.args.clone(), run.created_ms);
        record.plan = run
            .plan
            .iter()
            .map(|p| history::PlanEntry {
                name: p.name.clone(),
                member_id: p.member_id.clone(),
                member: p.member_name.clone(),
                address: p.address,
                role: p.role.clone(),
                module: p.module.clone(),
            })
            .collect();
        record.instances = (0..run.instances.len())
            .map(|i| {
                let info = self.info(run, i);
                history::InstanceRecord {
                    name: info.name,
                    role: info.role,
                    module: info.module,
                    address: info.address,
                    state: info.state.as_str().to_owned(),
                    exit_code: info.exit_code,
                    signal: info.signal,
                    starts: info.starts,
                    last_seq: info.last_seq,
                    started_ms: info.started_ms,
                    ended_ms: run.instances[i].ended_ms,
                    removed: run.instances[i].removed,
                }
            })
            .collect();
        if let Err(err) = history::save(&run.dir, &record) {
            tracing::error!(run = name, %err, "cannot write the run's record: a restart of the manager will not know it");
        }
    }

    /// Loads the runs found in the state dir at start: ended runs as they
    /// were, instances that were running as lost (this manager stopped
    /// without stopping them; whatever was left of them was swept).
    fn load_history(&mut self) {
        let mut lost = 0;
        for (name, dir, found) in history::load(&self.config.runs_dir) {
            let record = match found {
                history::Found::Record(record) => record,
                history::Found::Logs { instances, created_ms } => {
                    let mut record = history::RunRecord::new(name.clone(), "?".into(), Vec::new(), created_ms);
                    let address = SocketAddr::new(self.config.advertise, 0);
                    record.instances = instances
                        .into_iter()
                        .map(|i| history::InstanceRecord {
                            name: i,
                            role: String::new(),
                            module: "?".into(),
                            address,
                            state: State::Running.as_str().to_owned(),
                            exit_code: None,
                            signal: None,
                            starts: 1,
                            last_seq: 0,
                            started_ms: created_ms,
                            ended_ms: None,
                            removed: false,
                        })
                        .collect();
                    record
                }
            };
            let mut roles: Vec<RoleRun> = Vec::new();
            let mut instances = Vec::new();
            for rec in &record.instances {
                let role = match roles.iter().position(|r| r.name == rec.role && r.module == rec.module) {
                    Some(r) => r,
                    None => {
                        roles.push(RoleRun {
                            name: rec.role.clone(),
                            module: rec.module.clone(),
                            program: Vec::new(),
                            env: Vec::new(),
                            restart: None,
                            max_log_bytes: self.config.max_log_bytes,
                            limits: Limits::default(),
                            socket: SocketMode::Inherit,
                            faults: false,
                        });
                        roles.len() - 1
                    }
                };
                let state = State::parse(&rec.state).unwrap_or(State::Lost);
                let was_live = state.is_live() || state == State::Starting;
                let path = dir.join(format!("{}.log", rec.name));
                // A log written after the last record (the manager died
                // meanwhile) is counted, not trusted to the record.
                let found = output::scan(&path).unwrap_or_else(|err| {
                    tracing::warn!(run = %name, instance = %rec.name, %err, "cannot read the log of a kept run");
                    output::Scanned::default()
                });
                let cap = self.config.max_log_bytes;
                let (mut writer, log) = Writer::resume(&path, &name, &rec.name, &self.config.member_name, found, cap);
                let (state, detail) = if was_live { (State::Lost, Some("manager restarted")) } else { (state, None) };
                if was_live {
                    lost += 1;
                    let note = "lost: the manager stopped without stopping it (it was restarted since)";
                    if let Err(err) = writer.note(note) {
                        tracing::warn!(run = %name, instance = %rec.name, %err, "cannot write to the instance log");
                    }
                    writer.close();
                    let events = dir.join(format!("{}.events.jsonl", rec.name));
                    if let Err(err) = record_crash(&events, &name, &rec.name, rec.starts, "lost: the manager restarted")
                    {
                        tracing::warn!(run = %name, instance = %rec.name, %err, "cannot record the crash");
                    }
                }
                instances.push(Instance {
                    name: rec.name.clone(),
                    address: rec.address,
                    state,
                    pid: None,
                    exit_code: rec.exit_code,
                    signal: rec.signal,
                    starts: rec.starts,
                    intent: None,
                    stdin: None,
                    writer: Some(writer),
                    notes: None,
                    log,
                    waiters: Vec::new(),
                    role,
                    restarts: 0,
                    revive_pending: false,
                    started_ms: rec.started_ms,
                    ended_ms: rec.ended_ms.or(was_live.then(now_ms)),
                    detail,
                    cgroup: None,
                    removed: rec.removed,
                });
            }
            let plan = record
                .plan
                .iter()
                .map(|p| Placed {
                    name: p.name.clone(),
                    member_id: p.member_id.clone(),
                    member_name: p.member.clone(),
                    address: p.address,
                    role: p.role.clone(),
                    module: p.module.clone(),
                })
                .collect();
            let run = Run {
                name: name.clone(),
                launch_id: String::new(),
                history: true,
                bytes: None,
                remembered: BTreeMap::new(),
                module: record.module.clone(),
                plan,
                total: record.plan.len().max(record.instances.len()) as u32,
                pending: None,
                roles,
                role_table: String::new(),
                multicast: String::new(),
                args: record.args.clone(),
                peers: String::new(),
                control: tokio::sync::watch::Sender::new(Bytes::new()),
                faults: Faults::default(),
                dir,
                created_ms: record.created_ms,
                instances,
                growing: None,
                retabled: false,
            };
            if let Some(n) = name.strip_prefix('r').and_then(|n| n.parse::<u64>().ok()) {
                self.next_run = self.next_run.max(n.saturating_add(1));
            }
            self.runs.insert(name.clone(), run);
            self.save(&name);
        }
        for run in self.runs.values_mut() {
            run.bytes = Some(history::disk_usage(&run.dir));
        }
        if !self.runs.is_empty() {
            tracing::info!(runs = self.runs.len(), lost, "kept runs loaded from the state dir");
        }
        self.keep_within_retention();
    }

    fn any_live(&self) -> bool {
        self.runs.values().flat_map(|r| &r.instances).any(|i| i.state.is_live())
    }

    fn info(&self, run: &Run, i: usize) -> InstanceInfo {
        let inst = &run.instances[i];
        InstanceInfo {
            run: run.name.clone(),
            name: inst.name.clone(),
            member: self.config.member_name.clone(),
            member_id: self.config.member_id.clone(),
            address: inst.address,
            pid: inst.pid,
            // A failed instance waiting out its backoff will run again:
            // viewers (ps, events -f, up's end condition) must not take it
            // for ended.
            state: if inst.revive_pending { State::Restarting } else { inst.state },
            exit_code: inst.exit_code,
            signal: inst.signal,
            starts: inst.starts,
            started_ms: inst.started_ms,
            last_seq: inst.log.seq(),
            role: run.roles[inst.role].name.clone(),
            module: run.roles[inst.role].module.clone(),
            detail: match (inst.detail, inst.log.failing()) {
                _ if inst.removed => "removed by a scale".to_owned(),
                (Some(detail), _) => detail.to_owned(),
                (None, Some(failing)) => failing.to_string(),
                (None, None) => String::new(),
            },
            unwritten: inst.log.unwritten(),
        }
    }

    fn run_info(&self, run: &Run) -> RunInfo {
        RunInfo {
            name: run.name.clone(),
            module: run.module.clone(),
            args: run.args.clone(),
            created_ms: run.created_ms,
            instances: (0..run.instances.len()).map(|i| self.info(run, i)).collect(),
            plan: run.plan.clone(),
            remembered: run.remembered.clone(),
            dir: run.dir.clone(),
        }
    }

    fn ps(&self, run: Option<&str>) -> Result<Vec<RunInfo>, Error> {
        match run {
            Some(name) => {
                let run = self.runs.get(name).ok_or_else(|| Error::UnknownRun(name.to_owned()))?;
                Ok(vec![self.run_info(run)])
            }
            None => Ok(self.runs.values().map(|r| self.run_info(r)).collect()),
        }
    }

    /// The (run, instance index) pairs a target names.
    fn select(&self, target: &Target) -> Result<Vec<(String, usize)>, Error> {
        let run = self.runs.get(&target.run).ok_or_else(|| Error::UnknownRun(target.run.clone()))?;
        match &target.instance {
            None => Ok((0..run.instances.len()).map(|i| (run.name.clone(), i)).collect()),
            Some(name) => {
                let i = run
                    .instances
                    .iter()
                    .position(|inst| &inst.name == name)
                    .ok_or_else(|| Error::UnknownInstance { run: run.name.clone(), instance: name.clone() })?;
                Ok(vec![(run.name.clone(), i)])
            }
        }
    }

    fn reserve(&mut self, wanted: Option<String>, from: u64, launch_id: String) -> Result<String, Error> {
        if from > MAX_AUTO_RUN {
            return Err(Error::BadRequest(format!("r{from} is beyond the automatic run names")));
        }
        let now = Instant::now();
        self.reserved.retain(|_, (launch, expiry)| *expiry > now && *launch != launch_id);
        if self.reserved.len() >= MAX_RESERVATIONS {
            return Err(Error::TooManyLaunches);
        }
        // The name goes in paths and in every peer's table.
        let taken = |name: &str| {
            self.runs.contains_key(name) || self.reserved.contains_key(name) || self.config.runs_dir.join(name).exists()
        };
        let name = match wanted.filter(|n| !n.is_empty()) {
            Some(name) => {
                crate::names::check(crate::names::Kind::Run, &name)?;
                if taken(&name) {
                    return Err(Error::RunExists(name));
                }
                name
            }
            // The cursor only moves forward, so a long-lived manager does
            // not look at every earlier run for each launch; another
            // member's cursor may be ahead (`from`).
            None => (self.next_run.max(from)..).map(|n| format!("r{n}")).find(|n| !taken(n)).expect("an unused name"),
        };
        self.reserved.insert(name.clone(), (launch_id, now + PREPARED_TTL));
        Ok(name)
    }

    fn prepare(&mut self, spec: PrepareSpec) -> Result<Vec<(String, SocketAddr)>, Error> {
        let began = std::time::Instant::now();
        crate::names::check(crate::names::Kind::Run, &spec.run)?;
        check_instances(&spec)?;
        // Only the roles with instances here need their program here (a
        // manifest module may exist on the members it is placed on only).
        let mut roles = Vec::new();
        for role in &spec.roles {
            let limits = Limits { memory: role.memory, cpus: role.cpus, pids: role.pids };
            if limits.any()
                && !role.instances.is_empty()
                && let Some(why) = self.cgroups.as_ref().and_then(Cgroups::limits_off)
            {
                return Err(Error::LimitsOff { member: self.config.member_name.clone(), why: why.to_owned() });
            }
            let (module, program, socket, applies_faults) = match &role.module {
                // A member that hosts none of its instances needs nothing
                // of the module but its name.
                Some(module) if role.instances.is_empty() => (module.clone(), Vec::new(), SocketMode::Inherit, true),
                Some(module) => {
                    let entry =
                        self.config.registry.find(module).ok_or_else(|| Error::UnknownModule(module.clone()))?;
                    self.check_env(role, &entry.env)?;
                    let mut program = entry.argv;
                    program.extend(role.args.iter().cloned());
                    (module.clone(), program, entry.socket, entry.faults)
                }
                None => {
                    if !self.config.allow_exec && !role.instances.is_empty() {
                        return Err(Error::ExecNotAllowed);
                    }
                    if role.command.is_empty() {
                        return Err(Error::NoCommand);
                    }
                    ("exec".to_owned(), role.command.clone(), role.socket.unwrap_or_default(), false)
                }
            };
            roles.push(RoleRun {
                name: role.name.clone(),
                module,
                program,
                env: role.env.clone(),
                restart: role.restart,
                max_log_bytes: if role.max_log_bytes == 0 { self.config.max_log_bytes } else { role.max_log_bytes },
                limits,
                socket,
                faults: applies_faults,
            });
        }
        let mut module = String::new();
        for role in &roles {
            if !module.split('+').any(|m| m == role.module) {
                if !module.is_empty() {
                    module.push('+');
                }
                module.push_str(&role.module);
            }
        }
        let here: Vec<(usize, &String)> =
            spec.roles.iter().enumerate().flat_map(|(r, role)| role.instances.iter().map(move |i| (r, i))).collect();
        let count = here.len() as u32;
        if count == 0 || spec.total > MAX_INSTANCES || count > spec.total {
            return Err(Error::BadCount(spec.total));
        }
        let name = self.take_reservation(&spec.run, &spec.launch_id)?;
        let faults = Faults::parse(&spec.faults).map_err(|e| Error::BadFaults(e.to_string()))?;
        if !faults.is_none() {
            faults_applied(&name, &roles)?;
        }
        check_partition(&faults, spec.total)?;

        // Every address is bound before any process starts, so the peer
        // table is complete and no early datagram is refused.
        let ip = self.config.advertise;
        let sockets = take_ports(&mut self.ports, ip, count as usize)?;
        let ports_taken = began.elapsed();
        let dir = self.config.runs_dir.join(&name);
        if let Err(source) = std::fs::create_dir_all(&dir) {
            for (port, _) in &sockets {
                self.ports.release(*port);
            }
            return Err(Error::State { run: name, source });
        }

        let mut instances = Vec::new();
        let mut unopened = Vec::new();
        for ((role, inst_name), (port, _)) in here.iter().zip(&sockets) {
            let (log_file, log) = Writer::prepare(
                &dir.join(format!("{inst_name}.log")),
                &name,
                inst_name,
                &self.config.member_name,
                roles[*role].max_log_bytes,
            );
            unopened.push(log_file);
            instances.push(Instance::fresh((*inst_name).clone(), *role, SocketAddr::new(ip, *port), log, None));
        }
        let files_made = began.elapsed();
        let addresses = instances.iter().map(|i| (i.name.clone(), i.address)).collect();
        // The log files are created on the blocking pool while the launch
        // goes on: on a busy ext4, creating 64 files took as long as starting
        // 64 processes.
        let opening = tokio::task::spawn_blocking(move || unopened.into_iter().map(Unopened::open).collect());
        let run = Run {
            name: name.clone(),
            launch_id: spec.launch_id,
            history: false,
            bytes: None,
            remembered: BTreeMap::new(),
            module,
            plan: Vec::new(),
            total: spec.total,
            pending: Some(Pending {
                sockets: sockets.into_iter().enumerate().map(|(i, (_, socket))| (i, socket)).collect(),
                opening,
            }),
            args: match spec.roles.as_slice() {
                [only] => only.args.clone(),
                _ => Vec::new(),
            },
            roles,
            role_table: spec.role_table,
            multicast: spec.multicast,
            peers: String::new(),
            control: tokio::sync::watch::Sender::new(control_message(&faults)),
            faults,
            dir,
            created_ms: now_ms(),
            instances,
            growing: None,
            retabled: false,
        };
        let launch_id = run.launch_id.clone();
        self.runs.insert(name.clone(), run);
        // Where a launch spends its time, for `mgr start -v`.
        tracing::debug!(run = %name, ?ports_taken, ?files_made, total = ?began.elapsed(), "prepare timings");
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PREPARED_TTL).await;
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Msg::Expire { run: name, launch_id }).await;
            }
        });
        Ok(addresses)
    }

    /// Turns the launch's reservation of `name` into the run it prepares.
    fn take_reservation(&mut self, name: &str, launch_id: &str) -> Result<String, Error> {
        match self.reserved.get(name) {
            Some((launch, expiry)) if launch == launch_id && *expiry > Instant::now() => {}
            _ => return Err(Error::NotReserved(name.to_owned())),
        }
        self.reserved.remove(name);
        if let Some(n) = name.strip_prefix('r').and_then(|n| n.parse::<u64>().ok()) {
            self.next_run = self.next_run.max(n.saturating_add(1));
        }
        Ok(name.to_owned())
    }

    /// On a member that does not allow exec, a role's environment is held
    /// to the allowlist of [`crate::env`]: otherwise `LD_PRELOAD` and its
    /// kin would run any code inside a module.
    fn check_env(&self, role: &RoleSpec, declared: &[String]) -> Result<(), Error> {
        if self.config.allow_exec {
            return Ok(());
        }
        match role.env.iter().find(|(k, v)| !crate::env::allowed_without_exec(k, v, declared)) {
            Some((var, _)) => Err(Error::EnvNotAllowed {
                role: role.name.clone(),
                var: var.clone(),
                member: self.config.member_name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A member that hosts nothing of a run keeps its plan, from the
    /// launch's `Start`, so that it can list the run and say its instances
    /// are lost if their members die. Without a reservation of that launch
    /// it is refused like a start of a run the launch did not prepare.
    fn keep_plan(&mut self, name: &str, launch_id: &str, plan: Vec<Placed>) -> Result<RunInfo, Error> {
        self.take_reservation(name, launch_id).map_err(|_| Error::OtherLaunch(name.to_owned()))?;
        let mut module = String::new();
        for placed in &plan {
            if !module.split('+').any(|m| m == placed.module) {
                if !module.is_empty() {
                    module.push('+');
                }
                module.push_str(&placed.module);
            }
        }
        let dir = self.config.runs_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|source| Error::State { run: name.to_owned(), source })?;
        let run = Run {
            name: name.to_owned(),
            launch_id: launch_id.to_owned(),
            history: false,
            bytes: None,
            remembered: BTreeMap::new(),
            module,
            total: plan.len() as u32,
            plan,
            pending: None,
            roles: Vec::new(),
            role_table: String::new(),
            multicast: String::new(),
            args: Vec::new(),
            peers: String::new(),
            control: tokio::sync::watch::Sender::new(Bytes::new()),
            faults: Faults::default(),
            dir,
            created_ms: now_ms(),
            instances: Vec::new(),
            growing: None,
            retabled: false,
        };
        self.runs.insert(name.to_owned(), run);
        self.save(name);
        Ok(self.run_info(&self.runs[name]))
    }

    /// Keeps what a `ps` over the group saw of other members' instances of
    /// a run this member knows.
    fn remember(&mut self, name: &str, seen: Vec<(String, Seen)>) {
        if let Some(run) = self.runs.get_mut(name) {
            for (instance, state) in seen {
                if run.plan.iter().any(|p| p.name == instance) {
                    run.remembered.insert(instance, state);
                }
            }
        }
    }

    async fn start(&mut self, name: &str, launch_id: &str, plan: Vec<Placed>) -> Result<RunInfo, Error> {
        let began = std::time::Instant::now();
        if !self.runs.contains_key(name) {
            return self.keep_plan(name, launch_id, plan);
        }
        let run = self.runs.get_mut(name).expect("checked above");
        if run.launch_id != launch_id {
            return Err(Error::OtherLaunch(name.to_owned()));
        }
        if plan.len() as u32 != run.total {
            return Err(Error::BadRequest(format!(
                "the plan of run '{name}' has {} instances, not {}",
                plan.len(),
                run.total
            )));
        }
        for inst in &run.instances {
            if !plan.iter().any(|p| p.name == inst.name && p.address == inst.address) {
                return Err(Error::BadRequest(format!("the plan of run '{name}' does not place {} here", inst.name)));
            }
        }
        let Some(pending) = run.pending.take() else {
            return Err(Error::BadRequest(format!("run '{name}' is started already")));
        };
        run.peers = plan.iter().map(|p| format!("{}={}", p.name, p.address)).collect::<Vec<_>>().join(",");
        run.plan = plan;
        if let Err(err) = self.start_instances(name, pending.sockets, Some(pending.opening)).await {
            // All or nothing: a launch that cannot start every instance
            // leaves none running.
            self.abort(name);
            return Err(err);
        }
        tracing::info!(run = %name, count = self.runs[name].instances.len(), "launched");
        // Where a launch spends its time, for `mgr start -v`.
        tracing::debug!(run = %name, took = ?began.elapsed(), "start timings");
        Ok(self.run_info(&self.runs[name]))
    }

    /// A launch undoes its own work here: its reservation of `name`, or
    /// the run it prepared or started. Anything else of that name is
    /// another launch's, and stays.
    fn abort_launch(&mut self, name: &str, launch_id: &str) {
        // The coordinator may not know which automatic name this member
        // held for it: a launch's reservation goes whatever its name.
        self.reserved.retain(|_, (launch, _)| launch != launch_id);
        match self.runs.get(name) {
            Some(run) if run.launch_id == launch_id => self.abort(name),
            Some(_) => tracing::warn!(run = name, "ignored an abort from another launch than the run's own"),
            None => {}
        }
    }

    fn abort(&mut self, name: &str) {
        let Some(run) = self.runs.remove(name) else {
            return;
        };
        for inst in &run.instances {
            if let Some(pid) = inst.pid.filter(|_| inst.state.is_live()) {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            self.ports.release(inst.address.port());
        }
        // The name is free again; what little the run wrote goes.
        let _ = std::fs::remove_dir_all(&run.dir);
        tracing::info!(run = name, "launch undone");
    }

    /// The first phase of a scale here: binds an address for each new
    /// instance of a role this member hosts (so that it has the role's
    /// program), opens their logs, and keeps them until the second phase.
    fn grow(&mut self, spec: GrowSpec) -> Result<Vec<(String, SocketAddr)>, Error> {
        let member = self.config.member_name.clone();
        let ip = self.config.advertise;
        let run = self.runs.get_mut(&spec.run).ok_or_else(|| Error::UnknownRun(spec.run.clone()))?;
        if run.history {
            return Err(Error::HistoryRun(spec.run.clone()));
        }
        if run.pending.is_some() || run.growing.is_some() {
            return Err(Error::BadRequest(format!("run '{}' is being launched or scaled already", spec.run)));
        }
        let role =
            run.roles.iter().position(|r| r.name == spec.role && !r.program.is_empty()).ok_or_else(|| {
                Error::BadRequest(format!("member {member} hosts no instance of role '{}'", spec.role))
            })?;
        if spec.instances.is_empty() || run.instances.len() + spec.instances.len() > MAX_INSTANCES as usize {
            return Err(Error::BadCount((run.instances.len() + spec.instances.len()) as u32));
        }
        for name in &spec.instances {
            crate::names::check(crate::names::Kind::Instance, name)?;
            if run.instances.iter().any(|i| &i.name == name) || run.plan.iter().any(|p| &p.name == name) {
                return Err(Error::BadRequest(format!("run '{}' has an instance '{name}' already", spec.run)));
            }
        }
        let sockets = take_ports(&mut self.ports, ip, spec.instances.len())?;
        let ports: Vec<u16> = sockets.iter().map(|(port, _)| *port).collect();
        let mut addresses = Vec::new();
        let mut grown = Vec::new();
        for (name, (port, socket)) in spec.instances.iter().zip(sockets) {
            let (log_file, log) = Writer::prepare(
                &run.dir.join(format!("{name}.log")),
                &spec.run,
                name,
                &member,
                run.roles[role].max_log_bytes,
            );
            let writer = match log_file.open() {
                Ok(writer) => writer,
                Err(source) => {
                    // What this call bound and made goes back.
                    for port in &ports {
                        self.ports.release(*port);
                    }
                    for (i, _) in grown.iter().rev() {
                        let inst = run.instances.remove(*i);
                        let _ = std::fs::remove_file(run.dir.join(format!("{}.log", inst.name)));
                    }
                    return Err(Error::State { run: spec.run.clone(), source });
                }
            };
            run.instances.push(Instance::fresh(name.clone(), role, SocketAddr::new(ip, port), log, Some(writer)));
            addresses.push((name.clone(), SocketAddr::new(ip, port)));
            grown.push((run.instances.len() - 1, socket));
        }
        run.growing = Some(Growing { scale_id: spec.scale_id.clone(), sockets: grown });
        let (tx, name, scale_id) = (self.tx.clone(), spec.run, spec.scale_id);
        tokio::spawn(async move {
            tokio::time::sleep(PREPARED_TTL).await;
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Msg::ExpireGrowth { run: name, scale_id }).await;
            }
        });
        Ok(addresses)
    }

    /// Undoes the first phase of scale `scale_id` here: its instances, which
    /// never started, go with their ports and logs.
    fn forget_growth(&mut self, name: &str, scale_id: &str) {
        let Some(run) = self.runs.get_mut(name) else { return };
        if run.growing.as_ref().is_none_or(|g| g.scale_id != scale_id) {
            return;
        }
        let growing = run.growing.take().expect("checked above");
        let mut gone: Vec<usize> = growing.sockets.iter().map(|(i, _)| *i).collect();
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            let inst = run.instances.remove(i);
            self.ports.release(inst.address.port());
            let _ = std::fs::remove_file(run.dir.join(format!("{}.log", inst.name)));
        }
    }

    /// The second phase of a scale here (or its undoing): the run's new
    /// table, which its live instances get on their control pipes; the
    /// instances this scale grew here start with it, those it removes stop.
    async fn retable(&mut self, spec: RetableSpec) -> Result<(), Error> {
        if spec.abort {
            self.forget_growth(&spec.run, &spec.scale_id);
            return Ok(());
        }
        let Some(run) = self.runs.get_mut(&spec.run) else { return Err(Error::UnknownRun(spec.run)) };
        if run.history {
            return Err(Error::HistoryRun(spec.run));
        }
        for inst in run.instances.iter().filter(|i| !i.removed && !spec.removed.contains(&i.name)) {
            if !spec.plan.iter().any(|p| p.name == inst.name && p.address == inst.address) {
                return Err(Error::BadRequest(format!("the new plan of run '{}' leaves out {}", spec.run, inst.name)));
            }
        }
        run.peers = spec.plan.iter().map(|p| format!("{}={}", p.name, p.address)).collect::<Vec<_>>().join(",");
        run.total = spec.plan.iter().filter_map(|p| p.name.strip_prefix('p')?.parse::<u32>().ok()).max().unwrap_or(0);
        run.plan = spec.plan;
        if !run.role_table.is_empty() || !spec.role_table.is_empty() {
            run.role_table = spec.role_table;
        }
        run.retabled = true;
        run.control.send_replace(run_control_message(run));
        let removing: Vec<usize> = run
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| spec.removed.contains(&i.name) && !i.removed)
            .map(|(k, _)| k)
            .collect();
        for &k in &removing {
            run.instances[k].removed = true;
        }
        let starts = match run.growing.take() {
            Some(g) if g.scale_id == spec.scale_id => g.sockets,
            other => {
                run.growing = other;
                Vec::new()
            }
        };
        let name = spec.run;
        for k in removing {
            let instance = self.runs[&name].instances[k].name.clone();
            let (reply, _) = oneshot::channel();
            let target = Target { run: name.clone(), instance: Some(instance) };
            self.act(&target, Action::Stop, reply).await;
        }
        if !starts.is_empty() {
            let result = self.start_instances(&name, starts, None).await;
            self.save(&name);
            result?;
        }
        self.save(&name);
        Ok(())
    }

    /// Starts (or starts again) instances of `run`, each on its address with
    /// its socket already bound there. All are started even when some fail
    /// (so that a failed launch can end those that did start); the first
    /// failure is returned. `opening` brings the log writers of a new run,
    /// one per start, in order; without it the instances have theirs.
    async fn start_instances(
        &mut self,
        run_name: &str,
        starts: Vec<(usize, UdpSocket)>,
        opening: Option<JoinHandle<std::io::Result<Vec<Writer>>>>,
    ) -> Result<(), Error> {
        let config = self.config.clone();
        let run = self.runs.get(run_name).expect("a known run");
        // Each instance in a cgroup of its own, with its limits (the
        // member's default number of processes unless its role says).
        let mut leaves: Vec<Option<InstanceCgroup>> = Vec::new();
        for (i, _) in &starts {
            let inst = &run.instances[*i];
            let asked = run.roles[inst.role].limits;
            let limits = Limits { pids: if asked.pids > 0 { asked.pids } else { config.default_pids }, ..asked };
            let made = match &self.cgroups {
                Some(cgroups) if cgroups.limits_off().is_none() => {
                    cgroups.instance(&format!("{run_name}.{}", inst.name), limits).map(Some)
                }
                // Without limits an instance still joins the manager's
                // cgroup v2, where there is one, so that nothing escapes.
                Some(cgroups) if cgroups.path().is_some() => {
                    cgroups.instance(&format!("{run_name}.{}", inst.name), Limits::default()).map(Some)
                }
                _ => Ok(None),
            };
            match made {
                Ok(leaf) => leaves.push(leaf),
                Err(source) if asked.any() => {
                    return Err(Error::Spawn { what: format!("the cgroup of {run_name}/{}", inst.name), source });
                }
                Err(err) => {
                    tracing::warn!(run = run_name, instance = %inst.name, %err, "an instance starts without its cgroup");
                    leaves.push(None);
                }
            }
        }
        // MGR_DIR is the run's folder, shared by its instances (which name
        // their files after MGR_SELF): one directory fewer per instance is a
        // measurable part of a large launch (inode allocation dominated it).
        let specs: Vec<spawner::SpawnSpec> = starts
            .iter()
            .enumerate()
            .map(|(k, (i, socket))| {
                let inst = &run.instances[*i];
                let role = &run.roles[inst.role];
                let mut env: Vec<(String, std::ffi::OsString)> = vec![
                    ("MGR_RUN".into(), run_name.into()),
                    ("MGR_SELF".into(), inst.name.clone().into()),
                    ("MGR_ADDR".into(), inst.address.to_string().into()),
                    ("MGR_PEERS".into(), run.peers.clone().into()),
                    ("MGR_MEMBER".into(), config.member_name.clone().into()),
                    ("MGR_MEMBER_ID".into(), config.member_id.clone().into()),
                    ("MGR_EVENTS".into(), run.dir.join(format!("{}.events.jsonl", inst.name)).into()),
                    ("MGR_DIR".into(), run.dir.clone().into()),
                    ("MGR_DATA".into(), config.data_dir.clone().into()),
                    ("MGR_FAULTS".into(), run.faults.to_string().into()),
                    ("MGR_INCARNATION".into(), (inst.starts + 1).to_string().into()),
                ];
                let inherit = role.socket == SocketMode::Inherit;
                if inherit {
                    env.push(("MGR_UDP_FD".into(), socket.as_raw_fd().to_string().into()));
                }
                if !role.name.is_empty() {
                    env.push(("MGR_ROLE".into(), role.name.clone().into()));
                    env.push(("MGR_ROLES".into(), run.role_table.clone().into()));
                }
                if !run.multicast.is_empty() {
                    env.push(("MGR_MULTICAST".into(), run.multicast.clone().into()));
                }
                // The role's own environment comes last; it never names
                // MGR_* (refused at the edge: the contract is the manager's).
                env.extend(role.env.iter().map(|(k, v)| (k.clone(), v.into())));
                spawner::SpawnSpec {
                    argv: role.program.clone(),
                    env,
                    cwd: run.dir.clone(),
                    inherit: inherit.then(|| socket.as_raw_fd()),
                    control: role.module != "exec",
                    cgroup_procs: leaves
                        .get(k)
                        .and_then(Option::as_ref)
                        .map(InstanceCgroup::procs_fds)
                        .unwrap_or_default(),
                }
            })
            .collect();
        let programs: Vec<String> =
            starts.iter().map(|(i, _)| run.roles[run.instances[*i].role].program[0].clone()).collect();
        // A program that binds its address itself gets the port free: the
        // manager's socket held it until now, so that no one else took it
        // while the run was prepared.
        let starts: Vec<(usize, Option<UdpSocket>)> = starts
            .into_iter()
            .zip(&specs)
            .map(|((i, socket), spec)| (i, spec.inherit.is_some().then_some(socket)))
            .collect();
        let (spawned, writers) = match opening {
            Some(opening) => {
                let (spawned, writers) = tokio::join!(self.spawner.spawn_all(specs), opening);
                (spawned, Some(writers))
            }
            None => (self.spawner.spawn_all(specs).await, None),
        };
        // The children have their own copies of the sockets now.
        let indices: Vec<usize> = starts.into_iter().map(|(i, _socket)| i).collect();
        match writers {
            None => {}
            Some(Ok(Ok(writers))) => {
                let run = self.runs.get_mut(run_name).expect("a known run");
                for (i, writer) in indices.iter().zip(writers) {
                    run.instances[*i].writer = Some(writer);
                }
            }
            Some(Ok(Err(source))) => return Err(abandon(spawned, Error::State { run: run_name.to_owned(), source })),
            Some(Err(panicked)) => {
                let source = std::io::Error::other(panicked.to_string());
                return Err(abandon(spawned, Error::State { run: run_name.to_owned(), source }));
            }
        }

        let mut first_error = None;
        for (((i, result), program), leaf) in indices.into_iter().zip(spawned).zip(programs).zip(leaves) {
            let run = self.runs.get_mut(run_name).expect("a known run");
            let inst = &mut run.instances[i];
            let what = format!("{run_name}/{}", inst.name);
            let child = match result {
                Ok(child) => child,
                Err(source) => {
                    // The program is the user's text, as long as an argument may be.
                    let program = crate::names::printable(&program, 64);
                    first_error.get_or_insert(Error::Spawn { what: format!("{program} for {what}"), source });
                    if let Some(leaf) = leaf {
                        leaf.remove();
                    }
                    continue;
                }
            };
            inst.cgroup = leaf.map(|mut leaf| {
                leaf.joined();
                leaf
            });
            inst.detail = None;
            let pid = child.pid;
            inst.pid = Some(pid);
            inst.state = State::Running;
            inst.revive_pending = false;
            inst.exit_code = None;
            inst.signal = None;
            inst.intent = None;
            inst.starts += 1;
            inst.started_ms = now_ms();
            inst.ended_ms = None;
            let mut writer = inst.writer.take().expect("a writer while not running");
            writer.reopen();
            let note = if inst.starts == 1 { "started" } else { "restarted" };
            if let Err(err) = writer.note(&format!("{note}: pid {pid}, address {}", inst.address)) {
                tracing::error!(instance = %what, %err, "cannot write to the instance log");
            }
            let (stdin_queue, stdin_feed) = pump::stdin_queue(STDIN_QUEUE, STDIN_BYTES);
            inst.stdin = Some(stdin_queue);
            let (notes_tx, notes) = mpsc::unbounded_channel();
            inst.notes = Some(notes_tx);
            // The faults it starts with are in MGR_FAULTS: only changes go
            // to the control pipe.
            let mut control = run.control.subscribe();
            control.mark_unchanged();
            let report = self.tx.clone();
            let (run_name, inst_name, start) = (run_name.to_owned(), inst.name.clone(), inst.starts);
            tokio::spawn(async move {
                let (status, writer) = pump::pump(child, stdin_feed, control, writer, notes, &what).await;
                if let Some(tx) = report.upgrade() {
                    let _ = tx.send(Msg::Exited { run: run_name, instance: inst_name, start, status, writer }).await;
                }
            });
        }
        self.save(run_name);
        first_error.map_or(Ok(()), Err)
    }

    fn fault(&mut self, run_name: &str, change: FaultChange) -> Result<(String, Vec<String>), Error> {
        let run = self.runs.get_mut(run_name).ok_or_else(|| Error::UnknownRun(run_name.to_owned()))?;
        faults_applied(run_name, &run.roles)?;
        let bad = |e: faults::FaultsError| Error::BadFaults(e.to_string());
        let mut next = run.faults.clone();
        if let Some(loss) = change.loss {
            next.loss = Faults::parse(&format!("loss={loss}")).map_err(bad)?.loss;
        }
        if let Some(dup) = change.dup {
            next.dup = Faults::parse(&format!("dup={dup}")).map_err(bad)?.dup;
        }
        if let Some(delay) = &change.delay {
            next.delay_ms = faults::parse_delay(delay).map_err(bad)?;
        }
        if let Some(partition) = &change.partition {
            next.partition = faults::parse_partition(partition).map_err(bad)?;
        }
        if change.heal {
            next.partition.clear();
        }
        check_partition(&next, run.total)?;
        // A call that changes nothing only asks (`mgrctl fault RUN`, the
        // live view's refresh): nobody is told, and no note is written.
        if change.is_empty() {
            return Ok((run.faults.to_string(), Vec::new()));
        }
        run.faults = next;
        // The runtime of each live instance takes the whole new state from
        // its control pipe (never from stdin, where a user's line could pass
        // for it); restarted instances get it in MGR_FAULTS.
        run.control.send_replace(run_control_message(run));
        let spec = run.faults.to_string();
        let shown = if spec.is_empty() { "none".to_owned() } else { spec.clone() };
        let mut told = Vec::new();
        for inst in run.instances.iter().filter(|i| i.state.is_live()) {
            told.push(inst.name.clone());
            if let Some(notes) = &inst.notes {
                let _ = notes.send(format!("faults: {shown}"));
            }
        }
        Ok((spec, told))
    }

    fn send(&mut self, target: &Target, line: Bytes) -> Result<Vec<String>, Error> {
        if line.len() >= STDIN_BYTES {
            return Err(Error::LineTooLong(line.len()));
        }
        let found = self.select(target)?;
        let mut line = line.to_vec();
        line.push(b'\n');
        let line = Bytes::from(line);
        let mut delivered = Vec::new();
        for (run, i) in &found {
            let inst = &self.runs[run].instances[*i];
            let who = format!("{run}/{}", inst.name);
            let stdin = inst.stdin.as_ref().filter(|_| inst.state.is_live());
            match stdin {
                Some(stdin) => match stdin.push(line.clone()) {
                    Ok(()) => delivered.push(inst.name.clone()),
                    Err(pump::Refused::Full(queued)) => return Err(Error::StdinFull { who, queued }),
                    Err(pump::Refused::Closed) => {
                        if target.instance.is_some() {
                            return Err(Error::NotRunning(who));
                        }
                    }
                },
                None if target.instance.is_some() => return Err(Error::NotRunning(who)),
                None => {}
            }
        }
        if delivered.is_empty() {
            return Err(Error::NotRunning(format!("run '{}'", target.run)));
        }
        Ok(delivered)
    }

    async fn act(&mut self, target: &Target, action: Action, reply: Reply<Vec<InstanceInfo>>) {
        let found = match self.select(target) {
            Ok(found) => found,
            Err(err) => {
                let _ = reply.send(Err(err));
                return;
            }
        };
        if action == Action::Restart && self.runs.get(&target.run).is_some_and(|r| r.history) {
            let _ = reply.send(Err(Error::HistoryRun(target.run.clone())));
            return;
        }
        // An instance a scale removed is out of the run: it is never
        // started again (a new scale makes new ones).
        let removed = |(run, i): &(String, usize)| self.runs[run].instances[*i].removed;
        if action == Action::Restart && target.instance.is_some() && found.iter().any(removed) {
            let who = format!("{}/{}", target.run, target.instance.as_deref().unwrap_or_default());
            let _ = reply.send(Err(Error::BadRequest(format!(
                "{who} was removed from the run by a scale: scale the run up again instead"
            ))));
            return;
        }
        let found: Vec<(String, usize)> =
            found.into_iter().filter(|f| !removed(f) || action != Action::Restart).collect();
        let single = target.instance.is_some();
        let mut pending = Vec::new();
        let mut done = Vec::new();
        for (run, i) in found {
            let inst = &self.runs[&run].instances[i];
            let who = format!("{run}/{}", inst.name);
            let live = inst.state.is_live();
            let pid = inst.pid.unwrap_or(0) as i32;
            let group = Pid::from_raw(pid);
            match action {
                Action::Pause | Action::Resume => {
                    let (from, to, signal) = match action {
                        Action::Pause => (State::Running, State::Paused, Signal::SIGSTOP),
                        _ => (State::Paused, State::Running, Signal::SIGCONT),
                    };
                    if inst.state != from {
                        if single {
                            let err =
                                if action == Action::Pause { Error::NotRunning(who) } else { Error::NotPaused(who) };
                            let _ = reply.send(Err(err));
                            return;
                        }
                        continue;
                    }
                    let _ = killpg(group, signal);
                    let inst = &mut self.runs.get_mut(&run).expect("known").instances[i];
                    inst.state = to;
                    if let Some(notes) = &inst.notes {
                        let _ = notes.send(if action == Action::Pause { "paused" } else { "resumed" }.to_owned());
                    }
                    done.push((run, i));
                }
                Action::Stop | Action::Kill if !live => {
                    let inst = &mut self.runs.get_mut(&run).expect("known").instances[i];
                    if inst.revive_pending {
                        // A stop of a failed instance waiting to be restarted
                        // cancels the restart.
                        inst.revive_pending = false;
                        if let Some(writer) = inst.writer.as_mut() {
                            let _ = writer.note("automatic restart cancelled");
                            writer.close();
                        }
                        done.push((run, i));
                        continue;
                    }
                    if single {
                        let _ = reply.send(Err(Error::NotRunning(who)));
                        return;
                    }
                }
                Action::Stop | Action::Kill | Action::Restart => {
                    if !live {
                        // Restart of an ended instance: start it right away.
                        pending.push((run, i));
                        continue;
                    }
                    let intent = match action {
                        Action::Stop => Intent::Stop,
                        Action::Kill => Intent::Kill,
                        _ => Intent::Restart,
                    };
                    let paused = inst.state == State::Paused;
                    let start = inst.starts;
                    if intent == Intent::Kill {
                        let _ = killpg(group, Signal::SIGKILL);
                    } else {
                        let _ = killpg(group, Signal::SIGTERM);
                        if paused {
                            // A stopped process cannot act on SIGTERM.
                            let _ = killpg(group, Signal::SIGCONT);
                        }
                        self.escalate_after_grace(run.clone(), inst.name.clone(), start);
                    }
                    let inst = &mut self.runs.get_mut(&run).expect("known").instances[i];
                    inst.intent = Some(intent);
                    pending.push((run, i));
                }
            }
        }
        // Instances ended already and asked to restart start now; those still
        // running reply when their pump reports the exit.
        let mut waits = Vec::new();
        for (run, i) in pending {
            let live = self.runs[&run].instances[i].state.is_live();
            if live {
                let (tx, rx) = oneshot::channel();
                self.runs.get_mut(&run).expect("known").instances[i].waiters.push(tx);
                waits.push(rx);
            } else if action == Action::Restart {
                let port = self.runs[&run].instances[i].address.port();
                let result = match self.ports.take_port(self.config.advertise, port) {
                    Ok(socket) => self.start_instances(&run, vec![(i, socket)], None).await,
                    Err(source) => {
                        let instance = &self.runs[&run].instances[i].name;
                        Err(Error::Spawn { what: format!("{run}/{instance} on port {port}"), source })
                    }
                };
                if let Err(err) = result {
                    self.ports.release(port);
                    let _ = reply.send(Err(err));
                    return;
                }
                done.push((run, i));
            }
        }
        let mut infos: Vec<InstanceInfo> = done.iter().map(|(r, i)| self.info(&self.runs[r], *i)).collect();
        if waits.is_empty() {
            let _ = reply.send(Ok(infos));
            return;
        }
        tokio::spawn(async move {
            for rx in waits {
                match rx.await {
                    Ok(Ok(mut more)) => infos.append(&mut more),
                    Ok(Err(err)) => {
                        let _ = reply.send(Err(err));
                        return;
                    }
                    Err(_) => {
                        let _ = reply.send(Err(Error::Stopped));
                        return;
                    }
                }
            }
            let _ = reply.send(Ok(infos));
        });
    }

    /// Sends SIGKILL to the instance after the grace period if the same
    /// process (`start`) is still alive then.
    fn escalate_after_grace(&self, run: String, instance: String, start: u32) {
        let tx = self.tx.clone();
        let grace = self.config.grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Msg::Escalate { run, instance, start }).await;
            }
        });
    }

    fn escalate(&mut self, run: &str, instance: &str, start: u32) {
        let Some(inst) = self.runs.get(run).and_then(|r| r.instances.iter().find(|i| i.name == instance)) else {
            return;
        };
        if inst.starts == start
            && inst.state.is_live()
            && let Some(pid) = inst.pid
        {
            tracing::warn!(run, instance, "did not stop within the grace period: sending SIGKILL");
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    async fn exited(
        &mut self,
        run_name: &str,
        instance: &str,
        start: u32,
        status: std::io::Result<pump::Exit>,
        mut writer: Writer,
    ) {
        let Some(run) = self.runs.get_mut(run_name) else {
            return;
        };
        let Some(i) = run.instances.iter().position(|inst| inst.name == instance) else {
            return;
        };
        let inst = &mut run.instances[i];
        if inst.starts != start {
            return;
        }
        let (code, signal) = match &status {
            Ok(exit) => (exit.code, exit.signal),
            Err(_) => (None, None),
        };
        let intent = inst.intent.take();
        inst.state = match (intent, code) {
            (Some(Intent::Stop), _) => State::Stopped,
            (Some(Intent::Kill), _) => State::Killed,
            (Some(Intent::Restart), _) => State::Stopped,
            (None, Some(0)) => State::Exited,
            (None, _) => State::Failed,
        };
        inst.exit_code = code;
        inst.signal = signal;
        inst.ended_ms = Some(now_ms());
        inst.stdin = None;
        inst.notes = None;
        let how = match (code, signal, &status) {
            (Some(code), _, _) => format!("exited with code {code}"),
            (None, Some(signal), _) => {
                let name = Signal::try_from(signal).map(|s| s.as_str()).unwrap_or("an unknown signal");
                format!("killed by {name}")
            }
            (_, _, Err(err)) => format!("ended, status unknown: {err}"),
            _ => "ended".to_owned(),
        };
        let why = match intent {
            Some(Intent::Stop) => " (stopped)",
            Some(Intent::Kill) => " (killed)",
            Some(Intent::Restart) => " (restarting)",
            None => "",
        };
        // What its cgroup says of the end: the kernel killed it for memory,
        // or it was refused processes past its limit.
        inst.detail = inst.cgroup.take().and_then(|leaf| {
            let outcome = leaf.outcome();
            leaf.remove();
            outcome
        });
        let how = match inst.detail {
            Some(outcome) => format!("{how}: {outcome}"),
            None => how,
        };
        if let Err(err) = writer.note(&format!("{how}{why}")) {
            tracing::error!(run = run_name, instance, %err, "cannot write to the instance log");
        }
        inst.writer = Some(writer);
        // Crash-stop: every end but a requested stop or a process finishing
        // by itself (exit code 0, e.g. a client whose requests are all
        // acked, a chat node told to quit) is a crash, and the run's event
        // log must say so for a checker to know who is correct.
        if intent != Some(Intent::Stop) && inst.state != State::Exited {
            let events = run.dir.join(format!("{instance}.events.jsonl"));
            if let Err(err) = record_crash(&events, run_name, instance, inst.starts, &format!("{how}{why}")) {
                tracing::error!(run = run_name, instance, %err, "cannot record the crash in the events file");
            }
        }
        let port = inst.address.port();
        self.ports.release(port);
        tracing::info!(run = run_name, instance, "{how}{why}");

        // A failure the user did not ask for, under a restart policy with
        // restarts left: start it again after the backoff.
        if let Some(policy) = run.roles[inst.role].restart
            && intent.is_none()
            && inst.state == State::Failed
            && inst.restarts < policy.max
            && self.shutting_down.is_none()
        {
            inst.revive_pending = true;
            let note = format!(
                "restarting in {} ms (automatic restart {} of {})",
                policy.backoff.as_millis(),
                inst.restarts + 1,
                policy.max
            );
            if let Some(writer) = inst.writer.as_mut()
                && let Err(err) = writer.note(&note)
            {
                tracing::error!(run = run_name, instance, %err, "cannot write to the instance log");
            }
            let (tx, run, instance) = (self.tx.clone(), run_name.to_owned(), instance.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(policy.backoff).await;
                if let Some(tx) = tx.upgrade() {
                    let _ = tx.send(Msg::Revive { run, instance, start }).await;
                }
            });
        }
        let mut result = Ok(());
        if intent == Some(Intent::Restart) && self.shutting_down.is_none() {
            result = match self.ports.take_port(self.config.advertise, port) {
                Ok(socket) => self.start_instances(run_name, vec![(i, socket)], None).await,
                Err(source) => Err(Error::Spawn { what: format!("{run_name}/{instance} on port {port}"), source }),
            };
        }
        let run = self.runs.get_mut(run_name).expect("known");
        let inst = &mut run.instances[i];
        if !inst.state.is_live()
            && !inst.revive_pending
            && let Some(writer) = inst.writer.as_mut()
        {
            writer.close();
        }
        let waiters = std::mem::take(&mut inst.waiters);
        let ended = run.ended();
        if ended {
            release_memory();
            run.bytes = Some(history::disk_usage(&run.dir));
        }
        self.save(run_name);
        let info = self.info(&self.runs[run_name], i);
        for waiter in waiters {
            let _ = waiter.send(match &result {
                Ok(()) => Ok(vec![info.clone()]),
                Err(err) => Err(Error::Spawn {
                    what: format!("{run_name}/{instance}"),
                    source: std::io::Error::other(err.to_string()),
                }),
            });
        }
        if ended {
            self.keep_within_retention();
        }
    }

    /// Removes runs: their instances killed (only with `force` while any
    /// is live), their ports freed, their folders deleted. Unknown names
    /// are left out of the answer (another member may keep them).
    fn remove(&mut self, names: &[String], force: bool) -> Result<Vec<String>, Error> {
        for name in names {
            if let Some(run) = self.runs.get(name)
                && !force
                && !run.ended()
            {
                return Err(Error::RunLive(name.clone()));
            }
        }
        let mut removed = Vec::new();
        for name in names {
            if self.runs.contains_key(name) {
                self.remove_run(name, "removed by a user");
                removed.push(name.clone());
            }
        }
        Ok(removed)
    }

    /// Removes the ended runs that ended more than `older_than` ago.
    fn prune(&mut self, older_than: Duration) -> Vec<String> {
        let before = now_ms().saturating_sub(older_than.as_millis() as u64);
        let old: Vec<String> = self
            .runs
            .values()
            .filter(|r| r.ended() && r.ended_ms().is_some_and(|t| t < before))
            .map(|r| r.name.clone())
            .collect();
        for name in &old {
            self.remove_run(name, "pruned by a user");
        }
        old
    }

    /// Removes the oldest ended runs while more are kept than the
    /// retention allows, in number or in bytes.
    fn keep_within_retention(&mut self) {
        let Retention { keep_runs, keep_bytes } = self.config.retention;
        let mut ended: Vec<(u64, String, u64)> = self
            .runs
            .values()
            .filter(|r| r.ended())
            .map(|r| (r.ended_ms().unwrap_or(r.created_ms), r.name.clone(), r.bytes.unwrap_or(0)))
            .collect();
        ended.sort();
        let (mut count, mut bytes) = (ended.len(), ended.iter().map(|(_, _, b)| b).sum::<u64>());
        for (_, name, size) in ended {
            if count <= keep_runs && bytes <= keep_bytes {
                break;
            }
            let why = if count > keep_runs {
                format!("retention: at most {keep_runs} ended runs are kept")
            } else {
                format!("retention: at most {} MiB of ended runs are kept", keep_bytes >> 20)
            };
            self.remove_run(&name, &why);
            count -= 1;
            bytes -= size;
        }
    }

    fn remove_run(&mut self, name: &str, why: &str) {
        let Some(run) = self.runs.remove(name) else { return };
        for inst in &run.instances {
            if let Some(pid) = inst.pid.filter(|_| inst.state.is_live()) {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                self.ports.release(inst.address.port());
            }
        }
        if let Err(err) = std::fs::remove_dir_all(&run.dir) {
            tracing::error!(run = name, %err, "cannot delete the folder of a removed run");
        }
        tracing::info!(run = name, "{why}: run deleted");
    }

    /// Starts a failed instance again once its backoff is over, unless a
    /// user acted on it meanwhile or the manager is shutting down.
    async fn revive(&mut self, run_name: &str, instance: &str, start: u32) {
        let Some(i) = self.runs.get(run_name).and_then(|r| r.instances.iter().position(|x| x.name == instance)) else {
            return;
        };
        let inst = &mut self.runs.get_mut(run_name).expect("known").instances[i];
        if inst.starts != start || !inst.revive_pending {
            return;
        }
        inst.revive_pending = false;
        let port = inst.address.port();
        if self.shutting_down.is_none() {
            inst.restarts += 1;
            let result = match self.ports.take_port(self.config.advertise, port) {
                Ok(socket) => self.start_instances(run_name, vec![(i, socket)], None).await,
                Err(source) => Err(Error::Spawn { what: format!("{run_name}/{instance} on port {port}"), source }),
            };
            let Err(err) = result else { return };
            self.ports.release(port);
            tracing::error!(run = run_name, instance, %err, "automatic restart failed");
        }
        let inst = &mut self.runs.get_mut(run_name).expect("known").instances[i];
        if let Some(writer) = inst.writer.as_mut() {
            let _ = writer.note("not restarted");
            writer.close();
        }
    }

    fn shutdown(&mut self, reply: oneshot::Sender<()>) {
        self.shutting_down = Some(reply);
        let mut stopping = Vec::new();
        for run in self.runs.values_mut() {
            for inst in &mut run.instances {
                if inst.state.is_live() {
                    inst.intent = Some(Intent::Stop);
                    stopping.push((run.name.clone(), inst.name.clone(), inst.starts, inst.pid, inst.state));
                }
            }
        }
        for (run, instance, start, pid, state) in stopping {
            if let Some(pid) = pid {
                let group = Pid::from_raw(pid as i32);
                let _ = killpg(group, Signal::SIGTERM);
                if state == State::Paused {
                    let _ = killpg(group, Signal::SIGCONT);
                }
            }
            self.escalate_after_grace(run, instance, start);
        }
    }
}
