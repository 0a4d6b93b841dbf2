//! The multi-host harness: K hosts as network namespaces on a private
//! bridge, a real `mgr` (or any program) in each, and the tests of the
//! harness itself and of mDNS discovery across hosts.
//!
//! Owns every namespace, bridge and veth it creates and removes them, and
//! every process inside them, when the [`Lab`] is dropped, also when a test
//! panics; leftovers of a test process that died before (names carry its
//! pid) are swept by the next [`Lab::new`]. It must never send anything on
//! the host's own interfaces: the bridge has no address, multicast (mDNS)
//! is routed only inside the namespaces, and programs that send mDNS run
//! only through [`Lab::command`]. It needs root; without root every test
//! here fails with a clear message instead of passing silently.
//!
//! API:
//! - [`Lab::new`]`(k)`: hosts 1..=k, namespace `mgrt-PID-N-hI`, address
//!   [`Lab::ip`]`(i)` = `10.A.B.i/24` on its `eth0`, bridged to the others.
//! - [`Lab::ns`], [`Lab::command`] (a `Command` run in host i with
//!   `ip netns exec`), [`Lab::run_in`] (a closure on a thread that joined
//!   host i's network namespace, e.g. to open sockets there).
//! - [`Lab::cut`] / [`Lab::restore`]: host i's link to the bridge down / up;
//!   [`Lab::split`] / [`Lab::unsplit`]: some hosts on a bridge of their own.
//! - [`Lab::start_mgr`]`(i, extra)`: a real `mgr start --name hI --listen
//!   IP:6170 --advertise IP --key-file KEY --state-dir DIR ...` in host i,
//!   as a [`NetDaemon`], which derefs to the harness's `Daemon` (ctl, ok,
//!   err, spawn, ps, ...) over the Unix socket, and adds `kill9`,
//!   `restart` (same state dir, so the same member id) and `log`.

use std::ffi::OsString;
use std::net::{Ipv4Addr, UdpSocket};
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::anyhow;

use crate::harness::*;

/// The gRPC port every lab manager listens on (each host has its own
/// network stack, so they never collide).
pub(crate) const MGR_PORT: u16 = 6170;

static LABS: AtomicU32 = AtomicU32::new(0);

/// K hosts on one bridge; removed, with every process in them, on drop.
pub(crate) struct Lab {
    pid: u32,
    n: u32,
    hosts: usize,
    net: [u8; 3],
    dir: tempfile::TempDir,
    key: OnceLock<PathBuf>,
    /// The kernel's ARP thresholds before a big lab raised them.
    arp: Option<String>,
}

/// The kernel's ARP table is one for all namespaces (1,024 entries by
/// default), and hosts that all talk to each other need K² entries: past
/// it, sends fail silently ("neighbor table overflow"), which no real
/// machine with K − 1 neighbours would see. A lab of more than 9 hosts
/// raises the limits while it lives.
const ARP: [&str; 3] = [
    "/proc/sys/net/ipv4/neigh/default/gc_thresh1",
    "/proc/sys/net/ipv4/neigh/default/gc_thresh2",
    "/proc/sys/net/ipv4/neigh/default/gc_thresh3",
];

fn arp_limits() -> String {
    ARP.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default().trim().to_owned()).collect::<Vec<_>>().join(" ")
}

fn set_arp_limits(values: &str) {
    for (path, value) in ARP.iter().zip(values.split_whitespace()) {
        let _ = std::fs::write(path, value);
    }
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Kills every process in a namespace (until none is left), then deletes it.
fn remove_namespace(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> =
            ip_output(&["netns", "pids", ns]).split_whitespace().filter_map(|p| p.parse().ok()).collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = ip(&["netns", "del", ns]);
}

/// The names a lab of `pid` owns start with these.
fn netns_prefix(pid: u32) -> String {
    format!("mgrt-{pid}-")
}
fn link_prefixes(pid: u32) -> [String; 2] {
    [format!("mgb{pid}-"), format!("mgv{pid}-")]
}

/// The pid encoded in a lab name, if it is one.
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("mgrt-").or_else(|| name.strip_prefix("mgb")).or_else(|| name.strip_prefix("mgv"))?;
    rest.split('-').next()?.parse().ok()
}

