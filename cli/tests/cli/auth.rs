//! Authentication with the group key: `mgr keygen`, a keyed manager that
//! serves `mgrctl --host --key-file`, the refusals (another key, no key)
//! with a clear error on both sides, and a manager without a key, which has
//! no TCP port at all. Loopback only.

use std::os::unix::fs::PermissionsExt;

use super::harness::*;

fn keygen(path: &Path, force: bool) -> Result<Output> {
    let mut command = Command::new(bin("mgr"));
    command.arg("keygen").arg(path);
    if force {
        command.arg("--force");
    }
    run_with_timeout(command)
}

/// A new key file in `dir`.
fn new_key(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let out = keygen(&path, false)?;
    if !out.status.success() {
        bail!("mgr keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(path)
}

/// Runs mgrctl, insisting on failure; returns its stderr, which must be one line.
fn one_line_error(command: Command) -> Result<String> {
    let out = run_with_timeout(command)?;
    let stderr = String::from_utf8(out.stderr)?;
    if out.status.success() {
        bail!("mgrctl succeeded but should have failed");
    }
    let stderr = stderr.trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    Ok(stderr)
}

#[test]
fn keygen_writes_32_bytes_of_mode_0600_and_overwrites_only_with_force() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = new_key(dir.path(), "group.key")?;
    let meta = std::fs::metadata(&path)?;
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let first = std::fs::read(&path)?;

    let out = keygen(&path, false)?;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(stderr.trim(), format!("mgr: {} exists already: pass --force to replace it", path.display()));
    assert_eq!(std::fs::read(&path)?, first, "the key was kept");

    assert!(keygen(&path, true)?.status.success());
    let second = std::fs::read(&path)?;
    assert_eq!(second.len(), 32);
    assert_ne!(second, first);
    assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    Ok(())
}

#[test]
fn mgrctl_with_the_key_reaches_a_keyed_manager_over_tcp() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = new_key(dir.path(), "group.key")?;
    let key = key.to_str().context("path")?;
    let daemon = Daemon::start_logged(&["--key-file", key], "127.0.0.1:0")?;
    let addr = daemon.tcp_addr()?;

    let out = run_with_timeout(mgrctl(&["--host", &addr, "--key-file", key, "ps"]))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same through the environment.
    let mut command = mgrctl(&["ps"]);
    command.env("MGR_HOST", &addr).env("MGR_KEY_FILE", key);
    let out = run_with_timeout(command)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The local socket still lets local users in, without the key.
    daemon.ok(&["ps"])?;
    assert!(!daemon.log().contains("refused"), "{}", daemon.log());
    // A key file others can read still works, with a warning.
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644))?;
    let out = run_with_timeout(mgrctl(&["--host", &addr, "--key-file", key, "ps"]))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr)?;
    assert!(stderr.contains("is open to other users (mode 0644)"), "{stderr}");
    Ok(())
}

#[test]
fn another_key_is_refused_on_both_sides() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = new_key(dir.path(), "group.key")?;
    let other = new_key(dir.path(), "other.key")?;
    let daemon = Daemon::start_logged(&["--key-file", key.to_str().context("path")?], "127.0.0.1:0")?;
    let addr = daemon.tcp_addr()?;

    let err = one_line_error(mgrctl(&["--host", &addr, "--key-file", other.to_str().context("path")?, "ps"]))?;
    assert_eq!(err, format!("mgrctl: the manager at {addr} does not hold this group's key"));
    let line = daemon.wait_log(&["refused a connection from 127.0.0.1:", "does not hold this group's key"])?;
    assert!(line.contains("WARN"), "{line}");
    Ok(())
}

#[test]
fn mgrctl_without_a_key_is_refused_by_a_keyed_manager() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = new_key(dir.path(), "group.key")?;
    let daemon = Daemon::start_logged(&["--key-file", key.to_str().context("path")?], "127.0.0.1:0")?;
    let addr = daemon.tcp_addr()?;

    let err = one_line_error(mgrctl(&["--host", &addr, "ps"]))?;
    assert_eq!(
        err,
        "mgrctl: --host needs the group key: pass --key-file FILE (or set MGR_KEY_FILE); a manager's TCP port takes \
         nothing else"
    );
    // Something that speaks plain HTTP/2 anyway is refused by the manager,
    // which says why in its log.
    let mut plain = std::net::TcpStream::connect(&addr)?;
    std::io::Write::write_all(&mut plain, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
    daemon.wait_log(&["refused a connection from 127.0.0.1:", "not TLS (an mgrctl without --key-file?)"])?;

    // A bad key file is named, with what is wrong with it.
    let short = dir.path().join("short.key");
    std::fs::write(&short, [7u8; 17])?;
    let err = one_line_error(mgrctl(&["--host", &addr, "--key-file", short.to_str().context("path")?, "ps"]))?;
    assert_eq!(
        err,
        format!(
            "mgrctl: key file {} holds 17 bytes; a group key is 32 bytes (make one with `mgr keygen FILE`)",
            short.display()
        )
    );
    Ok(())
}

#[test]
fn a_manager_without_a_key_has_no_tcp_port_and_no_group() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.wait_log(&["manager started", "listen=none (no group key)"])?;
    let pid = daemon.pid().context("the daemon runs")?;
    assert_eq!(tcp_listeners(pid)?, Vec::<String>::new(), "a keyless manager listens on TCP");
    daemon.ok(&["ps"])?;
    let err = daemon.err(&["join", "127.0.0.1:1"])?;
    assert!(err.contains("this manager has no group key, so it cannot be part of a group"), "{err}");
    Ok(())
}

#[test]
fn listen_join_and_iface_need_a_key() -> Result<()> {
    // Refused before anything is bound: no traffic leaves loopback.
    for (option, value) in
        [("--listen", "0.0.0.0:0"), ("--listen", "127.0.0.1:0"), ("--join", "127.0.0.1:1"), ("--iface", "lo")]
    {
        let dir = tempfile::tempdir()?;
        let mut command = Command::new(bin("mgr"));
        command.args(["start", option, value, "--no-mdns", "--state-dir"]).arg(dir.path()).env_remove("MGR_KEY_FILE");
        let out = run_with_timeout(command)?;
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr)?;
        assert_eq!(
            stderr.trim(),
            format!(
                "mgr: {option} needs the group key: a manager without one has no TCP port and no group (make a key \
                 with `mgr keygen FILE` and pass --key-file FILE)"
            )
        );
    }
    Ok(())
}

/// The TCP ports `pid` listens on, as `ss` shows them.
pub(crate) fn tcp_listeners(pid: u32) -> Result<Vec<String>> {
    let out = Command::new("ss").args(["-ltnpH"]).output().context("ss (iproute2) is needed")?;
    let text = String::from_utf8(out.stdout)?;
    let tag = format!("pid={pid},");
    Ok(text
        .lines()
        .filter(|l| l.contains(&tag))
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(str::to_owned)
        .collect())
}

#[test]
fn host_and_local_do_not_go_together() -> Result<()> {
    let out = run_with_timeout(mgrctl(&["--host", "127.0.0.1:1", "--local", "ps"]))?;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr)?;
    assert!(stderr.contains("--host") && stderr.contains("--local"), "{stderr}");
    Ok(())
}
