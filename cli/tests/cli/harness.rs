//! The test harness: real `mgr` daemons (loopback only, temporary state
//! dirs, discovery off, removed at the end even when a test fails), driven
//! by the real `mgrctl` binary.

use std::io::{BufRead, BufReader, Write};
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
pub(crate) use std::thread;
pub(crate) use std::time::{Duration, Instant};

pub(crate) use anyhow::{Context, Result, bail};
pub(crate) use serde_json::Value;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) fn bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_mgrctl")).with_file_name(name);
    assert!(path.exists(), "{} is not built: run the tests with `cargo test --workspace`", path.display());
    path
}

/// A port range of its own for each daemon, below the kernel's ephemeral
/// range, so parallel tests never compete for ports.
pub(crate) fn port_range(size: u16) -> String {
    // Another copy of these tests running at the same time (another
    // checkout) takes another base with MGR_TEST_PORT_BASE.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = std::env::var("MGR_TEST_PORT_BASE").ok().and_then(|b| b.parse().ok()).unwrap_or(25000u16);
    let lo = base + NEXT.fetch_add(size, Ordering::SeqCst);
    format!("{lo}-{}", lo + size - 1)
}

/// A running `mgr start`, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Daemon {
    child: Option<Child>,
    pub(crate) dir: PathBuf,
    socket: PathBuf,
    _owned: Option<tempfile::TempDir>,
}

impl Daemon {
    pub(crate) fn start(extra: &[&str]) -> Result<Daemon> {
        Self::start_with(extra, &port_range(40))
    }

    pub(crate) fn start_with(extra: &[&str], ports: &str) -> Result<Daemon> {
        let owned = tempfile::tempdir()?;
        let mut daemon = Self::start_at(owned.path(), extra, ports)?;
        daemon._owned = Some(owned);
        Ok(daemon)
    }

    /// Starts a daemon on a state dir the caller keeps.
    pub(crate) fn start_at(dir: &Path, extra: &[&str], ports: &str) -> Result<Daemon> {
        let socket = dir.join("mgr.sock");
        let _ = std::fs::remove_file(&socket);
        // Defaults a test may override by giving the option in `extra`. A
        // manager with a key listens on TCP (a free loopback port unless
        // the test says); one without has no TCP at all.
        let mut defaults = vec!["start", "--no-mdns", "--grace", "1", "--ports", ports];
        let mut default = vec![("--name", "test")];
        if extra.contains(&"--key-file") {
            default.push(("--listen", "127.0.0.1:0"));
        }
        for (option, value) in default {
            if !extra.contains(&option) {
                defaults.extend([option, value]);
            }
        }
        let child = Command::new(bin("mgr"))
            .args(defaults)
            .arg("--state-dir")
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // The daemon's log stays in its state dir (appended across
            // restarts) for tests that read it and for failures to show.
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(dir.join(LOG_FILE))?)
            // A test names its key explicitly, never the user's.
            .env_remove("MGR_KEY_FILE")
            .spawn()?;
        let daemon = Daemon { child: Some(child), dir: dir.to_owned(), socket, _owned: None };
        let deadline = Instant::now() + TIMEOUT;
        while std::os::unix::net::UnixStream::connect(&daemon.socket).is_err() {
            if Instant::now() > deadline {
                bail!("mgr did not open its socket in time");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin("mgrctl"));
        command.arg("--socket").arg(&self.socket).args(args).env("NO_COLOR", "1");
        command
    }

    /// Runs mgrctl to completion (killed after the timeout).
    pub(crate) fn ctl(&self, args: &[&str]) -> Result<Output> {
        run_with_timeout(self.command(args))
    }

    /// Runs mgrctl, insisting on success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl(args)?;
        if !out.status.success() {
            bail!("mgrctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs mgrctl, insisting on failure; returns its one-line error.
    pub(crate) fn err(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl(args)?;
        if out.status.success() {
            bail!("mgrctl {args:?} succeeded but should have failed");
        }
        Ok(String::from_utf8(out.stderr)?.trim().to_owned())
    }

    /// Starts mgrctl in the background with piped stdin and line-read stdout.
    pub(crate) fn spawn(&self, args: &[&str]) -> Result<Session> {
        Session::spawn(self.command(args))
    }

    /// `ps --json` of one run, as (instance name → object).
    pub(crate) fn ps(&self, run: &str) -> Result<Vec<Value>> {
        self.ok(&["ps", run, "--json"])?.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    }

    pub(crate) fn instance(&self, run: &str, name: &str) -> Result<Value> {
        self.ps(run)?.into_iter().find(|i| i["instance"] == name).context("instance not in ps")
    }

    /// Kills the daemon at once (SIGKILL), as a crash would; its state
    /// dir stays for a restart with [`Daemon::start_at`].
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn run_with_timeout(mut command: Command) -> Result<Output> {
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id() as i32;
    let watchdog = thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
                return;
            }
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    });
    let output = child.wait_with_output()?;
    drop(watchdog);
    Ok(output)
}

