//! One file per verb, each mirroring an RPC of the daemon (but
//! `completions`, which asks no manager).

mod attach;
pub(crate) mod check;
pub mod completions;
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
mod scale;
mod send;
mod signal;
mod test;
mod trace;
mod up;
pub mod web;

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
    /// List runs and their instances: member, address, pid, state, uptime, restarts, exit.
    Ps(ps::PsArgs),
    /// Print the numbered output of a run (RUN) or an instance (RUN/p1).
    Logs(logs::LogsArgs),
    /// Write a line to the stdin of an instance (RUN/p1) or of every instance (RUN).
    #[command(after_help = "Examples:
  mgrctl send r1/p1 send p2 hello    to p1's stdin: `send p2 hello`
  mgrctl send r1 broadcast hi        to every instance of r1")]
    Send(send::SendArgs),
    /// Type into one instance and watch its output, as in its own terminal.
    Attach(attach::AttachArgs),
    /// Stop runs or instances: SIGTERM, then SIGKILL after the grace period.
    #[command(after_help = signal::examples("stop"))]
    Stop(signal::SignalArgs),
    /// Kill runs or instances at once (SIGKILL): a crash.
    #[command(after_help = signal::examples("kill"))]
    Kill(signal::SignalArgs),
    /// Pause runs or instances (SIGSTOP).
    #[command(after_help = signal::examples("pause"))]
    Pause(signal::SignalArgs),
    /// Resume paused runs or instances (SIGCONT).
    #[command(after_help = signal::examples("resume"))]
    Resume(signal::SignalArgs),
    /// Restart runs or instances with the same names and addresses.
    #[command(after_help = signal::examples("restart"))]
    Restart(signal::SignalArgs),
    /// Change the network faults of a live run: loss, duplication, delay, partition.
    Fault(fault::FaultArgs),
    /// Grow or shrink a role of a live run: new instances start with the
    /// next names, removed ones stop, every instance learns the new table.
    Scale(scale::ScaleArgs),
    /// List the modules that can be launched, or describe one.
    #[command(after_help = "Examples:
  mgrctl modules
  mgrctl modules reliablebroadcast     its interface, properties and algorithms (names ignore case)
  mgrctl --local modules               the built-ins, without a daemon")]
    Modules(modules::ModulesArgs),
    /// List the members of the group: id, name, address, state, instances, last seen.
    #[command(after_help = "Examples:
  mgrctl members
  mgrctl members --json | jq -r 'select(.state == \"dead\") | .name'")]
    Members(members::MembersArgs),
    /// The structured events of a run's instances (their MGR_EVENTS files and
    /// crash records), merged from every member that hosts some.
    #[command(after_help = "Examples:
  mgrctl events r1                   one line per event: p1@member L12 send → p2 #3 …
  mgrctl events r1 -f --json | jq .  the raw events, then new ones as they come")]
    Events(events::EventsArgs),
    /// Check a run against the book's properties of its module: holds,
    /// violated (with a counterexample) or undecided, one line each.
    Check(check::CheckArgs),
    /// Test a module before handing it in: launch N instances, drive them
    /// with its abstraction's workload under faults, crashes and a partition
    /// drawn from a seed, then check the book's properties and summarise.
    Test(test::TestArgs),
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
    #[command(after_help = "Example:\n  mgrctl down lab")]
    Down(up::DownArgs),
    /// Merge this manager's group with the manager at IP:PORT (where mDNS
    /// does not reach; as `mgr start --join`).
    #[command(after_help = "Example:\n  mgrctl join 10.0.0.12:6170")]
    Join(join::JoinArgs),
    /// Remove a dead member from this manager's list of members (a member
    /// dead for an hour is forgotten by itself).
    #[command(after_help = "Example:\n  mgrctl forget lab-03")]
    Forget(forget::ForgetArgs),
    /// Delete runs (logs, events, records) on every member; a run that
    /// still runs only with --force.
    Rm(rm::RmArgs),
    /// Delete the runs that ended more than an age ago, on every member.
    Prune(prune::PruneArgs),
    /// Serve the live view in a browser (on loopback, with a token): the
    /// group's members and runs, a run's space-time diagram as it grows,
    /// its output, verdicts and controls.
    Web(web::WebArgs),
    /// Print a shell's completion script for mgrctl (bash, zsh, fish,
    /// elvish or powershell).
    Completions(completions::CompletionsArgs),
}

impl Command {
    /// Whether `--local` (an embedded manager for this command only) means
    /// something here: commands that start a run and watch it end, and
    /// `modules`, which then lists the built-ins. Every other command would
    /// ask a manager that has no runs and no group.
    pub fn takes_local(&self) -> bool {
        matches!(self, Command::Launch(_) | Command::Exec(_) | Command::Up(_) | Command::Test(_) | Command::Modules(_))
    }

    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Launch(_) => "launch",
            Command::Exec(_) => "exec",
            Command::Ps(_) => "ps",
            Command::Logs(_) => "logs",
            Command::Send(_) => "send",
            Command::Attach(_) => "attach",
            Command::Stop(_) => "stop",
            Command::Kill(_) => "kill",
            Command::Pause(_) => "pause",
            Command::Resume(_) => "resume",
            Command::Restart(_) => "restart",
            Command::Fault(_) => "fault",
            Command::Scale(_) => "scale",
            Command::Modules(_) => "modules",
            Command::Members(_) => "members",
            Command::Events(_) => "events",
            Command::Check(_) => "check",
            Command::Test(_) => "test",
            Command::Trace(_) => "trace",
            Command::Diagram(_) => "diagram",
            Command::Up(_) => "up",
            Command::Down(_) => "down",
            Command::Join(_) => "join",
            Command::Forget(_) => "forget",
            Command::Rm(_) => "rm",
            Command::Prune(_) => "prune",
            Command::Web(_) => "web",
            Command::Completions(_) => "completions",
        }
    }
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
        Command::Scale(args) => scale::scale(client, args).await,
        Command::Modules(args) => modules::modules(client, args).await,
        Command::Members(args) => members::members(client, args).await,
        Command::Join(args) => join::join(client, args).await,
        Command::Forget(args) => forget::forget(client, args).await,
        Command::Rm(args) => rm::rm(client, args).await,
        Command::Prune(args) => prune::prune(client, args).await,
        Command::Events(args) => events::events(client, args).await,
        Command::Check(args) => check::check(client, args).await,
        Command::Test(args) => test::test(client, args, local).await,
        Command::Trace(args) => trace::trace(client, args).await,
        Command::Diagram(args) => diagram::diagram(client, args).await,
        Command::Up(args) => up::up(client, args).await,
        Command::Down(args) => up::down(client, args).await,
        Command::Web(args) => web::web(client, args).await,
        // Answered before connecting (see `crate::run`).
        Command::Completions(args) => completions::completions(&args),
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_shows_an_example_and_its_own_options_before_the_global_ones() {
        let mut cli = crate::Cli::command();
        cli.build();
        for command in cli.get_subcommands().filter(|c| c.get_name() != "help") {
            let name = command.get_name();
            let after = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(after.contains("Example"), "`{name} --help` has no example");
            let global: Vec<bool> = command
                .get_arguments()
                .filter(|a| !a.is_positional() && a.get_id() != "help")
                .map(|a| a.get_help_heading() == Some("Global options"))
                .collect();
            assert!(global.windows(2).all(|w| w[0] <= w[1]), "`{name}`: a global option before its own");
            assert!(global.iter().filter(|g| **g).count() == 5, "`{name}` lacks global options");
        }
    }
}