/// Removes namespaces and links left by test processes that are gone (a
/// test killed before its Drop ran). Live processes' labs are left alone:
/// another copy of the tests may be running.
fn sweep() {
    let dead = |pid: u32| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
    for line in ip_output(&["netns", "list"]).lines() {
        let Some(ns) = line.split_whitespace().next() else { continue };
        if ns.starts_with("mgrt-") && owner(ns).is_some_and(dead) {
            remove_namespace(ns);
        }
    }
    for line in ip_output(&["-o", "link", "show"]).lines() {
        // "7: mgv123-0-1@if2: <...": the name is the second field, up to '@'.
        let Some(name) = line.split_whitespace().nth(1) else { continue };
        let name = name.trim_end_matches(':').split('@').next().unwrap_or_default();
        if (name.starts_with("mgb") || name.starts_with("mgv")) && owner(name).is_some_and(dead) {
            let _ = ip(&["link", "del", name]);
        }
    }
}

impl Lab {
    /// Creates `hosts` namespaces on a new bridge (sweeping the leftovers of
    /// dead test processes first). Fails unless run as root.
    pub(crate) fn new(hosts: usize) -> Result<Lab> {
        if !nix::unistd::geteuid().is_root() {
            bail!(
                "the multi-host tests need root to create network namespaces (CI runs as root): \
                 run `cargo test` as root"
            );
        }
        if !(1..=32).contains(&hosts) {
            bail!("a lab has 1 to 32 hosts, not {hosts}");
        }
        sweep();
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        // The bridge has no address, so the host never routes to these
        // subnets; distinct ones per process and lab only make logs clearer.
        let net = [10, 200 + (pid % 50) as u8, (n % 256) as u8];
        let arp = (hosts > 9).then(|| {
            let before = arp_limits();
            set_arp_limits("8192 16384 32768");
            before
        });
        let lab = Lab { pid, n, hosts, net, dir: tempfile::tempdir()?, key: OnceLock::new(), arp };
        if lab.veth(hosts).len() > 15 {
            bail!("interface name {} is too long for the kernel (15 bytes)", lab.veth(hosts));
        }
        // On failure `lab` is dropped here, which removes what was made.
        lab.create().context("cannot create the lab network")?;
        Ok(lab)
    }

