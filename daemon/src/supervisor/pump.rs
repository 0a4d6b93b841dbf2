//! The pump of one started process: drains its stdout and stderr into its
//! log without ever waiting for a reader, feeds its stdin and its control
//! pipe, and collects its exit status.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

use super::spawner::Spawned;
use crate::output::{Stream, Writer};

/// How a process ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Waits for the process behind `pidfd` to end, and reaps it.
async fn wait_exit(pidfd: &AsyncFd<OwnedFd>) -> io::Result<Exit> {
    loop {
        let mut ready = pidfd.readable().await?;
        match waitid(Id::PIDFd(pidfd.get_ref().as_fd()), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG)? {
            WaitStatus::Exited(_, code) => return Ok(Exit { code: Some(code), signal: None }),
            WaitStatus::Signaled(_, signal, _) => return Ok(Exit { code: None, signal: Some(signal as i32) }),
            _ => ready.clear_ready(),
        }
    }
}

/// How long the pipes may stay open after the process ended: something
/// that escaped its process group may still hold them.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Pipe reads start this size and grow up to `MAX_READ` for a fast printer.
const MIN_READ: usize = 4 * 1024;
const MAX_READ: usize = 256 * 1024;

/// Pipe buffer asked of the kernel for stdout: fewer, larger reads when an
/// instance prints fast.
const PIPE_SIZE: i32 = 1 << 20;

/// The input of one instance as the supervisor holds it: lines wait here
/// until the pump has written them to the pipe, at most `lines` of them and
/// `bytes` in all, so a process that does not read cannot make the manager
/// hold more.
#[derive(Debug, Clone)]
pub struct StdinQueue {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    bytes: usize,
}

/// The pump's end of a [`StdinQueue`].
#[derive(Debug)]
pub struct StdinFeed {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// Why a line was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds this many bytes and cannot take the line.
    Full(usize),
    /// The instance has ended.
    Closed,
}

/// A new input queue of at most `lines` lines and `bytes` bytes.
pub fn stdin_queue(lines: usize, bytes: usize) -> (StdinQueue, StdinFeed) {
    let (tx, rx) = mpsc::channel(lines);
    let queued = Arc::new(AtomicUsize::new(0));
    (StdinQueue { tx, queued: queued.clone(), bytes }, StdinFeed { rx, queued })
}

impl StdinQueue {
    /// Queues `line` for the instance, or says why not.
    pub fn push(&self, line: Bytes) -> Result<(), Refused> {
        let len = line.len();
        // Only the supervisor task pushes, so the check and the add do not
        // race with another push; the pump only subtracts.
        let queued = self.queued.load(Ordering::Acquire);
        if queued + len > self.bytes {
            return Err(Refused::Full(queued));
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        match self.tx.try_send(line) {
            Ok(()) => Ok(()),
            Err(err) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                match err {
                    mpsc::error::TrySendError::Full(_) => Err(Refused::Full(queued)),
                    mpsc::error::TrySendError::Closed(_) => Err(Refused::Closed),
                }
            }
        }
    }
}

