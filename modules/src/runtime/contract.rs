//! The launch contract: the environment variables the daemon sets for every
//! instance it starts (see `modules/README.md`).
//!
//! Parsing is separated from reading the environment ([`Contract::from_lookup`])
//! so that the rules can be unit-tested without touching the process
//! environment, which is shared by all tests of a test binary.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Name of the run this instance belongs to.
pub const MGR_RUN: &str = "MGR_RUN";
/// Name of this instance (`p1`, `p2`, …).
pub const MGR_SELF: &str = "MGR_SELF";
/// `ip:port` of this instance's UDP socket.
pub const MGR_ADDR: &str = "MGR_ADDR";
/// `p1=ip:port,p2=ip:port,...`: every instance of the run, in order, this one included.
pub const MGR_PEERS: &str = "MGR_PEERS";
/// The member (machine manager) hosting this instance.
pub const MGR_MEMBER: &str = "MGR_MEMBER";
/// Optional: number of an inherited descriptor holding a UDP socket bound to `MGR_ADDR`.
pub const MGR_UDP_FD: &str = "MGR_UDP_FD";
/// Optional: file to append JSON events to, one object per line.
pub const MGR_EVENTS: &str = "MGR_EVENTS";
/// Optional: a directory the instance may write to, kept across restarts.
pub const MGR_DIR: &str = "MGR_DIR";

/// Everything an instance learns from the daemon at launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    pub run: String,
    pub self_name: String,
    pub addr: SocketAddr,
    /// All instances of the run in the daemon's order, this one included.
    pub peers: Vec<(String, SocketAddr)>,
    pub member: String,
    pub events_path: Option<PathBuf>,
    pub udp_fd: Option<i32>,
    pub dir: Option<PathBuf>,
}

