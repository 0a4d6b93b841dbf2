//! `mgr`: the manager daemon. Parses arguments, sets up logging and calls
//! [`mgr_daemon::run`].

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use mgr_daemon::{Config, Listeners, StateDir};

#[derive(Parser)]
#[command(
    name = "mgr",
    version,
    about = "The mgr manager: runs distributed-protocol modules on this machine for mgrctl."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a manager in the foreground until SIGINT or SIGTERM, which stop
    /// every instance it started.
    Start(StartArgs),
}

#[derive(clap::Args)]
struct StartArgs {
    /// This member's name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// Where the manager keeps its id, logs and control socket
    /// [default: $MGR_STATE_DIR, else $XDG_STATE_HOME/mgr, else ~/.local/state/mgr].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// TCP address for peers and remote CLIs (port 0 picks a free port).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:6170")]
    listen: SocketAddr,
    /// The IP instances get as theirs [default: the --listen IP, or 127.0.0.1
    /// when that is unspecified].
    #[arg(long, value_name = "IP")]
    advertise: Option<IpAddr>,
    /// The range instance ports come from.
    #[arg(long, value_name = "LO-HI", default_value = "24000-24999", value_parser = parse_ports)]
    ports: RangeInclusive<u16>,
    /// Do not use mDNS discovery (discovery is not built yet: this is the
    /// only mode today).
    #[arg(long)]
    no_mdns: bool,
    /// A folder of module manifests (*.toml) to offer besides the built-in
    /// modules and STATE_DIR/modules (repeatable; see modules/README.md).
    #[arg(long, value_name = "DIR")]
    modules_dir: Vec<PathBuf>,
    /// Allow `mgrctl exec`, which runs any command as this user.
    #[arg(long)]
    allow_exec: bool,
    /// Seconds between SIGTERM and SIGKILL when stopping an instance.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    grace: f64,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = text.split_once('-').ok_or("expected LO-HI, such as 24000-24999")?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("'{lo}' is not a port"))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("'{hi}' is not a port"))?;
    if lo == 0 || lo > hi {
        return Err(format!("{lo}-{hi} is not a range of ports (1 to 65535, low first)"));
    }
    Ok(lo..=hi)
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(start(cli)));
    // One line, even where RUST_BACKTRACE is set: these are user errors.
    if let Err(err) = result {
        eprintln!("mgr: {err:#}");
        std::process::exit(1);
    }
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    let Command::Start(args) = cli.command;
    init_tracing(args.verbose);
    if !args.grace.is_finite() || args.grace < 0.0 {
        bail!("--grace must be a number of seconds, not {}", args.grace);
    }
    // The TCP port is not authenticated yet (the group key comes with the
    // group): off loopback it would let anyone who reaches it start
    // programs here.
    if !args.listen.ip().is_loopback() {
        if args.allow_exec {
            bail!(
                "--allow-exec with --listen {} would let anyone who reaches that port run any command here; \
                 listen on loopback (127.0.0.1) to use exec",
                args.listen
            );
        }
        tracing::warn!(listen = %args.listen, "the TCP control port is not authenticated: anyone who reaches it can launch modules here");
    }
    let state_dir = args.state_dir.unwrap_or_else(mgr_daemon::state_dir::default_state_dir);
    let state = StateDir::open(&state_dir)?;
    let listeners = Listeners::bind(&state, args.listen).await?;
    let advertise = args.advertise.unwrap_or_else(|| {
        let ip = args.listen.ip();
        if ip.is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { ip }
    });
    let config = Config {
        name: args.name.unwrap_or_else(mgr_daemon::host_name),
        state,
        advertise,
        ports: args.ports,
        allow_exec: args.allow_exec,
        grace: std::time::Duration::from_secs_f64(args.grace),
        modules_bin: mgr_daemon::default_modules_bin(),
        modules_dirs: args.modules_dir,
    };
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    mgr_daemon::run(config, listeners, shutdown).await
}