    fn create(&self) -> Result<()> {
        let bridge = self.bridge();
        // No IGMP snooping: nobody answers IGMP queries on this bridge, and
        // mDNS must reach every port.
        ip(&["link", "add", &bridge, "type", "bridge", "mcast_snooping", "0"])?;
        // No IPv6 on the host side of the bridge: it would talk on it.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"), "1");
        ip(&["link", "set", &bridge, "up"])?;
        for i in 1..=self.hosts {
            let (ns, veth) = (self.ns(i), self.veth(i));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            let addr = format!("{}/24", self.ip(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // Multicast (mDNS) leaves through the bridge.
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(())
    }

    /// Host i's network namespace (hosts count from 1).
    pub(crate) fn ns(&self, i: usize) -> String {
        assert!((1..=self.hosts).contains(&i), "no host {i} in a lab of {}", self.hosts);
        format!("mgrt-{}-{}-h{i}", self.pid, self.n)
    }

    pub(crate) fn ip(&self, i: usize) -> Ipv4Addr {
        assert!((1..=self.hosts).contains(&i), "no host {i} in a lab of {}", self.hosts);
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], i as u8)
    }

    pub(crate) fn bridge(&self) -> String {
        format!("mgb{}-{}", self.pid, self.n)
    }

    /// The bridge's end of host i's veth pair (the host's end is `eth0`).
    pub(crate) fn veth(&self, i: usize) -> String {
        format!("mgv{}-{}-{i}", self.pid, self.n)
    }

    /// A folder that lives as long as the lab (state dirs, the group key).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `program` to be run inside host i (through `ip netns exec`, which
    /// execs it: the child's pid is the program's).
    pub(crate) fn command(&self, i: usize, program: impl Into<OsString>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec"]).arg(self.ns(i)).arg(program.into());
        command
    }

    /// Runs `f` on a thread that joined host i's network namespace: sockets
    /// it opens belong to host i, and stay usable from any thread.
    pub(crate) fn run_in<T: Send + 'static>(&self, i: usize, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let path = format!("/run/netns/{}", self.ns(i));
        thread::spawn(move || -> Result<T> {
            let file = std::fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter the network namespace {path}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("a closure run in host {i} panicked"))?
    }

    /// A UDP socket of host i bound to its address and `port` (0: any).
    pub(crate) fn udp(&self, i: usize, port: u16) -> Result<UdpSocket> {
        let ip = self.ip(i);
        let socket = self.run_in(i, move || UdpSocket::bind((ip, port)))?.context("cannot bind a udp socket")?;
        Ok(socket)
    }

    /// Partitions host i: its link to the bridge goes down.
    pub(crate) fn cut(&self, i: usize) -> Result<()> {
        ip(&["link", "set", &self.veth(i), "down"])
    }

    /// Heals the partition of host i.
    pub(crate) fn restore(&self, i: usize) -> Result<()> {
        ip(&["link", "set", &self.veth(i), "up"])
    }

    /// Partitions the lab in two: `hosts` move to a bridge of their own, so
    /// each side still reaches its own members (mDNS included) and nothing
    /// of the other.
    pub(crate) fn split(&self, hosts: impl IntoIterator<Item = usize>) -> Result<()> {
        let other = self.other_bridge();
        if ip_output(&["link", "show", &other]).is_empty() {
            ip(&["link", "add", &other, "type", "bridge", "mcast_snooping", "0"])?;
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{other}/disable_ipv6"), "1");
            ip(&["link", "set", &other, "up"])?;
        }
        for i in hosts {
            ip(&["link", "set", &self.veth(i), "master", &other])?;
        }
        Ok(())
    }

    /// Heals a [`Lab::split`]: every host back on the one bridge.
    pub(crate) fn unsplit(&self) -> Result<()> {
        for i in 1..=self.hosts {
            ip(&["link", "set", &self.veth(i), "master", &self.bridge()])?;
        }
        Ok(())
    }

    fn other_bridge(&self) -> String {
        format!("{}s", self.bridge())
    }

    /// The group key every lab manager shares (made on first use).
    pub(crate) fn key(&self) -> Result<PathBuf> {
        if let Some(key) = self.key.get() {
            return Ok(key.clone());
        }
        let path = self.dir().join("group.key");
        keygen(&path)?;
        Ok(self.key.get_or_init(|| path).clone())
    }

    /// Starts a real manager in host i, named `hI`, listening on
    /// `IP:6170` with the lab's group key, its state dir in the lab's folder
    /// (`h{i}`, reused by a second start on the same host), its stderr in
    /// `h{i}/mgr.log`. Returns once its control socket accepts.
    pub(crate) fn start_mgr(&self, i: usize, extra: &[&str]) -> Result<NetDaemon> {
        let dir = self.dir().join(format!("h{i}"));
        std::fs::create_dir_all(&dir)?;
        let ip = self.ip(i);
        let mut args: Vec<OsString> = vec!["start".into(), "--name".into(), format!("h{i}").into()];
        args.extend(["--listen".into(), format!("{ip}:{MGR_PORT}").into()]);
        args.extend(["--advertise".into(), ip.to_string().into()]);
        // A test may give another key (a stranger on the same bridge).
        if !extra.contains(&"--key-file") {
            args.extend(["--key-file".into(), self.key()?.into()]);
        }
        args.extend(["--state-dir".into(), dir.clone().into()]);
        args.extend(["--grace".into(), "1".into(), "--ports".into(), "24000-24199".into()]);
        args.extend(extra.iter().map(OsString::from));
        let mut daemon = NetDaemon { daemon: None, ns: self.ns(i), args, dir };
        daemon.launch()?;
        Ok(daemon)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Processes first (nothing may outlive the lab), then the veths
        // (deleting one end removes the pair at once, where a namespace's
        // own interfaces go only later, in the background), then the
        // namespaces and the bridge.
        for i in 1..=self.hosts {
            remove_namespace(&self.ns(i));
            let _ = ip(&["link", "del", &self.veth(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
        let _ = ip(&["link", "del", &self.other_bridge()]);
        if let Some(before) = &self.arp {
            set_arp_limits(before);
        }
    }
}

/// A real `mgr` running in a lab host; derefs to [`Daemon`] for mgrctl.
pub(crate) struct NetDaemon {
    daemon: Option<Daemon>,
    ns: String,
    args: Vec<OsString>,
    pub(crate) dir: PathBuf,
}

impl NetDaemon {
    fn launch(&mut self) -> Result<()> {
        let socket = self.dir.join("mgr.sock");
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::options().create(true).append(true).open(self.log_path())?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(bin("mgr"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start mgr in its namespace")?;
        let deadline = Instant::now() + TIMEOUT;
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("mgr in {} ended ({status}) before opening its socket; its log:\n{}", self.ns, self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("mgr in {} did not open its socket in time; its log:\n{}", self.ns, self.log());
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.daemon = Some(Daemon::adopt(child, &self.dir));
        Ok(())
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("mgr.log")
    }

    /// Everything the manager wrote on stderr so far (all its starts).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the manager with SIGKILL (no cleanup on its side).
    pub(crate) fn kill9(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            if let Some(pid) = daemon.pid() {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
            // Reaps the killed process.
            drop(daemon);
        }
    }

    /// Stops the manager if it runs (SIGTERM) and starts it again with the
    /// same arguments and state dir, hence the same member id.
    pub(crate) fn restart(&mut self) -> Result<()> {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop();
        }
        self.launch()
    }

    pub(crate) fn running(&self) -> bool {
        self.daemon.is_some()
    }
}

impl Deref for NetDaemon {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        self.daemon.as_ref().expect("the manager is not running (kill9 without restart)")
    }
}

impl DerefMut for NetDaemon {
    fn deref_mut(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("the manager is not running (kill9 without restart)")
    }
}

// ---------------------------------------------------------------------------
// Tests of the harness.

fn expect_datagram(socket: &UdpSocket, want: &[u8]) -> Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 64];
    let (n, _) = socket.recv_from(&mut buf).context("no datagram arrived")?;
    if &buf[..n] != want {
        bail!("got {:?}, wanted {:?}", String::from_utf8_lossy(&buf[..n]), String::from_utf8_lossy(want));
    }
    Ok(())
}

fn expect_silence(socket: &UdpSocket) -> Result<()> {
    socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut buf = [0u8; 64];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => bail!("a datagram crossed a cut link: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => Ok(()),
    }
}

#[test]
fn hosts_exchange_udp_across_the_bridge_and_a_cut_stops_it() -> Result<()> {
    let lab = Lab::new(2)?;
    let (a, b) = (lab.udp(1, 0)?, lab.udp(2, 7000)?);
    let to_b = (lab.ip(2), 7000);
    a.send_to(b"hello", to_b)?;
    expect_datagram(&b, b"hello")?;

    lab.cut(2)?;
    a.send_to(b"lost", to_b)?;
    expect_silence(&b)?;

    lab.restore(2)?;
    // The port may take a moment to forward again; ARP may have to resolve.
    let mut delivered = false;
    for _ in 0..20 {
        a.send_to(b"back", to_b)?;
        if expect_datagram(&b, b"back").is_ok() {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "traffic did not come back after restore");
    Ok(())
}

#[test]
fn multicast_crosses_the_bridge_between_hosts() -> Result<()> {
    let lab = Lab::new(3)?;
    let group = Ipv4Addr::new(224, 0, 0, 251);
    let port = 5353;
    let receivers: Vec<UdpSocket> = (2..=3)
        .map(|i| {
            let ip = lab.ip(i);
            lab.run_in(i, move || -> std::io::Result<UdpSocket> {
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
                socket.join_multicast_v4(&group, &ip)?;
                Ok(socket)
            })?
            .context("cannot join the multicast group")
        })
        .collect::<Result<_>>()?;
    let sender = lab.udp(1, 0)?;
    sender.send_to(b"everyone", (group, port))?;
    for socket in &receivers {
        expect_datagram(socket, b"everyone")?;
    }
    Ok(())
}

fn lab_names_left(pid: u32, n: u32) -> Vec<String> {
    let ns = format!("{}{n}-", netns_prefix(pid));
    let [bridge, veth] = link_prefixes(pid);
    let mut left: Vec<String> =
        ip_output(&["netns", "list"]).lines().filter(|l| l.starts_with(&ns)).map(str::to_owned).collect();
    for line in ip_output(&["-o", "link", "show"]).lines() {
        if line.contains(&format!("{bridge}{n}:")) || line.contains(&format!("{veth}{n}-")) {
            left.push(line.to_owned());
        }
    }
    left
}

/// Waits until `pid` runs inside namespace `ns`: `ip netns exec` joins
/// the namespace only after it started, and a lab dropped before that
/// cannot see the process (a test would then race its own cleanup).
fn inside(ns: &str, pid: u32) -> Result<()> {
    wait_until("the process inside its namespace", || {
        ip_output(&["netns", "pids", ns]).split_whitespace().any(|p| p == pid.to_string())
    })
}

#[test]
fn dropping_a_lab_removes_every_namespace_link_and_process() -> Result<()> {
    let lab = Lab::new(2)?;
    let (pid, n) = (lab.pid, lab.n);
    assert_eq!(lab_names_left(pid, n).len(), 2 + 3, "the lab's namespaces and links exist");
    let mut sleeper = lab.command(1, "sleep").arg("600").spawn()?;
    inside(&lab.ns(1), sleeper.id())?;
    let dir = lab.dir().to_owned();
    drop(lab);
    // The process in the namespace was killed by the drop.
    let status = sleeper.try_wait()?.context("a process in a dropped lab is still running")?;
    assert!(!status.success());
    assert_eq!(lab_names_left(pid, n), Vec::<String>::new());
    assert!(!dir.exists(), "the lab's folder is left");
    Ok(())
}

#[test]
fn a_panicking_test_still_removes_its_lab() -> Result<()> {
    let names = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = names.clone();
    let result = thread::spawn(move || {
        let lab = Lab::new(1).unwrap();
        let sleeper = lab.command(1, "sleep").arg("600").spawn().unwrap();
        inside(&lab.ns(1), sleeper.id()).unwrap();
        *seen.lock().unwrap() = Some((lab.pid, lab.n, sleeper));
        panic!("a failing test");
    })
    .join();
    assert!(result.is_err());
    let (pid, n, mut sleeper) = names.lock().unwrap().take().context("the lab was not made")?;
    assert_eq!(lab_names_left(pid, n), Vec::<String>::new());
    let status = sleeper.try_wait()?.context("a process in a panicked lab is still running")?;
    assert!(!status.success());
    Ok(())
}

#[test]
fn the_leftovers_of_a_dead_test_process_are_swept() -> Result<()> {
    // A pid that is not running: the largest possible one, unless taken.
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")?.trim().parse()?;
    let dead = (1..max).rev().find(|p| !Path::new(&format!("/proc/{p}")).exists()).context("no free pid")?;
    let ns = format!("mgrt-{dead}-0-h1");
    let link = format!("mgb{dead}-0");
    ip(&["netns", "add", &ns])?;
    ip(&["link", "add", &link, "type", "bridge"])?;
    let lab = Lab::new(1)?;
    let left = lab_names_left(dead, 0);
    drop(lab);
    // Clean up ourselves if the sweep failed, then report.
    let _ = ip(&["netns", "del", &ns]);
    let _ = ip(&["link", "del", &link]);
    assert_eq!(left, Vec::<String>::new(), "the sweep left a dead process's lab");
    Ok(())
}

#[test]
fn a_real_mgr_runs_in_a_namespace_and_mgrctl_drives_it_over_its_socket() -> Result<()> {
    let lab = Lab::new(2)?;
    let mut h1 = lab.start_mgr(1, &["--no-mdns", "--allow-exec"])?;
    let members = h1.ok(&["members", "--json"])?;
    let me: Value = serde_json::from_str(members.lines().next().context("no member")?)?;
    assert_eq!(me["name"], "h1");
    assert_eq!(me["address"], format!("{}:{MGR_PORT}", lab.ip(1)));
    // Its instances get the namespace's address.
    h1.ok(&["exec", "2", "--detach", "--name", "s", "--", "sleep", "60"])?;
    let ps = h1.ps("s")?;
    assert_eq!(ps.len(), 2);
    assert!(ps.iter().all(|p| p["address"].as_str().unwrap_or_default().starts_with(&format!("{}:", lab.ip(1)))));
    // The manager is inside host 1: its network namespace is not ours.
    let pid = h1.pid().context("not running")?;
    assert_ne!(std::fs::read_link(format!("/proc/{pid}/ns/net"))?, std::fs::read_link("/proc/self/ns/net")?);
    assert!(h1.log().contains("manager started"), "log: {}", h1.log());

    // Killed with -9 and started again: the same member, nothing left over.
    h1.kill9();
    assert!(!h1.running());
    h1.restart()?;
    let again: Value = serde_json::from_str(h1.ok(&["members", "--json"])?.lines().next().context("no member")?)?;
    assert_eq!(again["id"], me["id"]);
    Ok(())
}

// ---------------------------------------------------------------------------
// mDNS discovery across hosts, with the test-only `discover` example of the
// daemon (Discovery alone, one JSON line per manager found). It runs only
// inside lab namespaces, and refuses to run anywhere else.

/// The `discover` example, built (or found fresh) in this test's target dir.
fn discover_bin() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let profile_dir = Path::new(env!("CARGO_BIN_EXE_mgrctl")).parent().unwrap().to_owned();
            let target = profile_dir.parent().unwrap();
            let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
            build
                .args(["build", "--quiet", "-p", "mgr-daemon", "--example", "discover", "--target-dir"])
                .arg(target)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            let path = profile_dir.join("examples").join("discover");
            match build.status() {
                Ok(status) if status.success() && path.exists() => Ok(path),
                other => Err(format!(
                    "cannot build the discover example ({other:?}): run `cargo build -p mgr-daemon --examples`"
                )),
            }
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// One `discover` process in a lab host, its stdout lines time-stamped.
struct Finder {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
    found: std::collections::HashMap<String, (Instant, Value)>,
}

use std::sync::mpsc;

impl Finder {
    /// Starts `discover` in host i; `ifaces` pins its interfaces (none: the
    /// default, every non-loopback IPv4 interface).
    fn start(lab: &Lab, i: usize, id: &str, group: &str, ifaces: &[&str]) -> Result<Finder> {
        let mut child = lab
            .command(i, discover_bin()?)
            .args([id, &format!("h{i}"), group, &MGR_PORT.to_string(), &lab.ip(i).to_string()])
            .args(ifaces)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
                if tx.send((Instant::now(), value)).is_err() {
                    break;
                }
            }
        });
        let finder = Finder { child, lines, found: Default::default() };
        let (_, first) = finder.lines.recv_timeout(TIMEOUT).context("discover did not start")?;
        assert_eq!(first["started"], id);
        Ok(finder)
    }

    /// Waits until every id in `ids` was reported (since the last clear);
    /// returns when the last of them came.
    fn wait_for(&mut self, ids: &[String], within: Duration) -> Result<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if ids.iter().all(|id| self.found.contains_key(id)) {
                return Ok(ids.iter().map(|id| self.found[id].0).max().unwrap());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, value)) => {
                    let id = value["id"].as_str().unwrap_or_default().to_owned();
                    self.found.entry(id).or_insert((at, value));
                }
                Err(_) => {
                    let seen: Vec<&String> = self.found.keys().collect();
                    bail!("not every manager of {ids:?} was found within {within:?}; found {seen:?}");
                }
            }
        }
    }
}

