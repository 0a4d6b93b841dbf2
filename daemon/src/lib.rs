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
pub mod control;
pub mod discovery;
pub mod events;
pub mod membership;
pub mod output;
pub mod registry;
pub mod state_dir;
pub mod supervisor;

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
    /// TLS from the group key; `None` only on loopback.
    pub tls: Option<auth::Tls>,
    /// Managers (ip:port) to join at start.
    pub join: Vec<String>,
    /// mDNS discovery on these interfaces (empty: every non-loopback IPv4
    /// interface); `None` turns discovery off.
    pub mdns: Option<Vec<String>>,
}

/// The protocol version peers must share to merge.
/// 2: runs of several roles (`PrepareRequest.roles`).
pub const PROTOCOL_VERSION: u32 = 2;

/// The group joined when none is named.
pub const DEFAULT_GROUP: &str = "default";

/// The sockets a manager serves: the local Unix socket, and TCP for peers
/// and remote CLIs.
#[derive(Debug)]
pub struct Listeners {
    pub unix: UnixListener,
    pub tcp: TcpListener,
}

impl Listeners {
    /// Binds the control socket in the state dir (mode 0600; a stale socket
    /// left by a killed manager is replaced, which is safe because the state
    /// dir lock is held) and the TCP listener.
    pub async fn bind(state: &StateDir, listen: SocketAddr) -> anyhow::Result<Listeners> {
        let path = state.socket_path();
        let _ = std::fs::remove_file(&path);
        let unix = UnixListener::bind(&path).with_context(|| format!("cannot listen on {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let tcp = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        Ok(Listeners { unix, tcp })
    }
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

/// Runs a manager until `shutdown` completes, then stops every instance
/// (SIGTERM, SIGKILL after the grace period) and returns.
pub async fn run(config: Config, listeners: Listeners, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let tcp_addr = listeners.tcp.local_addr()?;
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
        grace: config.grace,
    })?;
    // Peers reach this manager where it listens; a wildcard listen is
    // reached at the advertised IP.
    let reachable_ip = if tcp_addr.ip().is_unspecified() { config.advertise } else { tcp_addr.ip() };
    let me = membership::PeerInfo {
        id: config.state.member_id().to_owned(),
        name: config.name.clone(),
        address: SocketAddr::new(reachable_ip, tcp_addr.port()).to_string(),
        group: config.group.clone(),
        version: PROTOCOL_VERSION,
        allow_exec: config.allow_exec,
        advertise: config.advertise.to_string(),
        instances: 0,
        incarnation: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    let (discovery, found) = match &config.mdns {
        Some(ifaces) => {
            let discovery_config = discovery::DiscoveryConfig {
                member_id: me.id.clone(),
                name: me.name.clone(),
                group: me.group.clone(),
                port: tcp_addr.port(),
                advertise: reachable_ip,
                ifaces: ifaces.clone(),
            };
            let (discovery, found) = discovery::Discovery::start(discovery_config)?;
            (Some(discovery), Some(found))
        }
        None => (None, None),
    };
    let group = control::group::Group::start(me, config.tls.clone(), config.join.clone(), found);
    let control = control::Control::new(supervisor.clone(), group, registry);
    tracing::info!(
        name = %config.name,
        id = config.state.member_id(),
        socket = %config.state.socket_path().display(),
        listen = %tcp_addr,
        advertise = %config.advertise,
        group = %config.group,
        authenticated = config.tls.is_some(),
        "manager started"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let unix_server = tonic::transport::Server::builder()
        .add_service(control.clone().service())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listeners.unix), stopped(stop_rx.clone()));
    let tcp_server = tonic::transport::Server::builder()
        .add_service(control.clone().peer_service())
        .add_service(control.service())
        .serve_with_incoming_shutdown(auth::incoming(listeners.tcp, config.tls.clone()), stopped(stop_rx));
    let unix_task = tokio::spawn(unix_server);
    let tcp_task = tokio::spawn(tcp_server);

    shutdown.await;
    tracing::info!("shutting down: stopping every instance");
    if let Some(discovery) = discovery {
        discovery.shutdown().await;
    }
    supervisor.shutdown().await;
    let _ = stop_tx.send(true);
    // Open streams (followers) end with their instances; do not wait forever
    // for a client that does not hang up.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = unix_task.await;
        let _ = tcp_task.await;
    })
    .await;
    let _ = std::fs::remove_file(config.state.socket_path());
    tracing::info!("stopped");
    Ok(())
}
