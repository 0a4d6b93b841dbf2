//! `Scale`: grows or shrinks a role of a live run, across the group.
//!
//! The member that takes the call looks at the run as the group sees it
//! (`ps`), checks that the role's module may change its set of processes
//! while it runs (the book's modules keep their Π), and then, under a scale
//! id of its own:
//!
//! - to grow, asks each member that hosts the role to bind addresses for
//!   its share of the new instances (`Grow`; spread, fewest first), then
//!   gives every member the new peer table (`Retable`), on which the new
//!   instances start and the live ones are told (`peers`, `roles` on their
//!   control pipes). If a member fails to grow, what the others grew goes
//!   (`Retable` with `abort`).
//! - to shrink, gives every member the table without the last instances of
//!   the role (`Retable` with `removed`): they stop where they run, and
//!   stay in `ps` as stopped, removed by a scale.
//!
//! New instances get the next names of the run (never a removed one's).

use std::collections::BTreeMap;

use mgr_proto::peer_client::PeerClient;
use mgr_proto::{GrowRequest, Instance, PsRequest, RetableRequest, Run, ScaleReply, ScaleRequest};
use tonic::Status;

use super::Control;
use super::fanout::instance_number;
use super::launch::{forward, new_launch_id};
use super::peer::plan_from_proto;
use crate::supervisor::{Error, GrowSpec, MAX_INSTANCES, RetableSpec};

/// What `ps` says of an instance a scale removed.
pub(super) const REMOVED: &str = "removed by a scale";

pub(super) async fn scale(control: &Control, req: ScaleRequest) -> Result<ScaleReply, Status> {
    crate::names::check(crate::names::Kind::Run, &req.run)?;
    if !req.role.is_empty() {
        crate::names::check(crate::names::Kind::Role, &req.role)?;
    }
    if req.count == 0 || req.count > MAX_INSTANCES {
        return Err(Error::BadCount(req.count).into());
    }
    let run = the_run(control, &req.run).await?;
    if run.instances.iter().all(|i| !is_live(i)) {
        return Err(Error::BadRequest(format!("run '{}' has ended: there is nothing to scale", req.run)).into());
    }
    let current: Vec<&Instance> = run.instances.iter().filter(|i| i.role == req.role && i.detail != REMOVED).collect();
    let Some(first) = current.first() else {
        let mut roles: Vec<&str> = run.instances.iter().map(|i| i.role.as_str()).filter(|r| !r.is_empty()).collect();
        roles.dedup();
        let why = match (req.role.is_empty(), roles.is_empty()) {
            (_, true) => format!("was launched without roles: give a count alone (mgrctl scale {} N)", req.run),
            (true, false) => format!("has roles: give ROLE=N (roles: {})", roles.join(", ")),
            (false, false) => format!("has no role '{}' (roles: {})", req.role, roles.join(", ")),
        };
        return Err(Error::BadRequest(format!("run '{}' {why}", req.run)).into());
    };
    check_dynamic(control, &first.module).await?;
    let count = req.count as usize;
    let scale_id = new_launch_id();
    let mut kept: Vec<Instance> = run.instances.iter().filter(|i| i.detail != REMOVED).cloned().collect();
    let (added, removed) = if count > current.len() {
        let highest = run.instances.iter().map(|i| instance_number(&i.name).0).max().unwrap_or(0);
        let names: Vec<String> = (1..=(count - current.len()) as u64).map(|k| format!("p{}", highest + k)).collect();
        let added = grow(control, &req.run, &req.role, &scale_id, &current, names).await?;
        kept.extend(added.iter().cloned());
        (added, Vec::new())
    } else {
        let mut by_number: Vec<&&Instance> = current.iter().collect();
        by_number.sort_by_key(|i| instance_number(&i.name));
        let removed: Vec<String> = by_number[count..].iter().map(|i| i.name.clone()).collect();
        kept.retain(|i| !removed.contains(&i.name));
        (Vec::new(), removed)
    };
    kept.sort_by_key(|i| instance_number(&i.name));
    let role_table = if kept.iter().any(|i| !i.role.is_empty()) { role_table(&kept) } else { String::new() };
    let plan: Vec<Instance> = kept.iter().map(|i| Instance { state: String::new(), ..i.clone() }).collect();
    let retable = RetableRequest {
        run: req.run.clone(),
        scale_id: scale_id.clone(),
        plan,
        role_table,
        removed: removed.clone(),
        abort: false,
    };
    let told = on_every_member(control, retable).await;
    if let Some(err) = told.into_iter().find_map(Result::err) {
        if !added.is_empty() {
            let undo = RetableRequest { run: req.run.clone(), scale_id, abort: true, ..Default::default() };
            on_every_member(control, undo).await;
        }
        return Err(err);
    }
    let run = the_run(control, &req.run).await?;
    Ok(ScaleReply { run: Some(run), added, removed })
}

