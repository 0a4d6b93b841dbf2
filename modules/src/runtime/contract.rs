//! The launch contract: the environment variables the daemon sets for every
//! instance it starts (see `modules/README.md`).
//!
//! Parsing is separated from reading the environment ([`Contract::from_lookup`])
//! so that the rules can be unit-tested without touching the process
//! environment, which is shared by all tests of a test binary.

use std::ffi::OsString;
use std::net::{SocketAddr, SocketAddrV4};
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
/// Optional: number of an inherited descriptor, the read end of a pipe on
/// which the manager writes control lines for the runtime (`faults SPEC`).
pub const MGR_CONTROL_FD: &str = "MGR_CONTROL_FD";
/// Optional: file to append JSON events to, one object per line.
pub const MGR_EVENTS: &str = "MGR_EVENTS";
/// Optional: a directory the instance may write to, kept across restarts.
pub const MGR_DIR: &str = "MGR_DIR";
/// Optional: a directory kept across runs, the manager's data for its
/// user: a module keeps there what outlives a run (the chat's checkpoint of
/// a user), under a folder named after itself.
pub const MGR_DATA: &str = "MGR_DATA";
/// Optional: this instance's role (`peer`), in runs with roles.
pub const MGR_ROLE: &str = "MGR_ROLE";
/// Optional: every role of the run with its instances, in order:
/// `peer=p1,p2,p3;comparator=p4`, in runs with roles.
pub const MGR_ROLES: &str = "MGR_ROLES";
/// Optional: `239.a.b.c:port`, the IP multicast group the manager assigned to the run.
pub const MGR_MULTICAST: &str = "MGR_MULTICAST";
pub const MGR_INCARNATION: &str = "MGR_INCARNATION";

/// The most incarnations an instance has: far more restarts than a run
/// sees, and few enough that message ids never overflow (see
/// [`ID_STRIDE`]).
pub const MAX_INCARNATION: u64 = 1_000_000;

/// Message ids per incarnation: incarnation `k` numbers its messages from
/// `(k - 1) * ID_STRIDE + 1`, so a restarted process never reuses an id of
/// its earlier lives (its first message after one restart is 1000000001)
/// and receivers that deduplicate by (sender, id) need no change.
pub const ID_STRIDE: u64 = 1_000_000_000;

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
    /// The manager's control pipe (`MGR_CONTROL_FD`).
    pub control_fd: Option<i32>,
    pub dir: Option<PathBuf>,
    /// The manager's data folder for its user (`MGR_DATA`), kept across runs.
    pub data: Option<PathBuf>,
    /// This instance's role, in a run with roles (`MGR_ROLE`, or else the
    /// role `MGR_ROLES` lists it in); `None` in a run without roles.
    pub role: Option<String>,
    /// The run's roles in order, each with its instances in order
    /// (`MGR_ROLES`); empty in a run without roles.
    pub roles: Vec<(String, Vec<String>)>,
    /// The run's IP multicast group (`MGR_MULTICAST`), if the manager assigned one.
    pub multicast: Option<SocketAddrV4>,
    /// Which life of this instance this is (`MGR_INCARNATION`): 1 at its
    /// first start, one more at each restart; 1 when not set.
    pub incarnation: u64,
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
    #[error("{var}: '{value}' is not a descriptor number above 2")]
    BadFd { var: &'static str, value: String },
    #[error("MGR_ROLES: entry '{0}' has no '=' (expected role=p1,p2;role=p3)")]
    RoleWithoutEquals(String),
    #[error("MGR_ROLES: entry '{0}' has an empty role name")]
    RoleWithoutName(String),
    #[error("MGR_ROLES: role '{0}' has no instances")]
    RoleWithoutInstances(String),
    #[error("MGR_ROLES: role '{0}' is listed twice")]
    DuplicateRole(String),
    #[error("MGR_ROLES: role '{role}' lists '{instance}', which is not in MGR_PEERS")]
    RoleInstanceUnknown { role: String, instance: String },
    #[error("MGR_ROLES: role '{role}' lists '{instance}' twice")]
    RoleInstanceTwice { role: String, instance: String },
    #[error("MGR_ROLES: '{instance}' is in two roles, '{first}' and '{second}'")]
    InstanceInTwoRoles { instance: String, first: String, second: String },
    #[error("MGR_ROLES: '{0}' of MGR_PEERS is in no role")]
    InstanceWithoutRole(String),
    #[error("MGR_ROLE: '{role}', but MGR_ROLES lists MGR_SELF '{self_name}' in role '{listed}'")]
    RoleMismatch { role: String, self_name: String, listed: String },
    #[error("MGR_ROLE: set to '{0}' but MGR_ROLES is not set")]
    RoleWithoutRoles(String),
    #[error("MGR_MULTICAST: '{0}' is not an IPv4 ip:port address")]
    BadMulticast(String),
    #[error("MGR_MULTICAST: {0} is not an IP multicast address (224.0.0.0/4)")]
    NotMulticast(std::net::Ipv4Addr),
    #[error("MGR_MULTICAST: {0} has port 0")]
    MulticastPortZero(SocketAddrV4),
    #[error("MGR_INCARNATION: '{0}' is not a whole number of at least 1")]
    BadIncarnation(String),
}

