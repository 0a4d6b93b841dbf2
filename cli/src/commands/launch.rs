//! `mgrctl launch MODULE N` and `mgrctl exec N -- CMD`: mirror the `Launch`
//! RPC, then stream the run's output (the `Logs` RPC), route `@pN text`
//! lines typed on stdin to instances (the `Send` RPC) and turn Ctrl-C into
//! a stop of the run (the `Signal` RPC), as `docker compose up` does.
//!
//! A closed output (`launch … | head -1`) ends the viewing, not the run:
//! the reader took what it wanted, which is no request to stop anything.
//! mgrctl then exits 0 at once and the run goes on as if detached, unless
//! the run's end is mgrctl's to make: with `--timeout` it stays, printing
//! nothing, until the run ends or the timeout stops it; with `--local` the
//! run ends with mgrctl's embedded manager, as always.

use std::io::Write;
use std::time::Duration;

use mgr_proto::{LaunchRequest, Role, SignalKind};
use tokio::io::AsyncBufReadExt;

use super::logs::{OnClose, Streamed, layout_for, stream};
use crate::client::Client;
use crate::render::Style;

/// Options shared by `launch` and `exec`.
#[derive(Debug, clap::Args)]
pub struct RunOptions {
    /// Name of the run [default: r1, r2, …].
    #[arg(long)]
    pub name: Option<String>,
    /// Print the run name and return; the run goes on.
    #[arg(long, short)]
    pub detach: bool,
    /// One JSON object per output line: run, instance, member, stream, seq, time, text.
    #[arg(long)]
    pub json: bool,
    /// Stop the run after this long, e.g. 10s or 2m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// How instances are spread over the group's live members: spread
    /// (round-robin), each (N on every member) or pack (this member first).
    #[arg(long, value_enum, default_value = "spread")]
    pub placement: Placement,
    /// Only on these members (names or ids, comma-separated).
    #[arg(long, value_name = "NAME,NAME", value_delimiter = ',')]
    pub on: Vec<String>,
    /// Start an instance that fails by itself (exits non-zero or dies of a
    /// signal nobody sent) again: on-failure, or no.
    #[arg(long, value_enum, default_value = "no")]
    pub restart: Restart,
    /// With --restart on-failure: at most this many restarts per instance.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_restarts: u32,
    /// With --restart on-failure: the pause before each restart, e.g. 500ms or 2s.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub restart_backoff: Duration,
    /// Most bytes each instance's log keeps, e.g. 16M; the oldest output
    /// goes first, with a note [default: the manager's, 64M].
    #[arg(long, value_name = "SIZE", value_parser = mgr_daemon::units::parse_size)]
    pub max_log_bytes: Option<u64>,
    /// Memory of each instance (its cgroup's limit), e.g. 256M.
    #[arg(long, value_name = "SIZE", value_parser = mgr_daemon::units::parse_size)]
    pub memory: Option<u64>,
    /// CPUs each instance may use, e.g. 0.5 (half of one).
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Processes and threads each instance may have, e.g. 64 [default: the
    /// manager's].
    #[arg(long, value_name = "N")]
    pub pids: Option<u32>,
}

/// When instances are started again by the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Restart {
    No,
    OnFailure,
}

impl RunOptions {
    /// The one role of a plain launch: `count` instances, placed and
    /// restarted as these options say.
    fn role(&self, count: u32) -> Role {
        let restart = match self.restart {
            Restart::No => "no",
            Restart::OnFailure => "on-failure",
        };
        Role {
            count,
            placement: self.placement.as_str().to_owned(),
            on: self.on.clone(),
            restart: restart.to_owned(),
            max_restarts: self.max_restarts,
            restart_backoff_ms: self.restart_backoff.as_millis().min(u32::MAX as u128) as u32,
            max_log_bytes: self.max_log_bytes.unwrap_or(0),
            memory_bytes: self.memory.unwrap_or(0),
            cpus: self.cpus.unwrap_or(0.0),
            pids: self.pids.unwrap_or(0),
            ..Role::default()
        }
    }
}

/// Where a launch puts its instances.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Placement {
    Spread,
    Each,
    Pack,
}

impl Placement {
    fn as_str(self) -> &'static str {
        match self {
            Placement::Spread => "spread",
            Placement::Each => "each",
            Placement::Pack => "pack",
        }
    }
}

