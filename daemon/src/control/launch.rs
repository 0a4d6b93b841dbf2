//! `Launch`: start a run of a module (or, for exec, of a command) over the
//! group's live members.
//!
//! The member that takes the call plans the run (which instance goes to
//! which member), then launches it in two phases: every member binds the
//! addresses of its share (`Prepare`), and once the whole peer table is
//! known every member starts its share with it (`Start`). If any member
//! fails either phase, every member undoes its share (`Abort`): a launch
//! starts everywhere or nowhere.

use futures_util::future::join_all;
use mgr_proto::peer_client::PeerClient;
use mgr_proto::{AbortRequest, LaunchReply, LaunchRequest, PrepareRequest, Run, StartRequest};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::Control;
use super::fanout::{FORWARD_TIMEOUT, instance_number};
use super::peer::plan_from_proto;
use super::ps::{placed_to_proto, run_to_proto};
use super::status::GroupError;
use crate::membership::PeerInfo;
use crate::supervisor::{Error, MAX_INSTANCES, Placed, PrepareSpec, RestartPolicy};

/// How often an automatic run name is tried again when another member has
/// a run of that name already.
const NAME_ATTEMPTS: usize = 5;

/// A member taking part in a launch; `channel` is `None` for this one.
#[derive(Clone)]
struct Share {
    member: PeerInfo,
    channel: Option<Channel>,
    instances: Vec<String>,
}

pub(super) async fn launch(control: &Control, req: LaunchRequest) -> Result<LaunchReply, Status> {
    if req.count == 0 || req.count > MAX_INSTANCES {
        return Err(Error::BadCount(req.count).into());
    }
    let shares = plan(control, &req)?;
    let total: usize = shares.iter().map(|s| s.instances.len()).sum();
    if total > MAX_INSTANCES as usize {
        return Err(Error::BadCount(total as u32).into());
    }
    let began = std::time::Instant::now();
    let wanted = Some(req.name.clone()).filter(|n| !n.is_empty());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = control.supervisor.name_run(wanted.clone()).await?;
        match launch_as(control, &req, &shares, &name, total as u32).await {
            Err(status) if status.code() == Code::AlreadyExists && wanted.is_none() && attempt < NAME_ATTEMPTS => {
                tracing::debug!(run = %name, "run name taken on another member: trying the next");
            }
            result => {
                tracing::debug!(run = %name, took = ?began.elapsed(), "launch timings");
                let members = control.group.view().members.iter().map(|m| m.info.name.clone()).collect();
                return result.map(|run| LaunchReply { run: Some(run), members });
            }
        }
    }
}

/// Which members take part, and which instances each hosts.
fn plan(control: &Control, req: &LaunchRequest) -> Result<Vec<Share>, Status> {
    let view = control.group.view();
    let mut members: Vec<(PeerInfo, Option<Channel>)> = vec![(view.me().clone(), None)];
    members.extend(view.alive_peers().into_iter().map(|(info, channel)| (info, Some(channel))));
    if !req.on.is_empty() {
        let mut chosen = Vec::new();
        for wanted in &req.on {
            let found = members.iter().find(|(m, _)| &m.name == wanted || &m.id == wanted);
            match found {
                Some(member) if !chosen.iter().any(|(m, _): &(PeerInfo, _)| m.id == member.0.id) => {
                    chosen.push(member.clone())
                }
                Some(_) => {}
                None => {
                    return Err(GroupError::NoSuchMember(wanted.clone()).into());
                }
            }
        }
        members = chosen;
    }
    if !req.command.is_empty() {
        // exec runs any command: only where its manager allows it.
        let (allowed, refused): (Vec<_>, Vec<_>) = members.into_iter().partition(|(m, _)| m.allow_exec);
        if !req.on.is_empty()
            && let Some((member, _)) = refused.first()
        {
            return Err(GroupError::ExecRefused(member.name.clone()).into());
        }
        if allowed.is_empty() && !refused.is_empty() && refused.len() > 1 {
            return Err(GroupError::ExecRefusedEverywhere.into());
        }
        if allowed.is_empty() {
            return Err(Error::ExecNotAllowed.into());
        }
        members = allowed;
    }
    let count = req.count as usize;
    let mut shares: Vec<Share> =
        members.into_iter().map(|(member, channel)| Share { member, channel, instances: Vec::new() }).collect();
    match req.placement.as_str() {
        "" | "spread" => {
            let n = shares.len();
            for i in 0..count {
                shares[i % n].instances.push(format!("p{}", i + 1));
            }
        }
        "each" => {
            for (j, share) in shares.iter_mut().enumerate() {
                share.instances = (1..=count).map(|k| format!("p{}", j * count + k)).collect();
            }
        }
        // With no notion of a member's capacity, "fill the local member
        // first" puts the whole run on the first member chosen: this one
        // unless --on leaves it out.
        "pack" => shares[0].instances = (1..=count).map(|k| format!("p{k}")).collect(),
        other => {
            return Err(Error::BadRequest(format!("unknown placement '{other}' (use spread, each or pack)")).into());
        }
    }
    shares.retain(|s| !s.instances.is_empty());
    Ok(shares)
}

