//! `mgrctl members`: mirrors the `Members` RPC.

use std::time::{Duration, UNIX_EPOCH};

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    /// One JSON object per member.
    #[arg(long)]
    pub json: bool,
}

pub async fn members(mut client: Client, args: MembersArgs) -> anyhow::Result<u8> {
    let reply = client.members(mgr_proto::MembersRequest {}).await.map_err(super::status)?.into_inner();
    if !args.json {
        println!("{:<18} {:<16} {:<22} {:<8} {:>9}  LAST SEEN", "ID", "NAME", "ADDRESS", "STATE", "INSTANCES");
    }
    for m in reply.members {
        if args.json {
            let value = serde_json::json!({
                "id": m.id, "name": m.name, "address": m.address, "state": m.state,
                "instances": m.instances, "last_seen_ms": m.last_seen_ms,
            });
            println!("{value}");
        } else {
            let seen = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(m.last_seen_ms));
            println!("{:<18} {:<16} {:<22} {:<8} {:>9}  {seen}", m.id, m.name, m.address, m.state, m.instances);
        }
    }
    Ok(0)
}
