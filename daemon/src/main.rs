//! `mgr`: the manager daemon. Parses arguments (with the configuration
//! file, [`mgr_daemon::config`]), sets up logging and calls
//! [`mgr_daemon::run`]; `status` and `stop` are [`mgr_daemon::service`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use mgr_daemon::cli::{Command, KeygenArgs, StartArgs, Target};
use mgr_daemon::config::ConfigError;
use mgr_daemon::logging::{self, Destination, Stderr};
use mgr_daemon::{Config, Listeners, StateDir, service};

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

/// This member's name: the one given (checked by its parser), or the host
/// name, cut at its first dot and cleaned so that it follows the grammar of
/// names.
fn member_name(given: Option<String>) -> String {
    use mgr_daemon::names::{Kind, check};
    if let Some(name) = given {
        return name;
    }
    let host = mgr_daemon::host_name();
    let short = host.split('.').next().unwrap_or_default();
    let cleaned: String = short
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(mgr_daemon::names::MAX_LEN)
        .collect();
    let cleaned = cleaned.trim_start_matches('-').to_owned();
    if check(Kind::Member, &cleaned).is_ok() { cleaned } else { "mgr".to_owned() }
}

fn main() {
    let cli = match mgr_daemon::config::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        // Usage errors, --help and --version, as clap prints them.
        Err(ConfigError::Args(err)) => err.exit(),
        Err(err) => fail(err.into()),
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(command(cli.command)));
    match result {
        Ok(code) => std::process::exit(code.into()),
        Err(err) => fail(err),
    }
}

/// One line, even where RUST_BACKTRACE is set: these are user errors.
fn fail(err: anyhow::Error) -> ! {
    eprintln!("mgr: {err:#}");
    std::process::exit(1);
}

/// Runs one command; returns the exit code.
async fn command(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Start(args) => start(args).await.map(|()| 0),
        Command::Keygen(args) => keygen(args).map(|()| 0),
        Command::Status(args) => {
            let status = service::status(&state_dir(&args.target)?).await?;
            print!("{status}");
            Ok(status.exit_code())
        }
        Command::Stop(args) => {
            let dir = state_dir(&args.target)?;
            let stopped = service::stop(&dir, Duration::from_secs_f64(args.timeout)).await?;
            println!("stopped mgr (pid {}) on {} in {:.1} s", stopped.pid, dir.display(), stopped.took.as_secs_f64());
            Ok(0)
        }
    }
}

fn state_dir(target: &Target) -> Result<std::path::PathBuf, ConfigError> {
    mgr_daemon::config::state_dir(target.state_dir.as_deref(), target.config.as_deref())
}

async fn start(mut args: StartArgs) -> anyhow::Result<()> {
    // There is no unauthenticated TCP: without a key a manager serves its
    // own user on the Unix socket only, and has no group.
    if args.key_file.is_none() {
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
    }
    let name = member_name(args.name.take());
    let state_dir = args.state_dir.take().unwrap_or_else(mgr_daemon::state_dir::default_state_dir);
    if args.check {
        logging::init(&Destination::Stderr, args.verbose)?;
        if let Some(path) = &args.key_file {
            mgr_daemon::auth::Tls::new(&mgr_daemon::auth::GroupKey::load(path)?)?;
        }
        args.name = Some(name);
        args.state_dir = Some(state_dir);
        if let Some(config) = &args.config {
            println!("# the settings of {} and the command line", config.display());
        }
        print!("{}", toml::to_string(&args).context("cannot print the settings")?);
        return Ok(());
    }

    let state = StateDir::open(&state_dir)?;
    service::write_pid_file(state.root())
        .with_context(|| format!("cannot write the pid file in {}", state.root().display()))?;
    let destination = logging::destination(args.log_file.as_deref(), state.root(), Stderr::current());
    logging::init(&destination, args.verbose)?;
    let background = matches!(destination, Destination::File { background: true, .. });
    let result = serve(args, name, state, background).await;
    // The terminal gets the error too (main prints it), but a log file
    // must say why the manager stopped.
    if let (Err(err), Destination::File { .. }) = (&result, &destination) {
        tracing::error!("{err:#}");
    }
    result
}

/// Runs the manager on its locked state dir, with logging set up.
async fn serve(args: StartArgs, name: String, state: StateDir, background: bool) -> anyhow::Result<()> {
    if let Some(config) = &args.config {
        tracing::info!(config = %config.display(), "configuration file read");
    }
    let (tls, listen) = match &args.key_file {
        Some(path) => {
            let tls = mgr_daemon::auth::Tls::new(&mgr_daemon::auth::GroupKey::load(path)?)?;
            (Some(tls), Some(args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6170)))))
        }
        None => (None, None),
    };
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
        grace: Duration::from_secs_f64(args.grace),
        modules_bin: mgr_daemon::default_modules_bin(),
        modules_dirs: args.modules_dir,
        group: args.group,
        tls,
        join: args.join,
        mdns: (!args.no_mdns).then_some(args.iface),
        retention: mgr_daemon::supervisor::Retention { keep_runs: args.keep_runs, keep_bytes: args.keep_bytes },
        max_log_bytes: args.max_log_bytes.max(mgr_daemon::output::MIN_CAP),
        default_pids: args.pids,
        data_dir: None,
    };
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                // The terminal went away. A manager started in its
                // background (`mgr start &`) was meant to stay up, as with
                // nohup; one in its foreground stops as for SIGTERM,
                // stopping its instances, rather than die of the signal.
                _ = hangup.recv() => {
                    if background {
                        tracing::info!("the terminal hung up: staying up (started in its background)");
                        continue;
                    }
                    tracing::info!("the terminal hung up: stopping");
                    return;
                }
            }
        }
    };
    mgr_daemon::run(config, listeners, shutdown).await
}
