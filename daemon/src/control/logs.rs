//! `Logs`: the numbered output of a run or an instance, replayed from its log
//! files and, with follow, continued live, from every member that hosts
//! some of it. One reader task per local instance and one forwarded stream
//! per remote instance feed the response; the stream ends when all are done.
//!
//! A forwarded stream that breaks is resumed from the line after the last
//! one received, so a hiccup loses nothing; if the member is declared dead
//! instead, the viewer gets a `lost` note for each of its instances and,
//! when following, the stream waits for the member to come back and then
//! resumes after the last line it received, with a note: no gap, no repeat.
//!
//! Following a whole run that can change size (its module's processes may
//! come and go) also follows the instances a scale adds to it while the
//! viewer watches ([`follow_new`]); a run of fixed size streams as before,
//! with no watch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mgr_proto::{LogsRequest, OutputChunk};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::Channel;

use super::fanout::{locate, manager};
use super::group::Group;
use super::{Control, LogStream};
use crate::membership::{Liveness, PeerInfo};
use crate::output::Chunk;
use crate::supervisor::Target;

/// Pause before a broken forwarded stream is tried again.
const RESUME_AFTER: Duration = Duration::from_millis(200);

pub(super) async fn logs(control: &Control, req: LogsRequest) -> Result<LogStream, Status> {
    let target = Target::parse(&req.target)?;
    if req.local {
        return local(control, &req, target).await;
    }
    let located = locate(control, &target).await?;
    let scalable = match req.follow && target.instance.is_none() {
        true => scalable_run(control, &target.run).await?,
        false => None,
    };
    if scalable.is_none() && located.remote.is_empty() && located.lost.is_empty() {
        return local(control, &req, target).await;
    }
    let (tx, rx) = mpsc::channel::<Result<OutputChunk, Status>>(16);
    if let Some(known) = scalable {
        tokio::spawn(follow_new(control.clone(), req.clone(), target.run.clone(), known, tx.downgrade()));
    }
    if located.local {
        let mut here = local(control, &req, target.clone()).await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                // A viewer that hung up is not waited for until the next line.
                let item = tokio::select! {
                    item = here.next() => item,
                    _ = tx.closed() => return,
                };
                let Some(item) = item else { return };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
    }
    for (member, channel, names) in located.remote {
        for name in names {
            let follow = Forward {
                group: control.group.clone(),
                member: member.clone(),
                channel: channel.clone(),
                run: target.run.clone(),
                instance: name,
                request: req.clone(),
                tx: tx.clone(),
            };
            tokio::spawn(follow.run());
        }
    }
    let view = control.group.view();
    for (instance, member, member_id) in located.lost {
        // A follower waits for the member to come back; a reader of what
        // is there is told it is lost.
        match (req.follow, view.member(&member_id), view.channel(&member_id)) {
            (true, Some(peer), Some(channel)) => {
                let follow = Forward {
                    group: control.group.clone(),
                    member: peer.info.clone(),
                    channel,
                    run: target.run.clone(),
                    instance,
                    request: req.clone(),
                    tx: tx.clone(),
                };
                tokio::spawn(follow.run());
            }
            _ => {
                let _ = tx.send(Ok(lost_note(&target.run, &instance, &member, 0))).await;
            }
        }
    }
    drop(tx);
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// The instances of `run` if a scale may add more (a module whose
/// processes may come and go, or a command); `None` for a run of fixed
/// size, whose stream needs no watching for new ones.
async fn scalable_run(control: &Control, run: &str) -> Result<Option<std::collections::BTreeSet<String>>, Status> {
    let runs = super::fanout::ps_group(control, Some(run.to_owned())).await?;
    let instances: Vec<&mgr_proto::Instance> = runs.iter().flat_map(|r| &r.instances).collect();
    let mut modules: Vec<&str> = instances.iter().map(|i| i.module.as_str()).collect();
    modules.sort_unstable();
    modules.dedup();
    for module in modules {
        if super::scale::scalable(control, module).await == Some(true) {
            return Ok(Some(instances.iter().map(|i| i.name.clone()).collect()));
        }
    }
    Ok(None)
}

/// How often a follower of a whole run looks for instances a scale added.
const NEW_INSTANCES_EVERY: Duration = Duration::from_millis(500);

/// Follows, into `tx`, the instances of `run` that appear after `known`
/// (a scale), from their first line, for as long as the viewer follows
/// the others: the sender is weak, so the stream still ends when every
/// instance it follows has ended.
async fn follow_new(
    control: Control,
    req: LogsRequest,
    run: String,
    mut known: std::collections::BTreeSet<String>,
    tx: mpsc::WeakSender<Result<OutputChunk, Status>>,
) {
    let req = LogsRequest { since: 1, tail: 0, ..req };
    loop {
        tokio::time::sleep(NEW_INSTANCES_EVERY).await;
        let Some(strong) = tx.upgrade() else { return };
        let Ok(runs) = super::fanout::ps_group(&control, Some(run.clone())).await else { continue };
        let me = control.group.view().me().id.clone();
        for inst in runs.iter().flat_map(|r| &r.instances) {
            if !known.insert(inst.name.clone()) {
                continue;
            }
            let target = Target { run: run.clone(), instance: Some(inst.name.clone()) };
            if inst.member_id == me {
                let Ok(mut here) = local(&control, &req, target).await else { continue };
                let tx = strong.clone();
                tokio::spawn(async move {
                    while let Some(item) = tokio::select! { item = here.next() => item, _ = tx.closed() => None } {
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                });
            } else {
                let view = control.group.view();
                let (Some(member), Some(channel)) = (view.member(&inst.member_id), view.channel(&inst.member_id))
                else {
                    continue;
                };
                let follow = Forward {
                    group: control.group.clone(),
                    member: member.info.clone(),
                    channel,
                    run: run.clone(),
                    instance: inst.name.clone(),
                    request: req.clone(),
                    tx: strong.clone(),
                };
                tokio::spawn(follow.run());
            }
        }
    }
}

/// This member's own instances of the target.
async fn local(control: &Control, req: &LogsRequest, target: Target) -> Result<LogStream, Status> {
    let handles = control.supervisor.logs(target).await?;
    // A few chunks in flight per instance: readers wait (in the file, not in
    // memory) when the client is slow.
    let (tx, rx) = mpsc::channel::<Chunk>(4 * handles.len().max(1));
    // A log that cannot be read ends the stream with an error, never silently.
    let (fail, failures) = mpsc::channel::<Status>(1);
    for handle in handles {
        let (tx, fail) = (tx.clone(), fail.clone());
        let since = match req.tail {
            0 => req.since,
            tail => handle.seq().saturating_sub(tail) + 1,
        };
        let follow = req.follow;
        tokio::spawn(async move {
            if let Err(err) = handle.copy_to(since, follow, &tx).await {
                tracing::error!(run = %handle.run, instance = %handle.instance, %err, "cannot read the instance log");
                let _ = fail.try_send(super::status::log_unreadable(&handle.run, &handle.instance, &err));
            }
        });
    }
    drop((tx, fail));
    let stream = ReceiverStream::new(rx).map(|c| {
        Ok(OutputChunk {
            run: c.run.to_string(),
            instance: c.instance.to_string(),
            member: c.member.to_string(),
            first_seq: c.first_seq,
            time_ms: c.time_ms,
            records: c.records,
        })
    });
    Ok(Box::pin(stream.merge(ReceiverStream::new(failures).map(Err))))
}

/// One remote instance's output, forwarded until it ends or its member dies.
struct Forward {
    group: Group,
    member: PeerInfo,
    channel: Channel,
    run: String,
    instance: String,
    request: LogsRequest,
    tx: mpsc::Sender<Result<OutputChunk, Status>>,
}

impl Forward {
    async fn run(self) {
        let mut request =
            LogsRequest { target: format!("{}/{}", self.run, self.instance), local: true, ..self.request.clone() };
        let mut last_seq = 0u64;
        let mut views = self.group.subscribe();
        loop {
            match manager(self.channel.clone()).logs(request.clone()).await {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    loop {
                        // A viewer that hung up lets the member go at once:
                        // a quiet instance may not write for hours, and
                        // every forwarded stream holds one of the few the
                        // connection between two members may have open.
                        let message = tokio::select! {
                            message = stream.message() => message,
                            _ = self.tx.closed() => return,
                        };
                        match message {
                            Ok(Some(chunk)) => {
                                last_seq = last_seq.max(chunk.first_seq + numbered(&chunk.records).saturating_sub(1));
                                if self.tx.send(Ok(chunk)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => return,
                            Err(status) => {
                                tracing::debug!(member = %self.member.name, %status, "a forwarded log stream broke");
                                break;
                            }
                        }
                    }
                }
                Err(status) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {
                    let _ = self.tx.send(Err(status)).await;
                    return;
                }
                Err(status) => tracing::debug!(member = %self.member.name, %status, "cannot forward a log stream"),
            }
            // Resume after the last line received. A member declared dead
            // meanwhile ends a replay with a `lost` note; a follower is told
            // too, and waits for the member to come back.
            if last_seq > 0 {
                request.since = last_seq + 1;
                request.tail = 0;
            }
            let wait = tokio::time::sleep(RESUME_AFTER);
            tokio::pin!(wait);
            let mut told_lost = false;
            loop {
                let state = views.borrow_and_update().member(&self.member.id).map(|m| m.state);
                match state {
                    Some(Liveness::Alive) if told_lost => {
                        let note = format!(
                            "back: its member {} answers again; resuming after line {last_seq}",
                            self.member.name
                        );
                        let _ =
                            self.tx.send(Ok(note_chunk(&self.run, &self.instance, &self.member.name, 0, &note))).await;
                        break;
                    }
                    Some(Liveness::Alive) => {}
                    // Forgotten (or never known): it will not come back.
                    None => {
                        if !told_lost {
                            let _ = self.tx.send(Ok(lost_note(&self.run, &self.instance, &self.member.name, 0))).await;
                        }
                        return;
                    }
                    Some(_) if !told_lost => {
                        let _ = self.tx.send(Ok(lost_note(&self.run, &self.instance, &self.member.name, 0))).await;
                        if !self.request.follow {
                            return;
                        }
                        told_lost = true;
                    }
                    Some(_) => {}
                }
                tokio::select! {
                    _ = &mut wait, if !told_lost => break,
                    changed = views.changed() => if changed.is_err() { return },
                    _ = self.tx.closed() => return,
                }
            }
        }
    }
}

/// Numbered records (all but time records) in a chunk.
fn numbered(records: &[u8]) -> u64 {
    records.split(|b| *b == b'\n').filter(|r| !r.is_empty() && r[0] != mgr_proto::record::TIME).count() as u64
}

/// A manager note telling the viewer an instance is lost with its member.
fn lost_note(run: &str, instance: &str, member: &str, seq: u64) -> OutputChunk {
    note_chunk(run, instance, member, seq, &format!("lost: its member {member} is dead or out of reach"))
}

/// A manager note of this member's own about another member's instance: not
/// in that instance's log, so it has no number there (`first_seq` 0).
fn note_chunk(run: &str, instance: &str, member: &str, seq: u64, text: &str) -> OutputChunk {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    OutputChunk {
        run: run.to_owned(),
        instance: instance.to_owned(),
        member: member.to_owned(),
        first_seq: seq,
        time_ms: now,
        records: Bytes::from(format!("m {text}\n")),
    }
}
