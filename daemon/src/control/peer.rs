//! The `Peer` service: what other managers of the group call. Handshakes
//! and heartbeats go to the group task; the phases of a launch and its
//! undoing go to the supervisor.
//!
//! Every call arrives over mutual TLS with the group key, and is still
//! checked here as hostile: each member description, name, address and
//! plan is validated before it reaches an owner, a launch is begun only by
//! a live member, and its later calls act only on what its launch id
//! reserved or prepared.

use std::net::{IpAddr, SocketAddr};

use mgr_proto::peer_server::Peer;
use mgr_proto::*;
use tonic::{Request, Response, Status};

use super::group::{info_from_proto, info_to_proto};
use super::status::GroupError;
use super::{Control, ps::run_to_proto};
use crate::membership::PeerInfo;
use crate::names::{self, Kind};
use crate::supervisor::{Error, GrowSpec, MAX_INSTANCES, Placed, PrepareSpec};

#[tonic::async_trait]
impl Peer for Control {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let from = checked_info(req.into_inner().from)?;
        let (me, members) = self.group.hello(from).await?;
        Ok(Response::new(HelloReply {
            me: Some(info_to_proto(&me)),
            members: members.iter().map(info_to_proto).collect(),
        }))
    }

    async fn reserve(&self, req: Request<ReserveRequest>) -> Result<Response<ReserveReply>, Status> {
        let req = req.into_inner();
        check_launch_id(&req.launch_id)?;
        let view = self.group.view();
        let live = view.member(&req.coordinator).is_some_and(|m| m.is_live_peer());
        if !live {
            return Err(GroupError::NotAMember(names::printable(&req.coordinator, 64)).into());
        }
        let wanted = Some(req.run).filter(|n| !n.is_empty());
        let run = self.supervisor.reserve(wanted, req.from, req.launch_id).await?;
        Ok(Response::new(ReserveReply { run }))
    }

    async fn prepare(&self, req: Request<PrepareRequest>) -> Result<Response<PrepareReply>, Status> {
        let req = req.into_inner();
        check_launch_id(&req.launch_id)?;
        if req.roles.len() > MAX_INSTANCES as usize {
            return Err(Error::BadRequest(format!("a launch has at most {MAX_INSTANCES} roles")).into());
        }
        // Both become instances' environment (MGR_ROLES, MGR_MULTICAST).
        if req.role_table.len() > 64 * 1024 || req.role_table.contains('\0') {
            return Err(Error::BadRequest("the role table is not one (too long, or a NUL byte)".into()).into());
        }
        let multicast_ok = req.multicast.is_empty()
            || req.multicast.parse::<std::net::SocketAddrV4>().is_ok_and(|a| a.ip().is_multicast());
        if !multicast_ok {
            return Err(GroupError::BadAddress(names::printable(&req.multicast, 64)).into());
        }
        let spec = PrepareSpec {
            run: req.run.clone(),
            launch_id: req.launch_id,
            roles: req.roles.into_iter().map(super::launch::role_spec).collect::<Result<_, _>>()?,
            faults: req.faults,
            total: req.total,
            role_table: req.role_table,
            multicast: req.multicast,
        };
        let addresses = self.supervisor.prepare(spec).await?;
        Ok(Response::new(PrepareReply { instances: bound_here(&req.run, self.group.view().me(), addresses) }))
    }

    async fn start(&self, req: Request<StartRequest>) -> Result<Response<StartReply>, Status> {
        let req = req.into_inner();
        check_launch_id(&req.launch_id)?;
        names::check(Kind::Run, &req.run)?;
        let plan = plan_from_proto(&req.plan)?;
        let run = self.supervisor.start_run(req.run, req.launch_id, plan).await?;
        Ok(Response::new(StartReply { run: Some(run_to_proto(run)) }))
    }

    async fn grow(&self, req: Request<GrowRequest>) -> Result<Response<GrowReply>, Status> {
        let req = req.into_inner();
        check_launch_id(&req.scale_id)?;
        names::check(Kind::Run, &req.run)?;
        if !req.role.is_empty() {
            names::check(Kind::Role, &req.role)?;
        }
        if req.instances.len() > MAX_INSTANCES as usize {
            return Err(Error::BadCount(req.instances.len() as u32).into());
        }
        let spec = GrowSpec { run: req.run.clone(), scale_id: req.scale_id, role: req.role, instances: req.instances };
        let addresses = self.supervisor.grow(spec).await?;
        Ok(Response::new(GrowReply { instances: bound_here(&req.run, self.group.view().me(), addresses) }))
    }

    async fn retable(&self, req: Request<RetableRequest>) -> Result<Response<RetableReply>, Status> {
        let req = req.into_inner();
        check_launch_id(&req.scale_id)?;
        let spec = super::scale::retable_spec(req)?;
        self.supervisor.retable(spec).await?;
        Ok(Response::new(RetableReply {}))
    }

    async fn abort(&self, req: Request<AbortRequest>) -> Result<Response<AbortReply>, Status> {
        let req = req.into_inner();
        check_launch_id(&req.launch_id)?;
        names::check(Kind::Run, &req.run)?;
        self.supervisor.abort(req.run, req.launch_id).await;
        Ok(Response::new(AbortReply {}))
    }
}

/// Instances of `run` this member (`me`) bound addresses for, as the
/// coordinator of a launch or a scale takes them.
pub(super) fn bound_here(run: &str, me: &PeerInfo, addresses: Vec<(String, SocketAddr)>) -> Vec<Instance> {
    addresses
        .into_iter()
        .map(|(name, address)| Instance {
            run: run.to_owned(),
            name,
            member: me.name.clone(),
            member_id: me.id.clone(),
            address: address.to_string(),
            state: "starting".into(),
            ..Default::default()
        })
        .collect()
}

/// A launch id is 32 hex digits (128 random bits): anything else is not
/// one of ours.
fn check_launch_id(id: &str) -> Result<(), Status> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!("{} is not a launch id", names::printable(id, 40))))
    }
}

/// A member's description from the wire, checked: its id, name and group
/// follow the grammar of names, its addresses parse.
pub(super) fn checked_info(info: Option<MemberInfo>) -> Result<PeerInfo, Status> {
    let info = info.ok_or_else(|| Status::invalid_argument("the caller did not say who it is"))?;
    names::check(Kind::MemberId, &info.id)?;
    names::check(Kind::Member, &info.name)?;
    names::check(Kind::Group, &info.group)?;
    if info.address.parse::<SocketAddr>().is_err() {
        return Err(GroupError::BadAddress(names::printable(&info.address, 64)).into());
    }
    if info.advertise.parse::<IpAddr>().is_err() {
        return Err(GroupError::BadAddress(names::printable(&info.advertise, 64)).into());
    }
    Ok(info_from_proto(info))
}

/// A run's plan from the wire: every instance with its member and address,
/// each name checked (they become instances' environment and `ps` rows).
pub(super) fn plan_from_proto(plan: &[Instance]) -> Result<Vec<Placed>, Status> {
    if plan.len() > MAX_INSTANCES as usize {
        return Err(Error::BadCount(plan.len() as u32).into());
    }
    plan.iter()
        .map(|i| {
            names::check(Kind::Instance, &i.name)?;
            names::check(Kind::MemberId, &i.member_id)?;
            names::check(Kind::Member, &i.member)?;
            if !i.role.is_empty() {
                names::check(Kind::Role, &i.role)?;
            }
            if !i.module.is_empty() {
                names::check(Kind::Module, &i.module)?;
            }
            let address: SocketAddr =
                i.address.parse().map_err(|_| GroupError::BadAddress(names::printable(&i.address, 64)))?;
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