/// What `launch` and `exec` say about streaming, after their examples.
const STREAMING: &str =
    "While it streams, type `@p2 text` to write `text` to p2's stdin, `@all text` for every instance.
Ctrl-C stops the run; a second Ctrl-C kills it.
A closed output (`| head -1`) ends mgrctl with status 0 and leaves the run running, as --detach
would (stop it with `mgrctl stop RUN`); with --timeout, mgrctl stays, printing nothing, until
the run ends or the timeout stops it; with --local the run ends with mgrctl.";

#[derive(Debug, clap::Args)]
#[command(after_help = format!("Examples:
  mgrctl launch FairLossPointToPointLink 2                     two instances; Ctrl-C stops them
  mgrctl launch PerfectPointToPointLink 3 --name demo --detach
  mgrctl launch BestEffortBroadcast 4 --loss 0.2 --timeout 10s --json > out.jsonl
  mgrctl launch Consensus 3 -- --algorithm hierarchical

{STREAMING}"))]
pub struct LaunchArgs {
    /// A module name (see: mgrctl modules; the case does not matter).
    pub module: String,
    /// How many instances.
    pub count: u32,
    #[command(flatten)]
    pub options: RunOptions,
    #[command(flatten)]
    pub faults: super::fault::LinkFaults,
    /// Arguments given to every instance, after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = format!("Examples:
  mgrctl exec 3 -- python3 node.py              three instances, each with its address and the others'
  mgrctl exec 2 --restart on-failure -- ./server

Every instance gets MGR_SELF, MGR_ADDR, MGR_PEERS… (see modules/README.md).
{STREAMING}"))]
pub struct ExecArgs {
    /// How many instances.
    pub count: u32,
    #[command(flatten)]
    pub options: RunOptions,
    /// How the command gets its UDP socket on MGR_ADDR: `bind` (it binds
    /// MGR_ADDR itself; the manager holds the port until just before it
    /// starts) or `inherit` (the manager's socket, already bound, as the
    /// descriptor MGR_UDP_FD: datagrams sent before it is up wait for it).
    // Not `--socket`, the manifests' key: that is the global option that
    // names the manager's Unix socket.
    #[arg(long, value_enum, default_value_t = SocketMode::Bind, value_name = "MODE")]
    pub udp: SocketMode,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// How an exec'd command gets its socket (`--socket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SocketMode {
    Bind,
    Inherit,
}

pub async fn launch(client: Client, args: LaunchArgs, local: bool) -> anyhow::Result<u8> {
    let role = Role { module: args.module.clone(), args: args.args, ..args.options.role(args.count) };
    let request = LaunchRequest {
        name: args.options.name.clone().unwrap_or_default(),
        faults: args.faults.spec(),
        roles: vec![role],
    };
    start(client, request, args.options, local, Some(&args.module)).await
}

pub async fn exec(client: Client, args: ExecArgs, local: bool) -> anyhow::Result<u8> {
    let socket = match args.udp {
        SocketMode::Bind => "bind",
        SocketMode::Inherit => "inherit",
    };
    let role = Role { command: args.command, socket: socket.to_owned(), ..args.options.role(args.count) };
    let request =
        LaunchRequest { name: args.options.name.clone().unwrap_or_default(), faults: String::new(), roles: vec![role] };
    start(client, request, args.options, local, None).await
}

/// Launches and streams; `module` is the module asked for, if any, for a
/// did-you-mean when the manager does not know it.
async fn start(
    mut client: Client,
    request: LaunchRequest,
    options: RunOptions,
    local: bool,
    module: Option<&str>,
) -> anyhow::Result<u8> {
    if options.detach && local {
        anyhow::bail!("--detach cannot be used with --local: the embedded manager ends with this command");
    }
    let reply = match (client.launch(request).await, module) {
        (Ok(reply), _) => reply.into_inner(),
        (Err(status), Some(module)) => return Err(crate::suggest::module(&mut client, module, status).await),
        (Err(status), None) => return Err(super::status(status)),
    };
    let (run, group) = (reply.run.unwrap_or_default(), reply.members);
    if options.detach {
        let mut out = crate::stdout::lock();
        writeln!(out, "{}", run.name)?;
        out.flush()?;
        return Ok(0);
    }
    // Stdout carries only instance output, so it can go to a file as is.
    crate::note!("run {}: {} × {}", run.name, run.instances.len(), run.module);

    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stdin_task = tokio::spawn(route_stdin(client.clone(), run.name.clone()));
    let signal_task = tokio::spawn(stop_on_ctrl_c(client.clone(), run.name.clone(), interrupted.clone()));
    let timeout_task = options.timeout.map(|after| {
        let (mut client, run) = (client.clone(), run.name.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = client
                .signal(mgr_proto::SignalRequest { target: run, kind: SignalKind::Stop.into(), local: false })
                .await;
        })
    });

