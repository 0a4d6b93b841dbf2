//! The manager as a service seen from outside: which process runs on a
//! state dir, `mgr status` and `mgr stop`.
//!
//! The truth is the lock: a manager holds an `flock` on `STATE/lock` for as
//! long as it runs ([`crate::state_dir`]). `STATE/pid` is written by the
//! manager once it holds the lock, and is believed only when that process
//! is the one holding it (a stale file, or a reused pid, is not a manager).
//! This module reads `/proc`, signals and asks over the socket; it must
//! not take the lock, which would make a manager starting at that moment
//! fail.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use mgr_proto::manager_client::ManagerClient;
use mgr_proto::{MembersRequest, PsRequest};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};

use crate::state_dir::socket_path;

/// The file, in the state dir, that holds the manager's pid.
pub const PID_FILE: &str = "pid";

/// How long `mgr status` waits for the manager's answers.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What `mgr status` and `mgr stop` can fail on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no mgr is running on state dir {0}")]
    NotRunning(PathBuf),
    #[error("mgr (pid {pid}) on {dir} holds its lock but does not answer on {socket}: {reason}")]
    NotAnswering { pid: i32, dir: PathBuf, socket: PathBuf, reason: String },
    #[error("mgr (pid {pid}) on {dir} has not exited after {secs:.0} s: it may still be stopping its instances")]
    StillRunning { pid: i32, dir: PathBuf, secs: f64 },
    // The causes are part of the one-line messages, not sources: anyhow's
    // `{:#}` would print them twice.
    #[error("cannot signal mgr (pid {pid}) on {dir}: {err}")]
    Signal { pid: i32, dir: PathBuf, err: nix::errno::Errno },
    #[error("cannot read state dir {dir}: {err}")]
    Io { dir: PathBuf, err: std::io::Error },
}

/// Writes `STATE/pid`. Called by a manager that holds the state dir's lock,
/// so no other manager writes it meanwhile; left behind at exit (removing
/// it after the lock is released could remove the next manager's).
pub fn write_pid_file(state_dir: &Path) -> std::io::Result<()> {
    std::fs::write(state_dir.join(PID_FILE), format!("{}\n", std::process::id()))
}

/// The process holding `STATE/lock`, if any: the pid of `STATE/pid` when it
/// holds it, else whichever process `/proc/locks` names (a manager whose
/// pid file was removed).
pub fn running_pid(state_dir: &Path) -> Result<Option<i32>, ServiceError> {
    let io = |err| ServiceError::Io { dir: state_dir.to_owned(), err };
    let lock = match std::fs::metadata(state_dir.join("lock")) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    };
    let holders = lock_holders(lock.dev(), lock.ino()).map_err(io)?;
    let written = std::fs::read_to_string(state_dir.join(PID_FILE)).ok().and_then(|t| t.trim().parse::<i32>().ok());
    Ok(written.filter(|pid| holders.contains(pid)).or_else(|| holders.first().copied()))
}

/// The pids holding an `flock` on the file (`dev`, `ino`), from
/// `/proc/locks` (lines such as `1: FLOCK  ADVISORY  WRITE 4242 fe:00:5832707 0 EOF`).
fn lock_holders(dev: u64, ino: u64) -> std::io::Result<Vec<i32>> {
    let want = format!("{:02x}:{:02x}:{ino}", nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let locks = std::fs::read_to_string("/proc/locks")?;
    Ok(locks
        .lines()
        .filter_map(|line| {
            // A process waiting for a lock is shown as "N: -> FLOCK …" and
            // does not match: it holds nothing.
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_, "FLOCK", _, "WRITE", pid, file, ..] if file.eq_ignore_ascii_case(&want) => pid.parse().ok(),
                _ => None,
            }
        })
        .filter(|pid| *pid > 0)
        .collect())
}

/// How long a process has been running, from `/proc`.
fn uptime(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let after_name: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let start_ticks: f64 = after_name.get(19)?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()?? as f64;
    let boot: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64((boot - start_ticks / ticks).max(0.0)))
}

