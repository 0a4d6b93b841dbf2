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
            });
            println!("{value}");
        } else if described {
            println!("{} ({}): {}", m.name, m.reference, m.summary);
            if !m.algorithms.is_empty() {
                println!("Algorithms: {}", m.algorithms.join(", "));
            }
            println!("\n{}", m.description.trim_end());
        } else {
            println!("{:<34} {:<11} {}", m.name, m.reference, m.summary);
        }
    }
    Ok(0)
}
