//! Authentication: the group key, the TLS it gives every TCP connection, and
//! the TCP edge of the manager (accepting and dialing).
//!
//! Every holder of the 32-byte group key derives the same certificate
//! authority from it (HKDF-SHA256 → Ed25519 seed → a self-signed CA
//! certificate with fixed serial, validity and name), and each process signs
//! a fresh leaf certificate of its own with that CA. Both ends of a TCP
//! connection then run TLS 1.3 with mutual certificates: the server accepts
//! only clients whose certificate chains to the group's CA, the client
//! trusts only that CA. The key itself never crosses the wire, and TLS 1.3's
//! fresh randoms and key shares make a replayed handshake useless.
//!
//! This module owns the key file, the TLS configurations, the accepting of
//! TCP connections (with the refusal log) and the dialing of managers
//! (with the errors users see). It must not know about RPCs or membership:
//! callers get authenticated byte streams and tonic channels, nothing more.

use std::error::Error as StdError;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Channel, Endpoint, Uri};

/// Length of a group key in bytes.
pub const KEY_LEN: usize = 32;

/// The DNS name in every leaf certificate, and the name a client asks for.
/// Managers are found by address, so one fixed name serves the whole group:
/// what is checked is that the certificate chains to the group's CA.
pub const SERVER_NAME: &str = "mgr.group";

/// How long a client may take to finish its TLS handshake with a manager
/// before the connection is dropped: a silent client must not hold a slot.
/// A real one needs milliseconds.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long dialing a manager (TCP and TLS) may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once on the TCP port, in all and from one
/// source address; beyond either, the oldest is dropped (see
/// [`Handshakes`]).
const MAX_HANDSHAKES: usize = 256;
const MAX_HANDSHAKES_PER_SOURCE: usize = 64;

/// Authenticated connections open at once on the TCP port (a group of a
/// hundred members holds two per member; remote users a few each).
const MAX_CONNECTIONS: usize = 1024;

/// The HKDF "info" that turns the group key into the CA's Ed25519 seed. A
/// new version of the scheme gets a new label, and so a new CA.
const CA_LABEL: &[u8] = b"mgr group ca v1";
/// HKDF info of the membership protocol's key (see [`Tls::membership_key`]).
const MEMBERSHIP_LABEL: &[u8] = b"mgr membership v1";

/// PKCS#8 v1 DER of an Ed25519 private key is this fixed prefix followed by
/// the 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// A TLS 1.3 fatal alert "certificate_required" (116): what the server
/// answers to a client that does not speak TLS, so that a keyless mgrctl can
/// tell the user the manager wants the key rather than "connection reset".
const ALERT_CERTIFICATE_REQUIRED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 116];

/// Why a key could not be made or used, or a connection was refused.
///
/// The connection variants carry the address of the manager and are the
/// messages users see; callers can branch on them (for example to stop
/// retrying a peer that holds another key).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the key file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the key file {path}: {reason}")]
    Write { path: String, reason: String },
    /// The key file exists but does not hold a key.
    #[error("key file {path} holds {len} bytes; a group key is 32 bytes (make one with `mgr keygen FILE`)")]
    BadKeyFile { path: String, len: usize },
    /// Building the certificates or the TLS configuration failed (a bug or
    /// a broken crypto library, never the user's input).
    #[error("cannot set up TLS from the group key: {0}")]
    Setup(String),
    /// `addr` is not an address a channel can be made to.
    #[error("'{addr}' is not a manager address (expected IP:PORT): {reason}")]
    BadAddress { addr: String, reason: String },
    /// No TCP connection could be made.
    #[error("cannot reach the manager at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The manager's certificate does not chain to our group's CA.
    #[error("the manager at {addr} does not hold this group's key")]
    NotInGroup { addr: String },
    /// The manager rejected our certificate: it holds another key.
    #[error("the manager at {addr} refused us: it holds another group key")]
    WrongKey { addr: String },
    /// What answers at the address does not speak TLS.
    #[error("what answers at {addr} is not an mgr manager (it does not speak TLS)")]
    NotAManager { addr: String },
    /// Any other failure of the TLS handshake.
    #[error("the TLS handshake with the manager at {addr} failed: {reason}")]
    Handshake { addr: String, reason: String },
}