/// Why the environment does not hold a valid launch contract. Every message
/// names the variable so that a user starting a module by hand knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("{0}: not set")]
    Missing(&'static str),
    #[error("{0}: empty")]
    Empty(&'static str),
    #[error("{0}: not valid UTF-8")]
    NotUnicode(&'static str),
    #[error("{var}: '{value}' is not an ip:port address")]
    BadAddr { var: &'static str, value: String },
    #[error("MGR_PEERS: entry '{0}' has no '='")]
    PeerWithoutEquals(String),
    #[error("MGR_PEERS: entry '{0}' has an empty name")]
    PeerWithoutName(String),
    #[error("MGR_PEERS: entry '{entry}': '{addr}' is not an ip:port address")]
    PeerBadAddr { entry: String, addr: String },
    #[error("MGR_PEERS: process '{0}' is listed twice")]
    DuplicateName(String),
    #[error("MGR_PEERS: address {0} is listed twice")]
    DuplicateAddr(SocketAddr),
    #[error("MGR_PEERS: does not list MGR_SELF '{0}'")]
    SelfNotListed(String),
    #[error("MGR_PEERS: lists '{name}' at {listed} but MGR_ADDR is {addr}")]
    SelfAddrMismatch { name: String, listed: SocketAddr, addr: SocketAddr },
    #[error("MGR_UDP_FD: '{0}' is not a descriptor number above 2")]
    BadFd(String),
}

impl Contract {
    /// Reads the contract from this process's environment.
    pub fn from_env() -> Result<Contract, ContractError> {
        Contract::from_lookup(|var| std::env::var_os(var))
    }

    /// Reads the contract through `lookup`, which returns a variable's value
    /// or `None` when it is not set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Contract, ContractError> {
        let required = |var: &'static str| -> Result<String, ContractError> {
            let value = lookup(var).ok_or(ContractError::Missing(var))?;
            let value = value.into_string().map_err(|_| ContractError::NotUnicode(var))?;
            if value.is_empty() {
                return Err(ContractError::Empty(var));
            }
            Ok(value)
        };
        // An optional variable set to the empty string counts as unset, because
        // that is the easiest way for a shell script to "unset" it.
        let optional = |var: &'static str| lookup(var).filter(|value| !value.is_empty());

        let run = required(MGR_RUN)?;
        let self_name = required(MGR_SELF)?;
        let addr_text = required(MGR_ADDR)?;
        let addr = addr_text.parse().map_err(|_| ContractError::BadAddr { var: MGR_ADDR, value: addr_text.clone() })?;
        let peers = parse_peers(&required(MGR_PEERS)?)?;
        let member = required(MGR_MEMBER)?;

        match peers.iter().find(|(name, _)| *name == self_name) {
            None => return Err(ContractError::SelfNotListed(self_name)),
            Some((_, listed)) if *listed != addr => {
                return Err(ContractError::SelfAddrMismatch { name: self_name, listed: *listed, addr });
            }
            Some(_) => {}
        }

        let udp_fd = match optional(MGR_UDP_FD) {
            None => None,
            Some(value) => {
                let text = value.into_string().map_err(|_| ContractError::NotUnicode(MGR_UDP_FD))?;
                // Descriptors 0 to 2 are stdin, stdout and stderr, which the
                // contract already gives other roles; taking ownership of one
                // of them as a socket would close it on error.
                match text.parse::<i32>() {
                    Ok(fd) if fd > 2 => Some(fd),
                    _ => return Err(ContractError::BadFd(text)),
                }
            }
        };

        Ok(Contract {
            run,
            self_name,
            addr,
            peers,
            member,
            events_path: optional(MGR_EVENTS).map(PathBuf::from),
            udp_fd,
            dir: optional(MGR_DIR).map(PathBuf::from),
        })
    }

    /// The address of the process called `name`, if it is part of the run.
    pub fn peer_addr(&self, name: &str) -> Option<SocketAddr> {
        self.peers.iter().find(|(peer, _)| peer == name).map(|(_, addr)| *addr)
    }

    /// The name of the process whose socket is at `addr`, if it is part of the run.
    pub fn peer_name(&self, addr: SocketAddr) -> Option<&str> {
        self.peers.iter().find(|(_, peer)| *peer == addr).map(|(name, _)| name.as_str())
    }

    /// The names of all processes of the run, in order, joined by ", " (for messages).
    pub fn peer_list(&self) -> String {
        let names: Vec<&str> = self.peers.iter().map(|(name, _)| name.as_str()).collect();
        names.join(", ")
    }
}

/// Parses `p1=ip:port,p2=ip:port,...`.
fn parse_peers(text: &str) -> Result<Vec<(String, SocketAddr)>, ContractError> {
    let mut peers: Vec<(String, SocketAddr)> = Vec::new();
    for entry in text.split(',') {
        let entry = entry.trim();
        // A trailing comma is harmless, so it is tolerated rather than rejected.
        if entry.is_empty() {
            continue;
        }
        let (name, addr_text) =
            entry.split_once('=').ok_or_else(|| ContractError::PeerWithoutEquals(entry.to_owned()))?;
        if name.is_empty() {
            return Err(ContractError::PeerWithoutName(entry.to_owned()));
        }
        let addr: SocketAddr = addr_text
            .parse()
            .map_err(|_| ContractError::PeerBadAddr { entry: entry.to_owned(), addr: addr_text.to_owned() })?;
        // Names and addresses must both be unique: a sender is recognised by
        // its source address, and a destination is chosen by its name.
        if peers.iter().any(|(other, _)| other == name) {
            return Err(ContractError::DuplicateName(name.to_owned()));
        }
        if peers.iter().any(|(_, other)| *other == addr) {
            return Err(ContractError::DuplicateAddr(addr));
        }
        peers.push((name.to_owned(), addr));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, OsString> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect()
    }

    fn base() -> HashMap<String, OsString> {
        env(&[
            (MGR_RUN, "lab1"),
            (MGR_SELF, "p2"),
            (MGR_ADDR, "127.0.0.1:7002"),
            (MGR_PEERS, "p1=127.0.0.1:7001,p2=127.0.0.1:7002,p3=127.0.0.1:7003"),
            (MGR_MEMBER, "m1"),
        ])
    }

    fn parse(vars: &HashMap<String, OsString>) -> Result<Contract, ContractError> {
        Contract::from_lookup(|var| vars.get(var).cloned())
    }

    fn with(var: &str, value: &str) -> Result<Contract, ContractError> {
        let mut vars = base();
        vars.insert(var.to_owned(), OsString::from(value));
        parse(&vars)
    }

    #[test]
    fn parses_a_complete_contract() {
        let mut vars = base();
        vars.extend(env(&[(MGR_UDP_FD, "5"), (MGR_EVENTS, "/tmp/events.jsonl"), (MGR_DIR, "/tmp/p2")]));
        let c = parse(&vars).unwrap();
        assert_eq!(c.run, "lab1");
        assert_eq!(c.self_name, "p2");
        assert_eq!(c.addr, "127.0.0.1:7002".parse().unwrap());
        assert_eq!(c.member, "m1");
        assert_eq!(c.peers.len(), 3);
        assert_eq!(c.peers[0].0, "p1");
        assert_eq!(c.udp_fd, Some(5));
        assert_eq!(c.events_path, Some(PathBuf::from("/tmp/events.jsonl")));
        assert_eq!(c.dir, Some(PathBuf::from("/tmp/p2")));
        assert_eq!(c.peer_addr("p3"), Some("127.0.0.1:7003".parse().unwrap()));
        assert_eq!(c.peer_addr("p9"), None);
        assert_eq!(c.peer_name("127.0.0.1:7001".parse().unwrap()), Some("p1"));
        assert_eq!(c.peer_name("127.0.0.1:9999".parse().unwrap()), None);
        assert_eq!(c.peer_list(), "p1, p2, p3");
    }

    #[test]
    fn optional_variables_may_be_unset_or_empty() {
        let c = parse(&base()).unwrap();
        assert_eq!((c.udp_fd, c.events_path, c.dir), (None, None, None));
        let c = with(MGR_EVENTS, "").unwrap();
        assert_eq!(c.events_path, None);
    }

    #[test]
    fn missing_and_empty_variables_are_named() {
        let mut vars = base();
        vars.remove(MGR_MEMBER);
        let err = parse(&vars).unwrap_err();
        assert_eq!(err.to_string(), "MGR_MEMBER: not set");
        assert_eq!(with(MGR_SELF, "").unwrap_err().to_string(), "MGR_SELF: empty");
    }

    #[test]
    fn bad_addresses_are_rejected() {
        assert_eq!(
            with(MGR_ADDR, "localhost").unwrap_err().to_string(),
            "MGR_ADDR: 'localhost' is not an ip:port address"
        );
        assert_eq!(
            with(MGR_PEERS, "p1=127.0.0.1:7001,p2").unwrap_err().to_string(),
            "MGR_PEERS: entry 'p2' has no '='"
        );
        assert_eq!(
            with(MGR_PEERS, "p1=1.2.3.4,p2=127.0.0.1:7002").unwrap_err().to_string(),
            "MGR_PEERS: entry 'p1=1.2.3.4': '1.2.3.4' is not an ip:port address"
        );
        assert!(matches!(with(MGR_PEERS, "=127.0.0.1:1,p2=127.0.0.1:7002"), Err(ContractError::PeerWithoutName(_))));
    }

    #[test]
    fn peers_must_be_unique_and_include_self() {
        assert_eq!(
            with(MGR_PEERS, "p2=127.0.0.1:7002,p2=127.0.0.1:7003"),
            Err(ContractError::DuplicateName("p2".into()))
        );
        assert_eq!(
            with(MGR_PEERS, "p1=127.0.0.1:7002,p2=127.0.0.1:7002"),
            Err(ContractError::DuplicateAddr("127.0.0.1:7002".parse().unwrap()))
        );
        assert_eq!(with(MGR_PEERS, "p1=127.0.0.1:7001"), Err(ContractError::SelfNotListed("p2".into())));
        assert!(matches!(with(MGR_PEERS, "p2=127.0.0.1:7009"), Err(ContractError::SelfAddrMismatch { .. })));
    }

    #[test]
    fn peers_tolerate_spaces_trailing_commas_and_ipv6() {
        let c = with(MGR_PEERS, " p1=[::1]:7001 , p2=127.0.0.1:7002,").unwrap();
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peer_addr("p1"), Some("[::1]:7001".parse().unwrap()));
    }

    #[test]
    fn udp_fd_must_be_a_plain_descriptor() {
        assert_eq!(with(MGR_UDP_FD, "3").unwrap().udp_fd, Some(3));
        for bad in ["x", "-1", "0", "2"] {
            assert_eq!(with(MGR_UDP_FD, bad), Err(ContractError::BadFd(bad.into())), "{bad}");
        }
    }
}
