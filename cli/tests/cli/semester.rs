//! A manager that runs all semester: what thousands of runs leave behind
//! (nothing), what a restart keeps (the history), what one print loop may
//! take (a bounded log), what an instance may use (its cgroup's limits) and
//! what outlives a kill -9 of the manager (nothing). The soak benchmark of
//! the same is `bench/soak.sh`.

use std::os::unix::process::CommandExt;

use mgr_proto::{LaunchRequest, Role, SignalKind, SignalRequest};

use crate::harness::*;

/// Descriptors, threads and resident memory of a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub fds: usize,
    pub threads: usize,
    pub rss: u64,
}

pub(crate) fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} of {pid}"))
    };
    Ok(Usage {
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        threads: field("Threads:")? as usize,
        rss: field("VmRSS:")? * 1024,
    })
}

/// Starts `mgr start` on a fresh state dir with at most `nofile` open
/// descriptors (as a common `ulimit -n` on a desktop gives).
fn start_limited(nofile: u64, extra: &[&str]) -> Result<(Daemon, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let mut command = Command::new(bin("mgr"));
    command
        .args(["start", "--no-mdns", "--grace", "1", "--ports", &port_range(40), "--state-dir"])
        .arg(&state)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only setrlimit between fork and exec, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let limit = nix::sys::resource::Resource::RLIMIT_NOFILE;
            nix::sys::resource::setrlimit(limit, nofile, nofile).map_err(std::io::Error::from)
        });
    }
    let child = command.spawn()?;
    let daemon = Daemon::adopt(child, &state);
    wait_until("the limited manager's socket", || {
        std::os::unix::net::UnixStream::connect(state.join("mgr.sock")).is_ok()
    })?;
    Ok((daemon, dir))
}

#[test]
fn three_hundred_launches_under_a_limit_of_128_descriptors_leave_nothing_behind() -> Result<()> {
    let (daemon, _dir) = start_limited(128, &[])?;
    let pid = daemon.pid().context("the manager runs")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut client, _) = runtime.block_on(mgr_cli::client::connect(&daemon.dir.join("mgr.sock"), false))?;
    let mut cycle = |i: usize| -> Result<()> {
        let name = format!("c{i}");
        let role = Role { module: "FairLossPointToPointLink".into(), count: 2, ..Role::default() };
        let request = LaunchRequest { name: name.clone(), roles: vec![role], ..LaunchRequest::default() };
        runtime.block_on(client.launch(request)).with_context(|| format!("launch {i}"))?;
        let stop = SignalRequest { target: name, kind: SignalKind::Stop as i32, local: false };
        runtime.block_on(client.signal(stop)).with_context(|| format!("stop {i}"))?;
        Ok(())
    };
    for i in 0..30 {
        cycle(i)?;
    }
    let early = usage(pid)?;
    for i in 30..300 {
        cycle(i)?;
    }
    let late = usage(pid)?;
    // 600 ended instances: each holds no descriptor, no thread, and no
    // more memory than its entry in the run table.
    assert!(late.fds <= early.fds + 2, "descriptors grew from {} to {}", early.fds, late.fds);
    assert!(late.threads <= early.threads + 2, "threads grew from {} to {}", early.threads, late.threads);
    assert!(late.rss < early.rss + (8 << 20), "memory grew from {} to {} KiB", early.rss >> 10, late.rss >> 10);
    assert_eq!(daemon.ps("c299")?.len(), 2, "the last run is listed");
    Ok(())
}

#[test]
fn runs_survive_a_restart_of_the_manager_and_can_be_removed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ports = port_range(40);
    let mut daemon = Daemon::start_at(dir.path(), &[], &ports)?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "2", "--name", "demo", "-d"])?;
    daemon.ok(&["send", "demo/p1", "send", "p2", "before the restart"])?;
    wait_until("the delivery", || deliveries(&daemon, "demo/p2").is_ok_and(|d| d.len() == 1))?;
    daemon.ok(&["stop", "demo"])?;
    let before = daemon.ok(&["logs", "demo"])?;
    daemon.stop();

    let daemon = Daemon::start_at(dir.path(), &[], &ports)?;
    let instances = daemon.ps("demo")?;
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(instances.iter().all(|i| i["state"] == "stopped"), "{instances:?}");
    assert_eq!(daemon.ok(&["logs", "demo"])?, before, "the log reads as before the restart");
    let check = daemon.ctl(&["check", "demo"])?;
    let check_out = String::from_utf8_lossy(&check.stdout);
    assert!(check_out.contains("FLL3") && check_out.contains("holds"), "{check_out}");
    let err = daemon.err(&["launch", "FairLossPointToPointLink", "1", "--name", "demo"])?;
    assert!(err.contains("a run named 'demo' exists already"), "{err}");
    let err = daemon.err(&["restart", "demo/p1"])?;
    assert!(err.contains("is from before this manager restarted"), "{err}");
    // Automatic names go on after the kept ones.
    daemon.ok(&["launch", "FairLossPointToPointLink", "1", "--name", "r7", "-d"])?;
    daemon.ok(&["stop", "r7"])?;
    assert_eq!(daemon.ok(&["launch", "FairLossPointToPointLink", "1", "-d"])?.trim(), "r8");
    let err = daemon.err(&["rm", "r8"])?;
    assert!(err.contains("run 'r8' has live instances: stop it first, or remove it with --force"), "{err}");
    assert_eq!(daemon.ok(&["rm", "r8", "--force"])?.trim(), "removed r8");
    assert_eq!(daemon.ok(&["rm", "demo"])?.trim(), "removed demo");
    assert!(!daemon.dir.join("runs/demo").exists());
    assert!(daemon.err(&["logs", "demo"])?.contains("unknown run 'demo'"));
    daemon.ok(&["launch", "FairLossPointToPointLink", "1", "--name", "demo", "-d"])?;
    daemon.ok(&["stop", "demo"])?;
    // prune: every run that ended (all of them now) more than 0 s ago.
    let pruned = daemon.ok(&["prune", "--older-than", "0s"])?;
    assert!(pruned.contains("removed demo") && pruned.contains("removed r7"), "{pruned}");
    assert_eq!(daemon.ok(&["ps", "--json"])?.trim(), "");
    assert!(daemon.err(&["rm", "nothing"])?.contains("unknown run 'nothing'"));
    Ok(())
}