impl AuthError {
    /// The first `AuthError` in the source chain of `err` (a tonic transport
    /// error or `Status` of a channel made here carries one when the
    /// connection failed for a reason of this module).
    pub fn find_in(err: &(dyn StdError + 'static)) -> Option<AuthError> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(auth) = err.downcast_ref::<AuthError>() {
                return Some(auth.clone());
            }
            if let Some(auth) = err.downcast_ref::<io::Error>().and_then(|e| e.get_ref()?.downcast_ref::<AuthError>()) {
                return Some(auth.clone());
            }
            next = err.source();
        }
        None
    }

    /// True when the failure is about the key (the other side holds
    /// another one, or one of the two has none): retrying will not help.
    pub fn is_key_mismatch(&self) -> bool {
        matches!(self, AuthError::NotInGroup { .. } | AuthError::WrongKey { .. } | AuthError::NotAManager { .. })
    }

    /// Whether trying again later can help: the manager was not reachable
    /// or the handshake broke, rather than a refusal or bad input.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Unreachable { .. } | AuthError::Handshake { .. })
    }
}

/// The group key: 32 random bytes shared by the group's managers and users.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey([u8; KEY_LEN]);

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

impl GroupKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> GroupKey {
        GroupKey(rand::random())
    }

    /// Writes the key (32 raw bytes) to a new file of mode 0600; an existing
    /// file is an error, so a key is never replaced by accident.
    pub fn write_new(&self, path: &Path) -> Result<(), AuthError> {
        let write_err =
            |err: io::Error| AuthError::Write { path: path.display().to_string(), reason: describe_io(&err) };
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(write_err)?;
        file.write_all(&self.0).and_then(|()| file.sync_all()).map_err(write_err)
    }

    /// Replaces the key file at `path` (or makes it) atomically: the new key
    /// goes to a new 0600 file beside it, renamed over the old one, so no
    /// reader ever sees half a key.
    pub fn replace(&self, path: &Path) -> Result<(), AuthError> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".new-{}", std::process::id()));
        let tmp = path.with_file_name(name);
        let _ = std::fs::remove_file(&tmp);
        self.write_new(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            AuthError::Write { path: path.display().to_string(), reason: describe_io(&err) }
        })
    }

    /// Reads a key file: 32 raw bytes, or 64 hex digits and an optional
    /// newline (for keys pasted into a file by hand). A file that others
    /// can read still works, with a warning.
    pub fn load(path: &Path) -> Result<GroupKey, AuthError> {
        let shown = || path.display().to_string();
        let bytes = std::fs::read(path).map_err(|err| AuthError::Read { path: shown(), reason: describe_io(&err) })?;
        let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let key = match <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
            Ok(key) => key,
            Err(_) if text.len() == 2 * KEY_LEN => {
                decode_hex(text).ok_or_else(|| AuthError::BadKeyFile { path: shown(), len: bytes.len() })?
            }
            Err(_) => return Err(AuthError::BadKeyFile { path: shown(), len: bytes.len() }),
        };
        // Only a real key is worth the warning: a wrong file is an error.
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "key file {} is open to other users (mode {mode:04o}): anyone who reads it can join the group; \
                     chmod 600 it",
                    shown()
                );
            }
        }
        Ok(GroupKey(key))
    }

    /// The Ed25519 seed of the group's CA: HKDF-SHA256 of the key, so every
    /// holder of the key gets the same CA and nobody can go back to the key.
    fn ca_seed(&self) -> Result<[u8; 32], AuthError> {
        derive(&self.0, &[CA_LABEL])
    }
}

/// HKDF-SHA256 of `secret` with `info`: 32 bytes from which nobody can go
/// back to the secret.
fn derive(secret: &[u8], info: &[&[u8]]) -> Result<[u8; 32], AuthError> {
    use ring::hkdf;
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret);
    let mut out = [0u8; 32];
    prk.expand(info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| AuthError::Setup("HKDF failed".into()))?;
    Ok(out)
}

fn decode_hex(text: &[u8]) -> Option<[u8; KEY_LEN]> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut key = [0u8; KEY_LEN];
    for (byte, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(key)
}

