//! Discovery: finds other managers over mDNS and reports them as hints.
//!
//! SKELETON: the discovery helper replaces the bodies; the signatures are
//! the contract.

use std::net::{IpAddr, SocketAddr};

use tokio::sync::mpsc;

/// What this manager announces.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    pub member_id: String,
    pub name: String,
    pub group: String,
    /// The gRPC (TCP) port peers connect to.
    pub port: u16,
    /// The IP announced for that port.
    pub advertise: IpAddr,
    /// Interfaces to use; empty for every non-loopback IPv4 interface with
    /// an address.
    pub ifaces: Vec<String>,
}

/// A manager seen on the network. Only a hint: it becomes a member after an
/// authenticated handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub name: String,
    pub group: String,
    pub version: u32,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("mdns: {0}")]
    Mdns(String),
}

/// The running discovery; [`Discovery::shutdown`] says goodbye.
#[derive(Debug)]
pub struct Discovery {}

impl Discovery {
    pub fn start(_config: DiscoveryConfig) -> Result<(Discovery, mpsc::Receiver<Found>), DiscoveryError> {
        let (_tx, rx) = mpsc::channel(64);
        Ok((Discovery {}, rx))
    }

    pub async fn shutdown(self) {}
}
