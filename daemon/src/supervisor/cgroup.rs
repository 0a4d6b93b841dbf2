//! Cgroups: where the kernel offers them, every instance runs in a cgroup
//! of its own, under one of the manager's.
//!
//! Two things come of it. **Nothing escapes**: an instance, and everything
//! it starts (even a process that leaves its process group with `setsid`
//! and clears its environment), is in the manager's cgroup v2, whose
//! `cgroup.kill` ends them all at once: at shutdown, at the next start after
//! a `kill -9` of the manager, and from the guard process the moment the
//! manager dies. **Limits**: an instance's memory, CPU and number of
//! processes are those of its own cgroup, a leaf under the manager's, with
//! the cgroup v2 controllers where the manager's cgroup has them
//! (delegated, as systemd's `Delegate=yes` does), else with the cgroup v1
//! controllers where those are mounted and writable; a default limit of
//! processes stops a fork bomb. Without either the manager works the same,
//! with process groups and the environment sweep only, and says that limits
//! are off.
//!
//! This module owns the cgroup folders and files; it must not know about
//! runs or processes beyond the descriptors a child writes itself into.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The limits of one instance; 0 is none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub memory: u64,
    /// CPUs, e.g. 0.5 for half of one.
    pub cpus: f64,
    pub pids: u32,
}

impl Limits {
    pub fn any(&self) -> bool {
        self.memory > 0 || self.cpus > 0.0 || self.pids > 0
    }
}

/// The manager's cgroups.
#[derive(Debug)]
pub struct Cgroups {
    /// The manager's cgroup v2, `mgr-<member id>`: every instance's leaf is
    /// under it.
    unified: Option<PathBuf>,
    /// Where limits are set, or why they are not.
    limits: Backend,
}

#[derive(Debug)]
enum Backend {
    /// Leaves under `unified`, with the v2 controllers enabled.
    V2,
    /// Leaves under `mgr-<member id>` in each v1 hierarchy that is mounted.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
    Off(String),
}

/// The leaf cgroups of one started instance.
#[derive(Debug)]
pub struct InstanceCgroup {
    /// The v2 leaf, and the v1 leaves by controller name.
    v2: Option<PathBuf>,
    v1: Vec<(&'static str, PathBuf)>,
    /// `cgroup.procs` of each, opened before the fork: the child joins
    /// with one async-signal-safe `write` each.
    procs: Vec<File>,
    limits: Limits,
}

/// What a cgroup reports of how an instance ended.
pub const OUT_OF_MEMORY: &str = "out of memory";
pub const PIDS_LIMIT: &str = "hit its limit of processes";

impl Cgroups {
    /// Finds or makes the manager's cgroups; never fails (what cannot be
    /// had is off, and `limits_off` says why).
    pub fn open(member_id: &str) -> Cgroups {
        let name = format!("mgr-{member_id}");
        let unified = cgroup2().and_then(|(mount, own)| {
            let dir = mount.join(own.trim_start_matches('/')).join(&name);
            match fs::create_dir_all(&dir) {
                Ok(()) => Some(dir),
                Err(err) => {
                    tracing::debug!(dir = %dir.display(), %err, "no cgroup v2 for instances");
                    None
                }
            }
        });
        let limits = match &unified {
            Some(dir) if enable_v2_controllers(dir) => Backend::V2,
            _ => v1_backend(&name),
        };
        Cgroups { unified, limits }
    }

    /// Why per-instance limits are off on this member, if they are.
    pub fn limits_off(&self) -> Option<&str> {
        match &self.limits {
            Backend::Off(why) => Some(why),
            _ => None,
        }
    }

