//! Authentication: the group key and the TLS it gives every TCP connection.
//!
//! SKELETON: the auth helper replaces the bodies; the signatures are the
//! contract the rest of the daemon and mgrctl build on.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint};

/// Length of a group key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key could not be made or used, or a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write the key file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{0}")]
    Bad(String),
}

impl AuthError {
    /// Whether trying again later can help (the peer was unreachable, not
    /// refusing).
    pub fn is_transient(&self) -> bool {
        true
    }
}

/// The group key: 32 random bytes shared by the group's managers and users.
#[derive(Clone)]
pub struct GroupKey([u8; KEY_LEN]);

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

impl GroupKey {
    pub fn generate() -> GroupKey {
        GroupKey(rand::random())
    }

    pub fn write_new(&self, path: &Path) -> Result<(), AuthError> {
        std::fs::write(path, self.0).map_err(|source| AuthError::Write { path: path.display().to_string(), source })
    }

    pub fn load(path: &Path) -> Result<GroupKey, AuthError> {
        let bytes =
            std::fs::read(path).map_err(|source| AuthError::Read { path: path.display().to_string(), source })?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| AuthError::Bad("not a key".into()))?;
        Ok(GroupKey(key))
    }
}

/// Client and server TLS configurations derived from a group key.
#[derive(Clone, Debug)]
pub struct Tls {
    _key: Arc<GroupKey>,
}

impl Tls {
    pub fn new(key: &GroupKey) -> Result<Tls, AuthError> {
        Ok(Tls { _key: Arc::new(key.clone()) })
    }
}

/// The connections of the TCP control port, authenticated when there is TLS.
pub fn incoming(listener: TcpListener, _tls: Option<Tls>) -> TcpListenerStream {
    TcpListenerStream::new(listener)
}

/// A channel to the manager at `addr` (ip:port) that connects when first used.
pub fn lazy_channel(addr: &str, _tls: Option<&Tls>) -> Result<Channel, AuthError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| AuthError::Bad(e.to_string()))?;
    Ok(endpoint.connect_lazy())
}

/// A connected channel to the manager at `addr` (ip:port).
pub async fn connect(addr: &str, _tls: Option<&Tls>) -> Result<Channel, AuthError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| AuthError::Bad(e.to_string()))?;
    endpoint.connect().await.map_err(|e| AuthError::Bad(e.to_string()))
}