impl Drop for Finder {
    fn drop(&mut self) {
        // Closing stdin makes it say goodbye and stop; kill it if it hangs.
        self.child.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn discovery_finds_every_manager_across_hosts_within_a_second() -> Result<()> {
    let lab = Lab::new(4)?;
    let ids: Vec<String> = (1..=4).map(|i| format!("{:08x}{:04x}{i:04x}", std::process::id(), lab.n)).collect();
    let groups = ["alpha", "alpha", "alpha", "beta"];
    let mut finders = Vec::new();
    let mut starts = Vec::new();
    for i in 1..=4 {
        starts.push(Instant::now());
        // Host 3 names its interface (--iface); the others use the default.
        let ifaces: &[&str] = if i == 3 { &["eth0"] } else { &[] };
        finders.push(Finder::start(&lab, i, &ids[i - 1], groups[i - 1], ifaces)?);
    }
    let last_start = starts[3];
    // Every discover runs in its host, never in the test's own network.
    let own = std::fs::read_link("/proc/self/ns/net")?;
    for finder in &finders {
        assert_ne!(std::fs::read_link(format!("/proc/{}/ns/net", finder.child.id()))?, own);
    }
    for (i, finder) in finders.iter_mut().enumerate() {
        let others: Vec<String> = ids.iter().filter(|id| **id != ids[i]).cloned().collect();
        finder.wait_for(&others, Duration::from_secs(5))?;
        assert!(!finder.found.contains_key(&ids[i]), "a manager reported itself");
    }
    // seen(a, b): when host a first reported host b, after both ran.
    let seen = |a: usize, b: usize| finders[a].found[&ids[b]].0.saturating_duration_since(starts[a.max(b)]);
    for a in 0..4 {
        let row: Vec<String> =
            (0..4).map(|b| if a == b { "-".to_owned() } else { format!("{:?}", seen(a, b)) }).collect();
        eprintln!("discovery: h{} saw h1..h4 after both ran: {}", a + 1, row.join(" "));
    }
    let mut slowest_pair = Duration::ZERO;
    for a in 0..4 {
        for b in a + 1..4 {
            // A newcomer's announcement reaches the managers already running
            // at once (no probing).
            assert!(seen(a, b) < Duration::from_millis(500), "h{} saw h{} only after {:?}", a + 1, b + 1, seen(a, b));
            // The newcomer learns of a manager that announced itself less
            // than a second before only when that one may multicast its
            // records again (RFC 6762 section 6: once a second): ~1 s.
            assert!(seen(b, a) < Duration::from_millis(2500), "h{} saw h{} only after {:?}", b + 1, a + 1, seen(b, a));
            let pair = finders[a].found[&ids[b]].0.min(finders[b].found[&ids[a]].0);
            slowest_pair = slowest_pair.max(pair.saturating_duration_since(last_start));
        }
    }
    // Each pair knows of each other in one direction at least within a
    // second of the last start: enough for a handshake, which goes both ways.
    eprintln!("discovery: every pair of 4 hosts linked {slowest_pair:?} after the last start");
    assert!(slowest_pair < Duration::from_secs(1), "discovery took {slowest_pair:?}");

    // What h1 knows of h4: its group (filtering is the caller's job), name,
    // version and gRPC address.
    let (_, h4) = &finders[0].found[&ids[3]];
    assert_eq!(h4["group"], "beta");
    assert_eq!(h4["name"], "h4");
    assert_eq!(h4["version"], mgr_daemon::PROTOCOL_VERSION);
    assert_eq!(h4["addrs"], serde_json::json!([format!("{}:{MGR_PORT}", lab.ip(4))]));

    // h2 stops (goodbye) and starts again with the same id: the others
    // report it again quickly.
    drop(finders.remove(1));
    // Its goodbye takes about a second to remove it everywhere; what was
    // reported until then does not count.
    thread::sleep(Duration::from_millis(1500));
    for finder in &mut finders {
        while finder.lines.try_recv().is_ok() {}
        finder.found.clear();
    }
    let restarted = Instant::now();
    let h2 = Finder::start(&lab, 2, &ids[1], "alpha", &[])?;
    let mut again = Duration::ZERO;
    for finder in &mut finders {
        let at = finder.wait_for(&ids[1..2], Duration::from_secs(5))?;
        again = again.max(at.saturating_duration_since(restarted));
    }
    eprintln!("discovery: a restarted manager was seen again after {again:?}");
    assert!(again < Duration::from_secs(1), "rediscovery took {again:?}");

    // h2 is killed with -9 (no goodbye: the others keep its records) and
    // starts again at once: its new `boot` TXT makes the others report it
    // again at once, and it finds them (its browse is new).
    let mut h2 = h2;
    let _ = h2.child.kill();
    let _ = h2.child.wait();
    for finder in &mut finders {
        while finder.lines.try_recv().is_ok() {}
        finder.found.clear();
    }
    let restarted = Instant::now();
    let mut h2 = Finder::start(&lab, 2, &ids[1], "alpha", &[])?;
    let mut again = Duration::ZERO;
    for finder in &mut finders {
        let at = finder.wait_for(&ids[1..2], Duration::from_secs(7))?;
        again = again.max(at.saturating_duration_since(restarted));
    }
    let others = [ids[0].clone(), ids[2].clone(), ids[3].clone()];
    let found_them = h2.wait_for(&others, Duration::from_secs(7))?.saturating_duration_since(restarted);
    eprintln!(
        "discovery: after kill -9 and restart, seen again after {again:?}, found the others after {found_them:?}"
    );
    Ok(())
}
