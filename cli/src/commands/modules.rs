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
    for m in reply.modules {
        if args.json {
            let value = serde_json::json!({
                "name": m.name, "summary": m.summary, "reference": m.reference,
                "description": m.description, "algorithms": m.algorithms,
                "manifest": (!m.manifest.is_empty()).then_some(&m.manifest),
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
    out.flush()?;
    Ok(0)
}
