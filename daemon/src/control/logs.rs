//! `Logs`: the numbered output of a run or an instance, replayed from its log
//! files and, with follow, continued live. One reader task per instance feeds
//! the response stream; the stream ends when every reader is done.

use mgr_proto::{LogsRequest, OutputChunk};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{Control, LogStream};
use crate::output::Chunk;
use crate::supervisor::Target;

pub(super) async fn logs(control: &Control, req: LogsRequest) -> Result<LogStream, Status> {
    let handles = control.supervisor.logs(Target::parse(&req.target)).await?;
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