/// The run as the group sees it.
async fn the_run(control: &Control, run: &str) -> Result<Run, Status> {
    let reply = super::ps::ps(control, PsRequest { run: run.to_owned(), ..Default::default() }).await?;
    reply.runs.into_iter().find(|r| r.name == run).ok_or_else(|| Error::UnknownRun(run.to_owned()).into())
}

fn is_live(instance: &Instance) -> bool {
    matches!(instance.state.as_str(), "starting" | "running" | "paused" | "restarting")
}

/// Whether `module`'s instances may come and go: `Some(true)` for a
/// module that says so and for a command (exec, the user's to judge),
/// `None` for a module this member does not know.
pub(super) async fn scalable(control: &Control, module: &str) -> Option<bool> {
    if module == "exec" {
        return Some(true);
    }
    let (registry, name) = (control.registry.clone(), module.to_owned());
    let entry = tokio::task::spawn_blocking(move || registry.find(&name)).await.ok().flatten();
    entry.map(|e| e.dynamic)
}

/// Only modules that say their processes may come and go are scaled.
async fn check_dynamic(control: &Control, module: &str) -> Result<(), Status> {
    match scalable(control, module).await {
        Some(true) => Ok(()),
        Some(false) => Err(Error::BadRequest(format!(
            "{module} cannot be scaled: its set of processes is fixed for the whole run (the book's Π); \
             modules that can: {} (and manifests that say dynamic = true)",
            mgr_modules::apps::DYNAMIC.join(", ")
        ))
        .into()),
        None => Err(Error::BadRequest(format!(
            "cannot tell whether {module} may be scaled: this member does not know it (scale from a member that does)"
        ))
        .into()),
    }
}

/// Binds the new instances on the members that host the role, spread
/// (fewest first); undoes everything if one member fails.
async fn grow(
    control: &Control,
    run: &str,
    role: &str,
    scale_id: &str,
    current: &[&Instance],
    names: Vec<String>,
) -> Result<Vec<Instance>, Status> {
    // Members hosting the role, by how many of its instances they host.
    let mut hosts: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for i in current {
        hosts.entry(i.member_id.clone()).or_insert((0, i.member.clone())).0 += 1;
    }
    let mut shares: Vec<(String, String, Vec<String>)> =
        hosts.iter().map(|(id, (_, name))| (id.clone(), name.clone(), Vec::new())).collect();
    let mut load: Vec<usize> = hosts.values().map(|(n, _)| *n).collect();
    for name in names {
        let k = (0..shares.len()).min_by_key(|&k| (load[k], k)).expect("a role with instances has a host");
        shares[k].2.push(name);
        load[k] += 1;
    }
    let view = control.group.view();
    let me = view.me().id.clone();
    let mut added = Vec::new();
    let mut failure = None;
    for (member_id, member, instances) in shares.into_iter().filter(|s| !s.2.is_empty()) {
        let spec = GrowSpec {
            run: run.to_owned(),
            scale_id: scale_id.to_owned(),
            role: role.to_owned(),
            instances: instances.clone(),
        };
        let grown: Result<Vec<Instance>, Status> = if member_id == me {
            let bound = control.supervisor.grow(spec).await.map_err(Status::from);
            bound.map(|addresses| super::peer::bound_here(run, view.me(), addresses))
        } else {
            match view.alive_peers().into_iter().find(|(info, _)| info.id == member_id) {
                None => Err(Error::BadRequest(format!("member {member} hosts role '{role}' but is not alive")).into()),
                Some((_, channel)) => {
                    let request = GrowRequest {
                        run: spec.run,
                        scale_id: spec.scale_id,
                        role: spec.role,
                        instances: spec.instances,
                    };
                    forward(&member, PeerClient::new(channel).grow(request))
                        .await
                        .and_then(|reply| checked_growth(reply.instances, &instances))
                }
            }
        };
        match grown {
            Ok(grown) => added.extend(grown),
            Err(status) => {
                failure = Some(super::status::on_member(&member, status));
                break;
            }
        }
    }
    let module = current.first().map(|i| i.module.clone()).unwrap_or_default();
    for instance in &mut added {
        instance.role = role.to_owned();
        instance.module = module.clone();
        instance.state = "starting".into();
    }
    if let Some(status) = failure {
        let undo =
            RetableRequest { run: run.to_owned(), scale_id: scale_id.to_owned(), abort: true, ..Default::default() };
        on_every_member(control, undo).await;
        return Err(status);
    }
    Ok(added)
}

