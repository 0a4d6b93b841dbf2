//! Integration tests of the `mgr` process itself: its life cycle, its
//! signals and what it leaves behind. They drive a real daemon over its real
//! control socket with the same gRPC client mgrctl uses.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mgr_proto::{LaunchRequest, PsRequest, Role};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Stops the daemon at the end of a test, even a failed one: SIGTERM (so it
/// removes what it made), SIGKILL if it does not exit in time.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, ports: &str) -> Result<Guard> {
    let child = Command::new(env!("CARGO_BIN_EXE_mgr"))
        .args(["start", "--no-mdns", "--allow-exec", "--grace", "1", "--ports", ports, "--state-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let guard = Guard(child);
    wait_until("the control socket", || std::os::unix::net::UnixStream::connect(dir.join("mgr.sock")).is_ok())?;
    Ok(guard)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Pids of every process whose parent is `parent`.
fn children_of(parent: u32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent)
            && let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok())
        {
            found.push(pid);
        }
    }
    found
}

async fn launch(dir: &Path, request: LaunchRequest) -> Result<Vec<i32>> {
    let (mut client, _) = mgr_cli::client::connect(&dir.join("mgr.sock"), false).await?;
    let run = client.launch(request).await?.into_inner().run.unwrap_or_default();
    let ps = client.ps(PsRequest { run: run.name, local: false }).await?.into_inner();
    Ok(ps.runs.iter().flat_map(|r| &r.instances).map(|i| i.pid as i32).collect())
}

fn module(name: &str, count: u32) -> LaunchRequest {
    LaunchRequest { roles: vec![Role { module: name.into(), count, ..Default::default() }], ..Default::default() }
}

fn exec(count: u32, command: &[&str]) -> LaunchRequest {
    let command = command.iter().map(|s| s.to_string()).collect();
    LaunchRequest { roles: vec![Role { count, command, ..Default::default() }], ..Default::default() }
}

#[tokio::test]
async fn kill_9_of_the_daemon_leaves_no_module_process() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut daemon = start(dir.path(), "26000-26039")?;
    let mut pids = launch(dir.path(), module("StubbornPointToPointLink", 2)).await?;
    // An instance with a child of its own, which the parent-death signal
    // does not reach.
    let nest = launch(dir.path(), exec(1, &["sh", "-c", "sleep 600 & wait"])).await?;
    wait_until("the grandchild", || !children_of(nest[0] as u32).is_empty())?;
    let grandchild = children_of(nest[0] as u32)[0];
    pids.extend(nest);
    assert!(pids.iter().chain([&grandchild]).all(|p| alive(*p)));

    kill(Pid::from_raw(daemon.0.id() as i32), Signal::SIGKILL)?;
    daemon.0.wait()?;
    wait_until("every instance to die with the daemon", || pids.iter().all(|p| !alive(*p)))?;
    // The next start on the same state dir sweeps what is left.
    let _again = start(dir.path(), "26000-26039")?;
    wait_until("the grandchild to be swept at the next start", || !alive(grandchild))?;
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_every_instance_then_the_daemon_exits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut daemon = start(dir.path(), "26040-26079")?;
    let mut pids = launch(dir.path(), module("PerfectPointToPointLink", 3)).await?;
    // One that ignores SIGTERM must still go, after the grace period.
    pids.extend(launch(dir.path(), exec(1, &["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"])).await?);
    std::thread::sleep(Duration::from_millis(200));
    kill(Pid::from_raw(daemon.0.id() as i32), Signal::SIGTERM)?;
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = daemon.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            bail!("mgr did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(status.success(), "{status:?}");
    assert!(pids.iter().all(|p| !alive(*p)), "an instance outlived its daemon");
    assert!(!dir.path().join("mgr.sock").exists(), "the socket is removed on exit");
    // Its output is still there.
    let log = std::fs::read_to_string(dir.path().join("runs/r2/p1.log"))?;
    assert!(log.contains("m killed by SIGKILL (stopped)"), "{log}");
    Ok(())
}

#[tokio::test]
async fn an_escaped_grandchild_is_caught_by_the_cgroup() -> Result<()> {
    let cgroup2 = std::fs::read_to_string("/proc/self/mountinfo")?.lines().any(|l| l.contains(" - cgroup2 "));
    if !cgroup2 {
        eprintln!("skipped: no cgroup v2 on this machine");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut daemon = start(dir.path(), "26080-26119")?;
    // A grandchild that leaves the process group and drops the environment:
    // only the cgroup still knows it belongs to the instance.
    let nest = launch(dir.path(), exec(1, &["sh", "-c", "setsid env -i sleep 600 & wait"])).await?;
    wait_until("the escaped grandchild", || !children_of(nest[0] as u32).is_empty())?;
    let escaped = children_of(nest[0] as u32)[0];
    // The guard would end it the moment the manager dies: here it is
    // killed first, as when the whole service is killed at once, so that
    // only the next start can clean up.
    let guard = children_of(daemon.0.id())
        .into_iter()
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "mgr-guard"))
        .context("the manager's guard process")?;
    kill(Pid::from_raw(guard), Signal::SIGKILL)?;
    kill(Pid::from_raw(daemon.0.id() as i32), Signal::SIGKILL)?;
    daemon.0.wait()?;
    wait_until("the instance to die with the daemon", || !alive(nest[0]))?;
    assert!(alive(escaped), "nothing but the cgroup could have ended it yet");
    let mut again = start(dir.path(), "26080-26119")?;
    wait_until("the escaped grandchild to be killed at the next start", || !alive(escaped))?;
    // A clean shutdown removes the cgroup.
    kill(Pid::from_raw(again.0.id() as i32), Signal::SIGTERM)?;
    again.0.wait()?;
    let id = std::fs::read_to_string(dir.path().join("member-id"))?;
    let mount = std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .find_map(|l| l.contains(" - cgroup2 ").then(|| l.split_whitespace().nth(4).unwrap_or_default().to_owned()))
        .unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/").trim_start_matches('/').to_owned();
    let cgroup = Path::new(&mount).join(own).join(format!("mgr-{}", id.trim()));
    assert!(!cgroup.exists(), "{} is left after a clean shutdown", cgroup.display());
    Ok(())
}
