//! The one integration-test binary of `mgr-modules`: the real binary run
//! as several processes on loopback, with the launch contract set by hand
//! as a manager sets it. One file per area.

use std::net::{SocketAddr, UdpSocket};

mod apps_roles;
mod links;
mod python;

/// The module binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_mgr-modules");

/// Free loopback ports, found by binding port 0 (closed again before the
/// instances bind them; on loopback nobody takes them in between in
/// practice).
pub(crate) fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let sockets: Vec<UdpSocket> = (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    sockets.iter().map(|s| s.local_addr().unwrap()).collect()
}