async fn launch_as(
    control: &Control,
    req: &LaunchRequest,
    shares: &[Share],
    name: &str,
    total: u32,
) -> Result<Run, Status> {
    // Phase one: every member binds its addresses.
    let prepared = join_all(shares.iter().map(|share| prepare(control, req, share, name, total))).await;
    let mut plan: Vec<Placed> = Vec::new();
    let mut failure = None;
    for (share, result) in shares.iter().zip(prepared) {
        match result {
            Ok(placed) => plan.extend(placed),
            Err(status) => {
                failure.get_or_insert(blame(control, share, status));
            }
        }
    }
    if let Some(status) = failure {
        abort(control, shares, name).await;
        return Err(status);
    }
    plan.sort_by_key(|p| instance_number(&p.name));

    // Phase two: every member starts its share with the whole table.
    let started = join_all(shares.iter().map(|share| start(control, share, name, &plan))).await;
    let mut run: Option<Run> = None;
    let mut failure = None;
    for (share, result) in shares.iter().zip(started) {
        match result {
            Ok(part) => match &mut run {
                Some(run) => run.instances.extend(part.instances),
                None => run = Some(part),
            },
            Err(status) => {
                failure.get_or_insert(blame(control, share, status));
            }
        }
    }
    if let Some(status) = failure {
        abort(control, shares, name).await;
        return Err(status);
    }
    let mut run = run.expect("at least one member takes part");
    run.instances.sort_by_key(|i| instance_number(&i.name));
    run.plan.clear();
    if shares.len() > 1 {
        tracing::info!(run = %name, members = shares.len(), total, "launched across the group");
    }
    Ok(run)
}

async fn prepare(
    control: &Control,
    req: &LaunchRequest,
    share: &Share,
    name: &str,
    total: u32,
) -> Result<Vec<Placed>, Status> {
    match &share.channel {
        None => {
            let spec = PrepareSpec {
                run: name.to_owned(),
                module: (req.command.is_empty()).then(|| req.module.clone()),
                command: req.command.clone(),
                args: req.args.clone(),
                faults: req.faults.clone(),
                instances: share.instances.clone(),
                total,
                restart: restart_policy(&req.restart, req.max_restarts, req.restart_backoff_ms)?,
            };
            let addresses = control.supervisor.prepare(spec).await?;
            Ok(addresses
                .into_iter()
                .map(|(instance, address)| Placed {
                    name: instance,
                    member_id: share.member.id.clone(),
                    member_name: share.member.name.clone(),
                    address,
                })
                .collect())
        }
        Some(channel) => {
            let request = PrepareRequest {
                run: name.to_owned(),
                module: req.module.clone(),
                args: req.args.clone(),
                command: req.command.clone(),
                faults: req.faults.clone(),
                instances: share.instances.clone(),
                total,
                restart: req.restart.clone(),
                max_restarts: req.max_restarts,
                restart_backoff_ms: req.restart_backoff_ms,
            };
            let reply = forward(&share.member.name, PeerClient::new(channel.clone()).prepare(request)).await?;
            plan_from_proto(&reply.instances)
        }
    }
}

async fn start(control: &Control, share: &Share, name: &str, plan: &[Placed]) -> Result<Run, Status> {
    match &share.channel {
        None => Ok(run_to_proto(control.supervisor.start_run(name.to_owned(), plan.to_vec()).await?)),
        Some(channel) => {
            let request =
                StartRequest { run: name.to_owned(), plan: plan.iter().cloned().map(placed_to_proto).collect() };
            let reply = forward(&share.member.name, PeerClient::new(channel.clone()).start(request)).await?;
            reply.run.ok_or_else(|| GroupError::NoRun(share.member.name.clone()).into())
        }
    }
}

/// The restart policy of a request: "on-failure" (with its limit and
/// backoff) or none.
pub(super) fn restart_policy(kind: &str, max: u32, backoff_ms: u32) -> Result<Option<RestartPolicy>, Status> {
    match kind {
        "" | "no" => Ok(None),
        "on-failure" => Ok(Some(RestartPolicy { max, backoff: std::time::Duration::from_millis(backoff_ms.into()) })),
        other => Err(Error::BadRequest(format!("unknown restart policy '{other}' (use no or on-failure)")).into()),
    }
}

/// Undoes the run on every member taking part (those that never prepared
/// it ignore the call).
async fn abort(control: &Control, shares: &[Share], name: &str) {
    let undo = shares.iter().map(|share| async move {
        match &share.channel {
            None => control.supervisor.abort(name.to_owned()).await,
            Some(channel) => {
                let request = AbortRequest { run: name.to_owned() };
                if let Err(status) = forward(&share.member.name, PeerClient::new(channel.clone()).abort(request)).await
                {
                    tracing::error!(member = %share.member.name, run = name, %status,
                        "cannot undo a failed launch on a member: its share may still hold ports until it expires");
                }
            }
        }
    });
    join_all(undo).await;
}

async fn forward<T>(member: &str, call: impl Future<Output = Result<tonic::Response<T>, Status>>) -> Result<T, Status> {
    match tokio::time::timeout(FORWARD_TIMEOUT, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(GroupError::Timeout(member.to_owned()).into()),
    }
}

/// A member's failure as the user reads it: which member, and why. This
/// member's own errors read as they always did.
fn blame(control: &Control, share: &Share, status: Status) -> Status {
    if share.channel.is_none() && control.group.view().alive_peers().is_empty() {
        return status;
    }
    super::status::on_member(&share.member.name, status)
}