/// A duration as people read it: `2d 3h`, `3h 12m`, `4m 5s`, `7s`.
pub fn human(duration: Duration) -> String {
    let s = duration.as_secs();
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// What `mgr status` found.
#[derive(Debug)]
pub enum Status {
    NotRunning { dir: PathBuf },
    Running(Box<Running>),
}

/// A running manager, as it answered.
#[derive(Debug)]
pub struct Running {
    pub dir: PathBuf,
    pub pid: i32,
    pub uptime: Option<Duration>,
    pub members: Vec<mgr_proto::Member>,
    pub runs: Vec<mgr_proto::Run>,
}

impl Status {
    /// As `systemctl status`: 0 running, 3 not running.
    pub fn exit_code(&self) -> u8 {
        match self {
            Status::NotRunning { .. } => 3,
            Status::Running(_) => 0,
        }
    }
}

/// At most this many runs are listed one by one.
const RUNS_LISTED: usize = 20;

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let r = match self {
            Status::NotRunning { dir } => {
                return writeln!(f, "mgr is not running on {} (no process holds its lock)", dir.display());
            }
            Status::Running(running) => running,
        };
        let up = r.uptime.map(|u| format!(", up {}", human(u))).unwrap_or_default();
        writeln!(f, "mgr is running on {} (pid {}{up})", r.dir.display(), r.pid)?;
        if let Some(me) = r.members.iter().find(|m| m.me) {
            let listen = if me.address.is_empty() { "no TCP port" } else { me.address.as_str() };
            writeln!(f, "member:  {} (id {}), {listen}", me.name, me.id)?;
        }
        let alive = r.members.iter().filter(|m| m.state == "alive").count();
        let names: Vec<String> = r
            .members
            .iter()
            .map(|m| if m.state == "alive" { m.name.clone() } else { format!("{} ({})", m.name, m.state) })
            .collect();
        writeln!(f, "members: {} ({alive} alive): {}", r.members.len(), names.join(", "))?;
        let instances: usize = r.runs.iter().map(|run| run.instances.len()).sum();
        writeln!(f, "runs:    {} here, with {instances} instances", r.runs.len())?;
        for run in r.runs.iter().take(RUNS_LISTED) {
            let mut states: Vec<(&str, usize)> = Vec::new();
            for instance in &run.instances {
                match states.iter_mut().find(|(s, _)| *s == instance.state) {
                    Some((_, n)) => *n += 1,
                    None => states.push((&instance.state, 1)),
                }
            }
            let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
            writeln!(f, "  {} ({}): {}", run.name, run.module, states.join(", "))?;
        }
        if r.runs.len() > RUNS_LISTED {
            writeln!(f, "  … and {} more (mgrctl ps)", r.runs.len() - RUNS_LISTED)?;
        }
        Ok(())
    }
}

/// Whether a manager runs on `dir`, and, if so, what it says of itself.
pub async fn status(dir: &Path) -> Result<Status, ServiceError> {
    let Some(pid) = running_pid(dir)? else {
        return Ok(Status::NotRunning { dir: dir.to_owned() });
    };
    let socket = socket_path(dir);
    let not_answering =
        |reason: String| ServiceError::NotAnswering { pid, dir: dir.to_owned(), socket: socket.clone(), reason };
    let asked = tokio::time::timeout(ASK_TIMEOUT, async {
        let mut client = connect(&socket).await?;
        let members = client.members(MembersRequest::default()).await?.into_inner().members;
        // This member's own runs: no waiting on the rest of the group.
        let runs = client.ps(PsRequest { run: String::new(), local: true }).await?.into_inner().runs;
        Ok::<_, anyhow::Error>((members, runs))
    })
    .await;
    let (members, runs) = match asked {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => return Err(not_answering(format!("{err:#}"))),
        Err(_) => return Err(not_answering(format!("no answer within {} s", ASK_TIMEOUT.as_secs()))),
    };
    Ok(Status::Running(Box::new(Running { dir: dir.to_owned(), pid, uptime: uptime(pid), members, runs })))
}

async fn connect(socket: &Path) -> anyhow::Result<ManagerClient<tonic::transport::Channel>> {
    let socket = socket.to_owned();
    // The URI is required by the API but unused: the connector decides
    // where the connection goes.
    let channel = Endpoint::from_static("http://mgr.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await?;
    Ok(ManagerClient::new(channel))
}

/// A manager that `mgr stop` stopped.
#[derive(Debug)]
pub struct Stopped {
    pub pid: i32,
    pub took: Duration,
}

/// Sends SIGTERM to the manager of `dir` (which then stops its instances
/// and exits) and waits, at most `timeout`, until it has exited.
pub async fn stop(dir: &Path, timeout: Duration) -> Result<Stopped, ServiceError> {
    let Some(pid) = running_pid(dir)? else {
        return Err(ServiceError::NotRunning(dir.to_owned()));
    };
    let started = Instant::now();
    // The pid was read from the lock a moment ago, and a pid is not reused
    // before its process has exited and been reaped.
    kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|err| ServiceError::Signal { pid, dir: dir.to_owned(), err })?;
    // Exited means: no longer holding the lock, and no longer a process
    // (a zombie whose parent has not reaped it yet counts as exited).
    while running_pid(dir)? == Some(pid) || is_process(pid) {
        if started.elapsed() >= timeout {
            return Err(ServiceError::StillRunning { pid, dir: dir.to_owned(), secs: timeout.as_secs_f64() });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Stopped { pid, took: started.elapsed() })
}

/// Whether `pid` is a live process (not a zombie).
fn is_process(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_secs(7)), "7s");
        assert_eq!(human(Duration::from_secs(245)), "4m 5s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 12 * 60 + 5)), "3h 12m");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 3 * 3600)), "2d 3h");
    }

    #[test]
    fn the_holder_of_the_lock_is_found_and_a_stale_pid_file_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running_pid(dir.path()).unwrap(), None);
        let state = crate::StateDir::open(dir.path()).unwrap();
        // A pid file naming another process (pid 1) is not believed.
        std::fs::write(dir.path().join(PID_FILE), "1\n").unwrap();
        assert_eq!(running_pid(dir.path()).unwrap(), Some(std::process::id() as i32));
        write_pid_file(dir.path()).unwrap();
        assert_eq!(running_pid(dir.path()).unwrap(), Some(std::process::id() as i32));
        drop(state);
        assert_eq!(running_pid(dir.path()).unwrap(), None);
    }
}
