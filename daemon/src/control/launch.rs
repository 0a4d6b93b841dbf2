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
use mgr_proto::{AbortRequest, LaunchReply, LaunchRequest, PrepareRequest, Role, Run, StartRequest};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::Control;
use super::fanout::{FORWARD_TIMEOUT, instance_number};
use super::peer::plan_from_proto;
use super::ps::{placed_to_proto, run_to_proto};
use super::status::GroupError;
use crate::membership::PeerInfo;
use crate::supervisor::{Error, MAX_INSTANCES, Placed, PrepareSpec, RestartPolicy, RoleSpec};

/// How often an automatic run name is tried again when another member has
/// a run of that name already.
const NAME_ATTEMPTS: usize = 5;

/// A member taking part in a launch; `channel` is `None` for this one.
#[derive(Clone)]
struct Share {
    member: PeerInfo,
    channel: Option<Channel>,
    /// For each role of the launch, the instances this member hosts.
    roles: Vec<Vec<String>>,
}

impl Share {
    fn count(&self) -> usize {
        self.roles.iter().map(Vec::len).sum()
    }
}

pub(super) async fn launch(control: &Control, req: LaunchRequest) -> Result<LaunchReply, Status> {
    check_roles(&req)?;
    let roles = &req.roles;
    let shares = plan(control, roles)?;
    let total: usize = shares.iter().map(Share::count).sum();
    if total > MAX_INSTANCES as usize {
        return Err(Error::BadCount(total as u32).into());
    }
    // Instances of named roles (a scenario) learn every role's instances.
    let role_table = if roles[0].name.is_empty() { String::new() } else { role_table(roles, &shares) };
    let began = std::time::Instant::now();
    let wanted = Some(req.name.clone()).filter(|n| !n.is_empty());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = control.supervisor.name_run(wanted.clone()).await?;
        let launch = Launch { roles, role_table: &role_table, faults: &req.faults, shares: &shares };
        match launch_as(control, &launch, &name, total as u32).await {
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

/// Checks the request's roles: one role with no name (`launch`, `exec`), or
/// named roles (a scenario), each name once.
fn check_roles(req: &LaunchRequest) -> Result<(), Status> {
    let plain = matches!(req.roles.as_slice(), [only] if only.name.is_empty());
    if req.roles.is_empty() {
        return Err(Error::BadRequest("a launch needs at least one role".into()).into());
    }
    for (i, role) in req.roles.iter().enumerate() {
        let valid = plain
            || (!role.name.is_empty() && role.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        if !valid {
            return Err(Error::BadRequest(format!(
                "role '{}': a role's name is letters, digits, '-' and '_'",
                role.name
            ))
            .into());
        }
        if req.roles[..i].iter().any(|r| r.name == role.name) {
            return Err(Error::BadRequest(format!("role '{}' is given twice", role.name)).into());
        }
        if role.count == 0 || role.count > MAX_INSTANCES {
            return Err(Error::BadCount(role.count).into());
        }
        role_spec(role.clone())?;
    }
    Ok(())
}

/// A role as the supervisor takes it.
pub(super) fn role_spec(role: Role) -> Result<RoleSpec, Status> {
    let mut env = Vec::new();
    for pair in &role.env {
        let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::BadRequest(format!(
                "role '{}': environment entry '{pair}' is not KEY=VALUE",
                role.name
            ))
            .into());
        };
        env.push((key.to_owned(), value.to_owned()));
    }
    Ok(RoleSpec {
        restart: restart_policy(&role.restart, role.max_restarts, role.restart_backoff_ms)?,
        module: role.command.is_empty().then_some(role.module),
        command: role.command,
        args: role.args,
        env,
        instances: role.instances,
        name: role.name,
    })
}

/// Which members take part, and which instances of each role each hosts.
/// Instances are numbered p1..pN across the roles, in order.
fn plan(control: &Control, roles: &[Role]) -> Result<Vec<Share>, Status> {
    let view = control.group.view();
    let mut members: Vec<(PeerInfo, Option<Channel>)> = vec![(view.me().clone(), None)];
    members.extend(view.alive_peers().into_iter().map(|(info, channel)| (info, Some(channel))));
    let mut shares: Vec<Share> = members
        .into_iter()
        .map(|(member, channel)| Share { member, channel, roles: vec![Vec::new(); roles.len()] })
        .collect();
    let mut next = 1;
    // Spreading goes on where the previous role's spread stopped, so that a
    // role of one instance after a role of four does not land on the
    // member that already hosts the most.
    let mut turn = 0;
    for (r, role) in roles.iter().enumerate() {
        let chosen = choose(&shares, role)?;
        let count = role.count as usize;
        let mut place = |share: usize, shares: &mut Vec<Share>| {
            shares[share].roles[r].push(format!("p{next}"));
            next += 1;
        };
        match role.placement.as_str() {
            "" | "spread" => {
                for _ in 0..count {
                    place(chosen[turn % chosen.len()], &mut shares);
                    turn += 1;
                }
            }
            "each" => {
                for &share in &chosen {
                    for _ in 0..count {
                        place(share, &mut shares);
                    }
                }
            }
            // With no notion of a member's capacity, "fill the local member
            // first" puts the whole role on the first member chosen: this one
            // unless --on leaves it out.
            "pack" => {
                for _ in 0..count {
                    place(chosen[0], &mut shares);
                }
            }
            other => {
                return Err(Error::BadRequest(format!("unknown placement '{other}' (use spread, each or pack)")).into());
            }
        }
    }
    shares.retain(|s| s.count() > 0);
    Ok(shares)
}

/// The members (indices into `shares`) a role may be placed on: those
/// named by its `on`, and for a command only those that allow exec.
fn choose(shares: &[Share], role: &Role) -> Result<Vec<usize>, Status> {
    let mut chosen: Vec<usize> = Vec::new();
    if role.on.is_empty() {
        chosen.extend(0..shares.len());
    } else {
        for wanted in &role.on {
            let found = shares.iter().position(|s| &s.member.name == wanted || &s.member.id == wanted);
            match found {
                Some(i) if !chosen.contains(&i) => chosen.push(i),
                Some(_) => {}
                None => return Err(GroupError::NoSuchMember(wanted.clone()).into()),
            }
        }
    }
    if !role.command.is_empty() {
        // exec runs any command: only where its manager allows it.
        let (allowed, refused): (Vec<usize>, Vec<usize>) =
            chosen.into_iter().partition(|&i| shares[i].member.allow_exec);
        if !role.on.is_empty()
            && let Some(&i) = refused.first()
        {
            return Err(GroupError::ExecRefused(shares[i].member.name.clone()).into());
        }
        if allowed.is_empty() && refused.len() > 1 {
            return Err(GroupError::ExecRefusedEverywhere.into());
        }
        if allowed.is_empty() {
            return Err(Error::ExecNotAllowed.into());
        }
        chosen = allowed;
    }
    Ok(chosen)
}

/// One launch attempt's inputs, the same for every member.
struct Launch<'a> {
    roles: &'a [Role],
    /// `MGR_ROLES`, or empty for a plain launch.
    role_table: &'a str,
    faults: &'a str,
    shares: &'a [Share],
}

