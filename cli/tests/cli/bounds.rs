//! What the manager reads is bounded, whatever is put where it reads: the
//! module catalog (a FIFO, a link to `/dev/zero`, an oversized or broken
//! manifest in a `--modules-dir`) and a run's events (a file of hundreds of
//! MB, a line longer than any event).

use std::io::BufWriter;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::harness::*;

/// A manifest that launches: one instance is a `sleep`.
const SLEEPER: &str = "name = \"Sleeper\"\ncommand = \"sleep\"\nargs = [\"30\"]\ndescription = \"sleeps\"\n";

#[test]
fn a_fifo_a_device_and_bad_manifests_neither_hang_nor_flood_the_catalog() -> Result<()> {
    let began = Instant::now();
    let dir = tempfile::tempdir()?;
    let modules = dir.path();
    nix::unistd::mkfifo(&modules.join("fifo.toml"), nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    std::os::unix::fs::symlink("/dev/zero", modules.join("zero.toml"))?;
    std::fs::write(modules.join("large.toml"), format!("{SLEEPER}# {}\n", "x".repeat(100_000)))?;
    std::fs::write(modules.join("broken.toml"), "name = \"Broken\"\ncommand = \n")?;
    std::fs::write(modules.join("sleeper.toml"), SLEEPER)?;
    let daemon = Daemon::start(&["--modules-dir", modules.to_str().context("path")?])?;
    for _ in 0..3 {
        // The manager's own bound on a scan is 1 s: an answer within it
        // means nothing blocked, not even up to that bound.
        let asked = Instant::now();
        let list = daemon.ok(&["modules"])?;
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(1), "mgrctl modules took {took:?}");
        for builtin in ["FairLossPointToPointLink", "PerfectPointToPointLink", "ReliableBroadcast"] {
            assert!(list.lines().any(|l| l.starts_with(builtin) && !l.ends_with("[manifest]")), "{list}");
        }
        assert!(list.lines().any(|l| l.starts_with("Sleeper") && l.ends_with("[manifest]")), "{list}");
        assert_eq!(list.lines().filter(|l| l.ends_with("[manifest]")).count(), 1, "{list}");
        daemon.ok(&["ps"])?;
    }
    assert!(daemon.ok(&["modules", "Sleeper"])?.contains("sleeper.toml"));
    // A launch finds the manifest from inside the supervisor.
    daemon.ok(&["launch", "Sleeper", "1", "--name", "s", "--detach"])?;
    assert_eq!(daemon.instance("s", "p1")?["state"], "running");
    daemon.ok(&["stop", "s"])?;
    daemon.ok(&["modules"])?;
    let log = daemon.log();
    for (file, why) in [
        ("fifo.toml", "it is a FIFO, not a regular file"),
        ("zero.toml", "it is a character device, not a regular file"),
        ("large.toml", "more than the 65536 a manifest may have"),
        ("broken.toml", "line 2, column 11"),
    ] {
        let warnings: Vec<&str> =
            log.lines().filter(|l| l.contains("module manifest left out") && l.contains(file)).collect();
        assert_eq!(warnings.len(), 1, "one warning about {file}:\n{log}");
        assert!(warnings[0].contains(why), "{}", warnings[0]);
    }
    assert!(!log.contains("sleeper.toml"), "{log}");
    eprintln!("catalog test: {:?}", began.elapsed());
    Ok(())
}

/// The peak resident memory of process `pid` while `body` runs, sampled
/// every 20 ms, in KiB.
fn peak_rss<T>(pid: u32, body: impl FnOnce() -> Result<T>) -> Result<(T, u64)> {
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::SeqCst);
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let result = body();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
    Ok((result?, peak.load(std::sync::atomic::Ordering::SeqCst)))
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One send event of p1 to p2, as the fair-loss link writes it, with a
/// text long enough that the file grows fast.
fn send_line(n: u64, padding: &str) -> String {
    format!(
        "{{\"time_ms\":1700000000000,\"run\":\"big\",\"process\":\"p1\",\"event\":\"send\",\"peer\":\"p2\",\
         \"lamport\":{n},\"vc\":[{n},0],\"text\":\"bulk-{n}-{padding}\"}}\n"
    )
}

/// A stopped fair-loss run `big` of two instances: its state dir's run
/// folder.
fn stopped_run(daemon: &Daemon) -> Result<PathBuf> {
    daemon.ok(&["launch", "FairLossPointToPointLink", "2", "--name", "big", "--detach"])?;
    daemon.ok(&["send", "big/p1", "send", "p2", "hello"])?;
    wait_until("the delivery", || deliveries(daemon, "big/p2").is_ok_and(|d| !d.is_empty()))?;
    daemon.ok(&["stop", "big"])?;
    Ok(daemon.dir.join("runs").join("big"))
}

