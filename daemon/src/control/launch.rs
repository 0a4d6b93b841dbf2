//! `Launch`: start a run of a module (or, for exec, of a command) over the
//! group's live members.
//!
//! The member that takes the call plans the run (which instance goes to
//! which member), then launches it in three phases under a launch id of
//! its own: every live member holds the run's name for the launch
//! (`Reserve`), so that no two runs of the group share a name; every
//! hosting member binds the addresses of its share (`Prepare`); and once
//! the whole peer table is known every hosting member starts its share
//! with it (`Start`). If any member fails, every member undoes what this
//! launch did there (`Abort` with its id): a launch starts everywhere or
//! nowhere, and never touches another launch's run.

use mgr_proto::peer_client::PeerClient;
use mgr_proto::{AbortRequest, LaunchReply, LaunchRequest, PrepareRequest, ReserveRequest, Role, Run, StartRequest};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::Control;
use super::fanout::{FORWARD_TIMEOUT, in_waves, instance_number};
use super::peer::plan_from_proto;
use super::ps::{placed_to_proto, run_to_proto};
use super::status::GroupError;
use crate::membership::PeerInfo;
use crate::registry::SocketMode;
use crate::supervisor::{Error, MAX_INSTANCES, Placed, PrepareSpec, RestartPolicy, RoleSpec};

/// Rounds of `Reserve` before the members agree on an automatic run name
/// (two, unless launches race for the same names).
const NAME_ROUNDS: u32 = 24;

/// The longest pause between two rounds of launches racing for names.
const NAME_PAUSE_MAX_MS: u64 = 400;

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

pub(super) async fn launch(control: &Control, mut req: LaunchRequest) -> Result<LaunchReply, Status> {
    check_request(&req)?;
    catalog_names(control, &mut req.roles).await;
    let roles = &req.roles;
    let shares = plan(control, roles)?;
    let total: usize = shares.iter().map(Share::count).sum();
    if total > MAX_INSTANCES as usize {
        return Err(Error::BadCount(total as u32).into());
    }
    // Instances of named roles (a scenario) learn every role's instances.
    let role_table = if roles[0].name.is_empty() { String::new() } else { role_table(roles, &shares) };
    let began = std::time::Instant::now();
    let launch_id = new_launch_id();
    let everyone = everyone(control, &shares);
    let name = reserve(control, &everyone, &req.name, &launch_id).await?;
    let launch = Launch {
        roles,
        role_table: &role_table,
        faults: &req.faults,
        shares: &shares,
        everyone: &everyone,
        launch_id: &launch_id,
    };
    let result = launch_as(control, &launch, &name, total as u32).await;
    if result.is_err() {
        // Members that host nothing held the name only: let it go too.
        abort(control, &everyone, &name, &launch_id).await;
    }
    tracing::debug!(run = %name, took = ?began.elapsed(), "launch timings");
    let members = control.group.view().members.iter().map(|m| m.info.name.clone()).collect();
    result.map(|run| LaunchReply { run: Some(run), members })
}

/// Module names are found without regard to case (`Registry::find`); the
/// run carries the catalog's spelling, so that every member, `ps` and
/// `check` see one name. A module this member does not know is left as
/// given: it may be a manifest of the members it is placed on. The
/// registry may wait for a scan, so it is asked on a blocking thread.
async fn catalog_names(control: &Control, roles: &mut [Role]) {
    for role in roles.iter_mut().filter(|r| r.command.is_empty() && !r.module.is_empty()) {
        let (registry, name) = (control.registry.clone(), role.module.clone());
        if let Ok(Some(entry)) = tokio::task::spawn_blocking(move || registry.find(&name)).await {
            role.module = entry.name;
        }
    }
}

