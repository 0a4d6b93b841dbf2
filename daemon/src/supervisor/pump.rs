//! The pump of one started process: drains its stdout and stderr into its
//! log without ever waiting for a reader, feeds its stdin, and collects its
//! exit status.

use std::io;
use std::os::fd::AsRawFd;
use std::process::ExitStatus;
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::mpsc;

use crate::output::{Stream, Writer};

/// How long the pipes may stay open after the process ended: something
/// that escaped its process group may still hold them.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Pipe buffer asked of the kernel for stdout: fewer, larger reads when an
/// instance prints fast.
const PIPE_SIZE: i32 = 1 << 20;

/// Reads both pipes until they close and the process has exited. Returns the
/// exit status and the log writer (which outlives the process).
pub async fn pump(
    mut child: Child,
    stdout: ChildStdout,
    stderr: ChildStderr,
    mut writer: Writer,
    mut notes: mpsc::UnboundedReceiver<String>,
    what: &str,
) -> (io::Result<ExitStatus>, Writer) {
    // Best effort: a smaller pipe only costs speed.
    let _ = nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    let pgid = child.id().map(|pid| Pid::from_raw(pid as i32));
    let mut out = Some(stdout);
    let mut err = Some(stderr);
    let mut out_buf = vec![0u8; 256 * 1024];
    let mut err_buf = vec![0u8; 64 * 1024];
    let mut status: Option<io::Result<ExitStatus>> = None;
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
                    Ok(n) => writer.write(Stream::Stdout, &out_buf[..n]),
                };
                report_log_error(result, what, &mut log_failed);
            }
            read = read_some(&mut err, &mut err_buf), if err.is_some() => {
                let result = match read {
                    Ok(0) | Err(_) => { err = None; writer.end(Stream::Stderr) }
                    Ok(n) => writer.write(Stream::Stderr, &err_buf[..n]),
                };
                report_log_error(result, what, &mut log_failed);
            }
            Some(note) = notes.recv() => {
                report_log_error(writer.note(&note), what, &mut log_failed);
            }
            exit = child.wait(), if status.is_none() => {
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
pub async fn feed_stdin(mut stdin: ChildStdin, mut lines: mpsc::Receiver<Bytes>) {
    let fd = stdin.as_raw_fd();
    while let Some(line) = lines.recv().await {
        if let Err(err) = stdin.write_all(&line).await {
            tracing::debug!(fd, %err, "stdin closed by the instance");
            break;
        }
    }
}
