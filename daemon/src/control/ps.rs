//! `Ps`: runs and their instances.

use mgr_proto::{Instance, PsReply, PsRequest, Run};
use tonic::Status;

use super::Control;
use crate::supervisor::{InstanceInfo, RunInfo};

pub(super) async fn ps(control: &Control, req: PsRequest) -> Result<PsReply, Status> {
    let run = Some(req.run).filter(|r| !r.is_empty());
    let runs = control.supervisor.ps(run).await?;
    Ok(PsReply { runs: runs.into_iter().map(run_to_proto).collect() })
}

pub(super) fn run_to_proto(run: RunInfo) -> Run {
    Run {
        name: run.name,
        module: run.module,
        args: run.args,
        created_ms: run.created_ms,
        instances: run.instances.into_iter().map(instance_to_proto).collect(),
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
        last_seq: i.last_seq,
        member_id: String::new(),
    }
}
