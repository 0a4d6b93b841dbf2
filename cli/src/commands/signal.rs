//! `mgrctl stop|kill|pause|resume|restart RUN[/pN]`: mirror the `Signal` RPC.

use mgr_proto::SignalKind;

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct SignalArgs {
    /// RUN for every instance of a run, RUN/p1 for one.
    pub target: String,
}

pub async fn signal(mut client: Client, args: SignalArgs, kind: SignalKind) -> anyhow::Result<u8> {
    let reply = client
        .signal(mgr_proto::SignalRequest { target: args.target.clone(), kind: kind.into(), local: false })
        .await
        .map_err(super::status)?
        .into_inner();
    if reply.instances.is_empty() {
        println!("{}: nothing to do", args.target);
    }
    for i in reply.instances {
        println!("{}/{}: {}", i.run, i.name, i.state);
    }
    Ok(0)
}
