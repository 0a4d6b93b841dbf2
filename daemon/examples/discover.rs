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
use std::os::unix::fs::MetadataExt;

use mgr_daemon::discovery::{Discovery, DiscoveryConfig};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [id, name, group, port, advertise, ifaces @ ..] = &args[..] else {
        anyhow::bail!("usage: discover ID NAME GROUP PORT ADVERTISE [IFACE...]");
    };
    if !in_lab_namespace() {
        anyhow::bail!(
            "discover sends mdns: run it only inside a test lab's network namespace (mgrt-*), not on the host"
        );
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

/// Whether this process's network namespace is one the multi-host harness
/// made (`ip netns add mgrt-...`, bind-mounted in /run/netns).
fn in_lab_namespace() -> bool {
    let Ok(own) = std::fs::metadata("/proc/self/ns/net") else { return false };
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return false };
    entries.flatten().any(|entry| {
        entry.file_name().to_string_lossy().starts_with("mgrt-")
            && entry.metadata().is_ok_and(|m| m.dev() == own.dev() && m.ino() == own.ino())
    })
}
