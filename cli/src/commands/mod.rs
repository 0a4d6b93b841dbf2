//! One file per verb, each mirroring an RPC of the daemon.

mod attach;
mod check;
mod diagram;
mod events;
mod fault;
mod forget;
mod join;
mod launch;
mod logs;
mod members;
mod modules;
mod prune;
mod ps;
mod rm;
mod send;
mod signal;
mod trace;
mod up;

use clap::Subcommand;
use tonic::Status;

use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch N instances of a module and stream their output.
    Launch(launch::LaunchArgs),
    /// Launch N instances of any command, with the same addresses and
    /// streaming (the daemon must run with --allow-exec).
    Exec(launch::ExecArgs),
    /// List runs and their instances.
    Ps(ps::PsArgs),
    /// Print the numbered output of a run (RUN) or an instance (RUN/p1).
    Logs(logs::LogsArgs),
    /// Write a line to the stdin of an instance (RUN/p1) or of every instance (RUN).
    Send(send::SendArgs),
    /// Type into one instance and watch its output, as in its own terminal.
    Attach(attach::AttachArgs),
    /// Stop a run or an instance: SIGTERM, then SIGKILL after the grace period.
    Stop(signal::SignalArgs),
    /// Kill a run or an instance at once (SIGKILL): a crash.
    Kill(signal::SignalArgs),
    /// Pause a run or an instance (SIGSTOP).
    Pause(signal::SignalArgs),
    /// Resume a paused run or instance (SIGCONT).
    Resume(signal::SignalArgs),
    /// Restart a run or an instance with the same name and address.
    Restart(signal::SignalArgs),
    /// Change the network faults of a live run: loss, duplication, delay, partition.
    Fault(fault::FaultArgs),
    /// List the modules that can be launched, or describe one.
    Modules(modules::ModulesArgs),
    /// List the members of the group: id, name, address, state, instances, last seen.
    Members(members::MembersArgs),
    /// The structured events of a run's instances (their MGR_EVENTS files and
    /// crash records), merged from every member that hosts some.
    Events(events::EventsArgs),
    /// Check a run against the book's properties of its module: holds,
    /// violated (with a counterexample) or undecided, one line each.
    Check(check::CheckArgs),
    /// Write a run's events as a trace file: a ShiViz log (--format shiviz,
    /// the default) or JSON lines merged by Lamport clock (--format json).
    Trace(trace::TraceArgs),
    /// Draw a run's space-time diagram: one line per process, an arrow per
    /// message, marks for losses, duplicates, crashes, suspicions and
    /// deliveries; SVG, or a self-contained HTML page with -o FILE.html.
    Diagram(diagram::DiagramArgs),
    /// Run a scenario file: its roles as one run, its timeline of inputs and
    /// faults, its end condition, then its checks and a summary (see
    /// examples/).
    Up(up::UpArgs),
    /// Stop a run started by `up` (or any run): every instance, gracefully.
    Down(up::DownArgs),
    /// Merge this manager's group with the manager at IP:PORT (where mDNS
    /// does not reach; as `mgr start --join`).
    Join(join::JoinArgs),
    /// Remove a dead member from this manager's list of members (a member
    /// dead for an hour is forgotten by itself).
    Forget(forget::ForgetArgs),
    /// Delete runs (logs, events, records) on every member; a run that
    /// still runs only with --force.
    Rm(rm::RmArgs),
    /// Delete the runs that ended more than an age ago, on every member.
    Prune(prune::PruneArgs),
}

pub async fn run(command: Command, client: Client, local: bool) -> anyhow::Result<u8> {
    use mgr_proto::SignalKind;
    match command {
        Command::Launch(args) => launch::launch(client, args, local).await,
        Command::Exec(args) => launch::exec(client, args, local).await,
        Command::Ps(args) => ps::ps(client, args).await,
        Command::Logs(args) => logs::logs(client, args).await,
        Command::Send(args) => send::send(client, args).await,
        Command::Attach(args) => attach::attach(client, args).await,
        Command::Stop(args) => signal::signal(client, args, SignalKind::Stop).await,
        Command::Kill(args) => signal::signal(client, args, SignalKind::Kill).await,
        Command::Pause(args) => signal::signal(client, args, SignalKind::Pause).await,
        Command::Resume(args) => signal::signal(client, args, SignalKind::Resume).await,
        Command::Restart(args) => signal::signal(client, args, SignalKind::Restart).await,
        Command::Fault(args) => fault::fault(client, args).await,
        Command::Modules(args) => modules::modules(client, args).await,
        Command::Members(args) => members::members(client, args).await,
        Command::Join(args) => join::join(client, args).await,
        Command::Forget(args) => forget::forget(client, args).await,
        Command::Rm(args) => rm::rm(client, args).await,
        Command::Prune(args) => prune::prune(client, args).await,
        Command::Events(args) => events::events(client, args).await,
        Command::Check(args) => check::check(client, args).await,
        Command::Trace(args) => trace::trace(client, args).await,
        Command::Diagram(args) => diagram::diagram(client, args).await,
        Command::Up(args) => up::up(client, args).await,
        Command::Down(args) => up::down(client, args).await,
    }
}

/// A gRPC error as the one-line message a user reads.
pub fn status(err: Status) -> anyhow::Error {
    match err.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown if err.message().is_empty() => {
            anyhow::anyhow!("the mgr daemon went away ({})", err.code())
        }
        _ => anyhow::anyhow!("{}", err.message()),
    }
}
