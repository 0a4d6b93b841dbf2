//! The lab applications (`src/apps/`) as one run with roles, the way a
//! scenario starts them: the real `mgr-modules` binary, one process per
//! instance on loopback, with `MGR_ROLE`, `MGR_ROLES` and `MGR_MULTICAST`
//! set by hand as a manager sets them. Each role finds the others through
//! the contract alone (no `--comparator`, `--peers`, `--discovery` nor
//! `--group`), and talks only to its proper counterparts.

use crate::{BIN, free_addrs};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// One run: its instances' addresses, its roles and its multicast group.
struct Run {
    name: String,
    addrs: Vec<SocketAddr>,
    roles: String,
    multicast: Option<String>,
    dir: PathBuf,
}

impl Run {
    fn new(name: &str, n: usize, roles: &str, multicast: Option<String>) -> Run {
        let dir = std::env::temp_dir().join(format!("mgr-apps-roles-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Run { name: name.to_owned(), addrs: free_addrs(n), roles: roles.to_owned(), multicast, dir }
    }

    fn addr(&self, instance: &str) -> SocketAddr {
        self.addrs[instance[1..].parse::<usize>().unwrap() - 1]
    }

    /// The contract a manager would give `instance`, without `MGR_ROLE`
    /// (it follows from `MGR_ROLES`; the tests set it where they say so).
    fn command(&self, instance: &str, module: &str, args: &[&str]) -> Command {
        let peers: Vec<String> = self.addrs.iter().enumerate().map(|(i, addr)| format!("p{}={addr}", i + 1)).collect();
        let mut command = Command::new(BIN);
        command
            .arg(module)
            .args(args)
            .env_clear()
            .env("MGR_RUN", &self.name)
            .env("MGR_SELF", instance)
            .env("MGR_ADDR", self.addr(instance).to_string())
            .env("MGR_PEERS", peers.join(","))
            .env("MGR_MEMBER", "m1")
            .env("MGR_DIR", &self.dir)
            .env("MGR_ROLES", &self.roles);
        if let Some(group) = &self.multicast {
            command.env("MGR_MULTICAST", group);
        }
        command
    }

    fn start(&self, instance: &str, role: &str, module: &str, args: &[&str]) -> Node {
        let mut command = self.command(instance, module, args);
        command.env("MGR_ROLE", role);
        Node::spawn(command)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running instance: its stdout as a channel of lines, its stderr kept.
/// Dropping it kills the process, so that a failing test leaves nothing running.
struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn spawn(mut command: Command) -> Node {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (err, kept) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Node { child, stdin, stdout, stderr }
    }

    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits up to `timeout` for a line satisfying `want`; returns it and the
    /// lines before it, or panics with what was printed.
    fn wait_for(&self, what: &str, want: impl Fn(&str) -> bool, timeout: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self.stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if want(&line) => return (line, seen),
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what} within {timeout:?}; printed {seen:?}, stderr {:?}", self.stderr()),
            }
        }
    }

