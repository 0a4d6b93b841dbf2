//! `Ps`: runs and their instances, on every member of the group.

use mgr_proto::{Instance, PsReply, PsRequest, Run};
use tonic::Status;

use super::Control;
use crate::supervisor::{InstanceInfo, Placed, RunInfo};

pub(super) async fn ps(control: &Control, req: PsRequest) -> Result<PsReply, Status> {
    let run = Some(req.run).filter(|r| !r.is_empty());
    if let Some(run) = &run {
        crate::names::check(crate::names::Kind::Run, run)?;
    }
    if req.local {
        let runs = control.supervisor.ps(run).await?;
        return Ok(PsReply { runs: runs.into_iter().map(run_to_proto).collect() });
    }
    let mut runs = super::fanout::ps_group(control, run).await?;
    // Users see the instances; the plan is for the members.
    for run in &mut runs {
        run.plan.clear();
    }
    Ok(PsReply { runs })
}

pub(super) fn run_to_proto(run: RunInfo) -> Run {
    let remembered = run.remembered;
    Run {
        name: run.name,
        module: run.module,
        args: run.args,
        created_ms: run.created_ms,
        instances: run.instances.into_iter().map(instance_to_proto).collect(),
        // A plan entry carries what was last seen of the instance, for when
        // its member is dead.
        plan: run
            .plan
            .into_iter()
            .map(|p| {
                let seen = remembered.get(&p.name).cloned().unwrap_or_default();
                Instance {
                    state: seen.state,
                    exit_code: seen.exit_code,
                    signal: seen.signal,
                    pid: seen.pid,
                    starts: seen.starts,
                    started_ms: seen.started_ms,
                    last_seq: seen.last_seq,
                    ..placed_to_proto(p)
                }
            })
            .collect(),
    }
}

pub(super) fn instance_to_proto(i: InstanceInfo) -> Instance {
    Instance {
        run: i.run,
        name: i.name,
        member: i.member,
        address: i.address.to_string(),
        pid: i.pid.unwrap_or(0),
        state: i.state.as_str().to_owned(),
        exit_code: i.exit_code,
        signal: i.signal,
        starts: i.starts,
        started_ms: i.started_ms,
        last_seq: i.last_seq,
        member_id: i.member_id,
        role: i.role,
        module: i.module,
        detail: i.detail,
        unwritten: i.unwritten,
    }
}

pub(super) fn placed_to_proto(p: Placed) -> Instance {
    Instance {
        name: p.name,
        member: p.member_name,
        member_id: p.member_id,
        address: p.address.to_string(),
        role: p.role,
        module: p.module,
        ..Default::default()
    }
}
