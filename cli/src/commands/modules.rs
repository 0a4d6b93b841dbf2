//! `mgrctl modules [NAME]`: mirrors the `Modules` RPC.

use std::io::Write;

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct ModulesArgs {
    /// A module to describe: its interface, properties and algorithms
    /// (the name's case does not matter).
    pub name: Option<String>,
    /// One JSON object per module.
    #[arg(long)]
    pub json: bool,
}

pub async fn modules(mut client: Client, args: ModulesArgs) -> anyhow::Result<u8> {
    let name = args.name.unwrap_or_default();
    let described = !name.is_empty();
    let reply = match client.modules(mgr_proto::ModulesRequest { name: name.clone() }).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(crate::suggest::module(&mut client, &name, status).await),
    };
    let mut out = crate::stdout::lock();
    let mut table = crate::table::new(&["MODULE", "REFERENCE", "SUMMARY"], &[]);
    let (modules, broken): (Vec<_>, Vec<_>) = reply.modules.into_iter().partition(|m| m.error.is_empty());
    for m in modules {
        if args.json {
            let manifest = !m.manifest.is_empty();
            let value = serde_json::json!({
                "name": m.name, "summary": m.summary, "reference": m.reference,
                "description": m.description, "algorithms": m.algorithms,
                "manifest": manifest.then_some(&m.manifest),
                "implements": (!m.implements.is_empty()).then_some(&m.implements),
                "properties": m.properties, "socket": m.socket, "faults": m.faults,
            });
            writeln!(out, "{value}")?;
        } else if described {
            let reference = if m.reference.is_empty() { String::new() } else { format!(" ({})", m.reference) };
            writeln!(out, "{}{reference}: {}", m.name, m.summary)?;
            if !m.algorithms.is_empty() {
                writeln!(out, "Algorithms: {}", m.algorithms.join(", "))?;
            }
            if !m.manifest.is_empty() {
                writeln!(out, "From: {}", m.manifest)?;
                // What a manifest declares decides what check does with it
                // and whether faults reach it: said where its author looks.
                let implements =
                    if m.implements.is_empty() { "nothing (check needs --property)" } else { &m.implements };
                writeln!(out, "Implements: {implements}")?;
                if !m.properties.is_empty() {
                    writeln!(out, "Properties checked: {}", m.properties.join(", "))?;
                }
                writeln!(out, "Socket: {} ({})", m.socket, socket_meaning(&m.socket))?;
                let faults = if m.faults {
                    "applied by the module"
                } else {
                    "refused (its manifest does not say faults = true)"
                };
                writeln!(out, "Faults: {faults}")?;
            }
            writeln!(out, "\n{}", m.description.trim_end())?;
        } else {
            let origin = if m.manifest.is_empty() { "" } else { "  [manifest]" };
            table.add_row(vec![m.name, m.reference, format!("{}{origin}", m.summary)]);
        }
    }
    if !args.json && !described {
        out.write_all(crate::table::render(&table).as_bytes())?;
    }
    // Manifests the manager left out, with why: their authors look here,
    // not in the manager's log.
    for b in &broken {
        if args.json {
            writeln!(out, "{}", serde_json::json!({"manifest": b.manifest, "error": b.error}))?;
        } else if !described {
            writeln!(out, "left out: {}: {}", b.manifest, b.error)?;
        }
    }
    out.flush()?;
    Ok(0)
}

fn socket_meaning(mode: &str) -> &'static str {
    match mode {
        "inherit" => "takes the manager's bound socket from MGR_UDP_FD",
        _ => "binds MGR_ADDR itself",
    }
}