/// A background mgrctl whose stdout lines arrive on a channel.
pub(crate) struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Session {
    pub(crate) fn spawn(mut command: Command) -> Result<Session> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Session { child, stdin, lines, seen: Vec::new() })
    }

    pub(crate) fn type_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits for a stdout line that satisfies `want`.
    pub(crate) fn expect(&mut self, what: &str, want: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return Ok(line);
                    }
                }
                Err(_) => bail!("no line {what} within {TIMEOUT:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The mgrctl process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Waits for the process to end; returns its exit code and the rest of
    /// its stdout.
    pub(crate) fn finish(mut self) -> Result<(i32, Vec<String>)> {
        self.stdin.take();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let mut rest = std::mem::take(&mut self.seen);
                rest.extend(self.lines.try_iter());
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    rest.push(line);
                }
                return Ok((status.code().unwrap_or(-1), rest));
            }
            if Instant::now() > deadline {
                bail!("mgrctl did not end; saw:\n{}", self.seen.join("\n"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn alive(pid: i64) -> bool {
    // A zombie is not alive: read the state from /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

/// The lines `deliver <from> <text>` that an instance printed so far.
pub(crate) fn deliveries(daemon: &Daemon, instance: &str) -> Result<Vec<String>> {
    let logs = daemon.ok(&["logs", instance])?;
    let prefix = format!("{} | deliver ", instance.rsplit('/').next().unwrap_or_default());
    Ok(logs.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect())
}

/// The output of a run or an instance (`mgrctl logs`), empty when it
/// cannot be read (yet): for polling with `wait_until`.
pub(crate) fn logs_of(daemon: &Daemon, target: &str) -> String {
    daemon.ok(&["logs", target]).unwrap_or_default()
}

/// The daemon's stderr (its tracing log, plain text: it is not a
/// terminal) goes to this file of its state dir, appended across restarts.
pub(crate) const LOG_FILE: &str = "mgr.log";

impl Daemon {
    /// Like [`Daemon::start`], with `--listen listen` (loopback only).
    pub(crate) fn start_logged(extra: &[&str], listen: &str) -> Result<Daemon> {
        let mut args = extra.to_vec();
        args.extend(["--listen", listen]);
        Daemon::start(&args)
    }

    /// What the daemon logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(LOG_FILE)).unwrap_or_default()
    }

    /// The TCP address the daemon listens on, from its "manager started"
    /// line (so `--listen 127.0.0.1:0` can pick a free port).
    pub(crate) fn tcp_addr(&self) -> Result<String> {
        let mut addr = None;
        wait_until("the daemon's listen address in its log", || {
            addr = self
                .log()
                .lines()
                .find(|l| l.contains("manager started"))
                .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("listen=")).map(str::to_owned));
            addr.is_some()
        })?;
        addr.context("no listen address")
    }

    /// Waits until the daemon's log has a line containing every one of
    /// `parts`; returns that line.
    pub(crate) fn wait_log(&self, parts: &[&str]) -> Result<String> {
        let mut found = None;
        let waited = wait_until(&format!("a log line with {parts:?}"), || {
            found = self.log().lines().find(|l| parts.iter().all(|p| l.contains(p))).map(str::to_owned);
            found.is_some()
        });
        match (waited, found) {
            (Ok(()), Some(line)) => Ok(line),
            _ => bail!("no log line with {parts:?}; the log:\n{}", self.log()),
        }
    }
}

/// mgrctl with no daemon socket, host or key from the environment: the
/// test gives what it means to.
pub(crate) fn mgrctl(args: &[&str]) -> Command {
    let mut command = Command::new(bin("mgrctl"));
    command.args(args).env("NO_COLOR", "1").env_remove("MGR_HOST").env_remove("MGR_KEY_FILE");
    command
}

// Used by the multi-host harness (netns.rs), whose managers are started
// inside network namespaces but driven like any other Daemon.
impl Daemon {
    /// Wraps a running `mgr start` whose control socket in `dir` accepts
    /// already; it is stopped like any Daemon when dropped.
    pub(crate) fn adopt(child: Child, dir: &Path) -> Daemon {
        Daemon { child: Some(child), dir: dir.to_owned(), socket: dir.join("mgr.sock"), _owned: None }
    }

    /// The manager's process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The group key of this test process's loopback groups: one file, made
/// once with the real `mgr keygen`, kept until the process ends.
pub(crate) fn group_key() -> &'static str {
    static KEY: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    &KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a folder for the group key");
        let path = dir.path().join("group.key");
        keygen(&path).expect("mgr keygen");
        let path = path.to_str().expect("a UTF-8 temporary path").to_owned();
        (dir, path)
    })
    .1
}

/// Writes a new group key to `path` with the real `mgr keygen`.
pub(crate) fn keygen(path: &Path) -> Result<()> {
    let mut command = Command::new(bin("mgr"));
    command.arg("keygen").arg(path);
    let out = run_with_timeout(command)?;
    if !out.status.success() {
        bail!("mgr keygen failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

// The group as one manager sees it (`mgrctl members --json`).
impl Daemon {
    /// (name, state) of each member this manager sees.
    pub(crate) fn members(&self) -> Result<Vec<(String, String)>> {
        self.ok(&["members", "--json", "--quick"])?
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l)?;
                Ok((v["name"].as_str().unwrap_or("").to_owned(), v["state"].as_str().unwrap_or("").to_owned()))
            })
            .collect()
    }

    /// The names of the members it sees alive, sorted.
    pub(crate) fn alive_members(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> =
            self.members()?.into_iter().filter(|(_, state)| state == "alive").map(|(name, _)| name).collect();
        names.sort();
        Ok(names)
    }

    /// This manager's member id.
    pub(crate) fn member_id(&self) -> Result<String> {
        let out = self.ok(&["members", "--json", "--quick"])?;
        let me = out.lines().find(|l| l.contains("\"me\":true")).context("no member marked me")?;
        Ok(serde_json::from_str::<Value>(me)?["id"].as_str().unwrap_or("").to_owned())
    }
}
