//! `Prune`: delete the ended runs older than an age, on every member.

use std::time::Duration;

use mgr_proto::{PruneReply, PruneRequest};
use tonic::Status;

use super::Control;
use super::fanout::on_peers;

pub(super) async fn prune(control: &Control, req: PruneRequest) -> Result<PruneReply, Status> {
    let mut removed = control.supervisor.prune(Duration::from_millis(req.older_than_ms)).await?;
    if !req.local {
        let forwarded = PruneRequest { local: true, ..req };
        for (member, answer) in on_peers(control, |mut client| async move { client.prune(forwarded).await }).await {
            match answer {
                Ok(reply) => removed.extend(reply.removed),
                Err(status) => return Err(super::status::on_member_call(&member.name, "prune", status)),
            }
        }
    }
    removed.sort();
    removed.dedup();
    Ok(PruneReply { removed })
}
