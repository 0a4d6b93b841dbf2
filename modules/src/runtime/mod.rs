//! The module runtime: everything a module needs besides its algorithm.
//!
//! A module is a struct with one method per event of the book's pseudo-code
//! (`upon_send`, `upon_deliver`, `upon_timeout`, …). The runtime turns the
//! outside world into calls of those methods:
//!
//! | outside world                      | call                        |
//! |------------------------------------|-----------------------------|
//! | a command line on stdin            | [`Module::upon_command`]    |
//! | a UDP datagram                     | [`Module::upon_datagram`]   |
//! | a timer set by `start_timer(name)` | [`Module::upon_timeout`]    |
//! | the end of stdin                   | [`Module::upon_stdin_end`]  |
//! | SIGTERM (then the process ends)    | [`Module::upon_terminate`]  |
//! | a new peer table (`mgrctl scale`)  | [`Module::upon_peers`]      |
//! | an HTTP request, a TCP line (when the module asks, [`tcp`]) | [`Module::upon_http`], [`Module::upon_stream_line`] |
//!
//! and gives the handlers a [`Context`] to act on it: send a datagram, start
//! named timers, print an indication, log an event. A module built on other
//! abstractions owns their instances (a broadcast owns its perfect link) and
//! hands them the events that are theirs, as the book's `Uses:` clause says.
//! Handlers are plain (not async)
//! functions and run one at a time, so a module's state needs no locking,
//! just as the book assumes that a process handles one event at a time.

pub mod contract;
pub mod events;
pub mod faults;
pub mod stdin;
pub mod tcp;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::time::Duration;

use anyhow::Context as _;
use rand::Rng as _;
use tokio::time::Instant;

pub use contract::{Contract, ContractError};
pub use events::{EventLog, Stamp};
pub use faults::Faults;
pub use stdin::Command;
pub use tcp::{HttpRequest, HttpResponse, Service};

/// How a module ends (it never ends on its own: it runs until killed).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad module arguments; the binary exits with status 2.
    #[error("{0}")]
    Usage(String),
    /// The module could not start or keep running; the binary exits with status 1.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The name of a timer. Each layer instance names its own
/// (`"beb.sl.retransmit"`, `"pfd.timeout"`…), so layers sharing a process
/// never take each other's.
pub type Timer<'a> = &'a str;

/// The events a module reacts to. Each built-in module implements this once,
/// to connect the runtime to its book-named handlers.
pub trait Module {
    /// The stdin commands, one per line, for `help` and for errors.
    fn help(&self) -> &'static str;

    /// Called once before any other event: the book's `<Init>`.
    fn upon_init(&mut self, _ctx: &mut Context) {}

    /// The user typed a command. An unknown or malformed one is answered
    /// with [`Context::refuse`].
    fn upon_command(&mut self, ctx: &mut Context, command: Command);

    /// A UDP datagram arrived from `from`.
    fn upon_datagram(&mut self, ctx: &mut Context, from: SocketAddr, payload: &[u8]);

