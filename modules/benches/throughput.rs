//! Message throughput of the built-in modules on loopback, next to a raw UDP
//! loop measured in the same run (`cargo bench -p mgr-modules --bench
//! throughput`):
//!
//! - PerfectPointToPointLink: p1 is given N `send p2 mK` commands at once on
//!   stdin; the time until p2 has printed N `deliver` lines.
//! - raw UDP: one socket sends the same N payloads to another as fast as it
//!   can while a thread receives them; the time until all arrived (a lost
//!   datagram is counted, not waited for).
//! - BestEffortBroadcast, 5 instances: p1 is given N/5 `broadcast mK`; the
//!   time until all 5 processes have delivered them all (N deliveries).
//!
//! Each figure is the median of RUNS runs. Only 127.0.0.1 is used.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mgr-modules");
const RUNS: usize = 5;

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let sockets: Vec<UdpSocket> = (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    sockets.iter().map(|s| s.local_addr().unwrap()).collect()
}

struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `n` instances of `module`; returns them and a channel of
/// (instance index, stdout line).
fn start(module: &str, args: &[&str], n: usize) -> (Kill, mpsc::Receiver<(usize, String)>) {
    let addrs = free_addrs(n);
    let peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("p{}={a}", i + 1)).collect();
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let mut child = Command::new(BIN)
            .arg(module)
            .args(args)
            .env("MGR_RUN", "bench")
            .env("MGR_SELF", format!("p{}", i + 1))
            .env("MGR_ADDR", addr.to_string())
            .env("MGR_PEERS", peers.join(","))
            .env("MGR_MEMBER", "bench")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mgr-modules starts");
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((i, line)).is_err() {
                    break;
                }
            }
        });
        children.push(child);
    }
    // Let every instance bind its socket before the burst.
    thread::sleep(Duration::from_millis(200));
    (Kill(children), rx)
}

/// Feeds `commands` to instance 0 and waits for `want` lines starting with
/// `deliver`; returns the elapsed time.
fn burst(kill: &mut Kill, rx: &mpsc::Receiver<(usize, String)>, commands: String, want: usize) -> Duration {
    let started = Instant::now();
    let mut stdin = kill.0[0].stdin.take().unwrap();
    thread::spawn(move || {
        let _ = stdin.write_all(commands.as_bytes());
        // Keep stdin open: end of input does not stop a module anyway.
        thread::sleep(Duration::from_secs(120));
    });
    let mut got = 0;
    while got < want {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((_, line)) if line.starts_with("deliver ") => got += 1,
            Ok(_) => {}
            Err(_) => panic!("only {got} of {want} deliveries within 60 s"),
        }
    }
    started.elapsed()
}

fn perfect_link(n: usize) -> Duration {
    let (mut kill, rx) = start("PerfectPointToPointLink", &["--period-ms", "1000"], 2);
    let commands: String = (0..n).map(|k| format!("send p2 m{k}\n")).collect();
    burst(&mut kill, &rx, commands, n)
}

fn best_effort_broadcast(n: usize) -> Duration {
    let (mut kill, rx) = start("BestEffortBroadcast", &["--period-ms", "1000"], 5);
    let commands: String = (0..n).map(|k| format!("broadcast m{k}\n")).collect();
    burst(&mut kill, &rx, commands, 5 * n)
}

/// Sends `n` payloads from one socket to another; returns the time until
/// the last arrived (or until a pause shows the rest were lost) and how many arrived.
fn raw_udp(n: usize) -> (Duration, usize) {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The same receive buffer the module runtime asks for, for a fair baseline.
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(&receiver, sockopt::RcvBufForce, &(8usize << 20)).is_err() {
        let _ = setsockopt(&receiver, sockopt::RcvBuf, &(8usize << 20));
    }
    let to = receiver.local_addr().unwrap();
    receiver.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let counting = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut got = 0;
        let mut last = Instant::now();
        while got < n {
            match receiver.recv(&mut buf) {
                Ok(_) => {
                    got += 1;
                    last = Instant::now();
                }
                Err(_) => break,
            }
        }
        (got, last)
    });
    let started = Instant::now();
    for k in 0..n {
        let _ = sender.send_to(format!("m{k}").as_bytes(), to);
    }
    let (got, last) = counting.join().unwrap();
    (last - started, got)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; nothing else is read.
    let n = 20_000;
    let mut pl = Vec::new();
    let mut raw = Vec::new();
    let mut raw_lost = Vec::new();
    let mut beb = Vec::new();
    for _ in 0..RUNS {
        let (t, got) = raw_udp(n);
        raw.push(got as f64 / t.as_secs_f64());
        raw_lost.push((n - got) as f64);
        pl.push(n as f64 / perfect_link(n).as_secs_f64());
        let broadcasts = n / 5;
        beb.push((5 * broadcasts) as f64 / best_effort_broadcast(broadcasts).as_secs_f64());
    }
    let (pl, raw, beb) = (median(pl), median(raw), median(beb));
    println!("messages: {n} per run, median of {RUNS} runs, loopback");
    println!("raw UDP send/receive loop:             {:>12.0} datagrams/s (median lost: {})", raw, median(raw_lost));
    println!("PerfectPointToPointLink, 2 instances:  {:>12.0} messages/s ({:.3}x raw UDP)", pl, pl / raw);
    println!("BestEffortBroadcast, 5 instances:      {:>12.0} deliveries/s", beb);
}