/// A member's answer to `Grow`, checked: exactly the instances asked, at
/// addresses that parse.
fn checked_growth(instances: Vec<Instance>, asked: &[String]) -> Result<Vec<Instance>, Status> {
    plan_from_proto(&instances)?;
    if instances.len() != asked.len() || instances.iter().any(|i| !asked.contains(&i.name)) {
        return Err(Error::BadRequest("a member grew other instances than it was asked".into()).into());
    }
    Ok(instances)
}

/// `MGR_ROLES` of the instances in `plan` (ordered by number): each role
/// once, in the order of its first instance.
fn role_table(plan: &[Instance]) -> String {
    let mut roles: Vec<(String, Vec<String>)> = Vec::new();
    for i in plan {
        match roles.iter_mut().find(|(role, _)| *role == i.role) {
            Some((_, names)) => names.push(i.name.clone()),
            None => roles.push((i.role.clone(), vec![i.name.clone()])),
        }
    }
    roles.iter().map(|(role, names)| format!("{role}={}", names.join(","))).collect::<Vec<_>>().join(";")
}

/// Sends `req` to this member and every live peer; a member that does not
/// know the run has nothing to update and is not an error.
async fn on_every_member(control: &Control, req: RetableRequest) -> Vec<Result<(), Status>> {
    let mut results = vec![retable_here(control, req.clone()).await];
    for (info, channel) in control.group.view().alive_peers() {
        let answer = forward(&info.name, PeerClient::new(channel).retable(req.clone())).await.map(|_| ());
        results.push(answer.or_else(|status| unknown_run_is_fine(status, &info.name)));
    }
    results
}

async fn retable_here(control: &Control, req: RetableRequest) -> Result<(), Status> {
    let spec = retable_spec(req)?;
    match control.supervisor.retable(spec).await {
        Ok(()) | Err(Error::UnknownRun(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

fn unknown_run_is_fine(status: Status, member: &str) -> Result<(), Status> {
    if status.code() == tonic::Code::NotFound { Ok(()) } else { Err(super::status::on_member(member, status)) }
}

/// A `Retable` from the wire as the supervisor takes it, checked.
pub(super) fn retable_spec(req: RetableRequest) -> Result<RetableSpec, Status> {
    crate::names::check(crate::names::Kind::Run, &req.run)?;
    if req.role_table.len() > 64 * 1024 || req.role_table.contains(['\0', '\n']) {
        return Err(Error::BadRequest("the role table is not one (too long, or a NUL byte or newline)".into()).into());
    }
    if req.removed.len() > MAX_INSTANCES as usize {
        return Err(Error::BadCount(req.removed.len() as u32).into());
    }
    for name in &req.removed {
        crate::names::check(crate::names::Kind::Instance, name)?;
    }
    Ok(RetableSpec {
        run: req.run,
        scale_id: req.scale_id,
        plan: plan_from_proto(&req.plan)?,
        role_table: req.role_table,
        removed: req.removed,
        abort: req.abort,
    })
}
