//! Port assignment: each instance gets a port of the configured range that is
//! free for both UDP and TCP on the advertise IP when it is launched.
//!
//! The UDP socket bound while checking is kept and handed to the instance
//! (`MGR_UDP_FD`), so the check cannot go stale and datagrams sent to an
//! instance that has not started yet already wait in its socket buffer.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::ops::RangeInclusive;

/// The ports of one manager: those in use by its instances are reserved.
#[derive(Debug)]
pub struct Ports {
    range: RangeInclusive<u16>,
    next: u16,
    reserved: HashSet<u16>,
}

impl Ports {
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let next = *range.start();
        Ports { range, next, reserved: HashSet::new() }
    }

    pub fn range(&self) -> &RangeInclusive<u16> {
        &self.range
    }

    /// Reserves a free port on `ip` and returns it with its bound UDP
    /// socket, or `None` when every port of the range is taken.
    pub fn take(&mut self, ip: IpAddr) -> Option<(u16, UdpSocket)> {
        let (lo, hi) = (*self.range.start(), *self.range.end());
        let size = u32::from(hi - lo) + 1;
        for _ in 0..size {
            let port = self.next;
            self.next = if port == hi { lo } else { port + 1 };
            if self.reserved.contains(&port) {
                continue;
            }
            if let Ok(socket) = self.take_port(ip, port) {
                return Some((port, socket));
            }
        }
        None
    }

    /// Reserves a given port again (an instance restarted on its address).
    pub fn take_port(&mut self, ip: IpAddr, port: u16) -> io::Result<UdpSocket> {
        let addr = SocketAddr::new(ip, port);
        let udp = UdpSocket::bind(addr)?;
        // Only a check: a module that speaks TCP binds the port itself.
        drop(TcpListener::bind(addr)?);
        self.reserved.insert(port);
        Ok(udp)
    }

    pub fn release(&mut self, port: u16) {
        self.reserved.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ports_in_use_are_skipped_and_exhaustion_is_reported() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // A port held by someone else, for both protocols.
        let busy = UdpSocket::bind((ip, 0)).unwrap();
        let port = busy.local_addr().unwrap().port();
        let mut ports = Ports::new(port..=port);
        assert!(ports.take(ip).is_none());
        drop(busy);
        let (got, _socket) = ports.take(ip).unwrap();
        assert_eq!(got, port);
        // Reserved now, so a second take finds nothing.
        assert!(ports.take(ip).is_none());
        ports.release(port);
    }
}
