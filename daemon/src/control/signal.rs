//! `Signal`: stop, kill, pause, resume or restart a run or an instance,
//! wherever in the group it runs.

use mgr_proto::{SignalKind, SignalReply, SignalRequest};
use tonic::Status;

use super::fanout::{locate, lost, manager};
use super::{Control, ps::instance_to_proto};
use crate::supervisor::{Action, Error, Target};

pub(super) async fn signal(control: &Control, req: SignalRequest) -> Result<SignalReply, Status> {
    let action = match SignalKind::try_from(req.kind) {
        Ok(SignalKind::Stop) => Action::Stop,
        Ok(SignalKind::Kill) => Action::Kill,
        Ok(SignalKind::Pause) => Action::Pause,
        Ok(SignalKind::Resume) => Action::Resume,
        Ok(SignalKind::Restart) => Action::Restart,
        Ok(SignalKind::Unspecified) | Err(_) => {
            return Err(Error::BadRequest(format!("unknown signal kind {}", req.kind)).into());
        }
    };
    let target = Target::parse(&req.target)?;
    let local = |target: Target| async move {
        let instances = control.supervisor.act(target, action).await?;
        Ok::<_, Status>(instances.into_iter().map(instance_to_proto).collect::<Vec<_>>())
    };
    if req.local {
        return Ok(SignalReply { instances: local(target).await? });
    }
    let located = locate(control, &target).await?;
    if let (Some(instance), Some((_, member, _))) = (&target.instance, located.lost.first()) {
        return Err(lost(&target.run, instance, member));
    }
    // Every member acts at once (up to 64 at a time): a stop of a run
    // spread over four members takes one grace period, not four.
    let remote = located.remote.into_iter().map(|(_, channel, _)| {
        let request = SignalRequest { target: req.target.clone(), kind: req.kind, local: true };
        async move { manager(channel).signal(request).await.map(|r| r.into_inner().instances) }
    });
    let (here, there) = tokio::join!(
        async { if located.local { Some(local(target.clone()).await) } else { None } },
        super::fanout::in_waves(remote.collect())
    );
    let mut instances = Vec::new();
    for result in here.into_iter().chain(there) {
        instances.extend(result?);
    }
    instances.sort_by_key(|i| super::fanout::instance_number(&i.name));
    Ok(SignalReply { instances })
}
