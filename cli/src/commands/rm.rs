//! `mgrctl rm RUN…`: mirrors the `Remove` RPC.

use std::io::Write;

use crate::client::Client;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  mgrctl rm r1 r2          # delete two ended runs, on every member\n  mgrctl rm demo --force   # stop (kill) what still runs of demo, then delete it"
)]
pub struct RmArgs {
    /// The runs to delete: their logs, events and records, on every member.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<String>,
    /// Kill the instances of a run that still runs, then delete it.
    #[arg(long)]
    pub force: bool,
}

pub async fn rm(mut client: Client, args: RmArgs) -> anyhow::Result<u8> {
    let request = mgr_proto::RemoveRequest { runs: args.runs, force: args.force, local: false };
    let reply = client.remove(request).await.map_err(super::status)?.into_inner();
    let mut out = crate::stdout::lock();
    for run in reply.removed {
        writeln!(out, "removed {run}")?;
    }
    out.flush()?;
    Ok(0)
}
