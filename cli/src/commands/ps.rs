//! `mgrctl ps [RUN]`: mirrors the `Ps` RPC.

use mgr_proto::Instance;

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Only this run.
    pub run: Option<String>,
    /// One JSON object per instance.
    #[arg(long)]
    pub json: bool,
}

/// How an instance ended, as shown in the EXIT column.
pub fn exit_text(i: &Instance) -> String {
    match (i.exit_code, i.signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => {
            nix::sys::signal::Signal::try_from(signal).map_or(format!("signal {signal}"), |s| s.as_str().to_owned())
        }
        _ => "-".to_owned(),
    }
}

pub async fn ps(mut client: Client, args: PsArgs) -> anyhow::Result<u8> {
    let reply = client
        .ps(mgr_proto::PsRequest { run: args.run.unwrap_or_default(), local: false })
        .await
        .map_err(super::status)?
        .into_inner();
    if !args.json {
        println!(
            "{:<12} {:<9} {:<12} {:<22} {:>8} {:<9} {:<8} MODULE",
            "RUN", "INSTANCE", "MEMBER", "ADDRESS", "PID", "STATE", "EXIT"
        );
    }
    for run in reply.runs {
        for i in &run.instances {
            // In a run of several roles each instance runs its role's module.
            let module = if i.module.is_empty() { &run.module } else { &i.module };
            if args.json {
                let value = serde_json::json!({
                    "run": i.run, "instance": i.name, "member": i.member, "member_id": i.member_id, "address": i.address,
                    "pid": i.pid, "state": i.state, "exit_code": i.exit_code, "signal": i.signal,
                    "starts": i.starts, "last_seq": i.last_seq, "module": module, "role": i.role,
                    "detail": i.detail,
                });
                println!("{value}");
            } else {
                println!(
                    "{:<12} {:<9} {:<12} {:<22} {:>8} {:<9} {:<8} {}",
                    i.run,
                    i.name,
                    i.member,
                    i.address,
                    i.pid,
                    if i.detail.is_empty() { i.state.clone() } else { format!("{} ({})", i.state, i.detail) },
                    exit_text(i),
                    if i.role.is_empty() { module.clone() } else { format!("{module} ({})", i.role) }
                );
            }
        }
    }
    Ok(0)
}
