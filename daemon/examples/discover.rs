//! Test-only: runs [`mgr_daemon::discovery::Discovery`] alone and prints
//! each manager it finds as one JSON line, so the multi-host tests
//! (`cli/tests/cli/netns.rs`) can check discovery across network
//! namespaces before the daemon uses it.
//!
//! It sends mDNS, so it must never run on the host's own interfaces: it
//! refuses to start in the initial network namespace. It stops (with a
//! goodbye) when its standard input closes.
//!
//! `discover ID NAME GROUP PORT ADVERTISE [IFACE...]`

use std::io::Write;

use mgr_daemon::discovery::{Discovery, DiscoveryConfig};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [id, name, group, port, advertise, ifaces @ ..] = &args[..] else {
        anyhow::bail!("usage: discover ID NAME GROUP PORT ADVERTISE [IFACE...]");
    };
    let own = std::fs::read_link("/proc/self/ns/net")?;
    let init = std::fs::read_link("/proc/1/ns/net")?;
    if own == init {
        anyhow::bail!("discover sends mdns: run it inside a test network namespace, not on the host");
    }
    let config = DiscoveryConfig {
        member_id: id.clone(),
        name: name.clone(),
        group: group.clone(),
        port: port.parse()?,
        advertise: advertise.parse()?,
        ifaces: ifaces.to_vec(),
    };
    let (discovery, mut found) = Discovery::start(config)?;
    println!("{}", serde_json::json!({"started": id}));
    std::io::stdout().flush()?;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            read = stdin.read(&mut buf) => if !matches!(read, Ok(n) if n > 0) { break },
            Some(found) = found.recv() => {
                let addrs: Vec<String> = found.addrs.iter().map(ToString::to_string).collect();
                let line = serde_json::json!({
                    "id": found.id, "name": found.name, "group": found.group,
                    "version": found.version, "addrs": addrs,
                });
                println!("{line}");
                std::io::stdout().flush()?;
            }
        }
    }
    discovery.shutdown().await;
    Ok(())
}
