//! `Events`: the structured events of a run, from every member hosting
//! some of its instances. Members that are dead are named in a `missing`
//! chunk: their instances' events cannot be had, and a checker must know.

use std::pin::Pin;
use std::time::Duration;

use mgr_proto::{EventsChunk, EventsRequest};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Control;
use super::fanout::{locate, manager};
use crate::events::{Reader, path};
use crate::supervisor::{Supervisor, Target};

pub(super) type EventStream = Pin<Box<dyn Stream<Item = Result<EventsChunk, Status>> + Send>>;

/// How often a followed events file is looked at for new lines.
const POLL: Duration = Duration::from_millis(100);

pub(super) async fn events(control: &Control, req: EventsRequest) -> Result<EventStream, Status> {
    let (tx, rx) = mpsc::channel(16);
    let view = control.group.view();
    if req.local || view.members.len() == 1 {
        // Fails now, not in the stream, when the run is unknown here.
        control.supervisor.ps(Some(req.run.clone())).await?;
        tokio::spawn(local(control.supervisor.clone(), req, tx));
        return Ok(Box::pin(ReceiverStream::new(rx)));
    }
    let located = locate(control, &Target { run: req.run.clone(), instance: None }).await?;
    let mut missing: Vec<String> = Vec::new();
    for (_, member) in located.lost {
        if !missing.contains(&member) {
            missing.push(member);
        }
    }
    if !missing.is_empty() {
        let chunk = EventsChunk { run: req.run.clone(), missing, ..Default::default() };
        let _ = tx.send(Ok(chunk)).await;
    }
    if located.local {
        tokio::spawn(local(control.supervisor.clone(), req.clone(), tx.clone()));
    }
    for (member, channel, _) in located.remote {
        let (tx, name) = (tx.clone(), member.name);
        let request = EventsRequest { local: true, ..req.clone() };
        tokio::spawn(async move {
            let mut stream = match manager(channel).events(request.clone()).await {
                Ok(stream) => stream.into_inner(),
                Err(status) => {
                    tracing::warn!(member = %name, %status, "events: a member did not answer");
                    let _ =
                        tx.send(Ok(EventsChunk { run: request.run, missing: vec![name], ..Default::default() })).await;
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(chunk)) => {
                        if tx.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        // What was received stays; the rest is missing, and
                        // the reader is told so.
                        tracing::warn!(member = %name, %status, "events: a member's stream broke");
                        let chunk = EventsChunk { run: request.run, missing: vec![name], ..Default::default() };
                        let _ = tx.send(Ok(chunk)).await;
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Streams this member's instances' events files; with follow, until none
/// of the run's instances here is live and the files are read to the end.
async fn local(supervisor: Supervisor, req: EventsRequest, tx: mpsc::Sender<Result<EventsChunk, Status>>) {
    let Ok(runs) = supervisor.ps(Some(req.run.clone())).await else { return };
    let Some(run) = runs.into_iter().next() else { return };
    let mut readers: Vec<(String, String, Reader)> = run
        .instances
        .iter()
        .map(|i| (i.name.clone(), i.member.clone(), Reader::new(path(&run.dir, &i.name))))
        .collect();
    loop {
        // Whether anything was live before this pass: a pass after the last
        // instance ended reads what it wrote last.
        let live = req.follow
            && supervisor
                .ps(Some(req.run.clone()))
                .await
                .is_ok_and(|runs| runs.iter().flat_map(|r| &r.instances).any(|i| i.state.is_live()));
        for (instance, member, reader) in &mut readers {
            match reader.read_new() {
                Ok(lines) if lines.is_empty() => {}
                Ok(lines) => {
                    let chunk = EventsChunk {
                        run: req.run.clone(),
                        instance: instance.clone(),
                        member: member.clone(),
                        lines,
                        missing: Vec::new(),
                    };
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::error!(run = %req.run, %instance, %err, "cannot read the events file");
                    let _ = tx.send(Err(super::status::events_unreadable(&req.run, instance, &err))).await;
                    return;
                }
            }
        }
        if !live {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
