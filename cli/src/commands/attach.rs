//! `mgrctl attach RUN/pN`: one instance in this terminal, as if it had its
//! own: its recent and new output here, every typed line to its stdin.
//! Uses the `Logs` and `Send` RPCs. Ends when the instance ends, when stdin
//! closes, on Ctrl-C or when stdout's reader goes away (all of which leave
//! the instance running).

use tokio::io::AsyncBufReadExt;

use super::logs::{OnClose, Streamed, layout, stream};
use crate::client::Client;
use crate::render::Style;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  mgrctl attach r1/p2     p2's last lines, then each line typed goes to its stdin; Ctrl-C detaches, p2 goes on")]
pub struct AttachArgs {
    /// The instance, as RUN/p1.
    pub target: String,
    /// Lines of earlier output to show first.
    #[arg(long, default_value_t = 10)]
    pub tail: u64,
}

pub async fn attach(mut client: Client, args: AttachArgs) -> anyhow::Result<u8> {
    let Some((run, instance)) = args.target.split_once('/') else {
        anyhow::bail!("attach takes one instance, as RUN/p1, not '{}'", args.target);
    };
    if let Some(unknown) = crate::suggest::unknown(&mut client, run, Some(instance)).await {
        anyhow::bail!(unknown);
    }
    let (width, members) =
        layout(&mut client, std::iter::once(args.target.rsplit('/').next().unwrap_or_default())).await?;
    let request = mgr_proto::LogsRequest {
        target: args.target.clone(),
        since: 1,
        follow: true,
        tail: args.tail.max(1),
        local: false,
    };
    let mut output = client.clone();
    let output =
        async move { stream(&mut output, request, Style::detect(false, members), width, OnClose::Stop, None).await };
    let input = async {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let request =
                mgr_proto::SendRequest { target: args.target.clone(), line: line.into_bytes().into(), local: false };
            if let Err(err) = client.send(request).await {
                crate::note!("mgrctl: {}", super::status(err));
            }
        }
    };
    tokio::select! {
        // Detached by a closed output: quietly, as any command ends then.
        result = output => if result? == Streamed::Closed { return Ok(0) },
        _ = input => {}
        _ = tokio::signal::ctrl_c() => crate::note!("mgrctl: detached; {} goes on", args.target),
    }
    Ok(0)
}
