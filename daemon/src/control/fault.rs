//! `Fault`: change the network faults of a live run, on every member that
//! hosts some of its instances.

use mgr_proto::{FaultReply, FaultRequest};
use tonic::Status;

use super::Control;
use super::fanout::{locate, manager};
use crate::supervisor::{FaultChange, Target};

pub(super) async fn fault(control: &Control, req: FaultRequest) -> Result<FaultReply, Status> {
    crate::names::check(crate::names::Kind::Run, &req.run)?;
    let too_long = |text: &Option<String>| text.as_ref().is_some_and(|t| t.len() > 4096);
    if too_long(&req.delay) || too_long(&req.partition) {
        return Err(Status::invalid_argument("bad faults: a delay or partition that long is none"));
    }
    let change = FaultChange {
        loss: req.loss,
        dup: req.dup,
        delay: req.delay.clone(),
        partition: req.partition.clone(),
        heal: req.heal,
    };
    if req.local {
        let (faults, told) = control.supervisor.fault(req.run, change).await?;
        return Ok(FaultReply { faults, told });
    }
    let located = locate(control, &Target { run: req.run.clone(), instance: None }).await?;
    let mut reply = FaultReply::default();
    if located.local {
        let (faults, told) = control.supervisor.fault(req.run.clone(), change).await?;
        reply = FaultReply { faults, told };
    }
    for (_, channel, _) in located.remote {
        let answer = manager(channel).fault(FaultRequest { local: true, ..req.clone() }).await?.into_inner();
        reply.faults = answer.faults;
        reply.told.extend(answer.told);
    }
    reply.told.sort_by_key(|n| super::fanout::instance_number(n));
    Ok(reply)
}
