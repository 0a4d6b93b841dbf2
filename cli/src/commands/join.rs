//! `mgrctl join IP:PORT`: mirrors the `Join` RPC.

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The address (IP:PORT, its --listen) of a manager of the same group.
    pub address: String,
    /// One JSON object per member of the merged group.
    #[arg(long)]
    pub json: bool,
}

pub async fn join(mut client: Client, args: JoinArgs) -> anyhow::Result<u8> {
    let request = mgr_proto::JoinRequest { address: args.address };
    let reply = client.join(request).await.map_err(super::status)?.into_inner();
    super::members::print(&reply.members, args.json, false)?;
    Ok(0)
}
