//! `Remove`: delete runs (logs, events, records) on every member that keeps
//! some of them.

use mgr_proto::{RemoveReply, RemoveRequest};
use tonic::Status;

use super::Control;
use super::fanout::on_peers;
use crate::supervisor::Error;

/// Most runs one call may name.
const MAX_RUNS: usize = 1024;

pub(super) async fn remove(control: &Control, req: RemoveRequest) -> Result<RemoveReply, Status> {
    if req.runs.is_empty() || req.runs.len() > MAX_RUNS {
        return Err(Error::BadRequest(format!("name 1 to {MAX_RUNS} runs to remove")).into());
    }
    for run in &req.runs {
        crate::names::check(crate::names::Kind::Run, run)?;
    }
    let mut removed = control.supervisor.remove(req.runs.clone(), req.force).await?;
    if !req.local {
        let forwarded = RemoveRequest { local: true, ..req.clone() };
        for (member, answer) in on_peers(control, |mut client| {
            let request = forwarded.clone();
            async move { client.remove(request).await }
        })
        .await
        {
            match answer {
                Ok(reply) => removed.extend(reply.removed),
                Err(status) => return Err(super::status::on_member_call(&member.name, "remove", status)),
            }
        }
    }
    removed.sort();
    removed.dedup();
    if !req.local
        && let Some(unknown) = req.runs.iter().find(|r| !removed.contains(r))
    {
        return Err(Error::UnknownRun(unknown.clone()).into());
    }
    Ok(RemoveReply { removed })
}