#[test]
fn a_run_of_200_mb_of_events_is_checked_in_bounded_memory() -> Result<()> {
    let began = Instant::now();
    let daemon = Daemon::start(&[])?;
    let pid = daemon.pid().context("the daemon's pid")?;
    let run = stopped_run(&daemon)?;
    // p1 sends 200 MB of messages; p2 delivers the first and the last, so
    // the fair-loss link's no-creation holds only if the whole file was
    // read, and a reliable link's delivery (PL1) is violated.
    const TARGET: u64 = 200 << 20;
    let padding = "x".repeat(900);
    let mut p1 = BufWriter::with_capacity(
        1 << 20,
        std::fs::OpenOptions::new().append(true).create(true).open(run.join("p1.events.jsonl"))?,
    );
    let (mut written, mut sends) = (0u64, 0u64);
    while written < TARGET {
        sends += 1;
        let line = send_line(1000 + sends, &padding);
        written += line.len() as u64;
        std::io::Write::write_all(&mut p1, line.as_bytes())?;
    }
    std::io::Write::flush(&mut p1)?;
    drop(p1);
    let deliver = |n: u64, lamport: u64| {
        format!(
            "{{\"time_ms\":1700000000001,\"run\":\"big\",\"process\":\"p2\",\"event\":\"deliver\",\"peer\":\"p1\",\
             \"lamport\":{lamport},\"vc\":[0,{lamport}],\"text\":\"bulk-{n}-{padding}\"}}\n"
        )
    };
    let last = 1000 + sends;
    let mut p2 = std::fs::OpenOptions::new().append(true).create(true).open(run.join("p2.events.jsonl"))?;
    std::io::Write::write_all(&mut p2, format!("{}{}", deliver(1001, 1000), deliver(last, 1001)).as_bytes())?;
    let size = std::fs::metadata(run.join("p1.events.jsonl"))?.len();
    eprintln!("events file: {size} bytes, {sends} sends appended, written in {:?}", began.elapsed());

    let baseline = rss_kib(pid).context("the daemon's RSS")?;
    let checked = Instant::now();
    let (out, peak) = peak_rss(pid, || within(daemon.command(&["check", "big", "--property", "FLL2,FLL3,PL1"])))?;
    let check_took = checked.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "check: {check_took:?}; the daemon's RSS {} MiB before, {} MiB at most during",
        baseline / 1024,
        peak / 1024
    );
    assert_eq!(out.status.code(), Some(1), "PL1 is violated:\n{stdout}\n{stderr}");
    let holds = |id: &str| stdout.lines().any(|l| l.split_whitespace().take(2).eq([id, "holds"]));
    assert!(holds("FLL2") && holds("FLL3"), "{stdout}\n{stderr}");
    let pl1 = stdout.lines().find(|l| l.starts_with("PL1")).context("no PL1 line")?;
    assert!(pl1.contains("violated") && pl1.contains("p2 (correct) never delivered it"), "{pl1}");
    assert!(!stderr.contains("not events"), "{stderr}");
    assert!(peak < 128 << 10, "the daemon's RSS reached {} MiB", peak / 1024);

    // `events` streams the same lines, every one once.
    let streamed = Instant::now();
    let (lines, peak) = peak_rss(pid, || {
        let mut child =
            daemon.command(&["events", "big", "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let _watchdog = Watchdog::new(child.id());
        let mut stdout = std::io::BufReader::with_capacity(1 << 20, child.stdout.take().context("stdout")?);
        let (mut lines, mut bulk, mut line) = (0u64, 0u64, Vec::new());
        while std::io::BufRead::read_until(&mut stdout, b'\n', &mut line)? > 0 {
            lines += 1;
            bulk += u64::from(memchr::memmem::find(&line, b"\"text\":\"bulk-").is_some());
            line.clear();
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("mgrctl events failed: {status}");
        }
        Ok((lines, bulk))
    })?;
    eprintln!("events: {:?}; the daemon's RSS {} MiB at most", streamed.elapsed(), peak / 1024);
    let (lines, bulk) = lines;
    assert_eq!(bulk, sends + 2, "each appended send once, and the two deliveries");
    assert!(lines >= sends + 2 + 2, "{lines} lines");
    assert!(peak < 128 << 10, "the daemon's RSS reached {} MiB", peak / 1024);
    eprintln!("big events test: {:?}", began.elapsed());
    Ok(())
}

/// How long a call on 200 MB may take. mgrctl parses every event, which
/// takes ~8 s in a debug build on an idle machine; the harness's 20 s is too
/// little when the whole suite shares two cores.
const LONG_CALL: Duration = Duration::from_secs(120);

/// Runs `command` to completion, killed after [`LONG_CALL`].
fn within(mut command: Command) -> Result<Output> {
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let _watchdog = Watchdog::new(child.id());
    Ok(child.wait_with_output()?)
}

/// Kills a process still running [`LONG_CALL`] after it was made, so a hung
/// call fails the test instead of hanging it; dropped, it lets go.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(pid: u32) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + LONG_CALL;
            while Instant::now() < deadline {
                if seen.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_line_of_events_longer_than_4_mib_is_an_error_naming_where_it_is() -> Result<()> {
    let began = Instant::now();
    let daemon = Daemon::start(&[])?;
    let run = stopped_run(&daemon)?;
    let path = run.join("p1.events.jsonl");
    let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(&path)?;
    std::io::Write::write_all(&mut file, format!("{}\n", "z".repeat(5 << 20)).as_bytes())?;
    let err = daemon.err(&["check", "big"])?;
    assert_eq!(
        err,
        format!(
            "mgrctl: cannot read the events of big/p1: the line at byte {offset} is longer than 4194304 bytes, \
             the most a line of events may have"
        )
    );
    let err = daemon.err(&["events", "big"])?;
    assert!(err.contains(&format!("big/p1: the line at byte {offset}")), "{err}");
    daemon.wait_log(&["cannot read the events file", "big", "p1", &format!("byte {offset}")])?;
    eprintln!("long line test: {:?}", began.elapsed());
    Ok(())
}
