//! `Forget`: remove a dead member from this manager's view of the group
//! (members dead for an hour are forgotten by themselves).

use mgr_proto::{ForgetReply, ForgetRequest};
use tonic::Status;

use super::Control;
use super::status::GroupError;
use crate::membership::ForgetError;

pub(super) async fn forget(control: &Control, req: ForgetRequest) -> Result<ForgetReply, Status> {
    crate::names::check(crate::names::Kind::Member, &req.member)?;
    match control.group.forget(&req.member).await {
        Ok(peer) => Ok(ForgetReply { id: peer.id }),
        Err(ForgetError::Alive(member)) => Err(GroupError::StillAlive(member).into()),
        Err(ForgetError::Unknown(member)) => Err(GroupError::UnknownMember(member).into()),
        Err(err @ ForgetError::Ambiguous(_)) => Err(Status::failed_precondition(err.to_string())),
    }
}