    /// A timer started with [`Context::start_timer`] expired: the book's `<Timeout>`.
    fn upon_timeout(&mut self, _ctx: &mut Context, _timer: Timer<'_>) {}

    /// Stdin ended (Ctrl-D, or a pipe that closed): no more commands. By
    /// default the module keeps serving its peers until it is killed.
    fn upon_stdin_end(&mut self, _ctx: &mut Context) {}

    /// The process got SIGTERM (`mgrctl stop`, the manager's shutdown): the
    /// module's last words. Once this returns, the process ends by the
    /// signal, as it would have without the handler.
    fn upon_terminate(&mut self, _ctx: &mut Context) {}

    /// The run's table changed (a scale): `ctx.contract` has the new
    /// peers and roles. A module with a fixed Π is never scaled.
    fn upon_peers(&mut self, _ctx: &mut Context) {}

    /// What the module serves on the TCP port of its address, if anything
    /// (see [`tcp`]); asked once, before `upon_init`.
    fn tcp(&self) -> Option<Service> {
        None
    }

    /// An HTTP request came (with [`Service::Http`]); the answer goes back at once.
    fn upon_http(&mut self, _ctx: &mut Context, _request: HttpRequest) -> HttpResponse {
        HttpResponse::error(404, "no such resource")
    }

    /// A line came on the TCP stream `conn` from `from` (with [`Service::Lines`]).
    fn upon_stream_line(&mut self, _ctx: &mut Context, _conn: u64, _from: SocketAddr, _line: &str) {}

    /// The TCP stream `conn` ended (closed by its client, idle too long or
    /// cut for a line over [`tcp::MAX_LINE`]).
    fn upon_stream_end(&mut self, _ctx: &mut Context, _conn: u64, _from: SocketAddr) {}
}

/// What a handler can do to the world.
#[derive(Debug)]
pub struct Context {
    /// Who this process is and who its peers are.
    pub contract: Contract,
    /// The `MGR_EVENTS` log and the Lamport clock.
    pub events: EventLog,
    /// Shared with the tasks that send delayed datagrams.
    socket: std::sync::Arc<tokio::net::UdpSocket>,
    /// The network faults in force (`MGR_FAULTS`, then the manager's
    /// `faults` lines on the control pipe).
    faults: Faults,
    timers: BTreeMap<String, Instant>,
    /// The id of the next message this process sends; see [`Context::new_message_id`].
    next_id: u64,
    /// Where the faults' random choices come from (seeded by `seed=N`).
    rng: std::cell::RefCell<rand::rngs::StdRng>,
}

impl Context {
    /// Sends one datagram, best effort, through the faults in force: it may
    /// be dropped (loss, or a partition between this process and `to`), sent
    /// twice (dup) or late (delay). A datagram the kernel cannot take right
    /// now is dropped too: a fair-loss link is allowed to lose messages, and
    /// the layers above it are built to cope.
    pub fn send_datagram(&self, to: SocketAddr, payload: &[u8]) {
        let faults = &self.faults;
        if !faults.is_none() {
            let me = &self.contract.self_name;
            if let Some(q) = self.contract.peer_name(to)
                && !faults.connected(me, q)
            {
                return;
            }
            let mut rng = self.rng.borrow_mut();
            if faults.loss > 0.0 && rng.random::<f64>() < faults.loss {
                return;
            }
            let copies = if faults.dup > 0.0 && rng.random::<f64>() < faults.dup { 2 } else { 1 };
            let (lo, hi) = faults.delay_ms;
            if hi > 0 {
                for _ in 0..copies {
                    let delay = Duration::from_millis(rng.random_range(lo..=hi));
                    let (socket, payload) = (self.socket.clone(), payload.to_vec());
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        send_now(&socket, to, &payload);
                    });
                }
                return;
            }
            if copies == 2 {
                send_now(&self.socket, to, payload);
            }
        }
        send_now(&self.socket, to, payload);
    }

    /// Whether a datagram from `from` gets through the partition in force.
    fn admits(&self, from: SocketAddr) -> bool {
        match self.contract.peer_name(from) {
            Some(p) => self.faults.connected(p, &self.contract.self_name),
            None => true,
        }
    }

    /// The book's `starttimer(Δ)`: `upon_timeout(timer)` is called once,
    /// `delay` from now. Starting a timer again replaces its deadline.
    pub fn start_timer(&mut self, timer: Timer<'_>, delay: Duration) {
        self.timers.insert(timer.to_owned(), Instant::now() + delay);
    }

    /// Stops a timer before it expires.
    pub fn cancel_timer(&mut self, timer: Timer<'_>) {
        self.timers.remove(timer);
    }

    /// This process's name, `MGR_SELF`.
    pub fn self_name(&self) -> &str {
        &self.contract.self_name
    }

    /// The book's Π, this process included, in `MGR_PEERS` order: every
    /// process of the run, or, in a run of several roles (a scenario), those
    /// of this process's role, so that a broadcast beside a comparator or a
    /// shell role broadcasts to its own kind only.
    pub fn processes(&self) -> Vec<String> {
        self.contract.role_peers().into_iter().map(|(name, _)| name).collect()
    }

    /// A process's rank: its position in Π (the first is 0). The book's
    /// monarchical and hierarchical algorithms order processes by rank.
    pub fn rank(&self, process: &str) -> Option<usize> {
        self.contract.role_peers().iter().position(|(name, _)| name == process)
    }

    /// The id of this incarnation's first message, where a module that
    /// numbers its own messages (a broadcast's number) starts counting:
    /// ids never repeat across restarts (see [`contract::ID_STRIDE`]).
    pub fn first_message_id(&self) -> u64 {
        self.contract.first_message_id()
    }

    /// A fresh message id: 1, 2, … in the order of sends (from
    /// [`Context::first_message_id`] after a restart). Together with the
    /// sender's name it identifies a message, which is what the book means
    /// by assuming messages are unique.
    pub fn new_message_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The name of the process at `addr`, or the address itself (`ip:port`)
    /// when it is not part of the run, e.g. a user talking with `nc -u`.
    pub fn sender_name(&self, addr: SocketAddr) -> String {
        match self.contract.peer_name(addr) {
            Some(name) => name.to_owned(),
            None => addr.to_string(),
        }
    }

    /// Checks that `name` is a process of the run, telling the user when not.
    pub fn check_peer(&self, name: &str) -> bool {
        let known = self.contract.peer_addr(name).is_some();
        if !known {
            say(format_args!("error: unknown process '{name}' (peers: {})", self.contract.peer_list()));
        }
        known
    }

    /// Hands a message to the user: logs a `deliver` event and prints
    /// `deliver <from> <text>`.
    pub fn deliver(&mut self, from: &str, id: Option<u64>, stamp: Option<&Stamp>, text: &str) {
        self.events.deliver(from, id, stamp, text);
        say(format_args!("deliver {from} {}", one_line(text)));
    }

    /// Tells the user of an indication other than a delivery: logs `event`
    /// and prints `<event> [<peer>] <text>`, e.g. `suspect p2`,
    /// `decide 42`, `readreturn 7`.
    pub fn indicate(&mut self, event: &str, peer: Option<&str>, text: &str) {
        self.events.record(event, peer, None, (!text.is_empty()).then_some(text));
        let line = match (peer, text.is_empty()) {
            (Some(p), true) => format!("{event} {p}"),
            (Some(p), false) => format!("{event} {p} {}", one_line(text)),
            (None, true) => event.to_owned(),
            (None, false) => format!("{event} {}", one_line(text)),
        };
        say(line);
    }

    /// Answers, on one line, a command the module cannot take: an unknown
    /// verb, or a known one with missing arguments (shown with its usage
    /// line from `help`).
    pub fn refuse(&self, command: &Command, help: &str) {
        let usage = help.lines().map(str::trim).find(|line| line.split_whitespace().next() == Some(&command.verb));
        match usage {
            Some(usage) => say(format_args!("error: usage: {usage}")),
            None => {
                let verbs: Vec<&str> = help.lines().filter_map(|l| l.split_whitespace().next()).collect();
                say(format_args!("error: unknown command '{}' (try: {})", command.verb, verbs.join(", ")));
            }
        }
    }
}