#[test]
fn a_manager_killed_with_its_runs_finds_them_lost_at_its_next_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ports = port_range(40);
    let mut daemon = Daemon::start_at(dir.path(), &[], &ports)?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "2", "--name", "crashed", "-d"])?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "1", "--name", "ended", "-d"])?;
    daemon.ok(&["stop", "ended"])?;
    daemon.kill9();

    let daemon = Daemon::start_at(dir.path(), &[], &ports)?;
    let instances = daemon.ps("crashed")?;
    assert!(instances.iter().all(|i| i["state"] == "lost" && i["detail"] == "manager restarted"), "{instances:?}");
    assert!(daemon.ok(&["ps"])?.contains("lost (manager restarted)"));
    assert_eq!(daemon.instance("ended", "p1")?["state"], "stopped");
    let logs = daemon.ok(&["logs", "crashed/p1"])?;
    assert!(
        logs.contains("p1 # started") && logs.contains("p1 # lost: the manager stopped without stopping it"),
        "{logs}"
    );
    // The checkers see a crash: the book's crash-stop model.
    let events = daemon.ok(&["events", "crashed", "--json"])?;
    assert!(events.lines().filter(|l| l.contains("\"crash\"")).count() == 2, "{events}");
    Ok(())
}

/// The bytes a folder's files take on disk.
fn folder_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// `logs ARGS --json` as (seq, text) pairs of the instance's lines.
fn json_lines(daemon: &Daemon, args: &[&str]) -> Result<Vec<(u64, String)>> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = daemon.ok(&all)?;
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok((v["seq"].as_u64().unwrap_or(0), v["text"].as_str().unwrap_or_default().to_owned()))
        })
        .collect()
}

#[test]
fn three_hundred_mb_under_a_16_mib_cap_keep_20_mb_and_exact_positions() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    daemon.ok(&[
        "exec",
        "1",
        "--name",
        "flood",
        "-d",
        "--max-log-bytes",
        "16M",
        "--",
        "sh",
        "-c",
        "seq 1 35000000; echo done",
    ])?;
    let limit = Instant::now() + Duration::from_secs(120);
    while daemon.instance("flood", "p1")?["state"] == "running" {
        if Instant::now() > limit {
            bail!("the flood did not end within 120 s");
        }
        thread::sleep(Duration::from_millis(200));
    }
    let folder = folder_bytes(&daemon.dir.join("runs/flood"));
    assert!(folder <= 20 << 20, "the run folder takes {} MiB under a 16 MiB cap", folder >> 20);
    // The replay says what went, and the log where it went.
    let replay = daemon.ok(&["logs", "flood"])?;
    let first = replay.lines().next().context("a first line")?;
    assert!(
        first.starts_with("p1 # [mgr: lines 1 to ") && first.ends_with(" were dropped by the cap on this log]"),
        "{first}"
    );
    assert!(replay.contains("dropped by the 16 MiB cap on this log"), "the writer's note");
    assert!(replay.trim_end().ends_with("exited with code 0"), "{}", &replay[replay.len().saturating_sub(300)..]);
    // Positions stay exact: the line a reader saw with a number is the one
    // --since that number gives, and the numbers after it run on.
    let tail = json_lines(&daemon, &["logs", "flood", "--tail", "20"])?;
    let (seq, text) = tail.iter().find(|(_, t)| t.parse::<u64>().is_ok()).context("a number in the tail")?.clone();
    let since = json_lines(&daemon, &["logs", "flood", "--since", &seq.to_string()])?;
    assert_eq!(since.first(), Some(&(seq, text)));
    for pair in since.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "{pair:?}");
    }
    Ok(())
}

/// A small tmpfs of the test's own, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()?;
        if !out.status.success() {
            bail!("mount a tmpfs (run the tests as root): {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).output();
    }
}

