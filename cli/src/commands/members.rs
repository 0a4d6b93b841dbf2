//! `mgrctl members`: mirrors the `Members` RPC.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    /// One JSON object per member.
    #[arg(long)]
    pub json: bool,
    /// This manager's view only: do not ask every member how many instances
    /// it runs (shown as -). Quick on a large group.
    #[arg(long)]
    pub quick: bool,
}

pub async fn members(mut client: Client, args: MembersArgs) -> anyhow::Result<u8> {
    let request = mgr_proto::MembersRequest { local: args.quick };
    let reply = client.members(request).await.map_err(super::status)?.into_inner();
    print(&reply.members, args.json, !args.quick)?;
    if !args.json {
        let mut out = crate::stdout::lock();
        if !reply.unreachable.is_empty() {
            // Alive by the membership protocol, but their gRPC port did not
            // answer in time: their instance counts are unknown.
            writeln!(out, "did not answer in time (instances unknown): {}", reply.unreachable.join(", "))?;
        }
        if reply.dropped_datagrams > 0 {
            writeln!(
                out,
                "membership datagrams dropped: {} (not sealed with this group's key: another key or group on the \
                 network, or a forgery)",
                reply.dropped_datagrams
            )?;
        }
        out.flush()?;
    }
    Ok(0)
}

/// Prints members as a table (the answering member marked `*`) or JSON lines;
/// without `counted`, only the answering member's instance count is known.
pub fn print(members: &[mgr_proto::Member], json: bool, counted: bool) -> anyhow::Result<()> {
    let mut out = crate::stdout::lock();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut table =
        crate::table::new(&["", "ID", "NAME", "ADDRESS", "STATE", "INSTANCES", "LIMITS", "LAST SEEN"], &["INSTANCES"]);
    for m in members {
        if json {
            let value = serde_json::json!({
                "id": m.id, "name": m.name, "address": m.address, "state": m.state,
                "instances": (counted || m.me).then_some(m.instances), "last_seen_ms": m.last_seen_ms, "allow_exec": m.allow_exec, "me": m.me,
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
            if counted || m.me { m.instances.to_string() } else { "-".to_owned() },
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