fn send_now(socket: &tokio::net::UdpSocket, to: SocketAddr, payload: &[u8]) {
    match socket.try_send_to(payload, to) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(err) => eprintln!("udp: send to {to}: {err}"),
    }
}

/// Prints one line on stdout and flushes it at once: stdout is a pipe to the
/// daemon, and a line left in a buffer is a line the user never sees.
pub fn say(line: impl Display) {
    let mut out = std::io::stdout().lock();
    // Write errors are ignored: when nobody reads stdout any more, the module
    // still runs (until killed) for the sake of its peers.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Keeps a delivered text on one stdout line, since stdout is read line by line.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\n', '\r']) { text.replace('\n', "\\n").replace('\r', "\\r").into() } else { text.into() }
}

/// Refuses module arguments, for modules that take none.
pub fn no_args(args: &[String]) -> Result<(), RunError> {
    match args.first() {
        None => Ok(()),
        Some(arg) => Err(RunError::Usage(format!("unexpected argument '{arg}' (this module takes none)"))),
    }
}

/// Runs `module` until the process is killed, on a single-threaded tokio
/// runtime (modules are small; one thread keeps handlers strictly sequential).
pub fn run(contract: Contract, module: impl Module) -> Result<(), RunError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the tokio runtime")?;
    runtime.block_on(event_loop(contract, module))
}

