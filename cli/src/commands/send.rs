//! `mgrctl send RUN[/pN] TEXT…`: mirrors the `Send` RPC.

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// RUN/p1 for one instance, RUN for all of them.
    pub target: String,
    /// The line to write (words are joined by spaces; a newline is added).
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
    pub text: Vec<String>,
}

pub async fn send(mut client: Client, args: SendArgs) -> anyhow::Result<u8> {
    let line = args.text.join(" ");
    let request = mgr_proto::SendRequest { target: args.target.clone(), line: line.into_bytes().into(), local: false };
    if let Err(status) = client.send(request).await {
        return Err(crate::suggest::target(&mut client, &args.target, status).await);
    }
    Ok(0)
}
