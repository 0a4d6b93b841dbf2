//! Standard output that ends a command quietly when its reader goes away,
//! as `ls | head` does.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE (and
//! `println!` panics on it). Every command writes through [`Out`], which
//! turns that failure into [`Closed`]; `main` ends with status 0 and says
//! nothing when a command fails with it. A streaming command cannot wait
//! for its next write to find out (a quiet `logs -f` may have nothing to
//! write for hours): it also waits on [`gone`], which resolves as soon as
//! the reader of a pipe or socket on stdout has gone.
//!
//! Notes on stderr go through [`note!`](crate::note), which never panics:
//! with `2>&1 | head` stderr is the same closed pipe.

use std::io::{self, ErrorKind, Write};
use std::sync::OnceLock;

use tokio::sync::watch;

/// The reader of stdout has gone: the command's output is not wanted any
/// more. Not a failure: `main` exits 0 without a word.
#[derive(Debug, thiserror::Error)]
#[error("standard output is closed")]
pub struct Closed;

/// Whether `err` is (or was caused by) a write to a closed stdout.
pub fn is_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Closed>() || cause.downcast_ref::<io::Error>().is_some_and(closed_io))
}

/// Whether a write failed because stdout's reader has gone.
pub fn closed_io(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<Closed>())
}

/// A writer whose EPIPE is [`Closed`] (wrapped in an `io::Error`, so that
/// it passes through `BufWriter` and `?` alike).
#[derive(Debug)]
pub struct Out<W: Write> {
    inner: W,
}

impl<W: Write> Out<W> {
    pub fn new(inner: W) -> Self {
        Out { inner }
    }
}

fn mark(err: io::Error) -> io::Error {
    if err.kind() == ErrorKind::BrokenPipe { io::Error::new(ErrorKind::BrokenPipe, Closed) } else { err }
}

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(mark)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).map_err(mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(mark)
    }
}

/// Locked stdout for a command that prints and ends (tables, one-line
/// answers). Call `flush` before returning: a closed pipe may show only
/// there.
pub fn lock() -> Out<io::StdoutLock<'static>> {
    Out::new(io::stdout().lock())
}

/// Resolves once the reader of stdout has gone (a pipe whose read end is
/// closed, a socket whose peer hung up); never when stdout is a terminal,
/// a file or /dev/null, which have no reader to lose.
pub async fn gone() {
    let mut watching = watcher().clone();
    // An error means the watching thread is gone without seeing anything:
    // then nothing will tell, and the future never resolves.
    if watching.wait_for(|gone| *gone).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One thread per process polls stdout for POLLERR/POLLHUP, which a pipe's
/// write end reports once no reader is left. It blocks in `poll` for good
/// otherwise; `main` exits without waiting for it.
fn watcher() -> &'static watch::Receiver<bool> {
    static WATCHER: OnceLock<watch::Receiver<bool>> = OnceLock::new();
    WATCHER.get_or_init(|| {
        let (tx, rx) = watch::channel(false);
        if has_reader() {
            let spawned = std::thread::Builder::new().name("stdout-watch".into()).spawn(move || {
                if wait_for_hangup() {
                    let _ = tx.send(true);
                }
            });
            if let Err(err) = spawned {
                tracing::debug!(%err, "cannot watch stdout");
            }
        }
        rx
    })
}

/// Is stdout a pipe or a socket (the kinds whose reader can go away)?
fn has_reader() -> bool {
    use nix::sys::stat::{SFlag, fstat};
    fstat(io::stdout()).is_ok_and(|stat| {
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

/// Blocks until stdout reports an error or a hang-up; false if polling
/// itself fails.
fn wait_for_hangup() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdout = io::stdout();
    loop {
        // No event asked for: POLLERR and POLLHUP are reported regardless,
        // and only they matter (POLLOUT would wake on every free byte).
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&stdout), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let events = fds[0].revents().unwrap_or(PollFlags::empty());
                if events.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
                    return true;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Writes a line to stderr, ignoring failure: a note must never panic,
/// and with `2>&1 | head` stderr is a pipe that may be closed.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_is_closed_through_a_buffer_and_an_anyhow_context() {
        let mut out = io::BufWriter::new(Out::new(Broken));
        writeln!(out, "hello").unwrap();
        let err = out.flush().unwrap_err();
        let err = anyhow::Error::from(err).context("printing the table");
        assert!(is_closed(&err));
        assert!(!is_closed(&anyhow::Error::from(io::Error::from(ErrorKind::BrokenPipe))), "only stdout's");
        assert!(!is_closed(&anyhow::anyhow!("unknown run 'x'")));
    }
}