/// Reads both pipes until they close and the process has exited. Returns the
/// exit status and the log writer (which outlives the process). `control`
/// carries the manager's messages to the module runtime (the whole state
/// each time, so only the latest matters).
pub async fn pump(
    mut child: Spawned,
    stdin_lines: StdinFeed,
    control: watch::Receiver<Bytes>,
    mut writer: Writer,
    mut notes: mpsc::UnboundedReceiver<String>,
    what: &str,
) -> (io::Result<Exit>, Writer) {
    // Best effort: a smaller pipe only costs speed.
    let _ = nix::fcntl::fcntl(&child.stdout, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    let pgid = Some(Pid::from_raw(child.pid as i32));
    let (stdout, stderr, stdin, pidfd) = match (
        pipe::Receiver::from_owned_fd(child.stdout),
        pipe::Receiver::from_owned_fd(child.stderr),
        pipe::Sender::from_owned_fd(child.stdin),
        // SAFETY: the pidfd is an OwnedFd that the AsyncFd takes over: it
        // stays open and the same for the AsyncFd's whole life.
        unsafe { AsyncFd::register(child.pidfd) }.map_err(|e| e.into_parts().1),
    ) {
        (Ok(stdout), Ok(stderr), Ok(stdin), Ok(pidfd)) => (stdout, stderr, stdin, pidfd),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            // Without its pipes the instance cannot be supervised: end it.
            let _ = killpg(Pid::from_raw(child.pid as i32), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(child.pid as i32), None);
            return (Err(e), writer);
        }
    };
    tokio::spawn(feed_stdin(stdin, stdin_lines));
    // The control pipe's feeder ends with the pump: a module that never
    // reads its control pipe must not keep a task and a descriptor alive.
    let feeding_control = match child.control.take().map(pipe::Sender::from_owned_fd) {
        Some(Ok(sender)) => Some(tokio::spawn(feed_control(sender, control))),
        Some(Err(err)) => {
            tracing::warn!(instance = what, %err, "cannot use the control pipe: fault changes will not reach it");
            None
        }
        None => None,
    };
    let mut out = Some(stdout);
    let mut err = Some(stderr);
    let mut out_buf = vec![0u8; MIN_READ];
    let mut err_buf = vec![0u8; MIN_READ];
    let mut status: Option<io::Result<Exit>> = None;
    // Armed when the process exits.
    let deadline = tokio::time::sleep(Duration::from_secs(86400 * 365));
    tokio::pin!(deadline);
    let mut log_failed = false;
    loop {
        if out.is_none() && err.is_none() && status.is_some() {
            break;
        }
        tokio::select! {
            read = read_some(&mut out, &mut out_buf), if out.is_some() => {
                let result = match read {
                    Ok(0) | Err(_) => { out = None; writer.end(Stream::Stdout) }
                    Ok(n) => {
                        let result = writer.write(Stream::Stdout, &out_buf[..n]);
                        grow(&mut out_buf, n);
                        result
                    }
                };
                report_log_error(result, what, &mut log_failed);
            }
            read = read_some(&mut err, &mut err_buf), if err.is_some() => {
                let result = match read {
                    Ok(0) | Err(_) => { err = None; writer.end(Stream::Stderr) }
                    Ok(n) => {
                        let result = writer.write(Stream::Stderr, &err_buf[..n]);
                        grow(&mut err_buf, n);
                        result
                    }
                };
                report_log_error(result, what, &mut log_failed);
            }
            Some(note) = notes.recv() => {
                report_log_error(writer.note(&note), what, &mut log_failed);
            }
            exit = wait_exit(&pidfd), if status.is_none() => {
                status = Some(exit);
                // Nothing of an instance outlives it: whatever it left in its
                // process group goes too, which also closes the pipes.
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            }
            _ = &mut deadline, if status.is_some() => {
                tracing::warn!(instance = what, "output pipes still open after the process ended; closing them");
                let _ = writer.end(Stream::Stdout);
                let _ = writer.end(Stream::Stderr);
                break;
            }
        }
    }
    if let Some(task) = feeding_control {
        task.abort();
    }
    (status.expect("the loop ends after the exit"), writer)
}

/// A pipe read fills its buffer only when the instance prints fast: then a
/// larger buffer means fewer reads. A quiet instance keeps a small one.
fn grow(buf: &mut Vec<u8>, filled: usize) {
    if filled == buf.len() && buf.len() < MAX_READ {
        buf.resize(buf.len() * 4, 0);
    }
}

async fn read_some<R: AsyncReadExt + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

fn report_log_error(result: io::Result<()>, what: &str, failed: &mut bool) {
    match result {
        Ok(()) => *failed = false,
        Err(err) if !*failed => {
            // Loud, once per failure streak: output is being lost.
            tracing::error!(instance = what, %err, "cannot append to the instance log: output is being dropped");
            *failed = true;
        }
        Err(_) => {}
    }
}

/// Writes queued lines to the process's stdin until the queue closes (the
/// instance ended) or the pipe breaks. A line counts against the queue's
/// bytes until it is in the pipe.
async fn feed_stdin(mut stdin: pipe::Sender, mut feed: StdinFeed) {
    while let Some(line) = feed.rx.recv().await {
        let written = stdin.write_all(&line).await;
        feed.queued.fetch_sub(line.len(), Ordering::AcqRel);
        if let Err(err) = written {
            tracing::debug!(%err, "stdin closed by the instance");
            break;
        }
    }
}

/// Writes the latest control message to the control pipe each time it
/// changes, until the pipe breaks or the run goes.
async fn feed_control(mut pipe: pipe::Sender, mut control: watch::Receiver<Bytes>) {
    while control.changed().await.is_ok() {
        let message = control.borrow_and_update().clone();
        if pipe.write_all(&message).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_queue_is_bounded_in_bytes_and_lines() {
        let (queue, mut feed) = stdin_queue(2, 10);
        assert_eq!(queue.push(Bytes::from_static(b"123456\n")), Ok(()));
        assert_eq!(queue.push(Bytes::from_static(b"1234\n")), Err(Refused::Full(7)), "bytes");
        assert_eq!(queue.push(Bytes::from_static(b"1\n")), Ok(()));
        assert_eq!(queue.push(Bytes::from_static(b"\n")), Err(Refused::Full(9)), "lines");
        // What the pump has written no longer counts.
        let line = feed.rx.try_recv().unwrap();
        feed.queued.fetch_sub(line.len(), Ordering::AcqRel);
        assert_eq!(queue.push(Bytes::from_static(b"12345\n")), Ok(()));
        drop(feed);
        assert_eq!(queue.push(Bytes::from_static(b"x\n")), Err(Refused::Closed));
    }
}
