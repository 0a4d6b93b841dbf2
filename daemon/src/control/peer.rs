//! The `Peer` service: what other managers of the group call. Handshakes
//! and heartbeats go to the group task; the two phases of a launch and its
//! undoing go to the supervisor.

use std::net::SocketAddr;
use std::time::Duration;

use mgr_proto::peer_server::Peer;
use mgr_proto::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::group::{HEARTBEAT, info_from_proto, info_to_proto};
use super::status::GroupError;
use super::{Control, ps::run_to_proto};
use crate::supervisor::{Placed, PrepareSpec};

type ViewStream = ReceiverStream<Result<View, Status>>;

#[tonic::async_trait]
impl Peer for Control {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let from = info_from_proto(req.into_inner().from.unwrap_or_default());
        let (me, members) = self.group.hello(from).await?;
        Ok(Response::new(HelloReply {
            me: Some(info_to_proto(&me)),
            members: members.iter().map(info_to_proto).collect(),
        }))
    }

    type WatchStream = ViewStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<ViewStream>, Status> {
        let from = info_from_proto(req.into_inner().from.unwrap_or_default());
        let view = self.group.view();
        if from.group != view.me().group {
            return Err(GroupError::OtherGroup { ours: view.me().group.clone(), theirs: from.group }.into());
        }
        let (tx, rx) = mpsc::channel(4);
        let (group, supervisor) = (self.group.clone(), self.supervisor.clone());
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(HEARTBEAT);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                beat.tick().await;
                let view = group.view();
                let mut me = view.me().clone();
                me.instances = supervisor.live_instances().await as u32;
                let members = view.alive_peers().iter().map(|(info, _)| info_to_proto(info)).collect();
                let message = View { me: Some(info_to_proto(&me)), members };
                // A watcher that stopped reading is as good as gone.
                match tokio::time::timeout(Duration::from_secs(5), tx.send(Ok(message))).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn prepare(&self, req: Request<PrepareRequest>) -> Result<Response<PrepareReply>, Status> {
        let req = req.into_inner();
        let spec = PrepareSpec {
            run: req.run.clone(),
            roles: req.roles.into_iter().map(super::launch::role_spec).collect::<Result<_, _>>()?,
            faults: req.faults,
            total: req.total,
            role_table: req.role_table,
            multicast: req.multicast,
        };
        let view = self.group.view();
        let me = view.me();
        let addresses = self.supervisor.prepare(spec).await?;
        let instances = addresses
            .into_iter()
            .map(|(name, address)| Instance {
                run: req.run.clone(),
                name,
                member: me.name.clone(),
                member_id: me.id.clone(),
                address: address.to_string(),
                state: "starting".into(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(PrepareReply { instances }))
    }

    async fn start(&self, req: Request<StartRequest>) -> Result<Response<StartReply>, Status> {
        let req = req.into_inner();
        let plan = plan_from_proto(&req.plan)?;
        let run = self.supervisor.start_run(req.run, plan).await?;
        Ok(Response::new(StartReply { run: Some(run_to_proto(run)) }))
    }

    async fn abort(&self, req: Request<AbortRequest>) -> Result<Response<AbortReply>, Status> {
        self.supervisor.abort(req.into_inner().run).await;
        Ok(Response::new(AbortReply {}))
    }
}

/// A run's plan from the wire: every instance with its member and address.
pub(super) fn plan_from_proto(plan: &[Instance]) -> Result<Vec<Placed>, Status> {
    plan.iter()
        .map(|i| {
            let address: SocketAddr = i.address.parse().map_err(|_| GroupError::BadAddress(i.address.clone()))?;
            Ok(Placed {
                name: i.name.clone(),
                member_id: i.member_id.clone(),
                member_name: i.member.clone(),
                address,
                role: i.role.clone(),
                module: i.module.clone(),
            })
        })
        .collect()
}