impl Contract {
    /// The id of the first message this incarnation sends (see [`ID_STRIDE`]).
    pub fn first_message_id(&self) -> u64 {
        (self.incarnation - 1) * ID_STRIDE + 1
    }

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

        let fd = |var: &'static str| -> Result<Option<i32>, ContractError> {
            let Some(value) = optional(var) else { return Ok(None) };
            let text = value.into_string().map_err(|_| ContractError::NotUnicode(var))?;
            // Descriptors 0 to 2 are stdin, stdout and stderr, which the
            // contract already gives other roles; taking ownership of one of
            // them as a socket or pipe would close it on error.
            match text.parse::<i32>() {
                Ok(fd) if fd > 2 => Ok(Some(fd)),
                _ => Err(ContractError::BadFd { var, value: text }),
            }
        };
        let udp_fd = fd(MGR_UDP_FD)?;
        let control_fd = fd(MGR_CONTROL_FD)?;

        let text = |var: &'static str| -> Result<Option<String>, ContractError> {
            optional(var).map(|value| value.into_string().map_err(|_| ContractError::NotUnicode(var))).transpose()
        };
        let roles = match text(MGR_ROLES)? {
            Some(value) => parse_roles(&value, &peers)?,
            None => Vec::new(),
        };
        let role = match (text(MGR_ROLE)?, roles.is_empty()) {
            (Some(role), true) => return Err(ContractError::RoleWithoutRoles(role)),
            (None, true) => None,
            // Every instance is in exactly one role (checked above), so
            // MGR_ROLES alone says which is ours; MGR_ROLE must agree with it.
            (given, false) => {
                let listed = role_of(&roles, &self_name).expect("every instance of MGR_PEERS is in a role").to_owned();
                match given {
                    Some(role) if role != listed => {
                        return Err(ContractError::RoleMismatch { role, self_name, listed });
                    }
                    _ => Some(listed),
                }
            }
        };
        let multicast = match text(MGR_MULTICAST)? {
            Some(value) => Some(parse_multicast(&value)?),
            None => None,
        };
        let incarnation = match text(MGR_INCARNATION)? {
            Some(value) => match value.parse::<u64>() {
                Ok(n) if (1..=MAX_INCARNATION).contains(&n) => n,
                _ => return Err(ContractError::BadIncarnation(value)),
            },
            None => 1,
        };

        Ok(Contract {
            run,
            self_name,
            addr,
            peers,
            member,
            events_path: optional(MGR_EVENTS).map(PathBuf::from),
            udp_fd,
            control_fd,
            dir: optional(MGR_DIR).map(PathBuf::from),
            data: optional(MGR_DATA).map(PathBuf::from),
            role,
            roles,
            multicast,
            incarnation,
        })
    }

    /// Takes the run's new table after a scale (the `peers` control line):
    /// `peers` and `roles` in the formats of `MGR_PEERS` and `MGR_ROLES`,
    /// checked as at launch; this process must still be listed, at its
    /// address and in its role. On an error nothing changes.
    pub fn retable(&mut self, peers: &str, roles: &str) -> Result<(), ContractError> {
        let table = parse_peers(peers)?;
        match table.iter().find(|(name, _)| *name == self.self_name) {
            None => return Err(ContractError::SelfNotListed(self.self_name.clone())),
            Some((_, listed)) if *listed != self.addr => {
                return Err(ContractError::SelfAddrMismatch {
                    name: self.self_name.clone(),
                    listed: *listed,
                    addr: self.addr,
                });
            }
            Some(_) => {}
        }
        let roles = if roles.is_empty() { Vec::new() } else { parse_roles(roles, &table)? };
        let role = role_of(&roles, &self.self_name).map(str::to_owned);
        if role != self.role {
            let (role, listed) = (self.role.clone().unwrap_or_default(), role.unwrap_or_default());
            return Err(ContractError::RoleMismatch { role, self_name: self.self_name.clone(), listed });
        }
        self.peers = table;
        self.roles = roles;
        Ok(())
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

    /// The instances of role `role` with their addresses, in `MGR_ROLES`
    /// order; empty when the run has no such role (or no roles at all).
    pub fn role_instances(&self, role: &str) -> Vec<(String, SocketAddr)> {
        let names = self.roles.iter().find(|(name, _)| name == role).map(|(_, names)| names.as_slice()).unwrap_or(&[]);
        names.iter().filter_map(|name| Some((name.clone(), self.peer_addr(name)?))).collect()
    }

    /// The first instance of role `role`, for a role that is a single
    /// service (a comparator, a discovery).
    pub fn first_of_role(&self, role: &str) -> Option<(String, SocketAddr)> {
        self.role_instances(role).into_iter().next()
    }

    /// The role of the instance called `name`, in a run with roles.
    pub fn role_of(&self, name: &str) -> Option<&str> {
        role_of(&self.roles, name)
    }

    /// The instances this one works with: those of its own role, itself
    /// included, in order; every instance of the run when it has no roles.
    pub fn role_peers(&self) -> Vec<(String, SocketAddr)> {
        match &self.role {
            Some(role) => self.role_instances(role),
            None => self.peers.clone(),
        }
    }

    /// Whether the instance called `name` is one of [`Contract::role_peers`].
    pub fn is_role_peer(&self, name: &str) -> bool {
        match &self.role {
            Some(role) => self.role_of(name) == Some(role.as_str()),
            None => self.peer_addr(name).is_some(),
        }
    }

    /// This instance's position among [`Contract::role_peers`] (0 for the
    /// first), so that the instances of a role number themselves the same
    /// way whatever roles come before theirs.
    pub fn rank_in_role(&self) -> usize {
        self.role_peers().iter().position(|(name, _)| *name == self.self_name).unwrap_or(0)
    }
}

