//! `mgrctl modules [NAME]`: mirrors the `Modules` RPC.

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct ModulesArgs {
    /// A module to describe: its interface, properties and algorithms.
    pub name: Option<String>,
    /// One JSON object per module.
    #[arg(long)]
    pub json: bool,
}

pub async fn modules(mut client: Client, args: ModulesArgs) -> anyhow::Result<u8> {
    let described = args.name.is_some();
    let reply = client
        .modules(mgr_proto::ModulesRequest { name: args.name.unwrap_or_default() })
        .await
        .map_err(super::status)?
        .into_inner();
    for m in reply.modules {
        if args.json {
            let value = serde_json::json!({
                "name": m.name, "summary": m.summary, "reference": m.reference,
                "description": m.description, "algorithms": m.algorithms,
                "manifest": (!m.manifest.is_empty()).then_some(&m.manifest),
            });
            println!("{value}");
        } else if described {
            let reference = if m.reference.is_empty() { String::new() } else { format!(" ({})", m.reference) };
            println!("{}{reference}: {}", m.name, m.summary);
            if !m.algorithms.is_empty() {
                println!("Algorithms: {}", m.algorithms.join(", "));
            }
            if !m.manifest.is_empty() {
                println!("From: {}", m.manifest);
            }
            println!("\n{}", m.description.trim_end());
        } else {
            let origin = if m.manifest.is_empty() { "" } else { "  [manifest]" };
            println!("{:<34} {:<11} {}{origin}", m.name, m.reference, m.summary);
        }
    }
    Ok(0)
}