/// Client and server TLS configurations derived from a group key: the
/// group's CA as the only trust anchor, and this process's own leaf.
#[derive(Clone)]
pub struct Tls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    ca: CertificateDer<'static>,
    /// HKDF of the group key for the membership protocol; the group name
    /// is mixed in by [`Tls::membership_key`].
    membership: [u8; 32],
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl Tls {
    /// Derives the group's CA from `key` and signs a fresh leaf for this
    /// process with it.
    pub fn new(key: &GroupKey) -> Result<Tls, AuthError> {
        let setup = |what: &str| {
            let what = what.to_owned();
            move |err: &dyn std::fmt::Display| AuthError::Setup(format!("{what}: {err}"))
        };
        let seed = key.ca_seed()?;
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let ca_key = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)
            .map_err(|e| setup("the CA key")(&e))?;
        // Everything in the CA certificate is fixed (and Ed25519 signatures
        // are deterministic), so every holder of the key builds the same
        // bytes: one trust anchor for the group.
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::OrganizationName, "mgr");
        ca_params.distinguished_name.push(DnType::CommonName, "mgr group CA");
        ca_params.serial_number = Some(SerialNumber::from_slice(&[1]));
        ca_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        ca_params.not_after = rcgen::date_time_ymd(4000, 1, 1);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| setup("the CA certificate")(&e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        // The leaf is new in every process: its private key never leaves
        // memory, and nothing about it needs to be the same across members.
        let leaf_key = KeyPair::generate_for(&PKCS_ED25519).map_err(|e| setup("the leaf key")(&e))?;
        let mut leaf_params =
            CertificateParams::new(vec![SERVER_NAME.to_owned()]).map_err(|e| setup("the leaf certificate")(&e))?;
        leaf_params.distinguished_name = DistinguishedName::new();
        leaf_params.distinguished_name.push(DnType::OrganizationName, "mgr");
        leaf_params.distinguished_name.push(DnType::CommonName, "mgr member");
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(|e| setup("the leaf certificate")(&e))?;

        let ca = ca_cert.der().clone();
        let chain = vec![leaf.der().clone()];
        let leaf_der = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).map_err(|e| setup("the trust anchor")(&e))?;
        let roots = Arc::new(roots);
        // The provider is passed to every builder rather than installed
        // process-wide, so another crate's provider can never make rustls
        // panic over which one to use.
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| setup("the client verifier")(&e))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| setup("the server configuration")(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), leaf_der())
            .map_err(|e| setup("the server configuration")(&e))?;
        // No session tickets: every connection proves the key with a full
        // handshake, and there is no ticket to steal or replay.
        server.send_tls13_tickets = 0;
        server.alpn_protocols = vec![b"h2".to_vec()];

        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| setup("the client configuration")(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, leaf_der())
            .map_err(|e| setup("the client configuration")(&e))?;
        client.resumption = rustls::client::Resumption::disabled();
        client.alpn_protocols = vec![b"h2".to_vec()];

        let membership = derive(&key.0, &[MEMBERSHIP_LABEL])?;
        Ok(Tls { server: Arc::new(server), client: Arc::new(client), ca, membership })
    }

    /// The key that seals the membership protocol's datagrams (see
    /// `swim_wire`): HKDF of the group key with the group's name, so
    /// groups that share a key file still cannot read, count or forge
    /// each other's members.
    pub fn membership_key(&self, group: &str) -> [u8; 32] {
        derive(&self.membership, &[MEMBERSHIP_LABEL, b"\0", group.as_bytes()]).expect("HKDF of 32 bytes")
    }

    /// The group's CA certificate (DER): the same for every holder of the key.
    pub fn ca_certificate(&self) -> &[u8] {
        self.ca.as_ref()
    }
}

/// One accepted connection of the TCP port: TLS whose client proved it
/// holds the group key. Handlers see the peer's address through tonic's
/// `TcpConnectInfo` (`Request::remote_addr`). It holds a slot of the port's
/// connection limit until it closes.
pub struct Conn {
    tls: Box<tokio_rustls::server::TlsStream<TcpStream>>,
    info: TcpConnectInfo,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tls.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().tls.as_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().tls.as_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tls.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tls.as_mut()).poll_shutdown(cx)
    }
}

/// The byte stream of an outgoing connection: TLS with the group key.
pub type ClientConn = tokio_rustls::client::TlsStream<TcpStream>;

/// Log lines about refused connections, at most [`REFUSALS_LOGGED`] a
/// minute: a flood of bad connections must not become a flood of log. What
/// is not logged is counted, and the count is logged when the next minute
/// begins.
#[derive(Debug)]
struct RefusalLog {
    window: tokio::time::Instant,
    logged: u32,
    unlogged: u64,
}

/// Refusals logged one by one per minute; the rest are counted.
const REFUSALS_LOGGED: u32 = 20;

impl RefusalLog {
    fn new() -> Self {
        RefusalLog { window: tokio::time::Instant::now(), logged: 0, unlogged: 0 }
    }

    fn refused(&mut self, peer: SocketAddr, reason: &str) {
        let now = tokio::time::Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(60) {
            if self.unlogged > 0 {
                tracing::warn!("refused {} more connections in the last minute (not logged one by one)", self.unlogged);
            }
            *self = RefusalLog { window: now, logged: 0, unlogged: 0 };
        }
        if self.logged < REFUSALS_LOGGED {
            self.logged += 1;
            tracing::warn!("refused a connection from {peer}: {reason}");
        } else {
            self.unlogged += 1;
        }
    }
}

