//! The pump of one started process: drains its stdout and stderr into its
//! log without ever waiting for a reader, feeds its stdin, and collects its
//! exit status.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

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

/// Reads both pipes until they close and the process has exited. Returns the
/// exit status and the log writer (which outlives the process).
pub async fn pump(
    child: Spawned,
    stdin_lines: mpsc::Receiver<Bytes>,
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
/// instance ended) or the pipe breaks.
async fn feed_stdin(mut stdin: pipe::Sender, mut lines: mpsc::Receiver<Bytes>) {
    while let Some(line) = lines.recv().await {
        if let Err(err) = stdin.write_all(&line).await {
            tracing::debug!(%err, "stdin closed by the instance");
            break;
        }
    }
}
