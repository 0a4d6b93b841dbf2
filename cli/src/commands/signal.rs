//! `mgrctl stop|kill|pause|resume|restart TARGET…`: mirror the `Signal`
//! RPC, once per target, all at once.

use std::io::Write;

use mgr_proto::SignalKind;

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct SignalArgs {
    /// RUN for every instance of a run, RUN/p1 for one; several may be given.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// The examples of `VERB --help`.
pub fn examples(verb: &str) -> String {
    format!(
        "Examples:\n  mgrctl {verb} r1              every instance of r1\n  mgrctl {verb} r1/p2 r2/p1 r3  several targets: each is tried; every failure is told, and the status is 1 if any failed"
    )
}

pub async fn signal(client: Client, args: SignalArgs, kind: SignalKind) -> anyhow::Result<u8> {
    // Every target at once: stopping several runs takes one grace period,
    // not one each. Answers are told in the order the targets were given.
    let calls: Vec<_> = args
        .targets
        .iter()
        .map(|target| {
            let (mut client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let request = mgr_proto::SignalRequest { target: target.clone(), kind: kind.into(), local: false };
                match client.signal(request).await {
                    Ok(reply) => Ok(reply.into_inner()),
                    Err(status) => Err(crate::suggest::target(&mut client, &target, status).await),
                }
            })
        })
        .collect();
    let mut out = crate::stdout::lock();
    let mut failed = false;
    for (target, call) in args.targets.iter().zip(calls) {
        match call.await? {
            Ok(reply) if reply.instances.is_empty() => writeln!(out, "{target}: nothing to do")?,
            Ok(reply) => {
                for i in reply.instances {
                    writeln!(out, "{}/{}: {}", i.run, i.name, i.state)?;
                }
            }
            Err(err) => {
                failed = true;
                // Told as it comes, between the answers it belongs with.
                out.flush()?;
                crate::note!("mgrctl: {err:#}");
            }
        }
    }
    out.flush()?;
    Ok(u8::from(failed))
}