/// A launch id: 128 random bits, the capability for what the launch makes
/// on each member.
pub(super) fn new_launch_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Every live member, hosting or not (each holds the run's name for the
/// launch): the shares first, then the others with nothing to host.
fn everyone(control: &Control, shares: &[Share]) -> Vec<Share> {
    let mut all = shares.to_vec();
    let view = control.group.view();
    let hosting = |id: &str| shares.iter().any(|s| s.member.id == id);
    if !hosting(&view.me().id) {
        all.push(Share { member: view.me().clone(), channel: None, roles: Vec::new() });
    }
    for (member, channel) in view.alive_peers() {
        if !hosting(&member.id) {
            all.push(Share { member, channel: Some(channel), roles: Vec::new() });
        }
    }
    all
}

/// Phase zero: holds a run name on every live member for this launch.
/// A wanted name must be free everywhere; an automatic one is the first
/// `rN` free everywhere, found by asking each member for its first free
/// name from N on until they agree. A member that hosts nothing and does
/// not answer is left out (with a warning): it cannot block every launch
/// of the group, and it holds none of this run.
async fn reserve(control: &Control, everyone: &[Share], wanted: &str, launch_id: &str) -> Result<String, Status> {
    let mut from = 1;
    for round in 0..NAME_ROUNDS {
        if round > 1 {
            // Launches racing for the same names: a pause of random length,
            // growing with each round lost (on a loaded machine a round takes
            // long, and eight launches once kept colliding for 16 rounds of
            // short pauses), lets one of them through first.
            let ceiling = (5u64 << round.min(16)).min(NAME_PAUSE_MAX_MS);
            let pause = rand::random::<u64>() % ceiling;
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        let asked = everyone.iter().map(|share| reserve_on(control, share, wanted, from, launch_id));
        let answers = in_waves(asked.collect()).await;
        let mut names = Vec::new();
        let mut failure = None;
        for (share, answer) in everyone.iter().zip(answers) {
            match answer {
                Ok(name) => names.push(name),
                Err(status) if share.count() == 0 && status.code() != Code::AlreadyExists => {
                    tracing::warn!(member = %share.member.name, %status,
                        "a member that hosts nothing did not hold the run name: launching without it");
                }
                Err(status) => {
                    failure.get_or_insert(blame(control, share, status));
                }
            }
        }
        if let Some(status) = failure {
            abort(control, everyone, wanted, launch_id).await;
            return Err(status);
        }
        let highest = names.iter().max_by_key(|n| auto_number(n)).cloned().unwrap_or_default();
        if !wanted.is_empty() || names.iter().all(|n| *n == highest) {
            return Ok(highest);
        }
        // Each member holds at most one name per launch: the next round's
        // reservation replaces this one.
        from = auto_number(&highest);
    }
    abort(control, everyone, "", launch_id).await;
    Err(Error::BadRequest("the members could not agree on a free run name in time: try again, or give --name".into())
        .into())
}

/// `r12` → 12; anything else 0.
fn auto_number(name: &str) -> u64 {
    name.strip_prefix('r').and_then(|n| n.parse().ok()).unwrap_or(0)
}

async fn reserve_on(
    control: &Control,
    share: &Share,
    wanted: &str,
    from: u64,
    launch_id: &str,
) -> Result<String, Status> {
    match &share.channel {
        None => {
            let wanted = Some(wanted.to_owned()).filter(|n| !n.is_empty());
            Ok(control.supervisor.reserve(wanted, from, launch_id.to_owned()).await?)
        }
        Some(channel) => {
            let request = ReserveRequest {
                run: wanted.to_owned(),
                launch_id: launch_id.to_owned(),
                from,
                coordinator: control.group.view().me().id.clone(),
            };
            let reply = forward(&share.member.name, PeerClient::new(channel.clone()).reserve(request)).await?;
            crate::names::check(crate::names::Kind::Run, &reply.run)?;
            Ok(reply.run)
        }
    }
}

/// Checks the request at the edge: its name, faults, and roles (one role
/// with no name for `launch` and `exec`, or named roles, each name once,
/// for a scenario).
fn check_request(req: &LaunchRequest) -> Result<(), Status> {
    if !req.name.is_empty() {
        crate::names::check(crate::names::Kind::Run, &req.name)?;
    }
    if req.faults.len() > MAX_TEXT {
        return Err(Error::BadFaults(format!("{} bytes of faults is more than {MAX_TEXT}", req.faults.len())).into());
    }
    let plain = matches!(req.roles.as_slice(), [only] if only.name.is_empty());
    if req.roles.is_empty() {
        return Err(Error::BadRequest("a launch needs at least one role".into()).into());
    }
    if req.roles.len() > MAX_INSTANCES as usize {
        return Err(Error::BadRequest(format!("a launch has at most {MAX_INSTANCES} roles")).into());
    }
    for (i, role) in req.roles.iter().enumerate() {
        if !plain {
            crate::names::check(crate::names::Kind::Role, &role.name)?;
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

/// Longest text field of a request that is neither a name nor a line of
/// input (faults, placements, restart policies).
const MAX_TEXT: usize = 4096;

/// Most arguments of a role (or words of an exec command), and the most
/// bytes of them all with the environment: `execve` refuses more than a
/// few hundred KiB anyway, with a worse error.
const MAX_ARGS: usize = 256;
const MAX_ARGV_BYTES: usize = 256 * 1024;

/// A role as the supervisor takes it, checked at the edge: names, sizes,
/// NUL bytes, the environment's grammar ([`crate::env::check_entry`]) and
/// the restart policy's bounds. Both services call it.
pub(super) fn role_spec(role: Role) -> Result<RoleSpec, Status> {
    let bad = |what: String| -> Status {
        let shown = if role.name.is_empty() { String::new() } else { format!("role '{}': ", role.name) };
        Error::BadRequest(format!("{shown}{what}")).into()
    };
    // Every error below names the role: its name is checked first.
    if !role.name.is_empty() {
        crate::names::check(crate::names::Kind::Role, &role.name)?;
    }
    if role.module.is_empty() && role.command.is_empty() {
        return Err(bad("it runs nothing: give a module or a command".into()));
    }
    if !role.module.is_empty() {
        crate::names::check(crate::names::Kind::Module, &role.module)?;
    }
    if role.on.len() > MAX_ARGS {
        return Err(bad(format!("more than {MAX_ARGS} members in --on")));
    }
    for member in &role.on {
        // A member is named by its name or its id; both follow the grammar.
        crate::names::check(crate::names::Kind::Member, member)?;
    }
    if role.env.len() > crate::env::MAX_VARS {
        return Err(bad(format!("more than {} environment variables", crate::env::MAX_VARS)));
    }
    if role.args.len() > MAX_ARGS || role.command.len() > MAX_ARGS {
        return Err(bad(format!("more than {MAX_ARGS} arguments")));
    }
    let words = role.args.iter().chain(&role.command).chain(&role.env);
    if words.clone().map(String::len).sum::<usize>() > MAX_ARGV_BYTES {
        return Err(bad(format!("its arguments and environment are more than {} KiB", MAX_ARGV_BYTES >> 10)));
    }
    if role.args.iter().chain(&role.command).any(|a| a.contains('\0')) {
        return Err(bad("an argument holds a NUL byte".into()));
    }
    if role.command.first().is_some_and(String::is_empty) {
        return Err(bad("the command's program is empty".into()));
    }
    if role.placement.len() > MAX_TEXT || role.restart.len() > MAX_TEXT {
        return Err(bad("a placement or restart policy that long is none".into()));
    }
    let mut env = Vec::new();
    for pair in &role.env {
        let (key, value) = crate::env::check_entry(pair).map_err(bad)?;
        if env.iter().any(|(k, _): &(String, String)| k == key) {
            return Err(bad(format!("{key} is given twice")));
        }
        env.push((key.to_owned(), value.to_owned()));
    }
    if role.max_log_bytes != 0 && role.max_log_bytes < crate::output::MIN_CAP {
        return Err(bad(format!("a log cap of at least {}", crate::output::human(crate::output::MIN_CAP))));
    }
    if !role.cpus.is_finite() || role.cpus < 0.0 || role.cpus > 1024.0 {
        return Err(bad(format!("{} is not a number of CPUs (such as 0.5)", role.cpus)));
    }
    if role.memory_bytes != 0 && role.memory_bytes < 4 << 20 {
        return Err(bad("a memory limit of at least 4 MiB".into()));
    }
    if role.pids > 1 << 22 {
        return Err(bad(format!("{} processes is not a limit", role.pids)));
    }
    let socket = match role.socket.as_str() {
        "" => None,
        text => Some(SocketMode::parse(text).ok_or_else(|| {
            bad(format!("socket must be bind or inherit, not '{}'", crate::names::printable(text, 32)))
        })?),
    };
    if socket.is_some() && role.command.is_empty() {
        return Err(bad("a module's manifest says how it gets its socket; --socket is for a command".into()));
    }
    Ok(RoleSpec {
        socket,
        max_log_bytes: role.max_log_bytes,
        memory: role.memory_bytes,
        cpus: role.cpus,
        pids: role.pids,
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
        // Counted before anything is placed: "each" multiplies by the
        // members, and a request must not make the planner allocate for
        // more instances than a launch may have.
        let placing = if role.placement == "each" { count * chosen.len() } else { count };
        if next - 1 + placing > MAX_INSTANCES as usize {
            return Err(Error::BadCount((next - 1 + placing).min(u32::MAX as usize) as u32).into());
        }
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
                let other = crate::names::printable(other, 40);
                return Err(Error::BadRequest(format!("unknown placement {other} (use spread, each or pack)")).into());
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

/// One launch's inputs, the same for every member.
struct Launch<'a> {
    roles: &'a [Role],
    /// `MGR_ROLES`, or empty for a plain launch.
    role_table: &'a str,
    faults: &'a str,
    shares: &'a [Share],
    /// Every live member: the shares first, then those hosting nothing.
    everyone: &'a [Share],
    launch_id: &'a str,
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
            launch_id: self.launch_id.to_owned(),
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
    let prepared = in_waves(
        shares.iter().map(|share| prepare(control, launch.request(share, name, total, &multicast), share)).collect(),
    )
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

    // Phase two: every member starts its share with the whole table; the
    // others keep the plan, to list the run should its members die.
    let everyone = launch.everyone;
    let started =
        in_waves(everyone.iter().map(|share| start(control, share, name, launch.launch_id, &plan)).collect()).await;
    let mut run: Option<Run> = None;
    let mut failure = None;
    for (share, result) in everyone.iter().zip(started) {
        match result {
            Ok(part) => match &mut run {
                Some(run) => run.instances.extend(part.instances),
                None => run = Some(part),
            },
            Err(status) if share.count() == 0 => {
                tracing::warn!(member = %share.member.name, %status, "a member that hosts nothing did not keep the plan");
            }
            Err(status) => {
                failure.get_or_insert(blame(control, share, status));
            }
        }
    }
    if let Some(status) = failure {
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
                launch_id: request.launch_id,
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

async fn start(control: &Control, share: &Share, name: &str, launch_id: &str, plan: &[Placed]) -> Result<Run, Status> {
    match &share.channel {
        None => {
            let run = control.supervisor.start_run(name.to_owned(), launch_id.to_owned(), plan.to_vec()).await?;
            Ok(run_to_proto(run))
        }
        Some(channel) => {
            let request = StartRequest {
                run: name.to_owned(),
                launch_id: launch_id.to_owned(),
                plan: plan.iter().cloned().map(placed_to_proto).collect(),
            };
            let reply = forward(&share.member.name, PeerClient::new(channel.clone()).start(request)).await?;
            reply.run.ok_or_else(|| GroupError::NoRun(share.member.name.clone()).into())
        }
    }
}

/// Most automatic restarts of one instance, and the longest backoff: a
/// restart loop of a semester is a bug, not a policy.
pub const MAX_RESTARTS: u32 = 1000;
pub const MAX_BACKOFF_MS: u32 = 3_600_000;

/// The restart policy of a request: "on-failure" (with its limit and
/// backoff) or none.
pub(super) fn restart_policy(kind: &str, max: u32, backoff_ms: u32) -> Result<Option<RestartPolicy>, Status> {
    match kind {
        "" | "no" => Ok(None),
        "on-failure" if max > MAX_RESTARTS => {
            Err(Error::BadRequest(format!("at most {MAX_RESTARTS} restarts, not {max}")).into())
        }
        "on-failure" if backoff_ms > MAX_BACKOFF_MS => {
            Err(Error::BadRequest(format!("a restart backoff of at most 1 h, not {backoff_ms} ms")).into())
        }
        "on-failure" => Ok(Some(RestartPolicy { max, backoff: std::time::Duration::from_millis(backoff_ms.into()) })),
        other => Err(Error::BadRequest(format!(
            "unknown restart policy {} (use no or on-failure)",
            crate::names::printable(other, 40)
        ))
        .into()),
    }
}

/// Undoes this launch on every member taking part: what it reserved,
/// prepared or started there, and nothing else.
async fn abort(control: &Control, shares: &[Share], name: &str, launch_id: &str) {
    let undo = shares.iter().map(|share| async move {
        match &share.channel {
            None => control.supervisor.abort(name.to_owned(), launch_id.to_owned()).await,
            Some(channel) => {
                let request = AbortRequest { run: name.to_owned(), launch_id: launch_id.to_owned() };
                if let Err(status) = forward(&share.member.name, PeerClient::new(channel.clone()).abort(request)).await
                {
                    tracing::error!(member = %share.member.name, run = name, %status,
                        "cannot undo a failed launch on a member: its share may still hold ports until it expires");
                }
            }
        }
    });
    in_waves(undo.collect()).await;
}

pub(super) async fn forward<T>(
    member: &str,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(FORWARD_TIMEOUT, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(GroupError::Timeout(member.to_owned()).into()),
    }
}

/// A member's failure as the user reads it: which member, and why. This
/// member's own errors read as they always did.
fn blame(control: &Control, share: &Share, status: Status) -> Status {
    if share.channel.is_none() && !control.group.view().has_alive_peers() {
        return status;
    }
    super::status::on_member(&share.member.name, status)
}
