//! `Members`: the members of the group as this manager sees them.

use mgr_proto::{Member, MembersReply, MembersRequest};
use tonic::Status;

use super::Control;

pub(super) async fn members(control: &Control, _req: MembersRequest) -> Result<MembersReply, Status> {
    let instances = control.supervisor.live_instances().await as u32;
    let members = control
        .membership
        .members()
        .into_iter()
        .map(|m| Member {
            id: m.id,
            name: m.name,
            address: m.address,
            state: m.state.to_owned(),
            instances,
            last_seen_ms: m.last_seen_ms,
            allow_exec: false,
            me: true,
        })
        .collect();
    Ok(MembersReply { members })
}
