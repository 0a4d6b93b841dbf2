//! Discovery: announces this manager over mDNS (`_mgr._tcp.local.`) and
//! reports the other managers it hears of as hints.
//!
//! Owns the manager's mDNS daemon (its own thread, from `mdns-sd`): the
//! registration with the TXT records `id`, `name`, `group`, `v`, `port` and
//! `boot` (new at every start),
//! the interface rules, and a task that drains the browse subscription and
//! turns resolved services into [`Found`]. It must not decide membership,
//! filter by group or version, or judge liveness: a `Found` is only a hint,
//! a manager becomes a member after an authenticated gRPC handshake, and
//! liveness belongs to gRPC (a manager killed with -9 stays in mDNS caches
//! for the records' 120 s TTL).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{IfKind, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::{mpsc, watch};

/// The mDNS service type every manager registers and browses.
pub const SERVICE_TYPE: &str = "_mgr._tcp.local.";

/// How many hints may wait for the caller; more are dropped (they are sent
/// again at the next refresh).
const CHANNEL: usize = 64;

/// How often every manager still known is reported again, so a caller that
/// lost a member, or dropped a hint, gets another chance to connect.
const REFRESH: Duration = Duration::from_secs(5);

/// A TXT entry is one length byte plus `key=value`; names are cut to fit.
const TXT_VALUE_MAX: usize = 200;

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

/// The running discovery; [`Discovery::shutdown`] says goodbye. Dropping it
/// without `shutdown` stops the mDNS daemon without a goodbye.
pub struct Discovery {
    daemon: ServiceDaemon,
    fullname: String,
    stop: watch::Sender<bool>,
    browsing: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").field("fullname", &self.fullname).finish_non_exhaustive()
    }
}

fn mdns_error(what: &str) -> impl FnOnce(mdns_sd::Error) -> DiscoveryError + '_ {
    move |err| DiscoveryError::Mdns(format!("{what}: {err}"))
}

impl Discovery {
    /// Registers this manager and starts browsing for the others. Must be
    /// called inside a tokio runtime: the browse task runs on it. Each
    /// manager seen (never this one) arrives on the receiver as a [`Found`],
    /// again whenever it is announced anew and every few seconds while it is
    /// known; managers of other groups or versions are reported too.
    pub fn start(config: DiscoveryConfig) -> Result<(Discovery, mpsc::Receiver<Found>), DiscoveryError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| DiscoveryError::Mdns("discovery must be started inside a tokio runtime".to_owned()))?;
        let info = service_info(&config)?;
        let fullname = info.get_fullname().to_owned();
        let daemon = ServiceDaemon::new().map_err(mdns_error("cannot start the mdns daemon"))?;
        // Until `start` succeeds the daemon thread is ours to stop.
        let started = select_interfaces(&daemon, &config.ifaces)
            .and_then(|()| daemon.browse(SERVICE_TYPE).map_err(mdns_error("cannot browse for managers")))
            .and_then(|events| {
                daemon.register(info).map_err(mdns_error("cannot announce this manager"))?;
                Ok(events)
            });
        let events = match started {
            Ok(events) => events,
            Err(err) => {
                let _ = daemon.shutdown();
                return Err(err);
            }
        };
        tracing::info!(
            id = config.member_id,
            group = config.group,
            ifaces = ?config.ifaces,
            "mdns discovery started (announcing and browsing {SERVICE_TYPE})"
        );
        let (tx, rx) = mpsc::channel(CHANNEL);
        let (stop, stopped) = watch::channel(false);
        let (browsing, browse_wanted) = watch::channel(true);
        let task = runtime.spawn(browse(
            daemon.clone(),
            events,
            config.member_id,
            fullname.clone(),
            tx,
            stopped,
            browse_wanted,
        ));
        Ok((Discovery { daemon, fullname, stop, browsing, task: Some(task) }, rx))
    }

    /// The switch of browsing: off, this manager still answers the queries
    /// of others (a newcomer finds it) but asks nothing. A browser keeps
    /// every record it saw fresh by asking again before it expires, and
    /// every member answers every query: N members browsing cost O(N²)
    /// packets for as long as they run, which at a hundred members is more
    /// than the rest of the group's traffic together.
    pub fn browsing(&self) -> watch::Sender<bool> {
        self.browsing.clone()
    }

    /// Asks the network to confirm the records of the manager `id` (to be
    /// called when the caller lost it): if it does not answer, its records go
    /// in about a second instead of at the end of their 120 s TTL, so that
    /// when it comes back its announcement is reported as new.
    pub fn verify(&self, id: &str) {
        let fullname = format!("{id}.{SERVICE_TYPE}");
        if let Err(err) = self.daemon.verify(fullname, Duration::from_secs(1)) {
            tracing::debug!(id, "mdns: cannot verify a lost manager: {err}");
        }
    }

    /// Says goodbye (peers see the manager removed about a second later) and
    /// stops the mDNS daemon.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // The goodbye is sent by the daemon thread; wait until it is out, but
        // not forever: shutdown must not hang on mDNS.
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = tokio::time::timeout(Duration::from_secs(1), done.recv_async()).await;
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(Duration::from_secs(1), done.recv_async()).await;
        }
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        // After `shutdown` this finds everything stopped already.
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = self.daemon.shutdown();
        }
    }
}