    // The reply names the group's members: one call fewer before the
    // output starts.
    let (width, members) = layout_for(group.iter().map(String::as_str), run.instances.iter().map(|i| i.name.as_str()));
    let request = mgr_proto::LogsRequest { target: run.name.clone(), since: 1, follow: true, tail: 0, local: false };
    // The run's end is mgrctl's to make only with --timeout: then a closed
    // output does not end mgrctl before the run (see the module's docs).
    let on_close = if options.timeout.is_some() { OnClose::Drain } else { OnClose::Stop };
    let streamed =
        stream(&mut client, request, Style::detect(options.json, members), width, on_close, Some(&run.name)).await;
    stdin_task.abort();
    signal_task.abort();
    if let Some(task) = timeout_task {
        task.abort();
    }
    if streamed? == Streamed::Closed {
        let interrupted = interrupted.load(std::sync::atomic::Ordering::SeqCst);
        return Ok(if interrupted { 130 } else { 0 });
    }

    let ended = client
        .ps(mgr_proto::PsRequest { run: run.name.clone(), local: false })
        .await
        .map_err(super::status)?
        .into_inner();
    let failed: Vec<String> = ended
        .runs
        .iter()
        .flat_map(|r| &r.instances)
        .filter_map(|i| {
            if matches!(i.state.as_str(), "failed" | "killed" | "lost") {
                Some(format!("{} {} ({})", i.name, i.state, super::ps::exit_text(i)))
            } else if i.unwritten > 0 {
                // Output a user never sees is a failure of the run's record.
                Some(format!("{} lost {} lines of output (its log could not be written)", i.name, i.unwritten))
            } else {
                None
            }
        })
        .collect();
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(130);
    }
    if !failed.is_empty() {
        crate::note!("run {}: {}", run.name, failed.join(", "));
        return Ok(1);
    }
    Ok(0)
}

/// Where a typed line goes: `@p2 text` to p2, `@all text` to every instance.
fn route(line: &str) -> Result<(Option<&str>, &str), String> {
    let Some(rest) = line.strip_prefix('@') else {
        return Err("start the line with @p1 (one instance) or @all (every instance), e.g. `@p1 send p2 hello`".into());
    };
    let (who, text) = rest.split_once(' ').unwrap_or((rest, ""));
    if who.is_empty() {
        return Err("missing an instance name after @".into());
    }
    Ok(((who != "all").then_some(who), text))
}

pub(super) async fn route_stdin(mut client: Client, run: String) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let (who, text) = match route(&line) {
            Ok(routed) => routed,
            Err(err) => {
                crate::note!("mgrctl: {err}");
                continue;
            }
        };
        let target = match who {
            Some(instance) => format!("{run}/{instance}"),
            None => run.clone(),
        };
        let request = mgr_proto::SendRequest { target, line: text.as_bytes().to_vec().into(), local: false };
        if let Err(err) = client.send(request).await {
            crate::note!("mgrctl: {}", super::status(err));
        }
    }
}

pub(super) async fn stop_on_ctrl_c(
    client: Client,
    run: String,
    interrupted: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut presses = 0;
    while tokio::signal::ctrl_c().await.is_ok() {
        presses += 1;
        interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
        let kind = if presses == 1 {
            crate::note!("mgrctl: stopping run {run} (Ctrl-C again to kill it)");
            SignalKind::Stop
        } else {
            crate::note!("mgrctl: killing run {run}");
            SignalKind::Kill
        };
        let mut client = client.clone();
        let target = run.clone();
        tokio::spawn(async move {
            let _ = client.signal(mgr_proto::SignalRequest { target, kind: kind.into(), local: false }).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn typed_lines_are_routed_by_their_prefix() {
        assert_eq!(route("@p2 send p1 hi").unwrap(), (Some("p2"), "send p1 hi"));
        assert_eq!(route("@all hello there").unwrap(), (None, "hello there"));
        assert_eq!(route("@p1").unwrap(), (Some("p1"), ""));
        assert!(route("p1 hello").is_err());
        assert!(route("@ hello").is_err());
    }
}
