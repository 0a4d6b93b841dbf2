//! mgrctl: the command-line client of mgr. Each verb is a file in
//! [`commands`] that mirrors one RPC of the daemon's control API
//! (`daemon/src/control/<rpc>.rs`). The crate owns argument parsing,
//! connecting (or embedding a manager with `--local`) and rendering; it
//! must not reach into a daemon's state other than through gRPC.

pub mod client;
pub mod commands;
pub mod diagram;
pub mod events;
pub mod merge;
pub mod render;
pub mod scenario;
pub mod stdout;
pub mod suggest;
pub mod table;
pub mod trace;
pub mod web;

use std::path::PathBuf;

use clap::Parser;

/// The heading of the options every command takes: a command's help lists
/// its own options first, then these.
const GLOBAL: &str = "Global options";

/// The arguments of mgrctl.
#[derive(Debug, Parser)]
#[command(
    name = "mgrctl",
    version,
    about = "Control mgr: launch protocol modules on the group, watch and steer their instances.",
    after_help = "Without a daemon, add --local to run an embedded manager for one command:\n  mgrctl --local launch FairLossPointToPointLink 2\nOn another machine of the group, name a manager and the group key:\n  mgrctl --host 10.1.0.5:6170 --key-file group.key ps\nEach command's options and examples: mgrctl COMMAND --help.\nA closed output (`| head`) is no error: mgrctl stops printing, says nothing and exits 0\n(what then becomes of a run is in launch --help and up --help)."
)]
pub struct Cli {
    /// The local daemon's control socket [default: mgr.sock in the default state dir].
    #[arg(long, global = true, help_heading = GLOBAL, env = "MGR_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// When no daemon is running, run an embedded manager inside mgrctl for
    /// this command's lifetime (its instances end with the command): for
    /// launch, exec, up, test and modules.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub local: bool,
    /// Talk to the manager at IP:PORT over TCP (its --listen address)
    /// instead of the local daemon's socket; needs --key-file: the
    /// connection is mutual TLS with the group key.
    #[arg(long, global = true, help_heading = GLOBAL, env = "MGR_HOST", value_name = "IP:PORT", conflicts_with = "local")]
    pub host: Option<String>,
    /// The group key file (see `mgr keygen`) for --host: the manager must
    /// hold the same key, and this proves we do, without sending it.
    #[arg(long, global = true, help_heading = GLOBAL, env = "MGR_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, help_heading = GLOBAL, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: commands::Command,
}

/// Runs one mgrctl command; returns the process's exit code (0 success,
/// 1 failure, 130 interrupted).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    if cli.local && !cli.command.takes_local() {
        anyhow::bail!(
            "--local means nothing for `{}`: an embedded manager lives for one command and has no runs nor group; it serves launch, exec, up, test and modules",
            cli.command.name()
        );
    }
    if let commands::Command::Completions(args) = &cli.command {
        return commands::completions::completions(args);
    }
    let (client, embedded) = match &cli.host {
        Some(host) => (client::connect_tcp(host, cli.key_file.as_deref()).await?, None),
        None => {
            let socket = cli.socket.clone().unwrap_or_else(client::default_socket);
            client::connect(&socket, cli.local).await?
        }
    };
    let result = commands::run(cli.command, client, embedded.is_some()).await;
    if let Some(embedded) = embedded {
        embedded.stop().await?;
    }
    result
}