#[test]
fn a_full_disk_drops_output_loudly_and_it_resumes_when_space_returns() -> Result<()> {
    let disk = Tmpfs::new("4m")?;
    let filler = disk.0.path().join("filler");
    // Most of the disk, taken before the run: freed later.
    std::fs::write(&filler, vec![0u8; 3 << 20])?;
    let state = disk.0.path().join("state");
    std::fs::create_dir(&state)?;
    let daemon = Daemon::start_at(&state, &["--allow-exec"], &port_range(40))?;
    let mut session = daemon.spawn(&[
        "exec",
        "1",
        "--name",
        "full",
        "--",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo line $i; done",
    ])?;
    session.expect("the note that output is being dropped", |l| {
        l.contains("[mgr: log write failed: no space left on device; output is being dropped]")
    })?;
    // While the disk stays full the log stays failing: it does not flicker
    // between dropping and resuming as single pages come free.
    for _ in 0..5 {
        let p1 = daemon.instance("full", "p1")?;
        assert_eq!(p1["detail"], "log write failed: no space left on device", "{p1}");
        assert_eq!(p1["state"], "running", "the instance runs on, its pipe drained");
        thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&filler)?;
    session.expect("the note that output resumed", |l| {
        l.contains("[mgr: output resumed; ")
            && l.contains("lines (")
            && l.contains("were dropped because the log could not be written: no space left on device]")
    })?;
    wait_until("the detail cleared", || daemon.instance("full", "p1").is_ok_and(|i| i["detail"] == ""))?;
    daemon.ok(&["stop", "full"])?;
    let (code, _) = session.finish()?;
    assert_eq!(code, 1, "an exec whose output was lost does not exit 0");
    Ok(())
}

#[test]
fn a_fork_bomb_is_contained_and_an_instance_over_its_memory_is_killed_and_said_so() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    // A fork bomb under --pids 16: it never has more than 16 processes.
    let bomb = "b() { b & b & wait; }; b";
    daemon.ok(&["exec", "1", "--name", "bomb", "-d", "--pids", "16", "--", "bash", "-c", bomb])?;
    thread::sleep(Duration::from_secs(2));
    let pid = daemon.instance("bomb", "p1")?["pid"].as_i64().context("the bomb's pid")?;
    let in_group = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(*p))).is_ok_and(|g| g.as_raw() == pid as i32))
        .count();
    assert!(in_group <= 16, "the bomb has {in_group} processes under a limit of 16");
    daemon.ok(&["stop", "bomb"])?;
    let bomb = daemon.instance("bomb", "p1")?;
    assert_eq!(bomb["detail"], "hit its limit of processes", "{bomb}");
    assert!(daemon.ok(&["logs", "bomb"])?.contains("hit its limit of processes"));

    // 1 GB allocated under --memory 64M: the kernel kills it, ps says why.
    let hog = "import time; b = bytearray(1 << 30); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)";
    daemon.ok(&["exec", "1", "--name", "hog", "-d", "--memory", "64M", "--", "python3", "-c", hog])?;
    wait_until("the hog killed", || daemon.instance("hog", "p1").is_ok_and(|i| i["state"] != "running"))?;
    let hog = daemon.instance("hog", "p1")?;
    assert_eq!((hog["state"].as_str(), hog["detail"].as_str()), (Some("failed"), Some("out of memory")), "{hog}");
    assert!(daemon.ok(&["logs", "hog"])?.contains("killed by SIGKILL: out of memory"));
    Ok(())
}

#[test]
fn nothing_an_instance_started_survives_a_kill_9_of_the_manager_by_a_second() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut daemon = Daemon::start_at(dir.path(), &["--allow-exec"], &port_range(40))?;
    // A grandchild that leaves the process group and clears its
    // environment, as a daemonising program does.
    let escape = format!("setsid env -i /bin/sleep 600 & echo $! > {}/escaped; sleep 600", dir.path().display());
    daemon.ok(&["exec", "1", "--name", "escape", "-d", "--", "sh", "-c", &escape])?;
    let pid_file = dir.path().join("escaped");
    wait_until("the escaped pid", || std::fs::read_to_string(&pid_file).is_ok_and(|t| !t.trim().is_empty()))?;
    let escaped: i64 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    assert!(alive(escaped));
    daemon.kill9();
    let killed = Instant::now();
    while alive(escaped) {
        assert!(killed.elapsed() < Duration::from_secs(1), "pid {escaped} outlived the manager by a second");
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
fn a_hangup_stops_a_manager_in_the_foreground_gracefully() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ports = port_range(40);
    let mut daemon = Daemon::start_at(dir.path(), &[], &ports)?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "1", "--name", "hup", "-d"])?;
    let pid = daemon.pid().context("the manager runs")?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGHUP)?;
    wait_until("the manager gone", || !alive(i64::from(pid)))?;
    daemon.stop();
    assert!(daemon.log().contains("the terminal hung up: stopping"), "{}", daemon.log());
    // Its instance was stopped, not killed with it.
    let daemon = Daemon::start_at(dir.path(), &[], &ports)?;
    assert_eq!(daemon.instance("hup", "p1")?["state"], "stopped");
    Ok(())
}
