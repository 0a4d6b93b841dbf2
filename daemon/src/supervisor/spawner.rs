//! The spawner thread: the one thread that starts every instance process.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that created the child exits,
//! not when the process does. Children are therefore created only from a
//! few spawner threads (one per core, at most four) that live as long as the
//! supervisor, and never from a tokio worker or blocking-pool thread that
//! may be retired at any moment. A launch hands its instances to all of them
//! at once, so a large launch uses every core.
//!
//! Children are created with `clone(CLONE_VM | CLONE_VFORK)`, as
//! `posix_spawn` does, rather than `fork`: the child borrows the manager's
//! memory until it calls `execve`, so starting an instance costs the same
//! however large the manager is, where `fork` copies every page table first
//! (measured: 64 instances took 317 ms with `fork`). `posix_spawn` itself
//! cannot set the parent-death signal, hence this file. Between `clone` and
//! `execve` the child only makes async-signal-safe system calls on memory
//! prepared beforehand: no allocation, no lock, no unwinding.

use std::ffi::{CString, OsStr, OsString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread;

use nix::libc;
use tokio::sync::oneshot;

/// What to start.
#[derive(Debug)]
pub struct SpawnSpec {
    /// Program and arguments; a program without `/` is looked up on PATH.
    pub argv: Vec<String>,
    /// Variables added to (or replacing those of) the manager's environment.
    pub env: Vec<(String, OsString)>,
    pub cwd: PathBuf,
    /// A descriptor the child inherits under the same number.
    pub inherit: Option<RawFd>,
    /// Give the child a control pipe of its own (`MGR_CONTROL_FD`): the
    /// manager's messages to the module runtime travel there, never on
    /// stdin, where a user's line could pass for one.
    pub control: bool,
    /// `cgroup.procs` of each cgroup the child joins (at most
    /// [`MAX_CGROUPS`]).
    pub cgroup_procs: Vec<RawFd>,
}

/// A started process: its pid (also its process group), a pidfd to wait on,
/// and the manager's ends of its stdin, stdout, stderr and control pipes.
#[derive(Debug)]
pub struct Spawned {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub control: Option<OwnedFd>,
}

/// The variable that tells an instance the number of its control pipe.
pub const CONTROL_FD_VAR: &str = "MGR_CONTROL_FD";

/// Some of a launch's instances, numbered, and where to send the results.
type Job = (Vec<(usize, SpawnSpec)>, oneshot::Sender<Vec<(usize, io::Result<Spawned>)>>);

/// Sends spawn requests to the spawner threads. The threads end when the
/// last `Spawner` is dropped.
#[derive(Debug, Clone)]
pub struct Spawner {
    threads: Vec<std_mpsc::Sender<Job>>,
}

impl Spawner {
    pub fn start() -> io::Result<Self> {
        let count = thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let mut threads = Vec::with_capacity(count);
        for n in 0..count {
            let (tx, rx) = std_mpsc::channel::<Job>();
            thread::Builder::new().name(format!("mgr-spawner-{n}")).spawn(move || {
                while let Ok((specs, reply)) = rx.recv() {
                    let reset = signals_to_reset();
                    let _ = reply.send(specs.into_iter().map(|(i, spec)| (i, spawn(spec, &reset))).collect());
                }
            })?;
            threads.push(tx);
        }
        Ok(Spawner { threads })
    }

    /// Starts every spec, spread over the spawner threads; the results are in
    /// the order of `specs`.
    pub async fn spawn_all(&self, specs: Vec<SpawnSpec>) -> Vec<io::Result<Spawned>> {
        let count = specs.len();
        let mut shares: Vec<Vec<(usize, SpawnSpec)>> = (0..self.threads.len()).map(|_| Vec::new()).collect();
        for (i, spec) in specs.into_iter().enumerate() {
            shares[i % self.threads.len()].push((i, spec));
        }
        let mut waiting = Vec::new();
        for (thread, share) in self.threads.iter().zip(shares).filter(|(_, share)| !share.is_empty()) {
            let (reply, rx) = oneshot::channel();
            if thread.send((share, reply)).is_ok() {
                waiting.push(rx);
            }
        }
        let mut results: Vec<Option<io::Result<Spawned>>> = (0..count).map(|_| None).collect();
        for rx in waiting {
            for (i, result) in rx.await.unwrap_or_default() {
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("the spawner thread has stopped"))))
            .collect()
    }
}

