//! The closed doors of SECURITY.md, each tried as an attacker would against
//! real managers: another local Unix user (made by the test, removed after)
//! on every socket and port; loader and interpreter variables in a role's
//! environment; a launch named like another member's run; two thousand
//! idle connections; input to an instance that never reads. The fuzzing of
//! every RPC is in `fuzz.rs`.

use std::net::TcpStream;

use mgr_proto::SendRequest;

use crate::auth::tcp_listeners;
use crate::group::{free_port, join_arg, member};
use crate::harness::*;
use crate::semester::usage;

/// A Unix user of its own, removed when dropped, with copies of `mgr` and
/// `mgrctl` in a folder it can read (the build folder may not be).
struct OtherUser {
    name: String,
    dir: tempfile::TempDir,
}

impl OtherUser {
    fn new() -> Result<OtherUser> {
        sweep_users();
        let name = format!("mgrtest-{}", std::process::id());
        let _ = Command::new("userdel").arg("-f").arg(&name).output();
        let out = Command::new("useradd").args(["-M", "-s", "/bin/sh", &name]).output().context("useradd")?;
        if !out.status.success() {
            bail!("cannot make a test user (run the tests as root): {}", String::from_utf8_lossy(&out.stderr));
        }
        let user = OtherUser { name, dir: tempfile::Builder::new().prefix("mgr-other-").tempdir()? };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(user.dir.path(), std::fs::Permissions::from_mode(0o755))?;
        for program in ["mgr", "mgrctl"] {
            std::fs::copy(bin(program), user.dir.path().join(program))?;
        }
        // A folder of its own, for its own key.
        let home = user.home();
        std::fs::create_dir(&home)?;
        let out = Command::new("chown").arg(&user.name).arg(&home).output()?;
        if !out.status.success() {
            bail!("chown: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(user)
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Runs one of the copied programs as this user; returns its output.
    fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut command = Command::new("runuser");
        command
            .args(["-u", &self.name, "--"])
            .arg(self.dir.path().join(program))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("MGR_HOST")
            .env_remove("MGR_KEY_FILE")
            .env_remove("MGR_SOCKET")
            .env_remove("MGR_STATE_DIR");
        run_with_timeout(command)
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.name]).output();
        let _ = Command::new("userdel").arg("-f").arg(&self.name).output();
    }
}

/// Removes the users a killed earlier test process left (their pid is gone).
fn sweep_users() {
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else { return };
    for user in passwd.lines().filter_map(|l| l.split(':').next()) {
        let Some(pid) = user.strip_prefix("mgrtest-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("userdel").arg("-f").arg(user).output();
        }
    }
}

/// The Unix sockets `pid` listens on (from /proc: its socket inodes, and
/// the paths the kernel lists for them).
fn unix_listeners(pid: u32) -> Result<Vec<PathBuf>> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let link = std::fs::read_link(fd?.path()).unwrap_or_default();
        if let Some(inode) = link.to_str().and_then(|l| l.strip_prefix("socket:[")).and_then(|l| l.strip_suffix(']')) {
            inodes.push(inode.to_owned());
        }
    }
    let table = std::fs::read_to_string("/proc/net/unix")?;
    // Num RefCount Protocol Flags Type St Inode Path; flag 00010000 is a
    // listening socket.
    Ok(table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3).is_some_and(|f| f.ends_with("10000"));
            (listening && fields.len() >= 8 && inodes.iter().any(|i| i == fields[6])).then(|| PathBuf::from(fields[7]))
        })
        .collect())
}

/// What an intruder tries: see, start, run a command, stop, kill, type.
const ATTEMPTS: &[&[&str]] = &[
    &["ps"],
    &["launch", "FairLossPointToPointLink", "1", "-d"],
    &["exec", "1", "-d", "--", "id"],
    &["stop", "victim"],
    &["kill", "victim/p1"],
    &["send", "victim/p1", "send p2 intruder"],
    &["logs", "victim"],
    &["join", "127.0.0.1:1"],
];

