//! `Launch`: start a run of a module (or, for exec, of a command).

use mgr_proto::{LaunchReply, LaunchRequest};
use tonic::Status;

use super::{Control, ps::run_to_proto};
use crate::supervisor::LaunchSpec;

pub(super) async fn launch(control: &Control, req: LaunchRequest) -> Result<LaunchReply, Status> {
    let spec = LaunchSpec {
        module: (req.command.is_empty()).then_some(req.module),
        command: req.command,
        count: req.count,
        name: Some(req.name).filter(|n| !n.is_empty()),
        args: req.args,
        faults: req.faults,
    };
    let run = control.supervisor.launch(spec).await?;
    Ok(LaunchReply { run: Some(run_to_proto(run)) })
}