    fn wait_line(&self, want: &str, timeout: Duration) -> Vec<String> {
        self.wait_for(&format!("line '{want}'"), |line| line == want, timeout).1
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {timeout:?}; stderr {:?}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

const LONG: Duration = Duration::from_secs(20);

#[test]
fn multicast_peers_find_the_comparator_of_their_run_and_ignore_it_as_a_peer() {
    let run = Run::new("mc", 5, "peer=p1,p2,p3,p4;comparator=p5", None);
    // No --peers: the comparator expects the 4 instances of the role peer.
    let mut cmp = run.start("p5", "comparator", "MulticastComparator", &[]);
    let mut peers: Vec<Node> = (1..=4)
        .map(|i| run.start(&format!("p{i}"), "peer", "MulticastPeer", &["--msgs", "10", "--jitter", "2", "--ordered"]))
        .collect();
    let before = cmp.wait_line("verdict agree", LONG);
    assert!(
        before.iter().any(|l| l == "agree: all 4 peers delivered the same 40 messages in the same order"),
        "{before:?}"
    );
    for (i, peer) in peers.iter_mut().enumerate() {
        assert!(peer.wait_exit(LONG).success(), "p{}: {:?}", i + 1, peer.stderr());
        // Only the peer role took part: nobody but p1..p4 sent a peer a frame.
        assert!(peer.stderr().iter().all(|l| !l.contains("dropped")), "p{}: {:?}", i + 1, peer.stderr());
    }
    assert!(cmp.wait_exit(LONG).success());
    // The peers handshook among themselves: the comparator got ORDER frames only.
    assert!(cmp.stderr().iter().all(|l| !l.contains("dropped")), "{:?}", cmp.stderr());
}

#[test]
fn without_a_comparator_or_its_role_the_peer_and_the_comparator_refuse_to_start() {
    let run = Run::new("none", 2, "peer=p1,p2", None);
    let out = run.command("p1", "MulticastPeer", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: MulticastPeer: no comparator: give --comparator IP:PORT"), "{stderr}");
    let other = Run::new("other", 2, "sender=p1;comparator=p2", None);
    let out = other.command("p2", "MulticastComparator", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: MulticastComparator: --peers N is required: the run has no role 'peer' (roles sender, comparator) (usage: [--peers N])\n"
    );
    // A malformed contract names its variable.
    let mut bad = run.command("p1", "MulticastPeer", &[]);
    bad.env("MGR_ROLES", "peer=p1");
    let out = bad.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "error: MGR_ROLES: 'p2' of MGR_PEERS is in no role\n");
}

#[test]
fn ack_roles_find_discovery_in_their_run_and_draw_as_in_runs_of_their_own() {
    let run = Run::new("ack", 5, "discovery=p1;receiver=p2,p3,p4;client=p5", None);
    let discovery = run.start("p1", "discovery", "AckDiscovery", &["--heartbeat-ms", "500"]);
    let receiver_args = ["--crash-prob", "0.5", "--seed", "8", "--work-ms", "20", "--heartbeat-ms", "500"];
    let mut receivers: Vec<Node> =
        (2..=4).map(|i| run.start(&format!("p{i}"), "receiver", "AckReceiver", &receiver_args)).collect();
    for _ in 0..3 {
        discovery.wait_for("a registration", |l| l.starts_with("registered p"), LONG);
    }
    // The seeds of cli/tests/cli/apps_ack.rs, where each role is a run of
    // its own: ranked within their role, the receivers p2, p3, p4 draw as
    // p1, p2, p3 did there (the first crashes on its first request), and
    // the client picks the first of them first.
    let mut client = run.start("p5", "client", "AckClient", &["--requests", "3", "--timeout-ms", "500", "--seed", "3"]);
    let p2 = run.addr("p2");
    let lines = client.wait_line("all 3 requests acked", LONG);
    assert_eq!(lines[0], format!("attempt 1 request 1 → p2 at {p2}"), "{lines:?}");
    assert_eq!(lines[1], format!("timeout request 1: no ack from p2 at {p2} within 500 ms, retrying"), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("summary: 3 requests acked, 4 attempts, 1 timeouts"));
    assert!(client.wait_exit(LONG).success());
    // The receivers know the client by its name in the run.
    receivers[0].wait_line("crash while processing request 1 from p5", LONG);
    assert_eq!(receivers[0].wait_exit(LONG).code(), Some(101));
    // p3 and p4 acked the three requests between them, naming p5.
    let mut acks = Vec::new();
    let deadline = Instant::now() + LONG;
    while acks.len() < 3 && Instant::now() < deadline {
        for r in &receivers[1..] {
            acks.extend(r.stdout.try_iter().filter(|l| l.starts_with("ack request")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    acks.sort();
    assert_eq!(acks, ["ack request 1 to p5", "ack request 2 to p5", "ack request 3 to p5"]);
    assert!(client.stderr().iter().all(|l| !l.contains("dropped")), "{:?}", client.stderr());
    assert!(receivers[1].child.try_wait().unwrap().is_none(), "p3 acks and stays");
}

#[test]
fn chat_nodes_meet_on_the_runs_group_and_talk_only_to_their_role() {
    // A group and port of this test's own, as a manager assigns per run.
    let pid = std::process::id();
    let port = free_addrs(1)[0].port();
    let group = format!("239.255.{}.{}:{port}", (pid >> 8) & 0xff, pid & 0xff);
    let run = Run::new("chat", 4, "chat=p1,p2,p3;other=p4", Some(group.clone()));
    // p4, of another role, is a socket of the test: no chat frame may reach it.
    let other = UdpSocket::bind(run.addr("p4")).unwrap();
    other.set_nonblocking(true).unwrap();
    let mut nodes: Vec<Node> =
        (1..=3).map(|i| run.start(&format!("p{i}"), "chat", "ChatNode", &["--delay-ms", "10"])).collect();
    for node in &nodes {
        node.wait_line("restored 0 messages (0 from the checkpoint, 0 more from the replicas)", LONG);
    }
    nodes[0].type_line("peers");
    let (p1, p2, p3) = (run.addr("p1"), run.addr("p2"), run.addr("p3"));
    // The others' users show once they announced themselves (within a second).
    let peers = |l: &str| {
        let words: Vec<&str> = l.split(' ').collect();
        l.starts_with(&format!("peers p1={p1} (me, p1) p2={p2} "))
            && words.contains(&format!("p3={p3}").as_str())
            && l.ends_with(&format!(" group {group}"))
    };
    nodes[0].wait_for("the peers", peers, LONG);
    // Three concurrent senders under the mutex, over the run's group.
    for (i, node) in nodes.iter_mut().enumerate() {
        node.type_line(&format!("hello from p{}", i + 1));
    }
    for node in &nodes {
        let mut got: Vec<String> =
            (0..3).map(|_| node.wait_for("a message", |l| l.starts_with('['), LONG).0[11..].to_owned()).collect();
        got.sort();
        // The report's display: `[HH:MM:SS] user: text`.
        assert_eq!(got, ["p1: hello from p1", "p2: hello from p2", "p3: hello from p3"]);
    }
    nodes[1].type_line("sync");
    nodes[1].wait_line("sync: 3 messages sent to 2 members, asked for theirs", LONG);
    for node in &mut nodes {
        node.type_line("quit");
        node.wait_line("checkpoint saved (3 messages); bye", LONG);
        assert!(node.wait_exit(LONG).success());
    }
    let mut buf = [0u8; 2048];
    match other.recv_from(&mut buf) {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        got => panic!("the other role got a datagram: {got:?}"),
    }
}

#[test]
fn a_book_module_in_a_run_of_roles_works_within_its_role() {
    // p1 and p2 broadcast (role b); p3, of another role, is a socket of the
    // test: a best-effort broadcast must not send to it.
    let run = Run::new("beb", 3, "b=p1,p2;other=p3", None);
    let other = UdpSocket::bind(run.addr("p3")).unwrap();
    other.set_nonblocking(true).unwrap();
    let mut p1 = run.start("p1", "b", "BestEffortBroadcast", &[]);
    let p2 = run.start("p2", "b", "BestEffortBroadcast", &[]);
    p1.type_line("broadcast hi");
    p2.wait_line("deliver p1 hi", LONG);
    p1.wait_line("deliver p1 hi", LONG);
    let mut buf = [0u8; 2048];
    match other.recv_from(&mut buf) {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        got => panic!("the other role got a datagram: {got:?}"),
    }
}