    /// The manager's cgroup v2, if it has one.
    pub fn path(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// A leaf cgroup (in each hierarchy used) named `leaf` for an instance
    /// about to start, with `limits` set; made anew if a leaf of that name
    /// is left. Limits asked of a member without them are an error.
    pub fn instance(&self, leaf: &str, limits: Limits) -> io::Result<InstanceCgroup> {
        let mut cgroup = InstanceCgroup { v2: None, v1: Vec::new(), procs: Vec::new(), limits };
        if let Some(base) = &self.unified {
            let dir = base.join(leaf);
            make_leaf(&dir)?;
            if matches!(self.limits, Backend::V2) {
                write_limit(&dir, "memory.max", limits.memory, |m| m.to_string())?;
                write_limit(&dir, "pids.max", u64::from(limits.pids), |p| p.to_string())?;
                if limits.cpus > 0.0 {
                    let quota = (limits.cpus * 100_000.0).round().max(1000.0) as u64;
                    write_file(&dir, "cpu.max", &format!("{quota} 100000"))?;
                }
            }
            cgroup.procs.push(OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?);
            cgroup.v2 = Some(dir);
        }
        if let Backend::V1 { memory, pids, cpu } = &self.limits {
            if let Some(base) = memory {
                let dir = base.join(leaf);
                make_leaf(&dir)?;
                write_limit(&dir, "memory.limit_in_bytes", limits.memory, |m| m.to_string())?;
                // Swap too, where the kernel counts it: a limit is a limit.
                if limits.memory > 0 && dir.join("memory.memsw.limit_in_bytes").exists() {
                    let _ = write_file(&dir, "memory.memsw.limit_in_bytes", &limits.memory.to_string());
                }
                cgroup.v1.push(("memory", dir));
            }
            if let Some(base) = pids {
                let dir = base.join(leaf);
                make_leaf(&dir)?;
                write_limit(&dir, "pids.max", u64::from(limits.pids), |p| p.to_string())?;
                cgroup.v1.push(("pids", dir));
            }
            if let Some(base) = cpu {
                let dir = base.join(leaf);
                make_leaf(&dir)?;
                if limits.cpus > 0.0 {
                    write_file(&dir, "cpu.cfs_period_us", "100000")?;
                    let quota = (limits.cpus * 100_000.0).round().max(1000.0) as u64;
                    write_file(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
                cgroup.v1.push(("cpu", dir));
            }
            for (_, dir) in &cgroup.v1 {
                cgroup.procs.push(OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?);
            }
        }
        Ok(cgroup)
    }

    /// Kills every process of every instance and waits (briefly) until
    /// none is left. Returns how many there were.
    pub fn kill_all(&self) -> usize {
        let found = self.members();
        if found == 0 {
            return 0;
        }
        let killed = self.unified.as_ref().is_some_and(|dir| write_file(dir, "cgroup.kill", "1").is_ok());
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if !killed {
                // Kernels before 5.14, or v1 only: one process at a time.
                for pid in self.pids() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            if self.members() == 0 || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The file the guard writes to end every instance when the manager
    /// dies: the manager's `cgroup.kill`.
    pub fn kill_file(&self) -> Option<PathBuf> {
        self.unified.as_ref().map(|dir| dir.join("cgroup.kill")).filter(|f| f.exists())
    }

    fn members(&self) -> usize {
        self.pids().len()
    }

    /// Every process in any of the manager's cgroups.
    fn pids(&self) -> Vec<i32> {
        let mut roots: Vec<&Path> = self.unified.iter().map(PathBuf::as_path).collect();
        if let Backend::V1 { memory, pids, cpu } = &self.limits {
            roots.extend([memory, pids, cpu].into_iter().flatten().map(PathBuf::as_path));
        }
        let mut found = Vec::new();
        for root in roots {
            collect_pids(root, &mut found);
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Removes the cgroups once every process in them has ended.
    pub fn remove(self) {
        self.kill_all();
        let mut roots: Vec<PathBuf> = self.unified.into_iter().collect();
        if let Backend::V1 { memory, pids, cpu } = self.limits {
            roots.extend([memory, pids, cpu].into_iter().flatten());
        }
        for root in roots {
            if let Ok(leaves) = fs::read_dir(&root) {
                for leaf in leaves.flatten().filter(|e| e.path().is_dir()) {
                    let _ = fs::remove_dir(leaf.path());
                }
            }
            let _ = fs::remove_dir(&root);
        }
    }
}

impl InstanceCgroup {
    /// The descriptors the child writes `0` to, to join.
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Once the child has joined: the descriptors are not needed any more.
    pub fn joined(&mut self) {
        self.procs.clear();
    }

    /// What the cgroup says of the instance's end: killed for memory, or
    /// refused processes past its limit; `None` when neither.
    pub fn outcome(&self) -> Option<&'static str> {
        let counter = |dir: &Path, file: &str, key: &str| -> u64 {
            let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
            text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
        };
        if let Some(dir) = &self.v2 {
            if self.limits.memory > 0 && counter(dir, "memory.events", "oom_kill ") > 0 {
                return Some(OUT_OF_MEMORY);
            }
            if counter(dir, "pids.events", "max ") > 0 {
                return Some(PIDS_LIMIT);
            }
        }
        for (controller, dir) in &self.v1 {
            match *controller {
                "memory" if self.limits.memory > 0 => {
                    let killed = counter(dir, "memory.oom_control", "oom_kill ");
                    let failed = fs::read_to_string(dir.join("memory.failcnt"))
                        .ok()
                        .and_then(|t| t.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                    if killed > 0 || (failed > 0 && !dir.join("memory.oom_control").exists()) {
                        return Some(OUT_OF_MEMORY);
                    }
                }
                "pids" if counter(dir, "pids.events", "max ") > 0 => return Some(PIDS_LIMIT),
                _ => {}
            }
        }
        None
    }

    /// Removes the leaves (the instance has ended; its processes, killed
    /// with its process group, may take a moment to leave).
    pub fn remove(self) {
        let dirs: Vec<PathBuf> = self.v2.into_iter().chain(self.v1.into_iter().map(|(_, d)| d)).collect();
        let deadline = Instant::now() + Duration::from_millis(500);
        for dir in dirs {
            while fs::remove_dir(&dir).is_err() && dir.exists() && Instant::now() < deadline {
                let mut left = Vec::new();
                collect_pids(&dir, &mut left);
                for pid in left {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// A new, empty leaf (one left by an earlier start is emptied and reused).
fn make_leaf(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

fn write_file(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(dir.join(file))
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|err| io::Error::new(err.kind(), format!("cannot write {}: {err}", dir.join(file).display())))
}

/// Writes a limit, or "max" (no limit) for 0, so that a reused leaf keeps
/// no limit of an earlier start.
fn write_limit(dir: &Path, file: &str, value: u64, show: impl Fn(u64) -> String) -> io::Result<()> {
    let unlimited = if file.ends_with("limit_in_bytes") { "-1" } else { "max" };
    let text = if value == 0 { unlimited.to_owned() } else { show(value) };
    write_file(dir, file, &text)
}

/// The pids in `dir` and in every cgroup below it.
fn collect_pids(dir: &Path, found: &mut Vec<i32>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        found.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&entry.path(), found);
            }
        }
    }
}

/// Enables memory, pids and cpu for the leaves under `dir`: in its parent
/// (where this process is, unless it is the root) and in `dir`. A parent
/// with processes cannot hand controllers down (cgroup v2's rule), so a
/// manager that is not in a delegated cgroup of its own gets none.
fn enable_v2_controllers(dir: &Path) -> bool {
    let wanted = ["memory", "pids", "cpu"];
    let available = |d: &Path| fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
    if let Some(parent) = dir.parent() {
        let have = available(parent);
        for c in wanted.iter().filter(|c| have.split_whitespace().any(|h| h == **c)) {
            let _ = write_file(parent, "cgroup.subtree_control", &format!("+{c}"));
        }
    }
    let have = available(dir);
    if !wanted.iter().all(|c| have.split_whitespace().any(|h| h == *c)) {
        return false;
    }
    wanted.iter().all(|c| write_file(dir, "cgroup.subtree_control", &format!("+{c}")).is_ok())
}

/// The cgroup v1 hierarchies of memory, pids and cpu, with a
/// `mgr-<member id>` made in each under this process's own cgroup there.
fn v1_backend(name: &str) -> Backend {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let base = |controller: &str| -> Option<PathBuf> {
        let mount = mounts.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut fields = right.split_whitespace();
            let (kind, options) = (fields.next()?, fields.nth(1)?);
            (kind == "cgroup" && options.split(',').any(|o| o == controller))
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })?;
        let path = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == controller).then(|| path.to_owned())
        })?;
        let dir = mount.join(path.trim_start_matches('/')).join(name);
        fs::create_dir_all(&dir).ok().map(|()| dir)
    };
    let (memory, pids, cpu) = (base("memory"), base("pids"), base("cpu"));
    if memory.is_none() && pids.is_none() {
        return Backend::Off(
            "no cgroup with the memory and pids controllers can be made here (cgroup v2 without delegation, or no \
             right to)"
                .to_owned(),
        );
    }
    Backend::V1 { memory, pids, cpu }
}

/// Where cgroup v2 is mounted, and this process's cgroup in it.
fn cgroup2() -> Option<(PathBuf, String)> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
    Some((mount, own))
}