#[test]
fn another_local_user_can_do_nothing_through_any_socket_or_port() -> Result<()> {
    let other = OtherUser::new()?;
    // A manager with the group key (its file 0600 in a folder of the
    // test's), one without, and the embedded manager of a `--local`
    // command: each runs a run of root's.
    let keyed = Daemon::start(&["--key-file", group_key(), "--allow-exec", "--name", "keyed"])?;
    let keyless = Daemon::start(&["--allow-exec", "--name", "keyless"])?;
    for daemon in [&keyed, &keyless] {
        daemon.ok(&["launch", "FairLossPointToPointLink", "2", "--name", "victim", "-d"])?;
    }
    let mut local =
        Session::spawn(mgrctl(&["--local", "launch", "FairLossPointToPointLink", "2", "--name", "victim"]))?;
    local.expect("the embedded run started", |l| l.starts_with("p2") && l.contains("started"))?;
    let local_pid = local.pid();

    // Only the keyed manager listens on TCP at all.
    let keyed_pid = keyed.pid().context("keyed runs")?;
    assert_eq!(tcp_listeners(keyless.pid().context("keyless runs")?)?, Vec::<String>::new());
    assert_eq!(tcp_listeners(local_pid)?, Vec::<String>::new(), "the embedded manager listens on TCP");
    let ports = tcp_listeners(keyed_pid)?;
    assert_eq!(ports.len(), 1, "{ports:?}");

    // The intruder's own key, and root's key file (which it cannot read).
    let own_key = other.home().join("own.key");
    let own_key = own_key.to_str().context("path")?;
    let out = other.run("mgr", &["keygen", own_key])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for port in &ports {
        for attempt in ATTEMPTS {
            for key in [None, Some(group_key()), Some(own_key)] {
                let mut args = vec!["--host", port.as_str()];
                if let Some(key) = key {
                    args.extend(["--key-file", key]);
                }
                args.extend(attempt.iter());
                let out = other.run("mgrctl", &args)?;
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{args:?} succeeded for another user: {stderr}");
                let why = match key {
                    None => "--host needs the group key",
                    Some(k) if k == own_key => "does not hold this group's key",
                    Some(_) => "permission denied",
                };
                assert!(stderr.contains(why), "{args:?}: {stderr}");
            }
        }
    }
    let mut sockets = vec![keyed.dir.join("mgr.sock"), keyless.dir.join("mgr.sock")];
    sockets.extend(unix_listeners(local_pid)?);
    assert_eq!(sockets.len(), 3, "the embedded manager's socket was found: {sockets:?}");
    for socket in &sockets {
        for attempt in ATTEMPTS {
            let mut args = vec!["--socket", socket.to_str().context("path")?];
            args.extend(attempt.iter());
            let out = other.run("mgrctl", &args)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} succeeded for another user: {stderr}");
            assert!(stderr.to_lowercase().contains("permission denied"), "{args:?}: {stderr}");
        }
    }

    // Nothing happened: root's runs run, untouched, and no other run exists.
    for daemon in [&keyed, &keyless] {
        let instances = daemon.ps("victim")?;
        assert!(instances.iter().all(|i| i["state"] == "running"), "{instances:?}");
        let runs = daemon.ok(&["ps", "--json"])?;
        assert!(runs.lines().all(|l| l.contains("\"run\":\"victim\"")), "another run appeared:\n{runs}");
        let logs = daemon.ok(&["logs", "victim"])?;
        assert!(!logs.contains("intruder") && !logs.contains("stopped"), "{logs}");
    }
    assert!(!keyed.log().contains("uid="), "an exec of the intruder ran");
    local.signal(nix::sys::signal::Signal::SIGINT);
    Ok(())
}

