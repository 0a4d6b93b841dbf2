//! Where the manager's own log goes: stderr (a journal, a redirect, or the
//! terminal of a manager in the foreground), or a file it writes itself
//! (`--log-file`, or `STATE/mgr.log` for a manager started in the
//! background of a terminal), rotated so that it stays bounded.
//!
//! This module owns the choice and the rotating file; it must not log
//! instances' output (that is `output.rs`) nor decide what is logged.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The size at which a log file the manager writes itself is rotated. With
/// one old file kept, the log never takes more than twice this (plus one
/// line): a manager that runs for a semester does not fill the disk.
pub const ROTATE_BYTES: u64 = 10 << 20;

/// The log file in the state dir of a manager started in the background.
pub const STATE_LOG: &str = "mgr.log";

/// What stderr is, for the choice of where to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// A file, a pipe, a socket (journald), /dev/null.
    NotTerminal,
    /// A terminal whose foreground process group is ours.
    Foreground,
    /// A terminal, but we are not in its foreground process group (started
    /// with `&`, or moved there with `bg`).
    Background,
}

impl Stderr {
    /// Looks at this process's stderr.
    pub fn current() -> Stderr {
        let stderr = io::stderr();
        if !stderr.is_terminal() {
            return Stderr::NotTerminal;
        }
        match nix::unistd::tcgetpgrp(&stderr) {
            Ok(foreground) if foreground == nix::unistd::getpgrp() => Stderr::Foreground,
            Ok(_) => Stderr::Background,
            // A terminal we cannot ask about: do as before, write to it.
            Err(_) => Stderr::Foreground,
        }
    }
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    /// A file of ours, rotated at [`ROTATE_BYTES`]; `background` when it
    /// was chosen because the manager runs in the background of a terminal.
    File {
        path: PathBuf,
        background: bool,
    },
}

/// The choice: a `--log-file` always; else stderr, unless it is a terminal
/// we are in the background of, where log lines would land in the middle of
/// whatever the user does next: then `STATE/mgr.log`. Whatever is not a
/// terminal (journald, a redirect, the tests' files) keeps getting the log
/// as it always did.
pub fn destination(log_file: Option<&Path>, state_dir: &Path, stderr: Stderr) -> Destination {
    match (log_file, stderr) {
        (Some(path), _) => Destination::File { path: path.to_owned(), background: false },
        (None, Stderr::Background) => Destination::File { path: state_dir.join(STATE_LOG), background: true },
        (None, Stderr::NotTerminal | Stderr::Foreground) => Destination::Stderr,
    }
}

/// Sets up tracing: `verbose` 0 info, 1 debug, 2 trace (RUST_LOG wins).
/// For a manager in the background, says once on stderr where its log is.
pub fn init(destination: &Destination, verbose: u8) -> io::Result<()> {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match destination {
        Destination::Stderr => {
            // Colours only for a terminal: a file or a journal gets plain
            // text; the journal has its own time stamps.
            let ansi = io::stderr().is_terminal();
            let builder = builder.with_writer(io::stderr).with_ansi(ansi);
            if stderr_is_journal() { builder.without_time().init() } else { builder.init() }
        }
        Destination::File { path, background } => {
            let file = RotatingFile::open(path, ROTATE_BYTES)?;
            if *background {
                tell_terminal(&format!(
                    "mgr: running in the background: logging to {} (--log-file FILE to choose)",
                    path.display()
                ));
            }
            builder.with_writer(Mutex::new(file)).with_ansi(false).init();
        }
    }
    Ok(())
}

/// Whether stderr is the journal's stream (systemd sets JOURNAL_STREAM to
/// its `device:inode`).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    let Ok(meta) = nix::sys::stat::fstat(io::stderr()) else { return false };
    dev.parse() == Ok(meta.st_dev) && ino.parse() == Ok(meta.st_ino)
}

/// One line on the terminal from the background. With `stty tostop`, a
/// background write would stop the process with SIGTTOU; with the signal
/// blocked on this thread the kernel lets the write through instead. The
/// mask is restored at once, so nothing started later inherits it.
fn tell_terminal(line: &str) {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    let blocked = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_ok();
    let _ = writeln!(io::stderr(), "{line}");
    if blocked {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

/// A log file that, before a write would take it past `max` bytes, is
/// renamed to `FILE.1` (replacing the older one) and started anew. Each
/// write is one whole event from tracing, so files are cut between lines.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl RotatingFile {
    /// Opens `path` for appending (mode 0600: the log names runs and peers,
    /// like the state dir that holds it), creating it if needed.
    pub fn open(path: &Path, max: u64) -> io::Result<RotatingFile> {
        let file = Self::open_file(path)?;
        let size = file.metadata()?.size();
        Ok(RotatingFile { path: path.to_owned(), file, size, max })
    }

    fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|err| io::Error::new(err.kind(), format!("cannot open log file {}: {err}", path.display())))
    }

    /// The old file: `FILE.1`.
    pub fn old_path(path: &Path) -> PathBuf {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        PathBuf::from(old)
    }

    fn rotate(&mut self) -> io::Result<()> {
        match std::fs::rename(&self.path, Self::old_path(&self.path)) {
            Ok(()) => self.file = Self::open_file(&self.path)?,
            // A file we cannot rename (its folder is not writable) is
            // emptied instead: losing old lines beats an unbounded log.
            Err(_) => self.file.set_len(0)?,
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max {
            self.rotate()?;
        }
        let written = self.file.write(buf)?;
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_terminal_we_are_in_the_background_of_sends_the_log_to_the_state_dir() {
        let state = Path::new("/s");
        assert_eq!(destination(None, state, Stderr::NotTerminal), Destination::Stderr);
        assert_eq!(destination(None, state, Stderr::Foreground), Destination::Stderr);
        assert_eq!(
            destination(None, state, Stderr::Background),
            Destination::File { path: PathBuf::from("/s/mgr.log"), background: true }
        );
        for stderr in [Stderr::NotTerminal, Stderr::Foreground, Stderr::Background] {
            assert_eq!(
                destination(Some(Path::new("/l")), state, stderr),
                Destination::File { path: PathBuf::from("/l"), background: false }
            );
        }
    }

    #[test]
    fn a_rotating_file_stays_under_twice_its_bound_and_keeps_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mgr.log");
        std::fs::write(&path, "from an earlier run\n").unwrap();
        let mut file = RotatingFile::open(&path, 1000).unwrap();
        for n in 0..1000 {
            file.write_all(format!("line {n:04} of the log\n").as_bytes()).unwrap();
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size <= 1000, "{size} bytes after line {n}");
        }
        let old = RotatingFile::old_path(&path);
        assert!(std::fs::metadata(&old).unwrap().len() <= 1000);
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.ends_with("line 0999 of the log\n"), "{newest}");
        assert!(newest.starts_with("line "), "cut between lines: {newest}");
        assert!(std::fs::read_to_string(&old).unwrap().starts_with("line "));
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 2, "one old file only");
    }
}
