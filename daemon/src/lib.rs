//! The mgr daemon: a manager that starts module instances on this machine
//! with assigned addresses, supervises them, keeps every line they print,
//! and serves the control API to `mgrctl`.
//!
//! One owner per concern, each behind a handle: [`supervisor`] (processes,
//! knows nothing of gRPC), [`output`] (per-instance logs and their
//! subscribers), [`membership`] (the group view, no I/O) and [`control`]
//! (the only place that speaks protobuf). [`run`] wires them together; the
//! `mgr` binary and the embedded manager of `mgrctl --local` both call it.

pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod discovery;
pub mod env;
pub mod events;
pub mod logging;
pub mod membership;
pub mod names;
pub mod output;
pub mod registry;
pub mod service;
pub mod state_dir;
pub mod supervisor;
pub mod swim_wire;
pub mod units;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::UnixListenerStream;

pub use state_dir::StateDir;
use supervisor::{Supervisor, SupervisorConfig};

/// Default range instance ports come from.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 24000..=24999;

/// Default time between SIGTERM and SIGKILL when stopping an instance.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// Everything a manager needs to run.
#[derive(Debug)]
pub struct Config {
    /// The member's human name (defaults to the host name).
    pub name: String,
    /// The locked state directory.
    pub state: StateDir,
    /// The IP given to instances as theirs.
    pub advertise: IpAddr,
    pub ports: RangeInclusive<u16>,
    pub allow_exec: bool,
    pub grace: Duration,
    /// The binary that runs built-in modules.
    pub modules_bin: PathBuf,
    /// Folders of module manifests (`*.toml`), besides `STATE/modules`.
    pub modules_dirs: Vec<PathBuf>,
    /// Only managers of the same group merge.
    pub group: String,
    /// TLS from the group key; `None` for a manager without a key, which
    /// has no TCP listener and no group.
    pub tls: Option<auth::Tls>,
    /// Managers (ip:port) to join at start.
    pub join: Vec<String>,
    /// mDNS discovery on these interfaces (empty: every non-loopback IPv4
    /// interface); `None` turns discovery off.
    pub mdns: Option<Vec<String>>,
    /// How many ended runs, and bytes of them, this member keeps.
    pub retention: supervisor::Retention,
    /// Most bytes an instance's log keeps unless its launch says.
    pub max_log_bytes: u64,
    /// Processes and threads an instance may have unless its launch says.
    pub default_pids: u32,
    /// Where modules keep data across runs (`MGR_DATA`); `None`:
    /// `STATE/data`. The embedded manager of `mgrctl --local`, whose state
    /// dir is temporary, points it at the user's default state dir.
    pub data_dir: Option<PathBuf>,
}

/// The default limit of processes (and threads) of one instance: far more
/// than a protocol module needs, few enough to stop a fork bomb.
pub const DEFAULT_PIDS: u32 = 512;

/// The protocol version peers must share to merge.
/// 2: runs of several roles (`PrepareRequest.roles`).
/// 3: launch ids and `Reserve` (a launch acts only on what it made).
/// 4: membership by SWIM over UDP (`Watch` is gone).
pub const PROTOCOL_VERSION: u32 = 4;

/// The group joined when none is named.
pub const DEFAULT_GROUP: &str = "default";

/// The sockets a manager serves: the local Unix socket (its owner's), and,
/// for a manager with the group key only, TCP for peers and remote CLIs
/// (always mutual TLS: there is no unauthenticated TCP).
#[derive(Debug)]
pub struct Listeners {
    pub unix: UnixListener,
    pub tcp: Option<TcpListener>,
}

impl Listeners {
    /// Binds the control socket in the state dir (mode 0600 in the 0700
    /// state dir; a stale socket left by a killed manager is replaced,
    /// which is safe because the state dir lock is held) and, with `listen`,
    /// the TCP listener.
    pub async fn bind(state: &StateDir, listen: Option<SocketAddr>) -> anyhow::Result<Listeners> {
        let path = state.socket_path();
        let _ = std::fs::remove_file(&path);
        let unix = UnixListener::bind(&path).with_context(|| format!("cannot listen on {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let tcp = match listen {
            Some(listen) => {
                Some(TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?)
            }
            None => None,
        };
        Ok(Listeners { unix, tcp })
    }
}

/// A gRPC server with the connection bounds of a long-lived service: a
/// client that vanished (a cut cable, a suspended laptop) is found by
/// HTTP/2 and TCP keepalives and its connection closed, and one connection
/// cannot open streams without bound.
fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(256))
}

/// Where the `mgr-modules` binary is: beside the running executable (as
/// `cargo build` and `cargo install` put it), else on the PATH.
pub fn default_modules_bin() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("mgr-modules")))
        .filter(|path| path.exists());
    beside.unwrap_or_else(|| PathBuf::from("mgr-modules"))
}

/// The host name, for the default member name.
pub fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".to_owned())
}