/// A scenario of one role of `module` with `env` (TOML inline table).
fn scenario_with_env(dir: &Path, module: &str, env: &str) -> Result<String> {
    let path = dir.join(format!("env-{}.toml", rand_suffix()));
    std::fs::write(
        &path,
        format!("[[role]]\nname = \"node\"\nmodule = \"{module}\"\ncount = 1\nenv = {env}\n\n[end]\nafter = \"1s\"\n"),
    )?;
    Ok(path.display().to_string())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Builds a shared object that, when preloaded, creates `marker`.
fn evil_library(dir: &Path, marker: &Path) -> Result<PathBuf> {
    let source = dir.join("evil.c");
    std::fs::write(
        &source,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void) {{\n  \
             int fd = open(\"{}\", O_CREAT | O_WRONLY, 0644);\n  if (fd >= 0) close(fd);\n}}\n",
            marker.display()
        ),
    )?;
    let library = dir.join("evil.so");
    let out = Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).output()?;
    if !out.status.success() {
        bail!("gcc: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(library)
}

#[test]
fn loader_and_interpreter_variables_in_a_role_are_refused_without_allow_exec() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("preloaded");
    let library = evil_library(dir.path(), &marker)?;
    let daemon = Daemon::start(&["--name", "lab"])?;
    let up = |file: &str| daemon.ctl(&["up", file]);

    let preload = format!("{{ LD_PRELOAD = \"{}\" }}", library.display());
    let out = up(&scenario_with_env(dir.path(), "FairLossPointToPointLink", &preload)?)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("role 'node': LD_PRELOAD is not allowed on member lab: without --allow-exec a role may set only"),
        "{stderr}"
    );
    let injected = [
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "GCONV_PATH",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PERL5OPT",
        "PERL5LIB",
        "RUBYOPT",
        "NODE_OPTIONS",
        "JAVA_TOOL_OPTIONS",
        "BASH_ENV",
        "ENV",
        "PATH",
        "OPENSSL_CONF",
    ];
    for name in injected {
        let out =
            up(&scenario_with_env(dir.path(), "FairLossPointToPointLink", &format!("{{ {name} = \"/tmp/x\" }}"))?)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(&format!("{name} is not allowed on member lab")), "{stderr}");
    }
    // Safe variables, and those a module's manifest declares, pass.
    let out = up(&scenario_with_env(dir.path(), "FairLossPointToPointLink", "{ RUST_LOG = \"debug\" }")?)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules)?;
    std::fs::write(
        modules.join("colour.toml"),
        "name = \"Colour\"\ncommand = \"sh\"\nargs = [\"-c\", \"echo colour=$COLOUR; sleep 30\"]\n\
         description = \"prints its colour\"\nenv = [\"COLOUR\"]\n",
    )?;
    let with_manifest = Daemon::start(&["--name", "lab", "--modules-dir", modules.to_str().context("path")?])?;
    let file = scenario_with_env(dir.path(), "Colour", "{ COLOUR = \"green\" }")?;
    let out = with_manifest.ctl(&["up", &file])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("colour=green"), "{}", String::from_utf8_lossy(&out.stderr));
    let file = scenario_with_env(dir.path(), "Colour", &preload)?;
    assert!(!with_manifest.ctl(&["up", &file])?.status.success());
    assert!(!marker.exists(), "the preloaded library ran");

    // The same library does run where exec is allowed: the door was real.
    let open = Daemon::start(&["--name", "open", "--allow-exec"])?;
    let out = open.ctl(&["up", &scenario_with_env(dir.path(), "FairLossPointToPointLink", &preload)?])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(marker.exists(), "with --allow-exec the library should have been loaded");
    Ok(())
}

/// The name of the run a detached launch printed.
fn detached(daemon: &Daemon, on: &str) -> Result<String> {
    let out = daemon.ok(&["launch", "FairLossPointToPointLink", "1", "--on", on, "-d"])?;
    Ok(out.trim().to_owned())
}

#[test]
fn a_launch_never_touches_another_members_run_and_automatic_names_never_collide() -> Result<()> {
    let (pa, pb) = (free_port(), free_port());
    let a = member("a", pa, &[])?;
    let b = member("b", pb, &["--join", &join_arg(pa)])?;
    for daemon in [&a, &b] {
        wait_until("a and b alive", || daemon.alive_members().is_ok_and(|m| m == ["a", "b"]))?;
    }
    b.ok(&["launch", "FairLossPointToPointLink", "1", "--on", "b", "--name", "shared", "-d"])?;
    let err = a.err(&["launch", "FairLossPointToPointLink", "1", "--on", "a", "--name", "shared"])?;
    assert!(err.contains("a run named 'shared' exists already"), "{err}");
    // b's run goes on, with its log, as seen from both members.
    assert_eq!(b.instance("shared", "p1")?["state"], "running");
    assert!(a.ok(&["logs", "shared"])?.contains("p1@b # started"));
    assert!(b.dir.join("runs/shared/p1.log").exists());

    // Automatic names: b makes two; a's next is neither of them.
    let (r1, r2) = (detached(&b, "b")?, detached(&b, "b")?);
    let r3 = detached(&a, "a")?;
    assert!(r3 != r1 && r3 != r2, "{r1} {r2} {r3}");
    // Launches racing from both members all get names of their own.
    let names: Vec<String> = thread::scope(|scope| {
        let launches: Vec<_> = (0..8)
            .map(|i| {
                let (daemon, on) = if i % 2 == 0 { (&a, "a") } else { (&b, "b") };
                scope.spawn(move || detached(daemon, on))
            })
            .collect();
        launches.into_iter().map(|l| l.join().expect("a launch thread")).collect::<Result<_>>()
    })?;
    let mut all: Vec<String> = [r1, r2, r3].into_iter().chain(names).collect();
    all.sort();
    let count = all.len();
    all.dedup();
    assert_eq!(all.len(), count, "two launches got one name: {all:?}");
    for name in &all {
        assert_eq!(a.ps(name)?.len(), 1, "run {name} has one instance in the group");
        a.ok(&["stop", name])?;
    }
    a.ok(&["stop", "shared"])?;
    Ok(())
}

