//! `mgr` as a long-lived service: the configuration file, `mgr status`,
//! `mgr stop`, where a manager logs (a terminal it runs in the background
//! of, a log file and its bound), and the systemd units and sample
//! configuration of `dist/`. Real `mgr` processes; every path (HOME, the
//! XDG folders, state dirs) is a temporary folder, never the user's.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

/// `mgr` with a home of its own: no configuration, state dir or key of the
/// user's can leak in.
fn mgr(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin("mgr"));
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env_remove("MGR_STATE_DIR")
        .env_remove("MGR_KEY_FILE")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env("NO_COLOR", "1");
    command
}

/// Runs `mgr` to completion: (exit code, stdout, stderr).
fn run(command: Command) -> Result<(i32, String, String)> {
    let out = run_with_timeout(command)?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A `mgr start` in the background of the test, its stderr in `stderr`;
/// killed (SIGKILL) if a test ends without stopping it.
struct Manager {
    child: Child,
    stderr: PathBuf,
}

impl Manager {
    fn spawn(mut command: Command, socket: &Path, stderr: &Path) -> Result<Manager> {
        let child =
            command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(stderr)?).spawn()?;
        let manager = Manager { child, stderr: stderr.to_owned() };
        wait_until("the manager's socket", || std::os::unix::net::UnixStream::connect(socket).is_ok())
            .with_context(|| format!("its stderr: {}", manager.stderr()))?;
        Ok(manager)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the process to end by itself; its exit code.
    fn wait(&mut self) -> Result<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                bail!("mgr did not exit; its stderr:\n{}", self.stderr());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// mgrctl on the socket of `state`.
fn ctl(state: &Path, args: &[&str]) -> Result<String> {
    let out = run_with_timeout(mgrctl(&[&["--socket", state.join("mgr.sock").to_str().unwrap()], args].concat()))?;
    if !out.status.success() {
        bail!("mgrctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn the_configuration_file_sets_every_option_and_the_command_line_wins() -> Result<()> {
    let home = tempfile::tempdir()?;
    let config_dir = home.path().join(".config/mgr");
    std::fs::create_dir_all(&config_dir)?;
    let ports = port_range(10);
    // The default file ($XDG_CONFIG_HOME/mgr/mgr.toml), with a state dir
    // relative to its folder.
    std::fs::write(
        config_dir.join("mgr.toml"),
        format!(
            "name = \"from-file\"\nstate_dir = \"state\"\nports = \"{ports}\"\nno_mdns = true\ngrace = 2\n\
             allow_exec = true\njoin = [\"127.0.0.1:9\"]\n"
        ),
    )?;
    let state = config_dir.join("state");

    // --check shows the merge: the flags win, the file fills the rest.
    let key = home.path().join("lab.key");
    keygen(&key)?;
    let (code, out, err) = run(mgr(
        home.path(),
        &["start", "--check", "--grace", "1", "--join", "127.0.0.2:9", "--key-file", key.to_str().unwrap()],
    ))?;
    ensure_code(code, 0, &err)?;
    for line in [
        "name = \"from-file\"",
        &format!("state_dir = \"{}\"", state.display()),
        &format!("ports = \"{ports}\""),
        "no_mdns = true",
        "allow_exec = true",
        "grace = 1.0",
        "join = [\"127.0.0.2:9\"]",
    ] {
        assert!(out.lines().any(|l| l == line), "no line {line:?} in:\n{out}");
    }
    assert!(out.starts_with(&format!("# the settings of {}", config_dir.join("mgr.toml").display())), "{out}");
    // A key from the environment wins over the file's too.
    let other = home.path().join("other.key");
    keygen(&other)?;
    std::fs::write(config_dir.join("mgr.toml"), format!("key_file = \"{}\"\n", key.display()))?;
    let mut command = mgr(home.path(), &["start", "--check"]);
    command.env("MGR_KEY_FILE", &other);
    let (code, out, err) = run(command)?;
    ensure_code(code, 0, &err)?;
    assert!(out.contains(&format!("key_file = \"{}\"", other.display())), "{out}");

    // A real manager started with nothing but the default file: its name,
    // state dir, ports and exec from the file.
    std::fs::write(
        config_dir.join("mgr.toml"),
        format!(
            "name = \"from-file\"\nstate_dir = \"state\"\nports = \"{ports}\"\nno_mdns = true\nallow_exec = true\n"
        ),
    )?;
    let stderr = home.path().join("stderr");
    let mut manager = Manager::spawn(mgr(home.path(), &["start"]), &state.join("mgr.sock"), &stderr)?;
    let members = ctl(&state, &["members", "--json"])?;
    assert!(members.contains("\"name\":\"from-file\""), "{members}");
    let out = ctl(&state, &["exec", "1", "--detach", "--name", "sleeper", "--", "sleep", "60"])?;
    assert!(out.contains("sleeper"), "{out}");
    let ps = ctl(&state, &["ps", "sleeper", "--json"])?;
    let address = serde_json::from_str::<Value>(ps.lines().next().context("no instance")?)?["address"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let port: u16 = address.rsplit(':').next().unwrap_or_default().parse()?;
    let lo: u16 = ports.split('-').next().unwrap_or_default().parse()?;
    assert!((lo..lo + 10).contains(&port), "{address} is not in {ports}");
    assert!(manager.stderr().contains(&format!("config={}", config_dir.join("mgr.toml").display())));
    // `mgr status` and `mgr stop` find it through the same file.
    let (code, out, err) = run(mgr(home.path(), &["status"]))?;
    ensure_code(code, 0, &err)?;
    assert!(out.contains(&format!("mgr is running on {}", state.display())), "{out}");
    let (code, _, err) = run(mgr(home.path(), &["stop"]))?;
    ensure_code(code, 0, &err)?;
    assert_eq!(manager.wait()?, 0);

    // The same file with --config and a flag: the flag's name wins.
    let file = config_dir.join("mgr.toml");
    let mut manager = Manager::spawn(
        mgr(home.path(), &["start", "--config", file.to_str().unwrap(), "--name", "from-flag"]),
        &state.join("mgr.sock"),
        &stderr,
    )?;
    let members = ctl(&state, &["members", "--json"])?;
    assert!(members.contains("\"name\":\"from-flag\""), "{members}");
    let (code, _, err) = run(mgr(home.path(), &["stop", "--config", file.to_str().unwrap()]))?;
    ensure_code(code, 0, &err)?;
    assert_eq!(manager.wait()?, 0);
    Ok(())
}

fn ensure_code(code: i32, want: i32, stderr: &str) -> Result<()> {
    if code != want {
        bail!("exit code {code}, not {want}; stderr:\n{stderr}");
    }
    Ok(())
}

#[test]
fn a_bad_key_or_value_in_the_configuration_stops_mgr_naming_the_file_the_line_and_the_key() -> Result<()> {
    let home = tempfile::tempdir()?;
    let file = home.path().join("lab.toml");
    let state = home.path().join("state");
    let cases = [
        (
            "no_mdns = true\n# a comment\nnmae = \"lab-01\"\n",
            ":3: unknown key 'nmae' (the keys are the options of `mgr start`: name, ",
        ),
        (
            "name = \"lab-01\"\ngrace = 99999\n",
            ":2: grace: invalid value '99999': expected a number of seconds from 0 to 3600",
        ),
        ("\nallow_exec = \"yes\"\n", ":2: allow_exec: expected true or false, not string \"yes\""),
        ("ports = \"24000\"\n", ":1: ports: invalid value '24000': expected LO-HI, such as 24000-24999"),
        ("name = lab\n", ":1: "),
    ];
    for (text, want) in cases {
        std::fs::write(&file, text)?;
        let (code, _, err) = run(mgr(
            home.path(),
            &["start", "--config", file.to_str().unwrap(), "--state-dir", state.to_str().unwrap()],
        ))?;
        assert_eq!(code, 1, "{text:?}: {err}");
        let want = format!("mgr: {}{want}", file.display());
        assert!(err.starts_with(&want) && err.lines().count() == 1, "{text:?}: want {want:?}, got {err:?}");
        assert!(!state.exists(), "a manager with a bad file must not touch its state dir");
    }
    // A named file that is not there is an error; a missing default file
    // is none.
    let (code, _, err) = run(mgr(home.path(), &["start", "--config", "/nonexistent/mgr.toml", "--check"]))?;
    assert_eq!(code, 1);
    assert!(err.starts_with("mgr: cannot read config file /nonexistent/mgr.toml: No such file"), "{err}");
    let (code, _, err) = run(mgr(home.path(), &["start", "--check"]))?;
    ensure_code(code, 0, &err)?;
    Ok(())
}

#[test]
fn status_tells_a_running_manager_with_its_runs_from_none_by_its_exit_code() -> Result<()> {
    let home = tempfile::tempdir()?;
    let nothing = home.path().join("nothing");
    let (code, out, _) = run(mgr(home.path(), &["status", "--state-dir", nothing.to_str().unwrap()]))?;
    assert_eq!(
        (code, out.as_str()),
        (3, format!("mgr is not running on {} (no process holds its lock)\n", nothing.display()).as_str())
    );

    let mut daemon = Daemon::start(&[])?;
    let dir = daemon.dir.clone();
    let pid = daemon.pid().context("pid")?;
    daemon.ok(&["launch", "FairLossPointToPointLink", "2", "--name", "demo", "--detach"])?;
    wait_until("two running instances", || {
        daemon.ps("demo").is_ok_and(|ps| ps.iter().filter(|i| i["state"] == "running").count() == 2)
    })?;
    let (code, out, err) = run(mgr(home.path(), &["status", "--state-dir", dir.to_str().unwrap()]))?;
    ensure_code(code, 0, &err)?;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(&format!("mgr is running on {} (pid {pid}, up ", dir.display())), "{out}");
    assert!(out.contains("\nmember:  test (id "), "{out}");
    assert!(out.contains("no TCP port"), "{out}");
    assert!(out.contains("\nmembers: 1 (1 alive): test\n"), "{out}");
    assert!(
        out.contains("\nruns:    1 here, with 2 instances\n  demo (FairLossPointToPointLink): 2 running\n"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("pid"))?.trim(), pid.to_string());

    // Killed: its pid file and socket remain, but nobody holds the lock.
    daemon.kill9();
    let (code, out, _) = run(mgr(home.path(), &["status", "--state-dir", dir.to_str().unwrap()]))?;
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("mgr is not running on"), "{out}");
    Ok(())
}

#[test]
fn stop_ends_a_manager_and_its_instances_and_says_so_when_none_runs() -> Result<()> {
    let home = tempfile::tempdir()?;
    let mut daemon = Daemon::start(&["--allow-exec"])?;
    let dir = daemon.dir.clone();
    let pid = i64::from(daemon.pid().context("pid")?);
    daemon.ok(&["exec", "2", "--detach", "--name", "sleepers", "--", "sleep", "60"])?;
    let instances: Vec<i64> = daemon.ps("sleepers")?.iter().filter_map(|i| i["pid"].as_i64()).collect();
    assert_eq!(instances.len(), 2);

    let (code, out, err) = run(mgr(home.path(), &["stop", "--state-dir", dir.to_str().unwrap()]))?;
    ensure_code(code, 0, &err)?;
    assert!(out.starts_with(&format!("stopped mgr (pid {pid}) on {} in ", dir.display())), "{out}");
    // `mgr stop` returned once the manager had exited: nothing is left.
    assert!(!alive(pid), "the manager is still running");
    for instance in instances {
        assert!(!alive(instance), "instance {instance} outlived its manager");
    }
    // A clean stop: the instances were stopped, not killed along with it.
    assert!(daemon.log().contains("shutting down: stopping every instance"), "{}", daemon.log());
    assert!(daemon.log().contains("INFO mgr_daemon: stopped"), "{}", daemon.log());
    daemon.stop();

    let (code, out, err) = run(mgr(home.path(), &["stop", "--state-dir", dir.to_str().unwrap()]))?;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, format!("mgr: no mgr is running on state dir {}\n", dir.display()));
    Ok(())
}

/// Runs `shell` (bash) in a new pseudo-terminal with `script`, as a user's
/// terminal; returns the process and a thread that collects what the
/// terminal showed.
fn in_terminal(home: &Path, shell: &str) -> Result<(Child, thread::JoinHandle<String>)> {
    let mut command = Command::new("script");
    command
        .args(["-q", "-e", "-f", "-c", shell, "/dev/null"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env_remove("MGR_STATE_DIR")
        .env_remove("MGR_KEY_FILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().context("script (util-linux) runs the terminal of this test")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let shown = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    Ok((child, shown))
}

#[test]
fn a_manager_in_the_background_of_a_terminal_logs_to_its_state_dir_and_one_in_the_foreground_to_the_terminal()
-> Result<()> {
    let home = tempfile::tempdir()?;
    let mgr_bin = bin("mgr");
    for background in [true, false] {
        let state = home.path().join(if background { "bg" } else { "fg" });
        let start = format!(
            "{} start --no-mdns --name term --ports {} --state-dir {}",
            mgr_bin.display(),
            port_range(5),
            state.display()
        );
        // `set -m`: job control, as in an interactive shell, so that `&`
        // puts the manager in a process group of its own, not the
        // terminal's foreground one.
        let shell = if background { format!("bash -c 'set -m; {start} & wait'") } else { start };
        let (mut terminal, shown) = in_terminal(home.path(), &shell)?;
        wait_until("the manager's socket", || std::os::unix::net::UnixStream::connect(state.join("mgr.sock")).is_ok())?;
        let (code, _, err) = run(mgr(home.path(), &["stop", "--state-dir", state.to_str().unwrap()]))?;
        ensure_code(code, 0, &err)?;
        wait_until("the terminal to close", || terminal.try_wait().is_ok_and(|s| s.is_some()))?;
        let shown = shown.join().unwrap_or_default();
        let log = std::fs::read_to_string(state.join("mgr.log")).unwrap_or_default();
        if background {
            let notice = format!("mgr: running in the background: logging to {}/mgr.log", state.display());
            assert!(shown.contains(&notice), "the terminal showed:\n{shown}");
            assert!(!shown.contains("manager started"), "log lines on the terminal:\n{shown}");
            assert!(log.contains("manager started") && log.contains("INFO mgr_daemon: stopped"), "{log}");
            // Plain text in a file: no colours.
            assert!(!log.contains('\x1b'), "{log:?}");
        } else {
            assert!(shown.contains("manager started"), "the terminal showed:\n{shown}");
            assert!(!shown.contains("running in the background"), "{shown}");
            assert!(!state.join("mgr.log").exists(), "{log}");
        }
    }
    Ok(())
}

#[test]
fn a_log_file_of_the_managers_own_is_rotated_at_10_mib_keeping_one_old_file() -> Result<()> {
    let home = tempfile::tempdir()?;
    let state = home.path().join("state");
    let log = home.path().join("logs/mgr.log");
    std::fs::create_dir_all(log.parent().unwrap())?;
    // A log left by earlier runs, a few bytes short of the bound: the new
    // manager's first lines take it over.
    const BOUND: u64 = 10 << 20;
    let line = "2026-01-01T00:00:00.000000Z  INFO mgr_daemon: an old line of an earlier run\n";
    let mut old = line.repeat((BOUND as usize - 100) / line.len());
    old.push_str(&"x".repeat(BOUND as usize - 100 - old.len()));
    old.push('\n');
    std::fs::write(&log, &old)?;
    let stderr = home.path().join("stderr");
    let args = ["start", "--no-mdns", "--name", "rot", "--state-dir", state.to_str().unwrap()];
    let mut manager = Manager::spawn(
        mgr(home.path(), &[&args[..], &["--ports", &port_range(5), "--log-file", log.to_str().unwrap()]].concat()),
        &state.join("mgr.sock"),
        &stderr,
    )?;
    let (code, _, err) = run(mgr(home.path(), &["stop", "--state-dir", state.to_str().unwrap()]))?;
    ensure_code(code, 0, &err)?;
    assert_eq!(manager.wait()?, 0);
    assert_eq!(manager.stderr(), "", "the log goes to its file only");

    let rotated = std::fs::read_to_string(home.path().join("logs/mgr.log.1"))?;
    assert_eq!(rotated, old, "the full file is kept whole as mgr.log.1");
    let new = std::fs::read_to_string(&log)?;
    assert!(new.contains("manager started") && new.ends_with("INFO mgr_daemon: stopped\n"), "{new}");
    assert!((new.len() as u64) < BOUND);
    assert_eq!(std::fs::metadata(&log)?.permissions().mode() & 0o777, 0o600);
    let files = std::fs::read_dir(log.parent().unwrap())?.count();
    assert_eq!(files, 2, "one old file, no more");
    Ok(())
}

#[test]
fn a_manager_whose_stderr_is_the_journal_leaves_the_time_stamps_to_it() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let home = tempfile::tempdir()?;
    for journal in [true, false] {
        let state = home.path().join(format!("state-{journal}"));
        let stderr = home.path().join(format!("stderr-{journal}"));
        std::fs::write(&stderr, "")?;
        // systemd names the stream it gives as stderr by device and inode;
        // elsewhere, the variable names another file (it was inherited).
        let meta = std::fs::metadata(if journal { stderr.as_path() } else { home.path() })?;
        let mut command = mgr(
            home.path(),
            &[
                "start",
                "--no-mdns",
                "--name",
                "journal",
                "--ports",
                &port_range(5),
                "--state-dir",
                state.to_str().unwrap(),
            ],
        );
        command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        let mut manager = Manager::spawn(command, &state.join("mgr.sock"), &stderr)?;
        let (code, _, err) = run(mgr(home.path(), &["stop", "--state-dir", state.to_str().unwrap()]))?;
        ensure_code(code, 0, &err)?;
        assert_eq!(manager.wait()?, 0);
        let log = manager.stderr();
        let started = log.lines().find(|l| l.contains("manager started")).context("no start line")?.to_owned();
        if journal {
            assert!(started.starts_with(" INFO mgr_daemon: manager started"), "{started}");
        } else {
            assert!(started.starts_with("20") && started.contains("Z  INFO mgr_daemon"), "{started}");
        }
    }
    Ok(())
}

/// `key = value` lines of the sample, commented out (`# key = …`), made
/// live.
fn uncommented_sample(key_file: &Path) -> Result<String> {
    let sample = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/mgr.toml"))?;
    let mut live = String::new();
    for line in sample.lines() {
        let Some(setting) = line.strip_prefix("# ") else { continue };
        let Some((key, _)) = setting.split_once(" = ") else { continue };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            // The example key file does not exist here; a real one does.
            if key == "key_file" {
                live.push_str(&format!("key_file = \"{}\"\n", key_file.display()));
            } else {
                live.push_str(setting);
                live.push('\n');
            }
        }
    }
    Ok(live)
}

/// The `ExecStart=` of a unit, split into words.
fn exec_start(unit: &str) -> Result<Vec<String>> {
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).context("no ExecStart=")?;
    Ok(line.split_whitespace().map(str::to_owned).collect())
}

#[test]
fn the_sample_configuration_and_the_systemd_units_are_what_mgr_accepts() -> Result<()> {
    let home = tempfile::tempdir()?;
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist");
    let key = home.path().join("group.key");
    keygen(&key)?;

    // The sample documents every key, and every key in it is accepted.
    let live = uncommented_sample(&key)?;
    for key in mgr_daemon::config::keys() {
        assert!(
            live.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "dist/mgr.toml does not document the key {key} (a `# {key} = …` line with what it does)"
        );
    }
    let config = home.path().join("mgr.toml");
    std::fs::write(&config, &live)?;

    // The system unit: mgr start --config /etc/mgr/mgr.toml --state-dir %S/mgr,
    // run as given (the sample file in place of /etc/mgr/mgr.toml, %S a
    // temporary folder) with --check added.
    let system = std::fs::read_to_string(dist.join("mgr.service"))?;
    let user = std::fs::read_to_string(dist.join("user/mgr.service"))?;
    for (unit, text) in [("mgr.service", &system), ("user/mgr.service", &user)] {
        for must in ["Delegate=yes", "KillMode=mixed", "Restart=on-failure"] {
            assert!(text.lines().any(|l| l == must), "{unit} has no {must}");
        }
    }
    for must in ["User=mgr", "StateDirectory=mgr", "ExecStart=/usr/local/bin/mgr start --config /etc/mgr/mgr.toml"] {
        assert!(system.lines().any(|l| l.starts_with(must)), "mgr.service has no {must}");
    }
    let specifiers = |word: &str| {
        word.replace("%S", &home.path().join("var-lib").to_string_lossy()).replace("%h", &home.path().to_string_lossy())
    };
    let words = exec_start(&system)?;
    assert_eq!(words[0], "/usr/local/bin/mgr");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| if w == "/etc/mgr/mgr.toml" { config.display().to_string() } else { specifiers(w) })
        .chain(["--check".to_owned()])
        .collect();
    let (code, out, err) = run(mgr(home.path(), &args.iter().map(String::as_str).collect::<Vec<_>>()))?;
    ensure_code(code, 0, &err)?;
    assert!(out.contains(&format!("state_dir = \"{}\"", home.path().join("var-lib/mgr").display())), "{out}");
    assert!(out.contains("listen = \"0.0.0.0:6170\"") && out.contains("allow_exec = false"), "{out}");

    // The user unit: mgr start and the default file, which is the sample.
    let words = exec_start(&user)?;
    assert_eq!(words[0], "%h/.cargo/bin/mgr");
    let default = home.path().join(".config/mgr/mgr.toml");
    std::fs::create_dir_all(default.parent().unwrap())?;
    std::fs::copy(&config, &default)?;
    let args: Vec<String> = words[1..].iter().map(|w| specifiers(w)).chain(["--check".to_owned()]).collect();
    let (code, out, err) = run(mgr(home.path(), &args.iter().map(String::as_str).collect::<Vec<_>>()))?;
    ensure_code(code, 0, &err)?;
    assert!(out.starts_with(&format!("# the settings of {}", default.display())), "{out}");

    // The units' syntax, where systemd's own checker is installed (it runs
    // without systemd running). Elsewhere only the above is checked.
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze is not installed: the units' syntax is not checked, only their mgr arguments");
        return Ok(());
    }
    verify_units(home.path(), &dist, &system, &user)
}

