//! `mgrctl logs TARGET`: mirrors the `Logs` RPC. Also the output loop that
//! `launch`, `exec` and `attach` share.

use std::io::Write;

use crate::client::Client;
use crate::render::{Renderer, Style};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// RUN for every instance of a run, RUN/p1 for one.
    pub target: String,
    /// Keep following new lines until the instances end.
    #[arg(short, long)]
    pub follow: bool,
    /// Start at this line number (per instance; lines are numbered from 1,
    /// and `--json` shows each line's number as "seq").
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    pub since: u64,
    /// Start at the last N lines of each instance instead.
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub tail: Option<u64>,
    /// One JSON object per line: run, instance, member, stream, seq, time, text.
    #[arg(long)]
    pub json: bool,
}

pub async fn logs(mut client: Client, args: LogsArgs) -> anyhow::Result<u8> {
    let run = args.target.split('/').next().unwrap_or_default().to_owned();
    let reply = client.ps(mgr_proto::PsRequest { run, local: false }).await.map_err(super::status)?.into_inner();
    let (width, members) =
        layout(&mut client, reply.runs.iter().flat_map(|r| &r.instances).map(|i| i.name.as_str())).await?;
    let request = mgr_proto::LogsRequest {
        target: args.target,
        since: args.since,
        follow: args.follow,
        tail: args.tail.unwrap_or(0),
        local: false,
    };
    stream(&mut client, request, Style::detect(args.json, members), width).await?;
    Ok(0)
}

/// Prefix width for these instance names, and whether to show members
/// (only once the group has several).
pub async fn layout<'a>(client: &mut Client, names: impl Iterator<Item = &'a str>) -> anyhow::Result<(usize, bool)> {
    let members = client.members(mgr_proto::MembersRequest {}).await.map_err(super::status)?.into_inner().members;
    Ok(layout_for(members.iter().map(|m| m.name.as_str()), names))
}

/// [`layout`] when the member names are known already.
pub fn layout_for<'m, 'n>(
    members: impl Iterator<Item = &'m str>,
    names: impl Iterator<Item = &'n str>,
) -> (usize, bool) {
    let members: Vec<&str> = members.collect();
    let several = members.len() > 1;
    let widest_member = members.iter().map(|m| m.len() + 1).max().unwrap_or(0);
    let widest = names.map(str::len).max().unwrap_or(0) + if several { widest_member } else { 0 };
    (widest, several)
}

/// Prints the stream of a `Logs` request until it ends.
pub async fn stream(
    client: &mut Client,
    request: mgr_proto::LogsRequest,
    style: Style,
    width: usize,
) -> anyhow::Result<()> {
    let mut chunks = client.logs(request).await.map_err(super::status)?.into_inner();
    let stdout = std::io::stdout();
    let mut renderer = Renderer::new(std::io::BufWriter::with_capacity(256 * 1024, stdout.lock()), style, width);
    while let Some(chunk) = chunks.message().await.map_err(super::status)? {
        renderer.chunk(&chunk)?;
        renderer.flush()?;
    }
    renderer.flush()?;
    std::io::stdout().flush()?;
    Ok(())
}