/// The registration: the member id as the instance name (unique, so mDNS
/// never renames it), the identity in TXT records, no probing (probing
/// delays the first announcement by ~1 s; the id is random, so a name
/// conflict means the same manager).
fn service_info(config: &DiscoveryConfig) -> Result<ServiceInfo, DiscoveryError> {
    let mut name = config.name.clone();
    if name.len() > TXT_VALUE_MAX {
        let mut cut = TXT_VALUE_MAX;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    let version = crate::PROTOCOL_VERSION.to_string();
    let port = config.port.to_string();
    // New at every start: a manager that restarts (after kill -9, when the
    // others still cache its records) announces a changed TXT record, which
    // the others report at once instead of taking it for a repeat.
    let boot = format!("{:08x}", rand::random::<u32>());
    let properties = [
        ("id", config.member_id.as_str()),
        ("name", name.as_str()),
        ("group", config.group.as_str()),
        ("v", version.as_str()),
        ("port", port.as_str()),
        ("boot", boot.as_str()),
    ];
    // A loopback or unspecified advertise IP means nothing to another
    // machine: announce the addresses of the chosen interfaces instead.
    let usable = match config.advertise {
        IpAddr::V4(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        IpAddr::V6(_) => false,
    };
    let ips: Vec<IpAddr> = if usable { vec![config.advertise] } else { Vec::new() };
    let host = format!("mgr-{}.local.", config.member_id);
    let mut info = ServiceInfo::new(SERVICE_TYPE, &config.member_id, &host, &ips[..], config.port, &properties[..])
        .map_err(mdns_error("cannot build the mdns announcement"))?;
    if !usable {
        info = info.enable_addr_auto();
    }
    info.set_requires_probe(false);
    Ok(info)
}

/// Interface rules apply in order: everything off, then the chosen ones on.
/// The default rule (IPv4 on, IPv4 loopback off) follows interfaces that
/// come and go, as mdns-sd re-reads them every few seconds.
fn select_interfaces(daemon: &ServiceDaemon, ifaces: &[String]) -> Result<(), DiscoveryError> {
    let rule = mdns_error("cannot select the mdns interfaces");
    daemon.disable_interface(IfKind::All).map_err(rule)?;
    let present: Vec<if_addrs::Interface> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.ip().is_ipv4() && !i.is_loopback())
        .collect();
    if ifaces.is_empty() {
        daemon.enable_interface(IfKind::IPv4).map_err(mdns_error("cannot enable the ipv4 interfaces"))?;
        daemon.disable_interface(IfKind::LoopbackV4).map_err(mdns_error("cannot disable loopback"))?;
        if present.is_empty() {
            tracing::warn!("mdns: no non-loopback IPv4 interface has an address yet; discovery waits for one");
        }
    } else {
        for name in ifaces {
            if !present.iter().any(|i| &i.name == name) {
                tracing::warn!(iface = name, "mdns: this interface has no IPv4 address (yet)");
            }
            daemon
                .enable_interface(IfKind::Name(name.clone()))
                .map_err(mdns_error("cannot enable an mdns interface"))?;
        }
        daemon.disable_interface(IfKind::IPv6).map_err(mdns_error("cannot disable ipv6"))?;
    }
    Ok(())
}

/// Drains the browse subscription for as long as discovery runs: mdns-sd
/// closes a subscriber that falls 1000 events behind without a word, so
/// this loop never waits on anything but the events, the refresh tick and
/// the stop, and browses again when the subscription ends.
async fn browse(
    daemon: ServiceDaemon,
    mut events: mdns_sd::Receiver<ServiceEvent>,
    own_id: String,
    own_fullname: String,
    tx: mpsc::Sender<Found>,
    mut stopped: watch::Receiver<bool>,
    mut wanted: watch::Receiver<bool>,
) {
    let mut known: HashMap<String, Found> = HashMap::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.tick().await;
    loop {
        if !*wanted.borrow_and_update() {
            // Paused: no queries, no refreshes; what was known is forgotten
            // (it would only go stale).
            let _ = daemon.stop_browse(SERVICE_TYPE);
            known.clear();
            tracing::debug!("mdns: browsing paused");
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    changed = wanted.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if *wanted.borrow_and_update() {
                            break;
                        }
                    }
                }
            }
            match daemon.browse(SERVICE_TYPE) {
                Ok(again) => events = again,
                Err(mdns_sd::Error::DaemonShutdown) => return,
                Err(err) => tracing::warn!("mdns: cannot browse again: {err}"),
            }
            tracing::debug!("mdns: browsing again");
        }
        tokio::select! {
            _ = stopped.changed() => return,
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = refresh.tick() => {
                for found in known.values() {
                    offer(&tx, found.clone());
                }
            }
            event = events.recv_async() => match event {
                Ok(ServiceEvent::ServiceResolved(service)) => {
                    if service.get_fullname().eq_ignore_ascii_case(&own_fullname) {
                        continue;
                    }
                    match found(&service, &own_id) {
                        Some(found) => {
                            tracing::debug!(id = found.id, group = found.group, addrs = ?found.addrs, "mdns: found a manager");
                            known.insert(service.get_fullname().to_lowercase(), found.clone());
                            offer(&tx, found);
                        }
                        None => tracing::debug!(service = service.get_fullname(), "mdns: ignored a service without mgr records"),
                    }
                }
                Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                    if let Some(gone) = known.remove(&fullname.to_lowercase()) {
                        tracing::debug!(id = gone.id, "mdns: a manager said goodbye or expired");
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    // Our subscription was closed: we lagged, or the daemon
                    // stopped. Browsing again replaces it; a stopped daemon
                    // refuses, and then there is nothing left to drain.
                    tracing::debug!("mdns: the browse subscription closed; browsing again");
                    match daemon.browse(SERVICE_TYPE) {
                        Ok(again) => events = again,
                        Err(mdns_sd::Error::DaemonShutdown) => return,
                        Err(err) => {
                            tracing::warn!("mdns: cannot browse again: {err}");
                            tokio::select! {
                                _ = stopped.changed() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
            },
        }
    }
}

/// Hands a hint to the caller without ever waiting: a full channel drops it
/// (it comes again with the next announcement or refresh).
fn offer(tx: &mpsc::Sender<Found>, found: Found) {
    match tx.try_send(found) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(found)) => {
            tracing::debug!(id = found.id, "mdns: dropped a hint, the caller is behind (it is sent again)");
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// A resolved service as a manager, if it carries our TXT records and is
/// not this manager. The TXT `port` wins over the SRV port: it is the one
/// the manager says it serves gRPC on.
fn found(service: &ResolvedService, own_id: &str) -> Option<Found> {
    let id = service.get_property_val_str("id")?;
    if id == own_id || id.is_empty() {
        return None;
    }
    let group = service.get_property_val_str("group")?;
    let version = service.get_property_val_str("v")?.parse().ok()?;
    let port = service.get_property_val_str("port").and_then(|p| p.parse().ok()).unwrap_or(service.get_port());
    let mut addrs: Vec<SocketAddr> =
        service.get_addresses_v4().into_iter().map(|ip| SocketAddr::new(IpAddr::V4(ip), port)).collect();
    if addrs.is_empty() {
        return None;
    }
    addrs.sort();
    Some(Found {
        id: id.to_owned(),
        name: service.get_property_val_str("name").unwrap_or_default().to_owned(),
        group: group.to_owned(),
        version,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(advertise: &str) -> DiscoveryConfig {
        DiscoveryConfig {
            member_id: "0123456789abcdef".to_owned(),
            name: "é".repeat(150),
            group: "lab".to_owned(),
            port: 6170,
            advertise: advertise.parse().unwrap(),
            ifaces: Vec::new(),
        }
    }

    #[test]
    fn the_announcement_carries_the_identity() {
        // Building the ServiceInfo sends nothing: no mDNS daemon is started.
        let info = service_info(&config("10.1.2.3")).unwrap();
        assert_eq!(info.get_fullname(), "0123456789abcdef._mgr._tcp.local.");
        assert_eq!(info.get_property_val_str("id"), Some("0123456789abcdef"));
        assert_eq!(info.get_property_val_str("group"), Some("lab"));
        assert_eq!(info.get_property_val_str("v"), Some(crate::PROTOCOL_VERSION.to_string().as_str()));
        assert_eq!(info.get_property_val_str("port"), Some("6170"));
        assert!(info.get_property_val_str("name").unwrap().len() <= TXT_VALUE_MAX);
        assert!(!info.requires_probe());
        assert!(!info.is_addr_auto());
    }

    #[test]
    fn a_loopback_advertise_ip_announces_the_interfaces_instead() {
        assert!(service_info(&config("127.0.0.1")).unwrap().is_addr_auto());
        assert!(service_info(&config("0.0.0.0")).unwrap().is_addr_auto());
    }
}
