//! A cgroup v2 of this manager's own, where the kernel offers one.
//!
//! Every instance joins it between fork and exec, and so does everything an
//! instance starts, even a process that leaves its process group
//! (`setsid`) and clears its environment. Writing `1` to `cgroup.kill` then
//! ends them all at once: at shutdown, and at the next start after a
//! `kill -9` of the manager. Without cgroup v2 (or without the right to
//! create one) the manager works the same, with process groups and the
//! environment sweep only.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The manager's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened before any fork so a child can join with a
    /// single async-signal-safe `write`.
    procs: File,
}

impl Cgroup {
    /// Creates (or reuses) `mgr-<member_id>` under this process's own cgroup
    /// v2. `None` when there is no cgroup v2 or it cannot be written.
    pub fn open(member_id: &str) -> Option<Cgroup> {
        let mount = cgroup2_mount()?;
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/').to_owned();
        let dir = mount.join(own).join(format!("mgr-{member_id}"));
        if let Err(err) = fs::create_dir_all(&dir) {
            tracing::debug!(dir = %dir.display(), %err, "no cgroup for instances");
            return None;
        }
        let procs = OpenOptions::new().write(true).open(dir.join("cgroup.procs")).ok()?;
        Some(Cgroup { dir, procs })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The descriptor a child writes `0` to, to join.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Kills every process in the cgroup and waits (briefly) until it is
    /// empty. Returns how many processes were in it.
    pub fn kill_all(&self) -> usize {
        let members = self.members();
        if members == 0 {
            return 0;
        }
        let killed =
            OpenOptions::new().write(true).open(self.dir.join("cgroup.kill")).and_then(|mut f| f.write_all(b"1"));
        if killed.is_err() {
            // Kernels before 5.14 have no cgroup.kill: signal each process.
            for pid in fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default().lines() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.members() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        members
    }

    fn members(&self) -> usize {
        fs::read_to_string(self.dir.join("cgroup.procs")).map(|s| s.lines().count()).unwrap_or(0)
    }

    /// Removes the cgroup once it is empty.
    pub fn remove(self) {
        self.kill_all();
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Where cgroup v2 is mounted, from `/proc/self/mountinfo`.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}