/// `MGR_ROLES`: every role and all its instances, in order
/// (`peer=p1,p2;comparator=p3`).
fn role_table(roles: &[Role], shares: &[Share]) -> String {
    let table: Vec<String> = (0..roles.len())
        .map(|r| {
            let mut names: Vec<&String> = shares.iter().flat_map(|s| &s.roles[r]).collect();
            names.sort_by_key(|n| instance_number(n));
            let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
            format!("{}={}", roles[r].name, names.join(","))
        })
        .collect();
    table.join(";")
}

impl Launch<'_> {
    /// What `share` prepares: every role (the supervisor names the run's
    /// modules after all of them), each with the instances it hosts.
    fn request(&self, share: &Share, run: &str, total: u32, multicast: &str) -> PrepareRequest {
        let roles = self
            .roles
            .iter()
            .zip(&share.roles)
            .map(|(role, instances)| Role { instances: instances.clone(), ..role.clone() })
            .collect();
        PrepareRequest {
            run: run.to_owned(),
            roles,
            faults: self.faults.to_owned(),
            total,
            role_table: self.role_table.to_owned(),
            multicast: multicast.to_owned(),
        }
    }
}

/// A multicast group for a run: in 239.255.0.0/16 (site-local scope),
/// chosen at random so that two runs, even of two groups on one network,
/// do not hear each other.
fn multicast_group(run: &str) -> String {
    use std::hash::BuildHasher;
    let bits = std::hash::RandomState::new().hash_one(run);
    let [a, b, c, d, ..] = bits.to_le_bytes();
    let port = 20000 + u16::from_le_bytes([c, d]) % 10000;
    format!("239.255.{a}.{b}:{port}")
}

async fn launch_as(control: &Control, launch: &Launch<'_>, name: &str, total: u32) -> Result<Run, Status> {
    let shares = launch.shares;
    let multicast = multicast_group(name);
    // Phase one: every member binds its addresses.
    let prepared =
        join_all(shares.iter().map(|share| prepare(control, launch.request(share, name, total, &multicast), share)))
            .await;
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
    // The plan says what each instance runs, for `ps` to show it even when
    // its member is gone.
    for placed in &mut plan {
        if let Some((r, _)) =
            shares.iter().flat_map(|s| s.roles.iter().enumerate()).find(|(_, names)| names.contains(&placed.name))
        {
            let role = &launch.roles[r];
            placed.role = role.name.clone();
            placed.module = if role.command.is_empty() { role.module.clone() } else { "exec".to_owned() };
        }
    }

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

async fn prepare(control: &Control, request: PrepareRequest, share: &Share) -> Result<Vec<Placed>, Status> {
    match &share.channel {
        None => {
            let spec = PrepareSpec {
                run: request.run,
                roles: request.roles.into_iter().map(role_spec).collect::<Result<_, _>>()?,
                faults: request.faults,
                total: request.total,
                role_table: request.role_table,
                multicast: request.multicast,
            };
            let addresses = control.supervisor.prepare(spec).await?;
            Ok(addresses
                .into_iter()
                .map(|(instance, address)| Placed {
                    name: instance,
                    member_id: share.member.id.clone(),
                    member_name: share.member.name.clone(),
                    address,
                    role: String::new(),
                    module: String::new(),
                })
                .collect())
        }
        Some(channel) => {
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
