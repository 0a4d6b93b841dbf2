//! Reaching the group: a call made on any member acts on instances
//! anywhere. These helpers ask every live member (with `local` set, so the
//! call is not forwarded again) and merge the answers; instances planned on
//! a dead member are reported `lost`.

use std::collections::BTreeMap;
use std::time::Duration;

use mgr_proto::manager_client::ManagerClient;
use mgr_proto::{Instance, PsRequest, Run};
use tonic::Status;
use tonic::transport::Channel;

use super::Control;
use super::ps::run_to_proto;
use super::status::GroupError;
use crate::membership::{Liveness, PeerInfo};
use crate::supervisor::{Error, Seen, Target};

/// Longest wait for one member's answer to a forwarded call.
pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of another member's `Manager` service.
pub(super) fn manager(channel: Channel) -> ManagerClient<Channel> {
    ManagerClient::new(channel).max_decoding_message_size(16 << 20)
}

/// Calls to members a fan-out makes at once: a group of hundreds is asked
/// in waves, not with hundreds of connections opened in one go.
pub(super) const FANOUT_CONCURRENCY: usize = 64;

/// Longest wait for one member's answer in a fan-out: a member that is
/// alive by the membership protocol but does not answer in time is reported
/// unreachable rather than waited on.
pub(super) const FANOUT_DEADLINE: Duration = Duration::from_secs(2);

/// Runs `calls` [`FANOUT_CONCURRENCY`] at a time; the answers come in the
/// calls' order. For the calls of a launch or a signal to the members it
/// involves, which may be the whole group. (A `Vec`, not any iterator: a
/// lazy `map` over borrowed shares would make the launch future lose `Send`.)
pub(super) async fn in_waves<F: Future>(calls: Vec<F>) -> Vec<F::Output> {
    use futures_util::StreamExt;
    futures_util::stream::iter(calls).buffered(FANOUT_CONCURRENCY).collect().await
}

/// Runs `call` on every live peer, [`FANOUT_CONCURRENCY`] at a time, each
/// within [`FANOUT_DEADLINE`]; returns each peer's answer.
pub(super) async fn on_peers<T, F, Fut>(control: &Control, call: F) -> Vec<(PeerInfo, Result<T, Status>)>
where
    F: Fn(ManagerClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    use futures_util::StreamExt;
    let peers = control.group.view().alive_peers();
    let calls = peers.into_iter().map(|(info, channel)| {
        let call = call(manager(channel));
        async move {
            let result = match tokio::time::timeout(FANOUT_DEADLINE, call).await {
                Ok(result) => result.map(tonic::Response::into_inner),
                Err(_) => Err(GroupError::Timeout(info.name.clone()).into()),
            };
            (info, result)
        }
    });
    futures_util::stream::iter(calls).buffer_unordered(FANOUT_CONCURRENCY).collect().await
}

