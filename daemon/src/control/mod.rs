//! Control: the gRPC face of a manager, and the only place that speaks
//! protobuf. Each RPC has its own file that converts the request at the
//! edge, calls the owner of the concern (the supervisor, the output logs,
//! membership) and converts the answer back. Errors become `tonic::Status`
//! in one place, `status.rs`.

mod events;
mod fanout;
mod fault;
mod forget;
pub mod group;
mod join;
mod launch;
mod logs;
mod members;
mod modules;
mod peer;
mod prune;
mod ps;
mod rm;
mod scale;
mod send;
mod signal;
mod status;

use std::pin::Pin;

use mgr_proto::manager_server::Manager;
use mgr_proto::*;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::registry::Registry;
use crate::supervisor::Supervisor;
use group::Group;

/// What every RPC handler can reach.
#[derive(Debug, Clone)]
pub struct Control {
    supervisor: Supervisor,
    group: Group,
    registry: Registry,
}

impl Control {
    pub fn new(supervisor: Supervisor, group: Group, registry: Registry) -> Self {
        Control { supervisor, group, registry }
    }

    /// The tonic service for users (`mgrctl`).
    pub fn service(self) -> mgr_proto::manager_server::ManagerServer<Control> {
        // Output chunks and large ps replies go past tonic's 4 MiB default.
        mgr_proto::manager_server::ManagerServer::new(self).max_decoding_message_size(16 << 20)
    }

    /// The tonic service for the other managers of the group.
    pub fn peer_service(self) -> mgr_proto::peer_server::PeerServer<Control> {
        mgr_proto::peer_server::PeerServer::new(self).max_decoding_message_size(16 << 20)
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<OutputChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Manager for Control {
    async fn launch(&self, req: Request<LaunchRequest>) -> Result<Response<LaunchReply>, Status> {
        launch::launch(self, req.into_inner()).await.map(Response::new)
    }

    type LogsStream = LogStream;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<LogStream>, Status> {
        logs::logs(self, req.into_inner()).await.map(Response::new)
    }

    async fn ps(&self, req: Request<PsRequest>) -> Result<Response<PsReply>, Status> {
        ps::ps(self, req.into_inner()).await.map(Response::new)
    }

    async fn send(&self, req: Request<SendRequest>) -> Result<Response<SendReply>, Status> {
        send::send(self, req.into_inner()).await.map(Response::new)
    }

    async fn signal(&self, req: Request<SignalRequest>) -> Result<Response<SignalReply>, Status> {
        signal::signal(self, req.into_inner()).await.map(Response::new)
    }

    async fn fault(&self, req: Request<FaultRequest>) -> Result<Response<FaultReply>, Status> {
        fault::fault(self, req.into_inner()).await.map(Response::new)
    }

    async fn modules(&self, req: Request<ModulesRequest>) -> Result<Response<ModulesReply>, Status> {
        let req = req.into_inner();
        if !req.name.is_empty() {
            crate::names::check(crate::names::Kind::Module, &req.name)?;
        }
        modules::modules(self, req).await.map(Response::new)
    }

    async fn members(&self, req: Request<MembersRequest>) -> Result<Response<MembersReply>, Status> {
        members::members(self, req.into_inner()).await.map(Response::new)
    }

    type EventsStream = events::EventStream;

    async fn events(&self, req: Request<EventsRequest>) -> Result<Response<events::EventStream>, Status> {
        let req = req.into_inner();
        crate::names::check(crate::names::Kind::Run, &req.run)?;
        events::events(self, req).await.map(Response::new)
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        join::join(self, req.into_inner()).await.map(Response::new)
    }

    async fn forget(&self, req: Request<ForgetRequest>) -> Result<Response<ForgetReply>, Status> {
        forget::forget(self, req.into_inner()).await.map(Response::new)
    }

    async fn remove(&self, req: Request<RemoveRequest>) -> Result<Response<RemoveReply>, Status> {
        rm::remove(self, req.into_inner()).await.map(Response::new)
    }

    async fn prune(&self, req: Request<PruneRequest>) -> Result<Response<PruneReply>, Status> {
        prune::prune(self, req.into_inner()).await.map(Response::new)
    }

    async fn scale(&self, req: Request<ScaleRequest>) -> Result<Response<ScaleReply>, Status> {
        scale::scale(self, req.into_inner()).await.map(Response::new)
    }
}