/// A contract for unit tests of modules: `n` instances `p1..pN` on
/// 127.0.0.1 ports 7001…, this one `self_name`, with `roles` as `MGR_ROLES`.
#[cfg(test)]
pub(crate) fn for_tests(self_name: &str, n: u16, roles: Option<&str>) -> Contract {
    let peers: Vec<String> = (1..=n).map(|i| format!("p{i}=127.0.0.1:{}", 7000 + i)).collect();
    let index: u16 = self_name[1..].parse().expect("a name pN");
    let vars = [
        (MGR_RUN, "test".to_owned()),
        (MGR_SELF, self_name.to_owned()),
        (MGR_ADDR, format!("127.0.0.1:{}", 7000 + index)),
        (MGR_PEERS, peers.join(",")),
        (MGR_MEMBER, "m1".to_owned()),
        (MGR_ROLES, roles.unwrap_or_default().to_owned()),
    ];
    Contract::from_lookup(|var| vars.iter().find(|(v, _)| *v == var).map(|(_, value)| OsString::from(value)))
        .expect("a valid test contract")
}

/// The role `roles` lists `name` in.
fn role_of<'a>(roles: &'a [(String, Vec<String>)], name: &str) -> Option<&'a str> {
    roles.iter().find(|(_, names)| names.iter().any(|n| n == name)).map(|(role, _)| role.as_str())
}

