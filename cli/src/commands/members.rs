//! `mgrctl members`: mirrors the `Members` RPC.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    /// One JSON object per member.
    #[arg(long)]
    pub json: bool,
}

pub async fn members(mut client: Client, args: MembersArgs) -> anyhow::Result<u8> {
    let reply = client.members(mgr_proto::MembersRequest {}).await.map_err(super::status)?.into_inner();
    print(&reply.members, args.json)?;
    Ok(0)
}

/// Prints members as a table (the answering member marked `*`) or JSON lines.
pub fn print(members: &[mgr_proto::Member], json: bool) -> anyhow::Result<()> {
    let mut out = crate::stdout::lock();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut table =
        crate::table::new(&["", "ID", "NAME", "ADDRESS", "STATE", "INSTANCES", "LIMITS", "LAST SEEN"], &["INSTANCES"]);
    for m in members {
        if json {
            let value = serde_json::json!({
                "id": m.id, "name": m.name, "address": m.address, "state": m.state,
                "instances": m.instances, "last_seen_ms": m.last_seen_ms, "allow_exec": m.allow_exec, "me": m.me,
                "limits": m.limits,
            });
            writeln!(out, "{value}")?;
            continue;
        }
        let seen = match m.last_seen_ms {
            0 => "never".to_owned(),
            _ if m.me => "-".to_owned(),
            ms => format!("{:.1}s ago", now.saturating_sub(ms) as f64 / 1000.0),
        };
        let mark = if m.me { "*" } else { "" };
        table.add_row(vec![
            mark.to_owned(),
            m.id.clone(),
            m.name.clone(),
            m.address.clone(),
            m.state.clone(),
            m.instances.to_string(),
            // Whether it can limit an instance's memory, cpus and processes.
            if m.limits { "on" } else { "off" }.to_owned(),
            seen,
        ]);
    }
    if !json {
        out.write_all(crate::table::render(&table).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
