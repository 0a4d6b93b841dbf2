//! `mgrctl forget MEMBER`: mirrors the `Forget` RPC.

use std::io::Write;

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The dead member to forget: its name, or its id when names repeat
    /// (see `mgrctl members`).
    pub member: String,
}

pub async fn forget(mut client: Client, args: ForgetArgs) -> anyhow::Result<u8> {
    let request = mgr_proto::ForgetRequest { member: args.member.clone() };
    let reply = client.forget(request).await.map_err(super::status)?.into_inner();
    let mut out = crate::stdout::lock();
    writeln!(out, "forgot member {} ({})", args.member, reply.id)?;
    out.flush()?;
    Ok(0)
}