/// Parses `peer=p1,p2;comparator=p3` against the run's peers: every role
/// once, with at least one instance; every instance of `peers` in exactly
/// one role, and nothing else.
fn parse_roles(text: &str, peers: &[(String, SocketAddr)]) -> Result<Vec<(String, Vec<String>)>, ContractError> {
    let mut roles: Vec<(String, Vec<String>)> = Vec::new();
    for entry in text.split(';') {
        let entry = entry.trim();
        // A trailing ';' is harmless, as a trailing ',' is in MGR_PEERS.
        if entry.is_empty() {
            continue;
        }
        let (role, list) = entry.split_once('=').ok_or_else(|| ContractError::RoleWithoutEquals(entry.to_owned()))?;
        let role = role.trim();
        if role.is_empty() {
            return Err(ContractError::RoleWithoutName(entry.to_owned()));
        }
        if roles.iter().any(|(other, _)| other == role) {
            return Err(ContractError::DuplicateRole(role.to_owned()));
        }
        let mut names = Vec::new();
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            if !peers.iter().any(|(peer, _)| peer == name) {
                return Err(ContractError::RoleInstanceUnknown { role: role.to_owned(), instance: name.to_owned() });
            }
            if names.contains(&name) {
                return Err(ContractError::RoleInstanceTwice { role: role.to_owned(), instance: name.to_owned() });
            }
            if let Some(first) = role_of(&roles, name) {
                return Err(ContractError::InstanceInTwoRoles {
                    instance: name.to_owned(),
                    first: first.to_owned(),
                    second: role.to_owned(),
                });
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(ContractError::RoleWithoutInstances(role.to_owned()));
        }
        roles.push((role.to_owned(), names.into_iter().map(str::to_owned).collect()));
    }
    // An instance outside every role would be reachable by nobody's role
    // helpers: the manager lists the whole run, so a gap is a broken contract.
    if let Some((name, _)) = peers.iter().find(|(name, _)| role_of(&roles, name).is_none()) {
        return Err(ContractError::InstanceWithoutRole(name.clone()));
    }
    Ok(roles)
}