/// Finds `program` as `execvp` would: as given when it holds a `/`, else in
/// the directories of PATH.
fn resolve(program: &str) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() && candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, "not found on PATH"))
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// A pipe whose both ends are close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Most signals whose disposition a child may have to reset.
const MAX_RESET: usize = 64;

/// The signals that are caught or ignored in the manager: a child must put
/// them back to their default before it unblocks signals and execs. Asked
/// once per batch of spawns rather than in every child, where each of the
/// ~64 queries is a system call inside the window the parent waits for.
#[derive(Debug, Clone, Copy)]
struct Reset {
    signals: [libc::c_int; MAX_RESET],
    count: usize,
}

fn signals_to_reset() -> Reset {
    let mut reset = Reset { signals: [0; MAX_RESET], count: 0 };
    for signal in 1..libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP || reset.count == MAX_RESET {
            continue;
        }
        // SAFETY: a query only (no new action), into a zeroed sigaction.
        let handler = unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue;
            }
            current.sa_sigaction
        };
        if handler != libc::SIG_DFL {
            reset.signals[reset.count] = signal;
            reset.count += 1;
        }
    }
    reset
}

/// Everything the child reads, prepared before `clone`.
struct ChildArgs {
    reset: Reset,
    program: CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: CString,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    inherit: RawFd,
    control: RawFd,
    cgroup_procs: [RawFd; MAX_CGROUPS],
    cgroups: usize,
    parent: libc::pid_t,
    /// Set by the child when it fails before `execve` completes.
    errno: AtomicI32,
}

/// Most cgroups a child joins: one v2 leaf and three v1 ones.
pub const MAX_CGROUPS: usize = 4;

/// Size of the stack the child runs on until `execve`.
const CHILD_STACK: usize = 64 * 1024;

fn spawn(spec: SpawnSpec, reset: &Reset) -> io::Result<Spawned> {
    let (program, args) = spec.argv.split_first().ok_or_else(|| io::Error::other("no program"))?;
    let path = resolve(program)?;
    let program_c = cstring(path.as_os_str().as_bytes())?;
    let args_c = args.iter().map(|a| cstring(a.as_bytes())).collect::<io::Result<Vec<_>>>()?;
    let argv0 = cstring(program.as_bytes())?;
    let control = if spec.control { Some(pipe()?) } else { None };
    // The manager's own environment, less anything of the contract it may
    // itself have been given: an instance learns the contract from its own
    // manager only.
    let mut env: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(k, _)| !k.as_bytes().starts_with(b"MGR_")).collect();
    if let Some((read, _)) = &control {
        env.push((CONTROL_FD_VAR.into(), read.as_raw_fd().to_string().into()));
    }
    for (key, value) in &spec.env {
        env.retain(|(k, _)| k != OsStr::new(key));
        env.push((key.into(), value.clone()));
    }
    let env_c = env
        .iter()
        .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<io::Result<Vec<_>>>()?;
    let cwd = cstring(Path::new(&spec.cwd).as_os_str().as_bytes())?;

    let (stdin_r, stdin_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;

    let mut argv: Vec<*const libc::c_char> =
        std::iter::once(argv0.as_ptr()).chain(args_c.iter().map(|a| a.as_ptr())).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let args = ChildArgs {
        reset: *reset,
        program: program_c,
        argv,
        envp,
        cwd,
        stdin: stdin_r.as_raw_fd(),
        stdout: stdout_w.as_raw_fd(),
        stderr: stderr_w.as_raw_fd(),
        inherit: spec.inherit.unwrap_or(-1),
        control: control.as_ref().map_or(-1, |(read, _)| read.as_raw_fd()),
        cgroup_procs: {
            let mut fds = [-1; MAX_CGROUPS];
            for (slot, fd) in fds.iter_mut().zip(&spec.cgroup_procs) {
                *slot = *fd;
            }
            fds
        },
        cgroups: spec.cgroup_procs.len().min(MAX_CGROUPS),
        parent: std::process::id() as libc::pid_t,
        errno: AtomicI32::new(0),
    };
    let mut stack = vec![0u8; CHILD_STACK];

    // No signal handler may run in the child while it shares our memory:
    // block every signal around clone (the child unblocks after resetting
    // the handlers).
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain calls on sigset_t values owned by this frame; the clone
    // child gets a stack of its own (the top of `stack`, which outlives the
    // call because CLONE_VFORK suspends this thread until the child execs or
    // exits) and a pointer to `args`, which it only reads (and `errno`).
    let pid = unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(CHILD_STACK - 16).cast::<libc::c_void>();
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&args as *const ChildArgs).cast_mut().cast(),
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        pid
    };
    drop(stack);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // The pid cannot be reused before it is reaped, so the pidfd names our
    // child even if it has already exited.
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let errno = args.errno.load(Ordering::SeqCst);
    if errno != 0 {
        // The child failed before execve and has exited: reap it.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(Spawned {
        pid: pid as u32,
        pidfd,
        stdin: stdin_w,
        stdout: stdout_r,
        stderr: stderr_r,
        control: control.map(|(_, write)| write),
    })
}