/// The handshakes in progress on the TCP port, oldest first. When a source
/// address holds [`MAX_HANDSHAKES_PER_SOURCE`] of them, or the port
/// [`MAX_HANDSHAKES`], a new connection pushes out the oldest (of that
/// source, or of all): connections that never finish their handshake cannot
/// hold the port, while a real client, whose handshake takes milliseconds,
/// gets through however many idle connections are held open.
#[derive(Default)]
struct Handshakes {
    next: u64,
    live: std::collections::BTreeMap<u64, (SocketAddr, tokio::task::AbortHandle)>,
}

impl Handshakes {
    /// Makes room for one more handshake from `ip`; returns the peers whose
    /// handshakes were pushed out.
    fn make_room(&mut self, ip: IpAddr) -> Vec<SocketAddr> {
        self.live.retain(|_, (_, task)| !task.is_finished());
        let mut evicted = Vec::new();
        let from_ip: Vec<u64> = self.live.iter().filter(|(_, (peer, _))| peer.ip() == ip).map(|(k, _)| *k).collect();
        if from_ip.len() >= MAX_HANDSHAKES_PER_SOURCE
            && let Some((peer, task)) = self.live.remove(&from_ip[0])
        {
            task.abort();
            evicted.push(peer);
        }
        while self.live.len() >= MAX_HANDSHAKES {
            let Some((_, (peer, task))) = self.live.pop_first() else { break };
            task.abort();
            evicted.push(peer);
        }
        evicted
    }

    fn add(&mut self, peer: SocketAddr, task: tokio::task::AbortHandle) {
        self.live.insert(self.next, (peer, task));
        self.next += 1;
    }
}

/// The connections of the TCP control port, authenticated with the group
/// key.
///
/// Accepting runs in its own task and each TLS handshake in another, under
/// the bounds of [`Handshakes`] and [`HANDSHAKE_TIMEOUT`], so a slow or
/// silent client never delays anyone else; only connections whose handshake
/// succeeded are yielded, at most [`MAX_CONNECTIONS`] open at once.
/// Refusals are logged at a bounded rate. The task ends when the stream is
/// dropped.
pub fn incoming(listener: TcpListener, tls: Tls) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls.server);
    tokio::spawn(accept_loop(listener, acceptor, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<io::Result<Conn>>) {
    let mut handshakes = Handshakes::default();
    let refusals = Arc::new(std::sync::Mutex::new(RefusalLog::new()));
    let refuse = |peer: SocketAddr, reason: &str| {
        if let Ok(mut log) = refusals.lock() {
            log.refused(peer, reason);
        }
    };
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: the condition passes,
                // the port must stay open, and a busy loop would not help.
                tracing::warn!("cannot accept a connection on the TCP port: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            refuse(peer, &format!("{MAX_CONNECTIONS} connections are open already"));
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let info = tcp.connect_info();
        for old in handshakes.make_room(peer.ip()) {
            refuse(old, "too many handshakes in progress: dropped it, the oldest");
        }
        let (acceptor, tx, refusals) = (acceptor.clone(), tx.clone(), refusals.clone());
        let task = tokio::spawn(async move {
            match accept_tls(&acceptor, tcp).await {
                Ok(tls) => {
                    let _ = tx.send(Ok(Conn { tls: Box::new(tls), info, _slot: slot })).await;
                }
                Err(reason) => {
                    if let Ok(mut log) = refusals.lock() {
                        log.refused(peer, &reason);
                    }
                }
            }
        });
        handshakes.add(peer, task.abort_handle());
    }
}

/// Runs the server side of the handshake on `tcp`; the error is why the
/// peer was refused, phrased for the log ("refused a connection from X: …").
async fn accept_tls(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
    let timed_out = || format!("it did not finish the TLS handshake within {} s", HANDSHAKE_TIMEOUT.as_secs());
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    // A TLS client starts with a handshake record (0x16). Anything else is a
    // plain client: answer it with a TLS alert it can recognise, rather than
    // let rustls fail on garbage.
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(err)) => return Err(format!("it failed before the TLS handshake: {}", describe_io(&err))),
        Ok(Ok(0)) => return Err("it hung up before the TLS handshake".into()),
        Ok(Ok(_)) if first[0] != 0x16 => {
            let mut tcp = tcp;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = tcp.write_all(&ALERT_CERTIFICATE_REQUIRED).await;
                let _ = tcp.shutdown().await;
            })
            .await;
            return Err("not TLS (an mgrctl without --key-file?)".into());
        }
        Ok(Ok(_)) => {}
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Err(_) => Err(timed_out()),
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(err)) => Err(match rustls_error(&err) {
            Some(rustls::Error::NoCertificatesPresented) => "it sent no certificate (no --key-file?)".into(),
            Some(rustls::Error::InvalidCertificate(_)) => {
                "it does not hold this group's key (its certificate is not signed by it)".into()
            }
            Some(rustls::Error::AlertReceived(_)) => {
                "it does not hold this group's key (it does not trust our certificate)".into()
            }
            Some(rustls::Error::InvalidMessage(_)) => "not TLS (an mgrctl without --key-file?)".into(),
            Some(other) => format!("the TLS handshake failed: {other}"),
            None if err.kind() == io::ErrorKind::UnexpectedEof => "it hung up during the TLS handshake".into(),
            None => format!("the TLS handshake failed: {}", describe_io(&err)),
        }),
    }
}

fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A lowercase one-line description of an I/O error, without the
/// "(os error N)" suffix users cannot act on.
fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind::*;
    let text = match err.kind() {
        NotFound => "no such file or directory",
        PermissionDenied => "permission denied",
        AlreadyExists => "it exists already",
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        TimedOut => "no answer",
        HostUnreachable => "no route to host",
        NetworkUnreachable => "network unreachable",
        AddrNotAvailable => "address not available",
        _ => return err.to_string(),
    };
    text.to_owned()
}

fn endpoint(addr: &str) -> Result<Endpoint, AuthError> {
    // The URI is required by tonic but only names the peer in errors: the
    // connector below decides where the connection goes (and it is TLS,
    // whatever the scheme says).
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|err| AuthError::BadAddress { addr: addr.to_owned(), reason: err.to_string() })?;
    // A connection through a cut cable never errors by itself: HTTP/2 pings
    // find it dead within two seconds, so the channel makes a new one once
    // the link is back instead of waiting on TCP's retransmission backoff.
    //
    // A connection carries many streams read at different paces (a viewer
    // merging a run's logs reads one stream per instance, oldest line
    // first, and a forwarded stream waits for its viewer): each stream may
    // hold its own window unread, and the connection's window, the largest
    // HTTP/2 allows, is never the limit, else unread streams could fill it
    // and stall the stream everyone waits for.
    Ok(endpoint
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(1))
        .keep_alive_while_idle(true)
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size((1u32 << 31) - 1))
}

/// The tower service tonic calls for each (re)connection of a channel.
/// tonic turns a connector's error into `Status::unavailable` with the
/// error's text as the message (and the error in its source chain): that is
/// how the user sees "the manager at X refused us…" instead of "transport
/// error", and how [`AuthError::find_in`] finds it again.
fn connector(
    addr: String,
    tls: Tls,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<ClientConn>,
    Error = AuthError,
    Future = impl Future<Output = Result<TokioIo<ClientConn>, AuthError>> + Send,
> + Send
+ 'static {
    tower::service_fn(move |_: Uri| {
        let (addr, tls) = (addr.clone(), tls.clone());
        async move { dial(&addr, &tls).await.map(TokioIo::new) }
    })
}

/// Connects to `addr` over TCP and runs the client side of the TLS
/// handshake with the group key.
pub async fn dial(addr: &str, tls: &Tls) -> Result<ClientConn, AuthError> {
    let deadline = tokio::time::Instant::now() + DIAL_TIMEOUT;
    let unreachable = |reason: String| AuthError::Unreachable { addr: addr.to_owned(), reason };
    let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return Err(unreachable(format!("no answer within {} s", DIAL_TIMEOUT.as_secs()))),
        Ok(Err(err)) => return Err(unreachable(describe_io(&err))),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(SERVER_NAME).map_err(|e| AuthError::Setup(e.to_string()))?;
    let connecting = TlsConnector::from(tls.client.clone()).connect(name, tcp);
    match tokio::time::timeout_at(deadline, connecting).await {
        Err(_) => Err(AuthError::Handshake {
            addr: addr.to_owned(),
            reason: format!("no answer within {} s", DIAL_TIMEOUT.as_secs()),
        }),
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(client_handshake_error(addr, &err)),
    }
}

fn client_handshake_error(addr: &str, err: &io::Error) -> AuthError {
    let addr = addr.to_owned();
    match rustls_error(err) {
        Some(rustls::Error::InvalidCertificate(_)) => AuthError::NotInGroup { addr },
        Some(rustls::Error::AlertReceived(_)) => AuthError::WrongKey { addr },
        // What answers is not a TLS server at all.
        Some(rustls::Error::InvalidMessage(_)) => AuthError::NotAManager { addr },
        Some(other) => AuthError::Handshake { addr, reason: other.to_string() },
        // A manager hangs up on a handshake it has no room for (a flood of
        // connections), and so does anything that is not a manager: the
        // first may pass, so this is worth another try.
        None if matches!(err.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset) => {
            AuthError::Handshake { addr, reason: "it hung up during the TLS handshake".into() }
        }
        None => AuthError::Handshake { addr, reason: describe_io(err) },
    }
}

