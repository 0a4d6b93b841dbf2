//! `Send`: one line to the stdin of an instance, or of every instance of a
//! run, wherever in the group they run.

use mgr_proto::{SendReply, SendRequest};
use tonic::Status;

use super::Control;
use super::fanout::{locate, lost, manager};
use crate::supervisor::{Error, Target};

pub(super) async fn send(control: &Control, req: SendRequest) -> Result<SendReply, Status> {
    let target = Target::parse(&req.target)?;
    // Refused here, before it is forwarded to any member.
    if req.line.len() >= crate::supervisor::STDIN_BYTES {
        return Err(Error::LineTooLong(req.line.len()).into());
    }
    if req.local {
        return Ok(SendReply { delivered: control.supervisor.send(target, req.line).await? });
    }
    let located = locate(control, &target).await?;
    if let (Some(instance), Some((_, member, _))) = (&target.instance, located.lost.first()) {
        return Err(lost(&target.run, instance, member));
    }
    let mut delivered = Vec::new();
    let mut first_error = None;
    if located.local {
        match control.supervisor.send(target.clone(), req.line.clone()).await {
            Ok(names) => delivered.extend(names),
            Err(err) => first_error = Some(Status::from(err)),
        }
    }
    for (_, channel, _) in located.remote {
        let request = SendRequest { target: req.target.clone(), line: req.line.clone(), local: true };
        match manager(channel).send(request).await {
            Ok(reply) => delivered.extend(reply.into_inner().delivered),
            Err(status) => {
                first_error.get_or_insert(status);
            }
        }
    }
    // A run's line reaches those that run; it fails only if none does.
    if delivered.is_empty() {
        return Err(first_error.unwrap_or_else(|| Error::NotRunning(format!("run '{}'", target.run)).into()));
    }
    if target.instance.is_some()
        && let Some(err) = first_error
    {
        return Err(err);
    }
    delivered.sort_by_key(|n| super::fanout::instance_number(n));
    Ok(SendReply { delivered })
}
