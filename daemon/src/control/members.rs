//! `Members`: the members of the group as this manager sees it, each live
//! one asked how many instances it runs.

use mgr_proto::{Member, MembersReply, MembersRequest};
use tonic::Status;

use super::Control;
use super::fanout::on_peers;

pub(super) async fn members(control: &Control, req: MembersRequest) -> Result<MembersReply, Status> {
    let dropped_datagrams = control.group.dropped_datagrams();
    let mut members = members_to_proto(control).await;
    if req.local {
        return Ok(MembersReply { members, unreachable: Vec::new(), dropped_datagrams });
    }
    let answers =
        on_peers(control, |mut client| async move { client.members(MembersRequest { local: true }).await }).await;
    let mut unreachable = Vec::new();
    for (peer, answer) in answers {
        let count = answer.ok().and_then(|reply| reply.members.into_iter().find(|m| m.me)).filter(|m| m.id == peer.id);
        match (count, members.iter_mut().find(|m| m.id == peer.id)) {
            (Some(theirs), Some(member)) => member.instances = theirs.instances,
            _ => unreachable.push(peer.name),
        }
    }
    Ok(MembersReply { members, unreachable, dropped_datagrams })
}

/// The view, this manager's own instances counted (the others' are 0: see
/// [`members`]).
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
            instances: if m.me { here } else { 0 },
            last_seen_ms: m.last_seen_ms,
            allow_exec: m.info.allow_exec,
            limits: m.info.limits,
            me: m.me,
        })
        .collect()
}