/// `ps` across the group: each run with every instance of every member,
/// those of dead members `lost`. `run` names one run or, when `None`, all.
pub(super) async fn ps_group(control: &Control, run: Option<String>) -> Result<Vec<Run>, Status> {
    let local = match control.supervisor.ps(run.clone()).await {
        Ok(runs) => runs.into_iter().map(run_to_proto).collect(),
        Err(Error::UnknownRun(_)) => Vec::new(),
        Err(err) => return Err(err.into()),
    };
    let request = PsRequest { run: run.clone().unwrap_or_default(), local: true };
    let answers = on_peers(control, |mut client| {
        let request = request.clone();
        async move { client.ps(request).await }
    })
    .await;
    let mut merged: BTreeMap<String, Run> = BTreeMap::new();
    let mut add = |runs: Vec<Run>| {
        for run in runs {
            let entry = merged.entry(run.name.clone()).or_insert_with(|| Run {
                name: run.name.clone(),
                module: run.module.clone(),
                args: run.args.clone(),
                created_ms: run.created_ms,
                ..Default::default()
            });
            entry.created_ms = entry.created_ms.min(run.created_ms);
            entry.instances.extend(run.instances);
            if entry.plan.is_empty() {
                entry.plan = run.plan;
            }
        }
    };
    add(local);
    let mut silent = Vec::new();
    for (peer, answer) in answers {
        match answer {
            Ok(reply) => add(reply.runs),
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => {
                tracing::warn!(member = %peer.name, %status, "ps: a member did not answer");
                silent.push(peer.id);
            }
        }
    }
    if merged.is_empty()
        && let Some(run) = run
    {
        return Err(Error::UnknownRun(run).into());
    }
    let view = control.group.view();
    let me = view.me().id.clone();
    let mut runs: Vec<Run> = merged.into_values().collect();
    for run in &mut runs {
        // What other members said of their instances is remembered, for
        // when they are dead.
        let seen: Vec<(String, Seen)> = run
            .instances
            .iter()
            .filter(|i| i.member_id != me)
            .map(|i| {
                let seen = Seen {
                    state: i.state.clone(),
                    exit_code: i.exit_code,
                    signal: i.signal,
                    pid: i.pid,
                    starts: i.starts,
                    started_ms: i.started_ms,
                    last_seq: i.last_seq,
                };
                (i.name.clone(), seen)
            })
            .collect();
        if !seen.is_empty() {
            control.supervisor.remember(run.name.clone(), seen);
        }
        // Whatever the plan places on a member that did not report it is
        // lost with that member: dead, or restarted without it. A live
        // member that did not answer leaves it out of reach instead. One
        // that had ended when last seen keeps that state: it is over, what
        // became of its member does not change it.
        for planned in std::mem::take(&mut run.plan) {
            if run.instances.iter().any(|i| i.name == planned.name) {
                continue;
            }
            let alive = view.member(&planned.member_id).is_some_and(|m| m.state == Liveness::Alive);
            let ended = matches!(planned.state.as_str(), "exited" | "failed" | "stopped" | "killed");
            let (state, detail) = match (alive && silent.contains(&planned.member_id), ended) {
                (true, _) => ("unreachable".to_owned(), "member does not answer"),
                (false, true) => (planned.state.clone(), "member dead; as last seen"),
                (false, false) => ("lost".to_owned(), "member dead"),
            };
            let pid = if ended { planned.pid } else { 0 };
            run.instances.push(Instance { run: run.name.clone(), state, detail: detail.into(), pid, ..planned });
        }
        run.instances.sort_by_key(|i| instance_number(&i.name));
    }
    runs.sort_by(|a, b| (a.created_ms, &a.name).cmp(&(b.created_ms, &b.name)));
    Ok(runs)
}

/// `p12` → 12, for ordering instances as p1, p2, …, p10.
pub(super) fn instance_number(name: &str) -> (u64, String) {
    (name.strip_prefix('p').and_then(|n| n.parse().ok()).unwrap_or(u64::MAX), name.to_owned())
}

/// Where a target's instances are: on this member, on live peers, or lost.
#[derive(Debug, Default)]
pub(super) struct Located {
    /// This member hosts some of them.
    pub local: bool,
    /// Live peers hosting some, with a channel and the instances there.
    pub remote: Vec<(PeerInfo, Channel, Vec<String>)>,
    /// Instances whose member is dead or out of reach: (instance, member
    /// name, member id).
    pub lost: Vec<(String, String, String)>,
}

/// Finds the members hosting `target`'s instances. A manager that never
/// had a peer has them all, and finds them at no cost.
pub(super) async fn locate(control: &Control, target: &Target) -> Result<Located, Status> {
    let view = control.group.view();
    if view.members.len() == 1 {
        return Ok(Located { local: true, ..Default::default() });
    }
    let runs = ps_group(control, Some(target.run.clone())).await?;
    let me = view.me().id.clone();
    let mut located = Located::default();
    let mut remote: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut found = false;
    for inst in runs.iter().flat_map(|r| &r.instances) {
        if target.instance.as_ref().is_some_and(|name| name != &inst.name) {
            continue;
        }
        found = true;
        let alive = view.member(&inst.member_id).is_some_and(|m| m.state == Liveness::Alive);
        // An instance of this member's own is here, whatever its state (one
        // lost when this manager restarted still has its log here).
        let away = inst.state == "lost" || inst.state == "unreachable" || !alive;
        if inst.member_id != me && away {
            located.lost.push((inst.name.clone(), inst.member.clone(), inst.member_id.clone()));
        } else if inst.member_id == me {
            located.local = true;
        } else {
            remote.entry(inst.member_id.clone()).or_default().push(inst.name.clone());
        }
    }
    if !found && let Some(instance) = &target.instance {
        return Err(Error::UnknownInstance { run: target.run.clone(), instance: instance.clone() }.into());
    }
    for (id, names) in remote {
        match (view.member(&id), view.channel(&id)) {
            (Some(member), Some(channel)) => located.remote.push((member.info.clone(), channel, names)),
            _ => located.lost.extend(names.into_iter().map(|n| (n, id.clone(), id.clone()))),
        }
    }
    Ok(located)
}

/// The error for a single instance that cannot be reached.
pub(super) fn lost(run: &str, instance: &str, member: &str) -> Status {
    GroupError::Lost { run: run.to_owned(), instance: instance.to_owned(), member: member.to_owned() }.into()
}
