//! `Signal`: stop, kill, pause, resume or restart a run or an instance.

use mgr_proto::{SignalKind, SignalReply, SignalRequest};
use tonic::Status;

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
    let instances = control.supervisor.act(Target::parse(&req.target), action).await?;
    Ok(SignalReply { instances: instances.into_iter().map(instance_to_proto).collect() })
}