/// The folder for `MGR_DATA`, made (this user's only) if missing. A
/// failure is logged, not fatal: modules that use it say so themselves.
fn data_dir(config: &Config) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = config.data_dir.clone().unwrap_or_else(|| config.state.root().join("data"));
    if let Err(err) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
        tracing::warn!(dir = %dir.display(), %err, "cannot make the modules' data folder (MGR_DATA)");
    }
    dir
}

/// Runs a manager until `shutdown` completes, then stops every instance
/// (SIGTERM, SIGKILL after the grace period) and returns.
pub async fn run(config: Config, listeners: Listeners, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let tcp = match (listeners.tcp, &config.tls) {
        (Some(tcp), Some(tls)) => Some((tcp.local_addr()?, tcp, tls.clone())),
        (None, _) => None,
        (Some(_), None) => anyhow::bail!("a TCP listener needs the group key: every TCP connection is mutual TLS"),
    };
    let tcp_addr = tcp.as_ref().map(|(addr, _, _)| *addr);
    let mut dirs = vec![config.state.root().join("modules")];
    dirs.extend(config.modules_dirs.iter().cloned());
    let registry = registry::Registry::new(config.modules_bin.clone(), dirs);
    let supervisor = Supervisor::start(SupervisorConfig {
        member_name: config.name.clone(),
        member_id: config.state.member_id().to_owned(),
        advertise: config.advertise,
        ports: config.ports.clone(),
        allow_exec: config.allow_exec,
        registry: registry.clone(),
        runs_dir: config.state.root().join("runs"),
        data_dir: data_dir(&config),
        grace: config.grace,
        max_log_bytes: config.max_log_bytes,
        default_pids: config.default_pids,
        retention: config.retention,
    })?;
    // Peers reach this manager where it listens; a wildcard listen is
    // reached at the advertised IP. A manager without TCP has no address.
    let reachable = tcp_addr.map(|addr| {
        let ip = if addr.ip().is_unspecified() { config.advertise } else { addr.ip() };
        SocketAddr::new(ip, addr.port())
    });
    let me = membership::PeerInfo {
        id: config.state.member_id().to_owned(),
        name: config.name.clone(),
        address: reachable.map(|a| a.to_string()).unwrap_or_default(),
        group: config.group.clone(),
        version: PROTOCOL_VERSION,
        allow_exec: config.allow_exec,
        limits: supervisor.limits_off().is_none(),
        advertise: config.advertise.to_string(),
        instances: 0,
        incarnation: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    // Announcing an address nobody else can reach (loopback), or having
    // none, would only invite the LAN to knock in vain.
    let announced = reachable.filter(|addr| !addr.ip().is_loopback());
    if config.mdns.is_some() && announced.is_none() {
        tracing::info!("mDNS discovery is off: this manager listens on no address other machines can reach");
    }
    let (discovery, found) = match (&config.mdns, announced) {
        (Some(ifaces), Some(addr)) => {
            let discovery_config = discovery::DiscoveryConfig {
                member_id: me.id.clone(),
                name: me.name.clone(),
                group: me.group.clone(),
                port: addr.port(),
                advertise: addr.ip(),
                ifaces: ifaces.clone(),
            };
            let (discovery, found) = discovery::Discovery::start(discovery_config)?;
            (Some(discovery), Some(found))
        }
        _ => (None, None),
    };
    // The membership protocol speaks UDP on the port of the gRPC services
    // (peers know one address per member); without a key there is no group.
    let udp = match tcp_addr {
        Some(addr) => Some(
            tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("cannot bind UDP {addr} for the membership protocol (is the port taken?)"))?,
        ),
        None => None,
    };
    let browsing = discovery.as_ref().map(|d| d.browsing());
    let group = control::group::Group::start(me, config.tls.clone(), udp, config.join.clone(), found, browsing);
    let control = control::Control::new(supervisor.clone(), group.clone(), registry);
    tracing::info!(
        name = %config.name,
        id = config.state.member_id(),
        socket = %config.state.socket_path().display(),
        listen = %tcp_addr.map_or("none (no group key)".to_owned(), |a| a.to_string()),
        advertise = %config.advertise,
        group = %config.group,
        authenticated = config.tls.is_some(),
        "manager started"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let unix_server = server()
        .add_service(control.clone().service())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listeners.unix), stopped(stop_rx.clone()));
    let unix_task = tokio::spawn(unix_server);
    let tcp_task = tcp.map(|(_, listener, tls)| {
        let tcp_server = server()
            .add_service(control.clone().peer_service())
            .add_service(control.service())
            .serve_with_incoming_shutdown(auth::incoming(listener, tls), stopped(stop_rx));
        tokio::spawn(tcp_server)
    });

    shutdown.await;
    tracing::info!("shutting down: stopping every instance");
    group.leave().await;
    if let Some(discovery) = discovery {
        discovery.shutdown().await;
    }
    supervisor.shutdown().await;
    let _ = stop_tx.send(true);
    // Open streams (followers) end with their instances; do not wait forever
    // for a client that does not hang up.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = unix_task.await;
        if let Some(tcp_task) = tcp_task {
            let _ = tcp_task.await;
        }
    })
    .await;
    let _ = std::fs::remove_file(config.state.socket_path());
    tracing::info!("stopped");
    Ok(())
}
