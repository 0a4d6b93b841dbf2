//! Connecting to a manager: the local daemon's Unix socket; a manager's TCP
//! port (`--host`, mutual TLS with the group key by `mgr_daemon::auth`);
//! or, with `--local` and no daemon running, a manager embedded in this
//! process for the lifetime of the command, served on a Unix socket in a
//! private temporary folder (no TCP: nobody else can reach it).

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hyper_util::rt::TokioIo;
use mgr_daemon::{Config, Listeners, StateDir};
use mgr_proto::manager_client::ManagerClient;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};

pub type Client = ManagerClient<Channel>;

/// A manager running inside mgrctl (`--local`). Stopped by [`Embedded::stop`].
#[derive(Debug)]
pub struct Embedded {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Embedded {
    /// Stops every instance of the embedded manager and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the embedded manager panicked")?
    }
}

/// The socket used when neither --socket nor MGR_SOCKET is given.
pub fn default_socket() -> PathBuf {
    mgr_daemon::state_dir::socket_path(&mgr_daemon::state_dir::default_state_dir())
}

/// Connects to the manager at `socket`; if none answers there and `local`
/// is set, starts an embedded one.
pub async fn connect(socket: &Path, local: bool) -> anyhow::Result<(Client, Option<Embedded>)> {
    match UnixStream::connect(socket).await {
        Ok(_) => Ok((connect_unix(socket).await?, None)),
        Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            if !local {
                bail!(
                    "no mgr daemon at {}: start one with `mgr start`, or add --local to run an embedded manager for this command",
                    socket.display()
                );
            }
            let embedded = start_embedded().await?;
            let client = connect_unix(&embedded._dir.path().join("mgr.sock")).await?;
            Ok((client, Some(embedded)))
        }
        Err(err) => Err(err).with_context(|| format!("cannot reach the mgr daemon at {}", socket.display())),
    }
}

/// Connects to the manager at `host` (IP:PORT) over TCP, with TLS and the
/// group key in `key_file` (a manager's TCP port takes nothing else). Every
/// failure is one clear line from `auth`.
pub async fn connect_tcp(host: &str, key_file: Option<&Path>) -> anyhow::Result<Client> {
    let Some(path) = key_file else {
        bail!(
            "--host needs the group key: pass --key-file FILE (or set MGR_KEY_FILE); a manager's TCP port takes nothing else"
        );
    };
    let tls = mgr_daemon::auth::Tls::new(&mgr_daemon::auth::GroupKey::load(path)?)?;
    let channel = mgr_daemon::auth::connect(host, &tls).await?;
    Ok(ManagerClient::new(channel).max_decoding_message_size(16 << 20))
}

async fn connect_unix(path: &Path) -> anyhow::Result<Client> {
    let path = path.to_owned();
    let shown = path.display().to_string();
    // The URI is required by the API but unused: the connector below decides
    // where the connection goes.
    let channel = windows(Endpoint::from_static("http://mgr.local"))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| format!("cannot connect to the mgr daemon at {shown}"))?;
    Ok(ManagerClient::new(channel).max_decoding_message_size(16 << 20))
}

/// HTTP/2 flow-control windows for a connection that carries many streams
/// read at different paces: `logs RUN` reads one stream per instance and
/// takes the next line from whichever holds the oldest, leaving the others
/// unread meanwhile. Each stream may hold up to its own window, and the
/// connection's window is large enough never to be the limit: were it
/// smaller than the streams' windows together, the unread streams could
/// fill it and stall the one stream the merge waits for. What a stream
/// holds is bounded by its window, so memory stays bounded by the number of
/// instances, whatever the size of their logs.
pub fn windows(endpoint: Endpoint) -> Endpoint {
    endpoint.initial_stream_window_size(STREAM_WINDOW).initial_connection_window_size(CONNECTION_WINDOW)
}

/// Bytes one stream may hold unread (four chunks of records).
const STREAM_WINDOW: u32 = 1 << 20;

/// The largest window HTTP/2 allows (2^31 - 1).
const CONNECTION_WINDOW: u32 = (1 << 31) - 1;

async fn start_embedded() -> anyhow::Result<Embedded> {
    // tempfile makes the folder 0700: the socket inside is this user's.
    let dir = tempfile::Builder::new().prefix("mgr-local-").tempdir().context("cannot make a state dir")?;
    let state = StateDir::open(dir.path())?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listeners = Listeners::bind(&state, None).await?;
    let config = Config {
        name: mgr_daemon::host_name(),
        state,
        advertise: loopback,
        ports: mgr_daemon::DEFAULT_PORTS,
        // The embedded manager runs as the user, inside the user's own
        // command: exec gives them nothing they do not have.
        allow_exec: true,
        grace: mgr_daemon::DEFAULT_GRACE,
        modules_bin: mgr_daemon::default_modules_bin(),
        // The modules the user registered in their own state dir (read
        // only): a student's manifest works with --local as with a daemon.
        modules_dirs: vec![mgr_daemon::state_dir::default_state_dir().join("modules")],
        group: mgr_daemon::DEFAULT_GROUP.to_owned(),
        tls: None,
        join: Vec::new(),
        mdns: None,
        retention: Default::default(),
        max_log_bytes: mgr_daemon::output::DEFAULT_CAP,
        default_pids: mgr_daemon::DEFAULT_PIDS,
        // What modules keep across runs (a chat user's checkpoint) must
        // outlive this command's temporary state dir.
        data_dir: Some(mgr_daemon::state_dir::default_state_dir().join("data")),
    };
    tracing::info!(state = %dir.path().display(), "no daemon running: using an embedded manager");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(mgr_daemon::run(config, listeners, async move {
        let _ = stopped.await;
    }));
    Ok(Embedded { stop, task, _dir: dir })
}
