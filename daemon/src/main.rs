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

// Parsed once at start: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a manager in the foreground until SIGINT or SIGTERM, which stop
    /// every instance it started.
    Start(StartArgs),
    /// Write a new random group key (32 bytes, mode 0600) to FILE. Give the
    /// same file to every manager of the group (`mgr start --key-file`) and
    /// to remote users (`mgrctl --key-file`).
    Keygen(KeygenArgs),
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Where to write the key.
    #[arg(value_name = "FILE")]
    path: PathBuf,
    /// Replace an existing key file (managers using the old key can no
    /// longer reach those using the new one).
    #[arg(long)]
    force: bool,
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
    /// TCP address for peers and remote CLIs (port 0 picks a free port)
    /// [default with --key-file: 127.0.0.1:6170]. Needs --key-file: every
    /// TCP connection is mutual TLS with the group key.
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<SocketAddr>,
    /// The group key file (see `mgr keygen`): every connection to the TCP
    /// port, from peers and from remote mgrctl, must prove it holds the same
    /// key, over TLS. Without it the manager has no TCP port and no group:
    /// only its own user reaches it, through the Unix socket.
    #[arg(long, env = "MGR_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The group to be part of: managers of other groups never merge.
    #[arg(long, value_name = "NAME", default_value = mgr_daemon::DEFAULT_GROUP)]
    group: String,
    /// A manager (IP:PORT) to merge with at start, for networks where
    /// multicast does not reach (repeatable; retried until it answers).
    #[arg(long, value_name = "IP:PORT")]
    join: Vec<String>,
    /// An interface for mDNS discovery (repeatable) [default: every
    /// non-loopback IPv4 interface with an address].
    #[arg(long, value_name = "NAME")]
    iface: Vec<String>,
    /// The IP instances get as theirs, and peers reach this manager at
    /// [default: the --listen IP; for 0.0.0.0, this machine's first
    /// non-loopback IPv4 address].
    #[arg(long, value_name = "IP")]
    advertise: Option<IpAddr>,
    /// The range instance ports come from.
    #[arg(long, value_name = "LO-HI", default_value = "24000-24999", value_parser = parse_ports)]
    ports: RangeInclusive<u16>,
    /// Do not announce or look for managers over mDNS (use --join).
    #[arg(long)]
    no_mdns: bool,
    /// A folder of module manifests (*.toml) to offer besides the built-in
    /// modules and STATE_DIR/modules (repeatable; see modules/README.md).
    #[arg(long, value_name = "DIR")]
    modules_dir: Vec<PathBuf>,
    /// Allow `mgrctl exec`, which runs any command as this user.
    #[arg(long)]
    allow_exec: bool,
    /// Seconds between SIGTERM and SIGKILL when stopping an instance
    /// (0 to 3600).
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    grace: f64,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The first non-loopback IPv4 address of this machine (by interface
/// name), for a manager listening on every address: peers and instances of
/// other machines must be given an address they can reach.
fn first_lan_ip() -> Option<IpAddr> {
    let mut found: Vec<(String, IpAddr)> = if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .filter(|i| !i.is_loopback() && i.ip().is_ipv4())
        .map(|i| (i.name.clone(), i.ip()))
        .collect();
    found.sort();
    let ip = found.first().map(|(_, ip)| *ip)?;
    tracing::info!(%ip, "advertising the first address of this machine (give --advertise IP to choose)");
    Some(ip)
}

fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    if args.path.exists() && !args.force {
        bail!("{} exists already: pass --force to replace it", args.path.display());
    }
    let key = mgr_daemon::auth::GroupKey::generate();
    if args.force {
        key.replace(&args.path)?
    } else {
        key.write_new(&args.path)?
    }
    println!("wrote a new group key to {}", args.path.display());
    Ok(())
}

/// The longest grace period: a stop that waits an hour is a kill.
const MAX_GRACE_SECS: f64 = 3600.0;

/// This member's name: the one given (which must follow the grammar of
/// names), or the host name, cut at its first dot and cleaned so that it
/// does.
fn member_name(given: Option<String>) -> anyhow::Result<String> {
    use mgr_daemon::names::{Kind, check};
    if let Some(name) = given {
        check(Kind::Member, &name)?;
        return Ok(name);
    }
    let host = mgr_daemon::host_name();
    let short = host.split('.').next().unwrap_or_default();
    let cleaned: String = short
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(mgr_daemon::names::MAX_LEN)
        .collect();
    let cleaned = cleaned.trim_start_matches('-').to_owned();
    Ok(if check(Kind::Member, &cleaned).is_ok() { cleaned } else { "mgr".to_owned() })
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
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
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
    let args = match cli.command {
        Command::Start(args) => args,
        Command::Keygen(args) => return keygen(args),
    };
    init_tracing(args.verbose);
    if !args.grace.is_finite() || !(0.0..=MAX_GRACE_SECS).contains(&args.grace) {
        bail!("--grace must be a number of seconds from 0 to {MAX_GRACE_SECS}, not {}", args.grace);
    }
    mgr_daemon::names::check(mgr_daemon::names::Kind::Group, &args.group)?;
    let name = member_name(args.name)?;
    // There is no unauthenticated TCP: without a key a manager serves its
    // own user on the Unix socket only, and has no group.
    let (tls, listen) = match &args.key_file {
        Some(path) => {
            let tls = mgr_daemon::auth::Tls::new(&mgr_daemon::auth::GroupKey::load(path)?)?;
            (Some(tls), Some(args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6170)))))
        }
        None => {
            let needs_key = [
                (args.listen.is_some(), "--listen"),
                (!args.join.is_empty(), "--join"),
                (!args.iface.is_empty(), "--iface"),
            ];
            if let Some((_, option)) = needs_key.iter().find(|(given, _)| *given) {
                bail!(
                    "{option} needs the group key: a manager without one has no TCP port and no group \
                     (make a key with `mgr keygen FILE` and pass --key-file FILE)"
                );
            }
            (None, None)
        }
    };
    let state_dir = args.state_dir.unwrap_or_else(mgr_daemon::state_dir::default_state_dir);
    let state = StateDir::open(&state_dir)?;
    let listeners = Listeners::bind(&state, listen).await?;
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let advertise = match (args.advertise, listen) {
        (Some(ip), _) => ip,
        (None, Some(listen)) if listen.ip().is_unspecified() => first_lan_ip().unwrap_or_else(|| {
            tracing::warn!("no non-loopback IPv4 address here: instances get 127.0.0.1 (give --advertise IP)");
            loopback
        }),
        (None, Some(listen)) => listen.ip(),
        (None, None) => loopback,
    };
    let config = Config {
        name,
        state,
        advertise,
        ports: args.ports,
        allow_exec: args.allow_exec,
        grace: std::time::Duration::from_secs_f64(args.grace),
        modules_bin: mgr_daemon::default_modules_bin(),
        modules_dirs: args.modules_dir,
        group: args.group,
        tls,
        join: args.join,
        mdns: (!args.no_mdns).then_some(args.iface),
        retention: Default::default(),
        max_log_bytes: mgr_daemon::output::DEFAULT_CAP,
        default_pids: mgr_daemon::DEFAULT_PIDS,
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
