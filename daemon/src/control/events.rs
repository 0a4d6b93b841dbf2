//! `Events`: the structured events of a run, from every member hosting
//! some of its instances. Members that are dead are named in a `missing`
//! chunk: their instances' events cannot be had, and a checker must know.
//!
//! A run's events may be larger than any message or any memory, so they
//! stream in chunks of whole lines of at most [`crate::events::CHUNK`]
//! bytes (one longer line excepted), many per instance, through a channel
//! of a few chunks: a stream holds a few MiB however large the run. Chunks
//! from other members pass through unchanged, so they are bounded the same.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
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

/// Chunks waiting for the client, beside the one each sender holds: with
/// chunks of up to 1 MiB, what a slow client can make a stream hold.
const IN_FLIGHT: usize = 2;

pub(super) async fn events(control: &Control, req: EventsRequest) -> Result<EventStream, Status> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let view = control.group.view();
    if req.local || view.members.len() == 1 {
        // Fails now, not in the stream, when the run is unknown here.
        control.supervisor.ps(Some(req.run.clone())).await?;
        tokio::spawn(local(control.supervisor.clone(), req, tx));
        return Ok(Box::pin(ReceiverStream::new(rx)));
    }
    let located = locate(control, &Target { run: req.run.clone(), instance: None }).await?;
    let mut missing: Vec<String> = Vec::new();
    for (_, member, _) in located.lost {
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
                // A reader that hung up lets the member go at once (see
                // `local`).
                let message = tokio::select! {
                    message = stream.message() => message,
                    _ = tx.closed() => return,
                };
                match message {
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

/// Streams this member's instances' events files, a chunk from each in
/// turn until every file is read to its end; with follow, then again every
/// [`POLL`] until none of the run's instances here is live.
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
        // One chunk per instance per round, so an instance with a large
        // file does not keep the others waiting.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for (instance, member, reader) in &mut readers {
                match read_chunk(reader).await {
                    Ok(lines) if lines.is_empty() => {}
                    Ok(lines) => {
                        progressed = true;
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
        }
        if !live {
            return;
        }
        // A reader that hung up is not followed until the run ends: each
        // pass costs a ps and a read of every file, and a forwarded stream
        // holds one of the few the connection between two members may
        // have open.
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

/// The next chunk of `reader`, read on a blocking thread: a chunk is a
/// MiB of file, not to be read on a thread that serves other RPCs.
async fn read_chunk(reader: &mut Reader) -> io::Result<Bytes> {
    let mut taken = std::mem::replace(reader, Reader::new(PathBuf::new()));
    let (taken, lines) = tokio::task::spawn_blocking(move || {
        let lines = taken.read_new();
        (taken, lines)
    })
    .await
    .map_err(io::Error::other)?;
    *reader = taken;
    lines
}