#[test]
fn two_thousand_idle_connections_neither_deny_service_nor_flood_the_log() -> Result<()> {
    // The test holds 2,000 sockets and the daemon some: be sure the limit
    // allows it.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard.min(65536), hard)?;
    let daemon = Daemon::start(&["--key-file", group_key()])?;
    let addr = daemon.tcp_addr()?;
    let pid = daemon.pid().context("the daemon runs")?;
    let log_before = daemon.log().len();
    let mut idle = Vec::new();
    for i in 0..2000 {
        let mut conn = TcpStream::connect(&addr)?;
        // Some say a little and wait: the start of a TLS record, or of
        // HTTP/2's preface.
        match i % 3 {
            0 => {}
            1 => std::io::Write::write_all(&mut conn, &[0x16, 0x03, 0x01])?,
            _ => std::io::Write::write_all(&mut conn, b"PRI")?,
        }
        idle.push(conn);
    }
    let ask = |over_tcp: bool| -> Result<Duration> {
        let began = Instant::now();
        if over_tcp {
            let out = run_with_timeout(mgrctl(&["--host", &addr, "--key-file", group_key(), "ps"]))?;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        } else {
            daemon.ok(&["ps"])?;
        }
        Ok(began.elapsed())
    };
    for over_tcp in [false, true] {
        let took = ask(over_tcp)?;
        assert!(took < Duration::from_secs(1), "ps (tcp: {over_tcp}) took {took:?} with 2,000 idle connections");
    }
    // Past the handshake timeout, they are gone, and the port serves.
    thread::sleep(Duration::from_secs(4));
    assert!(ask(true)? < Duration::from_secs(1));
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    assert!(fds < 400, "the daemon holds {fds} descriptors");
    let grown = daemon.log().len() - log_before;
    assert!(grown < 16 * 1024, "2,000 refusals grew the log by {grown} bytes:\n{}", daemon.log());
    drop(idle);
    Ok(())
}

#[test]
fn input_to_an_instance_that_never_reads_is_bounded_and_refused_loudly() -> Result<()> {
    let daemon = Daemon::start(&["--allow-exec"])?;
    daemon.ok(&["exec", "1", "--name", "deaf", "-d", "--", "sleep", "600"])?;
    let pid = daemon.pid().context("the daemon runs")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let socket = daemon.dir.join("mgr.sock");
    let (mut client, _) = runtime.block_on(mgr_cli::client::connect(&socket, false))?;
    // 100 MB in lines of a million bytes.
    let line = bytes::Bytes::from(vec![b'x'; 1_000_000]);
    let (mut taken, mut refusals, mut peak) = (0, Vec::new(), 0);
    for _ in 0..100 {
        let request = SendRequest { target: "deaf/p1".into(), line: line.clone(), local: false };
        match runtime.block_on(client.send(request)) {
            Ok(_) => taken += 1,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                refusals.push(status.message().to_owned());
            }
        }
        peak = peak.max(usage(pid)?.rss);
    }
    assert!(taken <= 2, "{taken} lines of a million bytes were queued for a process that does not read");
    assert!(!refusals.is_empty());
    assert!(
        refusals[0].starts_with("instance deaf/p1 is not reading its input (") && refusals[0].ends_with(" queued)"),
        "{}",
        refusals[0]
    );
    assert!(peak < 64 << 20, "the daemon grew to {} MiB", peak >> 20);
    // A line longer than the queue can ever hold is refused as such.
    let huge = SendRequest { target: "deaf/p1".into(), line: vec![b'y'; 2 << 20].into(), local: false };
    let status = runtime.block_on(client.send(huge)).unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("longer than an instance's input may hold (1 MiB)"), "{status:?}");
    // The mgrctl user sees the same (a small line still fits beside the
    // million bytes queued, one of 60 KB does not).
    daemon.ok(&["send", "deaf/p1", "one more"])?;
    let err = daemon.err(&["send", "deaf/p1", &"z".repeat(60_000)])?;
    assert!(err.contains("is not reading its input"), "{err}");
    daemon.ok(&["stop", "deaf"])?;
    Ok(())
}