/// A channel to the manager at `addr` (ip:port) that connects when first
/// used (and reconnects after a failure). A call that cannot connect fails
/// with `Status::unavailable` whose message is the [`AuthError`]'s text
/// ([`AuthError::find_in`] on the status gives the error itself).
pub fn lazy_channel(addr: &str, tls: &Tls) -> Result<Channel, AuthError> {
    Ok(endpoint(addr)?.connect_with_connector_lazy(connector(addr.to_owned(), tls.clone())))
}

/// A connected channel to the manager at `addr` (ip:port): every reason the
/// connection cannot be made is an [`AuthError`] with a message for users.
pub async fn connect(addr: &str, tls: &Tls) -> Result<Channel, AuthError> {
    endpoint(addr)?.connect_with_connector(connector(addr.to_owned(), tls.clone())).await.map_err(|err| {
        AuthError::find_in(&err)
            .unwrap_or_else(|| AuthError::Handshake { addr: addr.to_owned(), reason: err.to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio_stream::StreamExt;

    fn tls_of(key: &GroupKey) -> Tls {
        Tls::new(key).unwrap()
    }

    async fn loopback() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        (listener, addr)
    }

    /// Accepts one connection and returns why it was refused (or "" when
    /// its handshake succeeded).
    fn refusal_of_next(listener: TcpListener, tls: &Tls) -> tokio::task::JoinHandle<String> {
        let acceptor = TlsAcceptor::from(tls.server.clone());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match accept_tls(&acceptor, tcp).await {
                Ok(mut tls) => {
                    // Keep the connection until the client is done with it.
                    let _ = tls.read(&mut [0u8; 16]).await;
                    String::new()
                }
                Err(reason) => reason,
            }
        })
    }

    #[test]
    fn keygen_writes_32_bytes_mode_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group.key");
        let key = GroupKey::generate();
        key.write_new(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 32);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(GroupKey::load(&path).unwrap(), key);
        let err = GroupKey::generate().write_new(&path).unwrap_err().to_string();
        assert_eq!(err, format!("cannot write the key file {}: it exists already", path.display()));
        assert_eq!(GroupKey::load(&path).unwrap(), key, "the old key is kept");
        let other = GroupKey::generate();
        other.replace(&path).unwrap();
        assert_eq!(GroupKey::load(&path).unwrap(), other);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn key_file_may_hold_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hex.key");
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 7 + 250) as u8);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&path, format!("{hex}\n")).unwrap();
        assert_eq!(GroupKey::load(&path).unwrap(), GroupKey(bytes));
        std::fs::write(&path, hex.to_uppercase()).unwrap();
        assert_eq!(GroupKey::load(&path).unwrap(), GroupKey(bytes));
    }

    #[test]
    fn bad_key_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        std::fs::write(&path, [1u8; 17]).unwrap();
        assert_eq!(
            GroupKey::load(&path).unwrap_err().to_string(),
            format!(
                "key file {} holds 17 bytes; a group key is 32 bytes (make one with `mgr keygen FILE`)",
                path.display()
            )
        );
        std::fs::write(&path, "z".repeat(64)).unwrap();
        assert!(matches!(GroupKey::load(&path), Err(AuthError::BadKeyFile { len: 64, .. })));
        let missing = dir.path().join("missing.key");
        assert_eq!(
            GroupKey::load(&missing).unwrap_err().to_string(),
            format!("cannot read the key file {}: no such file or directory", missing.display())
        );
    }

    #[test]
    fn every_holder_of_a_key_derives_the_same_ca() {
        let key = GroupKey::generate();
        let (a, b) = (tls_of(&key), tls_of(&key));
        assert_eq!(a.ca_certificate(), b.ca_certificate());
        assert_ne!(a.ca_certificate(), tls_of(&GroupKey::generate()).ca_certificate());
        // The leaves are per process.
        let leaf = |t: &Tls| t.client.client_auth_cert_resolver.resolve(&[], &[rustls::SignatureScheme::ED25519]);
        assert_ne!(leaf(&a).unwrap().cert, leaf(&b).unwrap().cert);
    }

    #[tokio::test]
    async fn same_key_handshake_succeeds() {
        let key = GroupKey::generate();
        let (listener, addr) = loopback().await;
        let mut conns = Box::pin(incoming(listener, tls_of(&key)));
        let mut client = dial(&addr, &tls_of(&key)).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        client.flush().await.unwrap();
        let mut conn = conns.next().await.unwrap().unwrap();
        assert_eq!(conn.connect_info().remote_addr(), Some(client.get_ref().0.local_addr().unwrap()));
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn another_key_is_refused_on_both_sides() {
        let (listener, addr) = loopback().await;
        let server = refusal_of_next(listener, &tls_of(&GroupKey::generate()));
        let err = dial(&addr, &tls_of(&GroupKey::generate())).await.err().unwrap();
        assert!(matches!(err, AuthError::NotInGroup { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("the manager at {addr} does not hold this group's key"));
        assert_eq!(server.await.unwrap(), "it does not hold this group's key (it does not trust our certificate)");
    }

    #[tokio::test]
    async fn another_key_never_reaches_the_service() {
        let (listener, addr) = loopback().await;
        let mut conns = Box::pin(incoming(listener, tls_of(&GroupKey::generate())));
        assert!(dial(&addr, &tls_of(&GroupKey::generate())).await.is_err());
        let next = tokio::time::timeout(Duration::from_millis(300), conns.next()).await;
        assert!(next.is_err(), "a refused connection was yielded");
    }

    #[tokio::test]
    async fn a_certificate_of_another_ca_is_refused() {
        // A client that trusts our CA (say, it has our CA certificate) but
        // has a leaf of its own CA: the server checks the chain.
        let key = GroupKey::generate();
        let ours = tls_of(&key);
        let theirs = tls_of(&GroupKey::generate());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ours.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = theirs.client.client_auth_cert_resolver.clone();
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(resolver);
        let (listener, addr) = loopback().await;
        let server = refusal_of_next(listener, &ours);
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        // TLS 1.3: the client finishes first, then learns of the refusal.
        if let Ok(mut tls) = TlsConnector::from(Arc::new(config)).connect(name, tcp).await {
            let err = tls.read(&mut [0u8; 1]).await.unwrap_err();
            assert!(matches!(rustls_error(&err), Some(rustls::Error::AlertReceived(_))), "{err:?}");
        }
        assert_eq!(server.await.unwrap(), "it does not hold this group's key (its certificate is not signed by it)");
    }

    #[tokio::test]
    async fn a_client_without_certificate_is_refused() {
        let tls = tls_of(&GroupKey::generate());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(tls.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (listener, addr) = loopback().await;
        let server = refusal_of_next(listener, &tls);
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        if let Ok(mut stream) = TlsConnector::from(Arc::new(config)).connect(name, tcp).await {
            assert!(stream.read(&mut [0u8; 1]).await.is_err());
        }
        assert_eq!(server.await.unwrap(), "it sent no certificate (no --key-file?)");
    }

    #[tokio::test]
    async fn an_unreachable_manager_is_a_clear_error() {
        let (listener, addr) = loopback().await;
        drop(listener);
        let err = connect(&addr, &tls_of(&GroupKey::generate())).await.unwrap_err();
        assert_eq!(err.to_string(), format!("cannot reach the manager at {addr}: connection refused"));
        assert!(matches!(err, AuthError::Unreachable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn channels_carry_the_clear_error() {
        let (listener, addr) = loopback().await;
        let _conns = incoming(listener, tls_of(&GroupKey::generate()));
        let other = tls_of(&GroupKey::generate());
        let err = connect(&addr, &other).await.unwrap_err();
        assert!(matches!(err, AuthError::NotInGroup { .. }), "{err:?}");

        // A lazy channel fails its first call with the same text.
        use tower::Service;
        let mut channel = lazy_channel(&addr, &other).unwrap();
        let request = tonic::codegen::http::Request::builder()
            .uri(format!("http://{addr}/mgr.Manager/Status"))
            .body(tonic::body::Body::empty())
            .unwrap();
        let err = match std::future::poll_fn(|cx| channel.poll_ready(cx)).await {
            Ok(()) => channel.call(request).await.unwrap_err(),
            Err(err) => err,
        };
        let status = tonic::Status::from_error(Box::new(err));
        assert_eq!(status.message(), format!("the manager at {addr} does not hold this group's key"));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(matches!(AuthError::find_in(&status), Some(AuthError::NotInGroup { .. })));
    }

    #[tokio::test]
    async fn a_silent_client_does_not_block_others() {
        let key = GroupKey::generate();
        let (listener, addr) = loopback().await;
        let mut conns = Box::pin(incoming(listener, tls_of(&key)));
        let _silent = TcpStream::connect(&addr).await.unwrap();
        let _client = tokio::time::timeout(Duration::from_secs(2), dial(&addr, &tls_of(&key)))
            .await
            .expect("the handshake waited for the silent client")
            .unwrap();
        let conn = tokio::time::timeout(Duration::from_secs(2), conns.next()).await.unwrap();
        assert!(conn.unwrap().is_ok());
    }

    #[tokio::test]
    async fn idle_connections_push_out_their_oldest_and_a_real_client_gets_in() {
        let key = GroupKey::generate();
        let (listener, addr) = loopback().await;
        let mut conns = Box::pin(incoming(listener, tls_of(&key)));
        // Twice the limit of handshakes in progress, all from loopback, all
        // silent: the oldest are dropped as new ones come.
        let mut idle = Vec::new();
        for _ in 0..2 * MAX_HANDSHAKES {
            idle.push(TcpStream::connect(&addr).await.unwrap());
        }
        let began = std::time::Instant::now();
        let client = tokio::time::timeout(Duration::from_secs(2), dial(&addr, &tls_of(&key))).await;
        assert!(client.expect("the real client waited").is_ok());
        assert!(tokio::time::timeout(Duration::from_secs(2), conns.next()).await.unwrap().unwrap().is_ok());
        assert!(began.elapsed() < Duration::from_secs(2));
        // The first idle connections were closed by the manager.
        let mut first = idle.remove(0);
        let read = tokio::time::timeout(Duration::from_secs(2), first.read(&mut [0u8; 1])).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the oldest idle connection is still open: {read:?}");
    }

    #[tokio::test]
    async fn a_plain_client_gets_an_alert_not_a_hang() {
        let (listener, addr) = loopback().await;
        let server = refusal_of_next(listener, &tls_of(&GroupKey::generate()));
        let mut plain = TcpStream::connect(&addr).await.unwrap();
        plain.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), plain.read_to_end(&mut answer)).await.unwrap();
        assert_eq!(answer, ALERT_CERTIFICATE_REQUIRED);
        assert_eq!(server.await.unwrap(), "not TLS (an mgrctl without --key-file?)");
    }

    #[tokio::test]
    async fn what_does_not_speak_tls_is_not_a_manager() {
        let (listener, addr) = loopback().await;
        // What an HTTP/2 server does with a ClientHello: send its SETTINGS,
        // fail on the bad preface, hang up.
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
            let _ = tcp.read(&mut [0u8; 64]).await;
        });
        let err = dial(&addr, &tls_of(&GroupKey::generate())).await.err().unwrap();
        assert!(matches!(err, AuthError::NotAManager { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_replayed_handshake_does_not_get_in() {
        let key = GroupKey::generate();
        let server_tls = tls_of(&key);
        let (listener, addr) = loopback().await;
        let acceptor = TlsAcceptor::from(server_tls.server.clone());
        // The server takes two connections: the genuine one and the replay.
        let server = tokio::spawn(async move {
            let mut results = Vec::new();
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                results.push(match accept_tls(&acceptor, tcp).await {
                    Ok(mut tls) => {
                        let _ = tls.read(&mut [0u8; 16]).await;
                        Ok(())
                    }
                    Err(reason) => Err(reason),
                });
            }
            results
        });
        // A recording proxy in the middle keeps every byte the client sent.
        let (proxy, proxy_addr) = loopback().await;
        let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tape = recorded.clone();
        let target = addr.clone();
        tokio::spawn(async move {
            let (mut client, _) = proxy.accept().await.unwrap();
            let mut upstream = TcpStream::connect(target).await.unwrap();
            let (mut cr, mut cw) = client.split();
            let (mut ur, mut uw) = upstream.split();
            let up = async {
                let mut buf = [0u8; 4096];
                loop {
                    let n = cr.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        let _ = uw.shutdown().await;
                        break;
                    }
                    tape.lock().unwrap().extend_from_slice(&buf[..n]);
                    if uw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            };
            let down = async {
                let _ = tokio::io::copy(&mut ur, &mut cw).await;
            };
            tokio::join!(up, down);
        });
        let mut client = dial(&proxy_addr, &tls_of(&key)).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let tape = recorded.lock().unwrap().clone();
        assert!(tape.len() > 100, "the handshake was recorded");
        let mut replay = TcpStream::connect(&addr).await.unwrap();
        replay.write_all(&tape).await.unwrap();
        let _ = replay.read(&mut [0u8; 4096]).await;
        let results = server.await.unwrap();
        assert_eq!(results[0], Ok(()));
        let refusal = results[1].clone().unwrap_err();
        assert!(refusal.contains("TLS handshake failed"), "{refusal}");
    }
}
