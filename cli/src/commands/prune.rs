//! `mgrctl prune --older-than AGE`: mirrors the `Prune` RPC.

use std::io::Write;
use std::time::Duration;

use crate::client::Client;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  mgrctl prune --older-than 7d   # the runs that ended more than a week ago")]
pub struct PruneArgs {
    /// Delete the runs that ended more than this long ago (30m, 12h, 7d…),
    /// on every member. Runs that still run are never pruned.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub older_than: Duration,
}

pub async fn prune(mut client: Client, args: PruneArgs) -> anyhow::Result<u8> {
    let older_than_ms = args.older_than.as_millis().min(u64::MAX as u128) as u64;
    let reply = client.prune(mgr_proto::PruneRequest { older_than_ms, local: false }).await.map_err(super::status)?;
    let removed = reply.into_inner().removed;
    let mut out = crate::stdout::lock();
    if removed.is_empty() {
        writeln!(out, "no run ended more than {} ago", humantime::format_duration(args.older_than))?;
    }
    for run in removed {
        writeln!(out, "removed {run}")?;
    }
    out.flush()?;
    Ok(0)
}