async fn event_loop(contract: Contract, mut module: impl Module) -> Result<(), RunError> {
    let socket = open_socket(&contract)?;
    let me = contract.peers.iter().position(|(name, _)| *name == contract.self_name).unwrap_or(0);
    let events =
        EventLog::open(contract.events_path.as_deref(), &contract.run, &contract.self_name, me, contract.peers.len())
            .map(|log| log.incarnation(contract.incarnation))
            .with_context(|| {
                let path = contract.events_path.as_deref().unwrap_or("".as_ref());
                format!("MGR_EVENTS: cannot open {}", path.display())
            })?;
    let faults = match std::env::var("MGR_FAULTS") {
        Ok(spec) => Faults::parse(&spec).map_err(|err| RunError::Usage(format!("MGR_FAULTS: {err}")))?,
        Err(_) => Faults::default(),
    };
    let socket = std::sync::Arc::new(socket);
    let next_id = contract.first_message_id();
    let rng = std::cell::RefCell::new(fault_rng(&faults, &contract));
    let mut ctx = Context { contract, events, socket, faults, timers: BTreeMap::new(), next_id, rng };
    let mut commands = stdin::spawn_reader(ctx.contract.control_fd);
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let (tcp_tx, mut tcp_rx) = tokio::sync::mpsc::channel(64);
    if let Some(service) = module.tcp() {
        let addr = ctx.contract.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("MGR_ADDR: cannot listen on TCP {addr}"))?;
        tokio::spawn(tcp::serve(listener, service, tcp_tx));
    } else {
        drop(tcp_tx);
    }
    let mut stdin_open = true;
    // The largest possible UDP payload, so that no datagram is truncated.
    let mut buf = vec![0u8; 65_536];

    // Tokio's `try_send_to` fails with WouldBlock until the reactor has
    // reported the new socket writable, which would silently drop every
    // datagram a module sends from `upon_init` (a registration, a first
    // query): wait for that report first. A UDP socket is writable at once.
    let _ = ctx.socket.writable().await;
    module.upon_init(&mut ctx);
    loop {
        let next = ctx.timers.iter().min_by_key(|(_, at)| **at).map(|(timer, at)| (timer.clone(), *at));
        tokio::select! {
            input = commands.recv(), if stdin_open => match input {
                Some(stdin::Input::Command(command)) => module.upon_command(&mut ctx, command),
                Some(stdin::Input::Help) => say(module.help()),
                Some(stdin::Input::Faults(faults)) => {
                    if faults.seed.is_some() && faults.seed != ctx.faults.seed {
                        *ctx.rng.borrow_mut() = fault_rng(&faults, &ctx.contract);
                    }
                    ctx.faults = faults;
                }
                Some(stdin::Input::End) => module.upon_stdin_end(&mut ctx),
                Some(stdin::Input::Peers { peers, roles }) => match ctx.contract.retable(&peers, &roles) {
                    Ok(()) => module.upon_peers(&mut ctx),
                    // A table without this process: a scale removed it, and
                    // its stop follows.
                    Err(ContractError::SelfNotListed(_)) => say("removed from the run by a scale"),
                    Err(err) => say(format_args!("error: bad peer table from the manager: {err}")),
                },
                None => stdin_open = false,
            },
            received = ctx.socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    if ctx.admits(from) {
                        module.upon_datagram(&mut ctx, from, &buf[..len]);
                    }
                }
                Err(err) => {
                    eprintln!("udp: receive: {err}");
                    // Pausing keeps a persistent socket error from turning
                    // into a busy loop.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = sigterm.recv() => {
                module.upon_terminate(&mut ctx);
                die_by_sigterm();
            }
            Some(incoming) = tcp_rx.recv() => match incoming {
                tcp::Incoming::Http { request, reply } => {
                    let _ = reply.send(module.upon_http(&mut ctx, request));
                }
                tcp::Incoming::Line { conn, from, line } => module.upon_stream_line(&mut ctx, conn, from, &line),
                tcp::Incoming::End { conn, from } => module.upon_stream_end(&mut ctx, conn, from),
            },
            () = wait_for(next.as_ref().map(|(_, at)| *at)) => {
                if let Some((timer, _)) = next {
                    ctx.timers.remove(&timer);
                    module.upon_timeout(&mut ctx, &timer);
                }
            }
        }
    }
}