/// The child, between clone and execve. Only async-signal-safe calls.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the parent's `ChildArgs`, alive and unchanged
    // while the parent is suspended (CLONE_VFORK); every call below is an
    // async-signal-safe system call on prepared values.
    unsafe {
        let a = &*(arg as *const ChildArgs);
        let fail = |a: &ChildArgs| -> libc::c_int {
            a.errno.store(*libc::__errno_location(), Ordering::SeqCst);
            libc::_exit(127)
        };
        // Handlers are the manager's; the program gets default dispositions
        // (std ignores SIGPIPE, which would otherwise be inherited).
        for &signal in &a.reset.signals[..a.reset.count] {
            libc::signal(signal, libc::SIG_DFL);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::setpgid(0, 0) != 0 {
            return fail(a);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
            return fail(a);
        }
        // The manager may have died before prctl took effect.
        if libc::getppid() != a.parent {
            libc::_exit(1);
        }
        if libc::dup2(a.stdin, 0) < 0 || libc::dup2(a.stdout, 1) < 0 || libc::dup2(a.stderr, 2) < 0 {
            return fail(a);
        }
        // Close-on-exec in the manager; the instance inherits it.
        if a.inherit >= 0 && libc::fcntl(a.inherit, libc::F_SETFD, 0) != 0 {
            return fail(a);
        }
        if a.control >= 0 && libc::fcntl(a.control, libc::F_SETFD, 0) != 0 {
            return fail(a);
        }
        // Joining the cgroup is best effort: without it the instance still
        // has its process group and the environment marker.
        for &procs in &a.cgroup_procs[..a.cgroups] {
            let _ = libc::write(procs, b"0".as_ptr().cast(), 1);
        }
        if libc::chdir(a.cwd.as_ptr()) != 0 {
            return fail(a);
        }
        libc::execve(a.program.as_ptr(), a.argv.as_ptr(), a.envp.as_ptr());
        fail(a)
    }
}

/// Starts the guard: a child of the manager, outside every instance's
/// cgroup and without the parent-death signal, that waits for the manager
/// to end (a pidfd of it) and then writes `1` to `kill_file` (the
/// manager's `cgroup.kill`), so that no instance, nor anything it started,
/// outlives a `kill -9` of the manager by more than a moment. It ignores
/// the signals a terminal or `pkill mgr` sends, keeps no other descriptor,
/// and after a clean shutdown finds the cgroup empty (or gone) and exits.
pub fn spawn_guard(kill_file: &Path) -> io::Result<()> {
    let kill = OpenOptions::new().write(true).open(kill_file)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let manager = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if manager < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
    let manager = unsafe { OwnedFd::from_raw_fd(manager as RawFd) };
    let name = CString::new("mgr-guard").expect("no NUL");
    // SAFETY: between fork and _exit the child makes only async-signal-safe
    // system calls on values prepared above; it never returns into Rust code
    // that could allocate or take a lock another thread held.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; only system calls.
        unsafe {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
                libc::signal(signal, libc::SIG_IGN);
            }
            libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
            let (manager, kill) = (manager.as_raw_fd(), kill.as_raw_fd());
            if libc::dup2(manager, 3) < 0 || libc::dup2(kill, 4) < 0 {
                libc::_exit(1);
            }
            libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
            let mut waiting = libc::pollfd { fd: 3, events: libc::POLLIN, revents: 0 };
            while libc::poll(&mut waiting, 1, -1) < 0 && *libc::__errno_location() == libc::EINTR {}
            libc::write(4, b"1".as_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    // The parent keeps nothing of it: it never waits for the guard (which
    // outlives it when it matters), and its descriptors close here.
    drop((manager, kill));
    Ok(())
}
