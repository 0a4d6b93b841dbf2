//! `Fault`: change the network faults of a live run.

use mgr_proto::{FaultReply, FaultRequest};
use tonic::Status;

use super::Control;
use crate::supervisor::FaultChange;

pub(super) async fn fault(control: &Control, req: FaultRequest) -> Result<FaultReply, Status> {
    let change =
        FaultChange { loss: req.loss, dup: req.dup, delay: req.delay, partition: req.partition, heal: req.heal };
    let (faults, told) = control.supervisor.fault(req.run, change).await?;
    Ok(FaultReply { faults, told })
}
