//! `Members`: the members of the group as this manager sees them.

use mgr_proto::{Member, MembersReply, MembersRequest};
use tonic::Status;

use super::Control;

pub(super) async fn members(control: &Control, _req: MembersRequest) -> Result<MembersReply, Status> {
    Ok(MembersReply { members: members_to_proto(control).await })
}

pub(super) async fn members_to_proto(control: &Control) -> Vec<Member> {
    let here = control.supervisor.live_instances().await as u32;
    control
        .group
        .view()
        .members
        .iter()
        .map(|m| Member {
            id: m.info.id.clone(),
            name: m.info.name.clone(),
            address: m.info.address.clone(),
            state: m.state.as_str().to_owned(),
            instances: if m.me { here } else { m.info.instances },
            last_seen_ms: m.last_seen_ms,
            allow_exec: m.info.allow_exec,
            limits: m.info.limits,
            me: m.me,
        })
        .collect()
}