/// `systemd-analyze verify` of both units, with the installed binary's
/// path replaced by the built one (it checks that ExecStart's program
/// exists) and the man pages of dist/man (it checks Documentation=, with
/// `man`, where `man` is installed). Any warning fails.
fn verify_units(home: &Path, dist: &Path, system: &str, user: &str) -> Result<()> {
    let mgr_bin = bin("mgr").display().to_string();
    let units = home.join("units");
    std::fs::create_dir_all(units.join("user"))?;
    std::fs::write(units.join("mgr.service"), system.replace("/usr/local/bin/mgr", &mgr_bin))?;
    std::fs::write(units.join("user/mgr.service"), user.replace("%h/.cargo/bin/mgr", &mgr_bin))?;
    let manpath = home.join("man");
    std::fs::create_dir_all(manpath.join("man1"))?;
    for page in std::fs::read_dir(dist.join("man"))? {
        let page = page?;
        std::fs::copy(page.path(), manpath.join("man1").join(page.file_name()))?;
    }
    let man = Command::new("man").arg("--version").output().is_ok();
    let runtime = home.join("runtime");
    std::fs::create_dir_all(&runtime)?;
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))?;
    for (scope, unit) in [(None, units.join("mgr.service")), (Some("--user"), units.join("user/mgr.service"))] {
        let mut command = Command::new("systemd-analyze");
        command.args(scope).arg("verify").args((!man).then_some("--man=no")).arg(&unit);
        command.env("MANPATH", &manpath).env("XDG_RUNTIME_DIR", &runtime);
        let out = run_with_timeout(command)?;
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() || !said.trim().is_empty() {
            let scope = scope.map(|s| format!(" {s}")).unwrap_or_default();
            bail!("systemd-analyze{scope} verify {}:\n{said}", unit.display());
        }
    }
    Ok(())
}
