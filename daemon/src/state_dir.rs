//! The state directory: one per manager, locked while the manager runs.
//!
//! It holds the member id (stable across restarts), the local control socket,
//! and one folder per run with each instance's log and event files. This
//! module owns paths and the lock; it must not know what runs or logs are.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Errors opening a state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot use state dir {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("another mgr is already running on state dir {0} (its lock is held)")]
    Locked(PathBuf),
    #[error("state dir {path} {why}: give mgr a folder of its own (--state-dir)")]
    NotPrivate { path: PathBuf, why: String },
}

/// An open, locked state directory. The lock is released on drop.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    member_id: String,
    _lock: Flock<File>,
}

/// The state directory used when none is given: `$MGR_STATE_DIR`,
/// else `$XDG_STATE_HOME/mgr`, else `~/.local/state/mgr`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MGR_STATE_DIR") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return Path::new(&dir).join("mgr");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    Path::new(&home).join(".local/state/mgr")
}

/// The control socket inside a state directory.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join("mgr.sock")
}

impl StateDir {
    /// Creates the directory if needed (mode 0700: the socket inside gives
    /// control of the manager, the runs inside are its users' output), takes
    /// its lock and loads the member id. An existing folder must be this
    /// user's and writable by nobody else (another user could plant a socket
    /// or swap a run's folder); one that others may read is closed to them.
    pub fn open(root: &Path) -> Result<Self, StateDirError> {
        let io_err = |source| StateDirError::Io { path: root.to_owned(), source };
        fs::DirBuilder::new().recursive(true).mode(0o700).create(root).map_err(io_err)?;
        // A symbolic link is followed: what is judged is the folder itself.
        let meta = fs::metadata(root).map_err(io_err)?;
        let not_private = |why: String| StateDirError::NotPrivate { path: root.to_owned(), why };
        use std::os::unix::fs::MetadataExt;
        if !meta.is_dir() {
            return Err(not_private("is not a folder".into()));
        }
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(not_private(format!("belongs to another user (uid {})", meta.uid())));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(not_private(format!("can be written by other users (mode {:04o})", meta.mode() & 0o7777)));
        }
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(root.join("lock"))
            .map_err(io_err)?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                StateDirError::Locked(root.to_owned())
            } else {
                io_err(errno.into())
            }
        })?;
        let member_id = load_or_create_id(&root.join("member-id")).map_err(io_err)?;
        fs::create_dir_all(root.join("runs")).map_err(io_err)?;
        Ok(StateDir { root: root.to_owned(), member_id, _lock: lock })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A random id made the first time this directory was used.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.root)
    }

    /// The folder of run `name`.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.root.join("runs").join(name)
    }
}

fn load_or_create_id(path: &Path) -> io::Result<String> {
    let mut id = String::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_string(&mut id)?;
            let id = id.trim();
            if !id.is_empty() {
                return Ok(id.to_owned());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = format!("{:016x}", rand::random::<u64>());
    let mut f = OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    writeln!(f, "{id}")?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_and_the_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path()).unwrap();
        let id = first.member_id().to_owned();
        assert!(matches!(StateDir::open(dir.path()), Err(StateDirError::Locked(_))));
        drop(first);
        let again = StateDir::open(dir.path()).unwrap();
        assert_eq!(again.member_id(), id);
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_folder_others_can_write_is_refused_and_one_they_can_read_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let err = StateDir::open(&shared).unwrap_err().to_string();
        assert!(err.contains("can be written by other users (mode 1777)"), "{err}");
        let readable = dir.path().join("readable");
        fs::create_dir(&readable).unwrap();
        fs::set_permissions(&readable, fs::Permissions::from_mode(0o755)).unwrap();
        StateDir::open(&readable).unwrap();
        assert_eq!(fs::metadata(&readable).unwrap().permissions().mode() & 0o777, 0o700);
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(StateDir::open(&file).is_err());
    }
}