/// Ends the process by SIGTERM, with the default action, so that the
/// manager sees what it would have seen without the runtime's handler.
fn die_by_sigterm() -> ! {
    use nix::sys::signal::{SigHandler, Signal, raise, signal};
    // SAFETY: setting the default disposition installs no handler code, and
    // nothing else in this process relies on SIGTERM being caught from now on.
    let _ = unsafe { signal(Signal::SIGTERM, SigHandler::SigDfl) };
    let _ = raise(Signal::SIGTERM);
    // Not reached unless SIGTERM is blocked; end as a stop would anyway.
    std::process::exit(128 + Signal::SIGTERM as i32);
}

/// The generator of a process's fault choices: seeded when the faults say
/// `seed=N` (see [`Faults::seed_for`]), else from the system.
fn fault_rng(faults: &Faults, contract: &Contract) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    match faults.seed_for(&contract.self_name, contract.incarnation) {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_rng(&mut rand::rng()),
    }
}

/// Waits until `deadline`, or forever when no timer is running.
async fn wait_for(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Receive buffer asked for each module's socket, in bytes.
const RECEIVE_BUFFER: usize = 8 << 20;

/// Takes the socket the daemon bound for us (`MGR_UDP_FD`), or binds `MGR_ADDR`.
fn open_socket(contract: &Contract) -> anyhow::Result<tokio::net::UdpSocket> {
    let socket = match contract.udp_fd {
        Some(fd) => {
            // SAFETY: by the launch contract, MGR_UDP_FD names a descriptor the
            // daemon left open for this process alone, and it is wrapped here
            // exactly once, so the new UdpSocket is its only owner. Contract
            // parsing already refused 0-2 (stdin, stdout, stderr). If the
            // descriptor is not a socket, the calls below fail cleanly.
            let socket = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
            let local =
                socket.local_addr().with_context(|| format!("MGR_UDP_FD: descriptor {fd} is not a bound socket"))?;
            if local != contract.addr {
                eprintln!("udp: MGR_UDP_FD socket is bound to {local}, not MGR_ADDR {}", contract.addr);
            }
            socket
        }
        None => std::net::UdpSocket::bind(contract.addr)
            .with_context(|| format!("MGR_ADDR: cannot bind {}", contract.addr))?,
    };
    socket.set_nonblocking(true).context("udp: set_nonblocking")?;
    // A burst (a broadcast to everyone, a retransmission round) must not
    // overflow the kernel's small default receive buffer: ask for a large
    // one, forcing it where allowed, and go on with what we get.
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        let _ = setsockopt(&socket, sockopt::RcvBuf, &RECEIVE_BUFFER);
    }
    Ok(tokio::net::UdpSocket::from_std(socket)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn contract(addr: SocketAddr, udp_fd: Option<i32>) -> Contract {
        Contract {
            run: "r".into(),
            self_name: "p1".into(),
            addr,
            peers: vec![("p1".into(), addr)],
            member: "m".into(),
            events_path: None,
            udp_fd,
            control_fd: None,
            dir: None,
            data: None,
            role: None,
            roles: Vec::new(),
            multicast: None,
            incarnation: 1,
        }
    }

    #[tokio::test]
    async fn takes_over_an_inherited_socket() {
        let bound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = bound.local_addr().unwrap();
        // A datagram sent before the module starts waits in the kernel buffer.
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"early", addr).unwrap();
        let fd = bound.into_raw_fd();
        let socket = open_socket(&contract(addr, Some(fd))).unwrap();
        assert_eq!(socket.local_addr().unwrap(), addr);
        let mut buf = [0u8; 16];
        let (len, from) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"early");
        assert_eq!(from, sender.local_addr().unwrap());
    }

    #[tokio::test]
    async fn binds_the_address_without_a_descriptor() {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let socket = open_socket(&contract(addr, None)).unwrap();
        assert_eq!(socket.local_addr().unwrap(), addr);
    }

    #[test]
    fn delivered_text_stays_on_one_line() {
        assert_eq!(one_line("a b"), "a b");
        assert_eq!(one_line("a\nb\r"), "a\\nb\\r");
    }

    #[test]
    fn no_args_refuses_arguments() {
        assert!(no_args(&[]).is_ok());
        let err = no_args(&["--x".into()]).unwrap_err();
        assert_eq!(err.to_string(), "unexpected argument '--x' (this module takes none)");
    }
}