/// Parses `239.a.b.c:port`: an IPv4 multicast group and a port other than 0.
fn parse_multicast(text: &str) -> Result<SocketAddrV4, ContractError> {
    let group: SocketAddrV4 = text.trim().parse().map_err(|_| ContractError::BadMulticast(text.to_owned()))?;
    if !group.ip().is_multicast() {
        return Err(ContractError::NotMulticast(*group.ip()));
    }
    if group.port() == 0 {
        return Err(ContractError::MulticastPortZero(group));
    }
    Ok(group)
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
    fn a_scale_gives_a_new_table_that_must_still_list_this_process_in_its_role() {
        let mut c = for_tests("p2", 3, Some("a=p1,p2;b=p3"));
        c.retable("p1=127.0.0.1:7001,p2=127.0.0.1:7002,p3=127.0.0.1:7003,p4=127.0.0.1:7004", "a=p1,p2,p4;b=p3")
            .unwrap();
        assert_eq!(c.role_peers().len(), 3);
        assert_eq!(c.peer_addr("p4"), Some("127.0.0.1:7004".parse().unwrap()));
        let before = c.clone();
        assert!(matches!(c.retable("p1=127.0.0.1:7001", ""), Err(ContractError::SelfNotListed(_))));
        assert!(matches!(
            c.retable("p1=127.0.0.1:7001,p2=127.0.0.1:9", "a=p1,p2"),
            Err(ContractError::SelfAddrMismatch { .. })
        ));
        assert!(c.retable("p1=127.0.0.1:7001,p2=127.0.0.1:7002", "b=p1,p2").is_err(), "another role");
        assert!(c.retable("p1=127.0.0.1:7001,p2=127.0.0.1:7002", "a=p1").is_err(), "p2 in no role");
        assert_eq!(c, before, "an error changes nothing");
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
            assert_eq!(
                with(MGR_UDP_FD, bad),
                Err(ContractError::BadFd { var: MGR_UDP_FD, value: bad.into() }),
                "{bad}"
            );
            assert_eq!(
                with(MGR_CONTROL_FD, bad),
                Err(ContractError::BadFd { var: MGR_CONTROL_FD, value: bad.into() }),
                "{bad}"
            );
        }
    }

    fn with_roles(pairs: &[(&str, &str)]) -> Result<Contract, ContractError> {
        let mut vars = base();
        vars.insert(MGR_PEERS.to_owned(), OsString::from("p1=127.0.0.1:7001,p2=127.0.0.1:7002,p3=127.0.0.1:7003"));
        vars.extend(env(pairs));
        parse(&vars)
    }

    #[test]
    fn without_roles_every_peer_is_a_role_peer() {
        let c = parse(&base()).unwrap();
        assert_eq!((c.role.as_deref(), c.roles.len(), c.multicast), (None, 0, None));
        assert_eq!(c.role_peers(), c.peers);
        assert!(c.is_role_peer("p3"));
        assert!(!c.is_role_peer("p9"));
        assert_eq!(c.rank_in_role(), 1);
        assert_eq!(c.role_instances("peer"), []);
        assert_eq!(c.first_of_role("comparator"), None);
    }

    #[test]
    fn roles_name_their_instances_and_ours() {
        let c = with_roles(&[(MGR_ROLE, "peer"), (MGR_ROLES, "comparator=p1; peer=p2,p3;")]).unwrap();
        assert_eq!(c.role.as_deref(), Some("peer"));
        assert_eq!(
            c.roles,
            [("comparator".to_owned(), vec!["p1".to_owned()]), ("peer".to_owned(), vec!["p2".into(), "p3".into()])]
        );
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(c.role_peers(), [("p2".to_owned(), addr(7002)), ("p3".to_owned(), addr(7003))]);
        assert_eq!(c.first_of_role("comparator"), Some(("p1".to_owned(), addr(7001))));
        assert_eq!(c.role_of("p1"), Some("comparator"));
        assert!(c.is_role_peer("p3") && !c.is_role_peer("p1"));
        assert_eq!(c.rank_in_role(), 0, "p2 is the first of its role");
        // MGR_ROLES alone is enough: it says which role MGR_SELF is in.
        let c = with_roles(&[(MGR_ROLES, "a=p1,p2;b=p3")]).unwrap();
        assert_eq!(c.role.as_deref(), Some("a"));
        assert_eq!(c.rank_in_role(), 1);
    }

    #[test]
    fn malformed_roles_are_named() {
        let err = |pairs: &[(&str, &str)]| with_roles(pairs).unwrap_err().to_string();
        assert_eq!(
            err(&[(MGR_ROLES, "peer:p1,p2,p3")]),
            "MGR_ROLES: entry 'peer:p1,p2,p3' has no '=' (expected role=p1,p2;role=p3)"
        );
        assert_eq!(err(&[(MGR_ROLES, "=p1,p2,p3")]), "MGR_ROLES: entry '=p1,p2,p3' has an empty role name");
        assert_eq!(err(&[(MGR_ROLES, "peer=p1,p2,p3;cmp=")]), "MGR_ROLES: role 'cmp' has no instances");
        assert_eq!(err(&[(MGR_ROLES, "peer=p1,p2;peer=p3")]), "MGR_ROLES: role 'peer' is listed twice");
        assert_eq!(
            err(&[(MGR_ROLES, "peer=p1,p2,p3,p4")]),
            "MGR_ROLES: role 'peer' lists 'p4', which is not in MGR_PEERS"
        );
        assert_eq!(err(&[(MGR_ROLES, "peer=p1,p2;cmp=p2,p3")]), "MGR_ROLES: 'p2' is in two roles, 'peer' and 'cmp'");
        assert_eq!(err(&[(MGR_ROLES, "peer=p1,p1,p2,p3")]), "MGR_ROLES: role 'peer' lists 'p1' twice");
        assert_eq!(err(&[(MGR_ROLES, "peer=p1,p2")]), "MGR_ROLES: 'p3' of MGR_PEERS is in no role");
        assert_eq!(
            err(&[(MGR_ROLE, "cmp"), (MGR_ROLES, "peer=p1,p2;cmp=p3")]),
            "MGR_ROLE: 'cmp', but MGR_ROLES lists MGR_SELF 'p2' in role 'peer'"
        );
        assert_eq!(err(&[(MGR_ROLE, "peer")]), "MGR_ROLE: set to 'peer' but MGR_ROLES is not set");
        // Empty counts as unset, as for every optional variable.
        assert_eq!(with_roles(&[(MGR_ROLE, ""), (MGR_ROLES, "")]).unwrap().role, None);
    }

    #[test]
    fn the_multicast_group_must_be_an_ipv4_group_and_port() {
        assert_eq!(with(MGR_MULTICAST, "239.1.2.3:5000").unwrap().multicast, Some("239.1.2.3:5000".parse().unwrap()));
        assert_eq!(with(MGR_MULTICAST, "").unwrap().multicast, None);
        assert_eq!(
            with(MGR_MULTICAST, "239.1.2.3").unwrap_err().to_string(),
            "MGR_MULTICAST: '239.1.2.3' is not an IPv4 ip:port address"
        );
        assert_eq!(
            with(MGR_MULTICAST, "[ff02::1]:5000").unwrap_err().to_string(),
            "MGR_MULTICAST: '[ff02::1]:5000' is not an IPv4 ip:port address"
        );
        assert_eq!(
            with(MGR_MULTICAST, "10.0.0.1:5000").unwrap_err().to_string(),
            "MGR_MULTICAST: 10.0.0.1 is not an IP multicast address (224.0.0.0/4)"
        );
        assert_eq!(
            with(MGR_MULTICAST, "239.1.2.3:0").unwrap_err().to_string(),
            "MGR_MULTICAST: 239.1.2.3:0 has port 0"
        );
    }
}
