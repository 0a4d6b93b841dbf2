//! `Send`: one line to the stdin of an instance, or of every instance of a run.

use mgr_proto::{SendReply, SendRequest};
use tonic::Status;

use super::Control;
use crate::supervisor::Target;

pub(super) async fn send(control: &Control, req: SendRequest) -> Result<SendReply, Status> {
    let target = Target::parse(&req.target);
    let delivered = control.supervisor.send(target, req.line).await?;
    Ok(SendReply { delivered })
}
