//! `Join`: merge this manager's group with the manager at an address.

use mgr_proto::{JoinReply, JoinRequest};
use tonic::Status;

use super::Control;
use super::members::members_to_proto;
use super::status::GroupError;

pub(super) async fn join(control: &Control, req: JoinRequest) -> Result<JoinReply, Status> {
    if req.address.parse::<std::net::SocketAddr>().is_err() {
        return Err(GroupError::BadAddress(crate::names::printable(&req.address, 64)).into());
    }
    control.group.join(&req.address).await?;
    // The joined manager answers the announcement with a sample of the
    // group, and gossip brings the rest; give it a probe period so the
    // reply shows the merged group.
    tokio::time::sleep(crate::membership::PROBE_PERIOD).await;
    Ok(JoinReply { members: members_to_proto(control).await })
}
