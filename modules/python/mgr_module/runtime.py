"""The module runtime: everything a module needs besides its algorithm.

A module is a class whose methods are the events of the book's pseudo-code
(`upon_init`, `upon_broadcast`, `upon_pl_deliver`, `upon_timeout`...). The
runtime turns the outside world into calls of those methods, one at a time,
on a single thread, just as the book assumes that a process handles one
event at a time:

    outside world                       call
    a command line on stdin             upon_<verb>(...) (or command_<verb>)
    a UDP datagram                      upon_datagram(p, payload) of the layer that owns it
    a timer set by start_timer(name)    upon_timeout(name) of the layer that set it
    a `faults SPEC` line on MGR_CONTROL_FD   (the runtime itself)

The event loop waits on the UDP socket, stdin and the control pipe with
`selectors`, and on the earliest timer. End of stdin ends the commands, not
the module: a module runs until it is killed.
"""

import heapq
import inspect
import os
import selectors
import socket
import sys
import time

from . import commands
from .contract import Contract, ContractError, SocketAddr
from .events import EventLog
from .faults import Faults, FaultsError, parse_control

# Receive buffer asked for the module's socket, in bytes: a burst (a
# broadcast to everyone, a retransmission round) must not overflow the
# kernel's small default.
RECEIVE_BUFFER = 8 << 20

# The largest possible UDP payload, so that no datagram is truncated.
MAX_DATAGRAM = 65_536

# Datagrams read per wake-up before timers and stdin get their turn.
BATCH = 64


class UsageError(Exception):
    """Bad module arguments: the module exits with status 2."""


class StartError(Exception):
    """The module cannot start (a socket, a file): exit status 1."""


def _write_line(stream, line):
    """Writes one line and flushes it at once. Write errors are ignored:
    when nobody reads the stream any more, the module still runs (until
    killed) for the sake of its peers. AttributeError: no stream at all
    (its descriptor closed at start)."""
    try:
        stream.write("%s\n" % line)
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def say(line):
    """Prints one line on stdout, flushed: stdout is a pipe to the manager,
    and a line left in a buffer is a line the user never sees."""
    _write_line(sys.stdout, line)


def warn(line):
    """One diagnostic line on stderr."""
    _write_line(sys.stderr, line)


def one_line(text):
    """Keeps a delivered text on one stdout line, since stdout is read line by line."""
    if "\n" in text or "\r" in text:
        return text.replace("\n", "\\n").replace("\r", "\\r")
    return text


def period_arg(args, default):
    """Reads `--period-ms N` (also `--period-ms=N`), the argument of the
    links and of the modules built on them, as the Rust modules do; returns
    the period in seconds. Anything else is a UsageError."""

    def usage(what):
        return UsageError("%s (usage: --period-ms N)" % what)

    period = default
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--period-ms":
            if i + 1 >= len(args):
                raise usage("--period-ms needs a value")
            value = args[i + 1]
            i += 2
        elif arg.startswith("--period-ms="):
            value = arg[len("--period-ms=") :]
            i += 1
        else:
            raise usage("unexpected argument '%s'" % arg)
        # Zero would retransmit in a busy loop, so the period must be positive.
        if not value.isascii() or not value.isdigit() or int(value) == 0:
            raise usage("--period-ms: '%s' is not a positive number" % value)
        period = int(value) / 1000
    return period


class _ModuleType(type):
    """Gives every module its base fields before its own __init__ runs, and
    starts a component made inside a running module as soon as its own
    __init__ has finished (so that its upon_init sees its fields)."""

    def __call__(cls, *args, **kwargs):
        module = cls.__new__(cls)
        Module._prepare(module)
        module.__init__(*args, **kwargs)
        module._constructed()
        return module


class Module(metaclass=_ModuleType):
    """A module: one of the book's abstractions, as a class whose methods are
    its handlers.

    Alone (no owner) it is the top module of a process: the user is the
    layer above, typing the commands its `help` lists on stdin and reading
    its indications on stdout. Inside another module (`owner`) it is a
    component, the book's "Uses:": its indications go to the owner's
    handlers, `upon_<name>_<indication>` (e.g. `upon_pl_deliver`) or else
    `upon_<indication>`.

    `instance` names a component on the wire: its frames start with
    `<instance>:`, so that several components share one socket, each taking
    only its own datagrams.
    """

    # The stdin commands, one per line, the verb first, as the Rust modules
    # write them; `help` answers with this text.
    help = "  help   this list"
    # The book's name of an instance of this abstraction ("pl", "beb"...):
    # the owner's handlers are named after it.
    name = "module"
    # The name in error messages ("error: NAME: ..."); the class name if None.
    module_name = None

    @staticmethod
    def _prepare(module):
        module.owner = None
        module.instance = ""
        module.components = []
        module.runtime = None
        module._handlers = {}
        module._started = False

    def __init__(self, owner=None, instance="", **handlers):
        """`owner`: the module this one is a component of (None for the top
        module). `instance`: the component's name on the wire. Keyword
        arguments `deliver=callable` (any indication) send that indication
        to the callable instead of the owner's `upon_<name>_<indication>`."""
        self.owner = owner
        self.instance = instance
        self._handlers = dict(handlers)
        if owner is not None:
            owner.components.append(self)

    def _constructed(self):
        if self.owner is not None and self.owner.runtime is not None:
            self._start(self.owner.runtime)

    def _start(self, runtime):
        """Attaches the module to the runtime and runs the book's Init: the
        components' first (a layer is ready before the one above uses it),
        then its own."""
        if self._started:
            return
        self._started = True
        self.runtime = runtime
        for component in list(self.components):
            component._start(runtime)
        self.upon_init()

    # ---- handlers a module overrides -------------------------------------

    def configure(self, args):
        """The module's arguments (`mgr-modules`-style, after the program).
        Raise UsageError for a bad one. This default takes none."""
        if args:
            raise UsageError("unexpected argument '%s' (this module takes none)" % args[0])

    def upon_init(self):
        """The book's `upon event <Init>`: called once, before any other event."""

    def upon_timeout(self, timer):
        """A timer started with start_timer(timer, ...) expired."""

    # upon_datagram(self, p, payload) is looked up, not inherited: a module
    # that defines it takes the datagrams no component of it owns.

    def owns(self, payload):
        """Whether a datagram (bytes) belongs to this module or one of its
        components. By default: one of its components owns it, or the module
        handles datagrams itself (defines upon_datagram)."""
        if any(component.owns(payload) for component in self.components):
            return True
        return hasattr(self, "upon_datagram")

    # ---- what a handler can do --------------------------------------------

    @property
    def contract(self):
        return self.runtime.contract

    @property
    def self_name(self):
        """This process's name, MGR_SELF (the book's `self`)."""
        return self.runtime.contract.self_name

    @property
    def processes(self):
        """The book's Π, this process included, in MGR_PEERS order: every
        process of the run, or in a run of several roles those of this
        process's role."""
        return [name for name, _ in self.runtime.contract.role_peers()]

    def rank(self, process):
        """A process's position in Π (the first is 0), or None."""
        names = self.processes
        return names.index(process) if process in names else None

    @property
    def incarnation(self):
        """1 at the first start of this instance, +1 at each restart."""
        return self.runtime.contract.incarnation

    @property
    def id_base(self):
        """What this incarnation adds to the numbers it gives its messages:
        number them id_base + 1, id_base + 2... so that a restarted process
        never reuses a number of an earlier incarnation."""
        return self.runtime.contract.id_base()

    @property
    def events(self):
        """The MGR_EVENTS log and the clocks (see events.EventLog)."""
        return self.runtime.events

    def new_message_id(self):
        """A fresh message id, unique to this process over all its
        incarnations: together with the sender's name it identifies a
        message, which is what the book means by assuming messages unique."""
        return self.runtime.new_message_id()

    def send_datagram(self, q, payload):
        """Sends one datagram (str as UTF-8, or bytes) to process `q` (a
        name of the run, or a SocketAddr), through the faults in force.
        Returns False when `q` is no process of the run."""
        if isinstance(q, SocketAddr):
            addr = q
        else:
            addr = self.runtime.contract.peer_addr(q)
            if addr is None:
                warn("%s: send to unknown process '%s' dropped" % (self.name, q))
                return False
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.runtime.send_datagram(addr, payload)
        return True

    def sender_name(self, addr):
        """The name of the process at `addr`, or the address itself
        (`ip:port`) when it is not part of the run."""
        return self.runtime.sender_name(addr)

    def start_timer(self, timer, seconds):
        """The book's starttimer(Δ): upon_timeout(timer) is called once,
        `seconds` from now. Starting a timer again replaces its deadline.
        Timers are this module's own: a component's "retransmit" is not its
        owner's."""
        self.runtime.start_timer(self, timer, seconds)

    def cancel_timer(self, timer):
        """Stops a timer before it expires."""
        self.runtime.cancel_timer(self, timer)

    def deliver(self, p, m, id=None, stamp=None):
        """Hands a message to the user: logs a `deliver` event (with the
        sender's stamp, when the message carries one, for the clocks) and
        prints `deliver <p> <m>`."""
        self.events.deliver(p, id, stamp, m)
        say("deliver %s %s" % (p, one_line(m)))

    def indicate(self, event, peer=None, text=""):
        """Tells the user of an indication other than a delivery: logs
        `event` and prints `<event> [<peer>] <text>`, e.g. `suspect p2`."""
        self.events.record(event, peer, None, text if text else None)
        words = [event] + ([peer] if peer is not None else []) + ([one_line(text)] if text else [])
        say(" ".join(words))

    def log(self, event, peer=None, id=None, text=None):
        """Records an event the user does not see on stdout (a local event
        for the clocks), e.g. `broadcast` with the message's number."""
        self.events.record(event, peer, id, text)

    def say(self, line):
        """Prints one line on stdout, flushed."""
        say(line)

    def check_peer(self, name):
        """Whether `name` is a process of the run, telling the user when not."""
        if self.runtime.contract.peer_addr(name) is not None:
            return True
        say("error: unknown process '%s' (peers: %s)" % (name, self.runtime.contract.peer_list()))
        return False

    def refuse(self, command):
        """Answers, on one line, a command the module cannot take."""
        say(commands.refusal(command, self.help))

    def trigger(self, indication, *args):
        """The book's `trigger <name, Indication | args>` towards the layer
        above: calls the handler given for it at construction, else the
        owner's `upon_<name>_<indication>`, else its `upon_<indication>`."""
        handler = self._handlers.get(indication)
        owner = self.owner
        if handler is None and owner is not None:
            handler = getattr(owner, "upon_%s_%s" % (self.name, indication), None)
            if handler is None:
                handler = getattr(owner, "upon_%s" % indication, None)
        if handler is None:
            where = type(owner).__name__ if owner is not None else "the user"
            raise AttributeError(
                "%s has no handler for <%s, %s>: define upon_%s_%s"
                % (where, self.name, indication.capitalize(), self.name, indication)
            )
        return handler(*args)

    # ---- the runtime's side -----------------------------------------------

    def _route(self, p, payload):
        """Hands a datagram to the layer that owns it; False if none does."""
        for component in self.components:
            if component.owns(payload):
                return component._route(p, payload)
        handler = getattr(self, "upon_datagram", None)
        if handler is None:
            return False
        handler(p, payload)
        return True

    def _command_handler(self, verb):
        return getattr(self, "command_" + verb, None) or getattr(self, "upon_" + verb, None)

    def _check_commands(self):
        """Every verb of `help` needs a handler; a missing one is the
        module's bug, found at start rather than when the user types it."""
        for verb in commands.verbs(self.help):
            if verb != "help" and self._command_handler(verb) is None:
                raise TypeError(
                    "%s lists the command '%s' in its help but has no upon_%s (or command_%s)"
                    % (type(self).__name__, verb, verb, verb)
                )

    def _command(self, command):
        """A command line for the top module: `upon_<verb>` (or
        `command_<verb>`) with as many arguments as it takes: all words but
        the last one are single words, the last is the rest of the line."""
        if command.verb not in commands.verbs(self.help) or command.verb == "help":
            self.refuse(command)
            return
        handler = self._command_handler(command.verb)
        count = _positional_count(handler)
        args = command.words(count)
        if args is None:
            self.refuse(command)
            return
        handler(*args)


def _positional_count(handler):
    count = 0
    for parameter in inspect.signature(handler).parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class Runtime:
    """The event loop of one process: its socket, clocks, faults and timers."""

    def __init__(self, contract, sock, events, faults, module_name="module"):
        self.contract = contract
        self.sock = sock
        self.events = events
        self.module_name = module_name
        self.faults = faults
        self.rng = faults.rng(contract.self_name, contract.incarnation)
        # (module, name) -> deadline on the monotonic clock.
        self.timers = {}
        # Datagrams held back by a delay fault: (due, seq, addr, payload).
        self.delayed = []
        self._seq = 0
        self._next_id = contract.id_base() + 1
        self.top = None
        self.selector = _selector()
        self._stdin_buf = b""
        self._control_buf = b""

    # ---- services for modules ---------------------------------------------

    def new_message_id(self):
        id = self._next_id
        self._next_id += 1
        return id

    def sender_name(self, addr):
        name = self.contract.peer_name(addr)
        return name if name is not None else str(addr)

    def start_timer(self, module, timer, seconds):
        self.timers[(module, timer)] = time.monotonic() + max(0.0, seconds)

    def cancel_timer(self, module, timer):
        self.timers.pop((module, timer), None)

    def set_faults(self, faults):
        """Puts new faults in force. As in the Rust runtime, a spec with a
        new seed starts the random choices afresh from it; one with the same
        seed, or none, keeps the sequence going, so a run with the same
        changes repeats its drops."""
        if faults.seed is not None and faults.seed != self.faults.seed:
            self.rng = faults.rng(self.contract.self_name, self.contract.incarnation)
        self.faults = faults

    def send_datagram(self, addr, payload):
        """Sends one datagram, best effort, through the faults in force: it
        may be dropped (loss, or a partition between this process and the
        destination), sent twice (dup) or late (delay). The one send path of
        every module, as in the Rust runtime's Context::send_datagram."""
        faults = self.faults
        if not faults.is_none():
            q = self.contract.peer_name(addr)
            if q is not None and not faults.connected(self.contract.self_name, q):
                return
            if faults.loss > 0 and self.rng.random() < faults.loss:
                return
            copies = 2 if faults.dup > 0 and self.rng.random() < faults.dup else 1
            low, high = faults.delay_ms
            if high > 0:
                now = time.monotonic()
                for _ in range(copies):
                    due = now + self.rng.randint(low, high) / 1000
                    self._seq += 1
                    heapq.heappush(self.delayed, (due, self._seq, addr, payload))
                return
            if copies == 2:
                self._send_now(addr, payload)
        self._send_now(addr, payload)

    def _send_now(self, addr, payload):
        try:
            self.sock.sendto(payload, addr.sockaddr())
        except BlockingIOError:
            # A datagram the kernel cannot take right now is dropped: a
            # fair-loss link may lose messages, and the layers above cope.
            pass
        except OSError as err:
            warn("udp: send to %s: %s" % (addr, _os_error_text(err)))

    def admits(self, addr):
        """Whether a datagram from `addr` gets through the partition in force."""
        p = self.contract.peer_name(addr)
        return p is None or self.faults.connected(p, self.contract.self_name)

    # ---- the loop ----------------------------------------------------------

    def start(self, module):
        self.top = module
        module._check_commands()
        module._start(self)

    def run_forever(self, module):
        self.start(module)
        self.sock.setblocking(False)
        self.selector.register(self.sock, selectors.EVENT_READ, self._on_socket)
        if _is_open(0):
            try:
                self.selector.register(0, selectors.EVENT_READ, self._on_stdin)
            except (OSError, ValueError) as err:
                warn("stdin: %s" % err)
        if self.contract.control_fd is not None:
            try:
                self.selector.register(self.contract.control_fd, selectors.EVENT_READ, self._on_control)
            except (OSError, ValueError) as err:
                warn("control: %s" % err)
        while True:
            self.step()

    def _next_deadline(self):
        deadlines = list(self.timers.values())
        if self.delayed:
            deadlines.append(self.delayed[0][0])
        return min(deadlines) if deadlines else None

    def step(self, max_wait=None):
        """Waits for the next event (at most `max_wait` seconds when given)
        and handles what is ready."""
        deadline = self._next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if max_wait is not None:
            timeout = max_wait if timeout is None else min(timeout, max_wait)
        for key, _ in self.selector.select(timeout):
            key.data()
        self._send_delayed()
        self._fire_timers()

    def _send_delayed(self):
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            _, _, addr, payload = heapq.heappop(self.delayed)
            self._send_now(addr, payload)

    def _fire_timers(self):
        # Only the timers due when the pass starts fire in it: a handler
        # that restarts its timer with no delay waits for the next pass, so
        # datagrams and commands still get their turn.
        now = time.monotonic()
        due = sorted((deadline, timer, id(module), module) for (module, timer), deadline in self.timers.items()
                     if deadline <= now)
        for deadline, timer, _, module in due:
            if self.timers.get((module, timer)) != deadline:
                continue  # cancelled or restarted by an earlier handler
            del self.timers[(module, timer)]
            module.upon_timeout(timer)

    def _on_socket(self):
        for _ in range(BATCH):
            try:
                payload, source = self.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                warn("udp: receive: %s" % _os_error_text(err))
                # Pausing keeps a persistent socket error from turning into
                # a busy loop.
                time.sleep(0.1)
                return
            addr = SocketAddr.from_sockaddr(source)
            if self.admits(addr):
                self.datagram(addr, payload)

    def datagram(self, addr, payload):
        """A datagram arrived from `addr`: hands it to the layer that owns it."""
        p = self.sender_name(addr)
        if not self.top._route(p, payload):
            warn("%s: dropped a datagram from %s that no layer of this module takes: %r"
                 % (self.module_name, p, payload[:80]))

    def _on_stdin(self):
        data = self._read(0, "stdin")
        if not data:
            # End of stdin only means no more commands: the module keeps
            # serving its peers until it is killed.
            self._unregister(0)
            if self._stdin_buf:
                self.line(self._stdin_buf)
                self._stdin_buf = b""
            return
        self._stdin_buf += data
        *lines, self._stdin_buf = self._stdin_buf.split(b"\n")
        for raw in lines:
            self.line(raw)

    def line(self, raw):
        """One line of stdin (bytes or str), decoded lossily: a stray byte
        should not cost the user the whole line."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        parsed = commands.parse_line(text)
        if parsed == commands.HELP:
            say(self.top.help)
        elif isinstance(parsed, commands.Command):
            self.top._command(parsed)

    def _on_control(self):
        fd = self.contract.control_fd
        data = self._read(fd, "control")
        if not data:
            self._unregister(fd)
            try:
                os.close(fd)
            except OSError:
                pass
            return
        self._control_buf += data
        *lines, self._control_buf = self._control_buf.split(b"\n")
        for raw in lines:
            self.control_line(raw.decode("utf-8", "replace"))

    def control_line(self, line):
        """A line of the manager's control pipe: `faults SPEC`, or the run's
        new table after a scale, `peers MGR_PEERS [MGR_ROLES]`."""
        parts = line.split()
        if parts and parts[0] == "peers" and len(parts) in (2, 3):
            names = [entry.split("=", 1)[0] for entry in parts[1].split(",")]
            if self.contract.self_name not in names:
                # A scale removed this process; its stop follows.
                say("removed from the run by a scale")
                return
            try:
                self.contract.retable(parts[1], parts[2] if len(parts) == 3 else "")
            except ContractError as err:
                say("error: bad peer table from the manager: %s" % err)
            return
        try:
            self.set_faults(parse_control(line))
        except FaultsError as err:
            say("error: bad control line from the manager: %s" % err)

    def _read(self, fd, what):
        while True:
            try:
                return os.read(fd, 65_536)
            except InterruptedError:
                continue
            except BlockingIOError:
                return None
            except OSError as err:
                warn("%s: %s" % (what, _os_error_text(err)))
                return b""

    def _unregister(self, fd):
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass


def _selector():
    # poll, unlike epoll, accepts regular files (stdin redirected from a
    # file), which are always readable.
    if hasattr(selectors, "PollSelector"):
        return selectors.PollSelector()
    return selectors.DefaultSelector()


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _os_error_text(err):
    # As Rust prints an io::Error: "Address already in use (os error 98)".
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        return "%s (os error %d)" % (err.strerror, err.errno)
    return str(err)


def open_socket(contract):
    """Takes the socket the manager bound for us (MGR_UDP_FD), or binds
    MGR_ADDR. Raises StartError with the variable named."""
    if contract.udp_fd is not None:
        try:
            sock = socket.socket(fileno=contract.udp_fd)
            local = SocketAddr.from_sockaddr(sock.getsockname())
        except (OSError, ValueError) as err:
            raise StartError(
                "MGR_UDP_FD: descriptor %d is not a bound socket: %s" % (contract.udp_fd, _os_error_text(err))
            ) from None
        if local != contract.addr:
            warn("udp: MGR_UDP_FD socket is bound to %s, not MGR_ADDR %s" % (local, contract.addr))
    else:
        family = socket.AF_INET6 if contract.addr.is_ipv6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(contract.addr.sockaddr())
        except OSError as err:
            sock.close()
            raise StartError("MGR_ADDR: cannot bind %s: %s" % (contract.addr, _os_error_text(err))) from None
    # Ask for a large receive buffer, forcing it where allowed, and go on
    # with what we get.
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RECEIVE_BUFFER)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass
    return sock


def module_name_of(module):
    return module.module_name or type(module).__name__


def prepare(module, args=None, environ=None):
    """Everything `run` does before the loop: the contract, the module's
    arguments, the socket, the events file and the faults. Returns the
    Runtime, or exits as a module that cannot start must: one line
    `error: ...` on stderr and status 2 (usage, contract) or 1 (anything else)."""
    environ = os.environ if environ is None else environ
    args = sys.argv[1:] if args is None else list(args)
    if isinstance(module, type):
        module = module()
    name = module_name_of(module)
    try:
        contract = Contract.from_env(environ)
    except ContractError as err:
        _exit(2, "error: %s" % err)
    try:
        module.configure(args)
    except UsageError as err:
        _exit(2, "error: %s: %s" % (name, err))
    try:
        sock = open_socket(contract)
    except StartError as err:
        _exit(1, "error: %s: %s" % (name, err))
    try:
        events = EventLog(
            contract.events_path,
            contract.run,
            contract.self_name,
            contract.index(),
            len(contract.peers),
            contract.incarnation,
        )
    except OSError as err:
        _exit(1, "error: %s: MGR_EVENTS: cannot open %s: %s" % (name, contract.events_path, _os_error_text(err)))
    spec = environ.get("MGR_FAULTS")
    try:
        faults = Faults.parse(spec) if spec is not None else Faults()
    except FaultsError as err:
        _exit(2, "error: %s: MGR_FAULTS: %s" % (name, err))
    return Runtime(contract, sock, events, faults, name), module


def _exit(code, line):
    warn(line)
    sys.exit(code)


def run(module, args=None):
    """Runs `module` (a Module class or instance) as this process's top
    module until the process is killed. `args` are the module's arguments
    (sys.argv[1:] by default)."""
    runtime, module = prepare(module, args)
    try:
        runtime.run_forever(module)
    except KeyboardInterrupt:
        # Ctrl-C on a module started by hand: end quietly, as a signal would.
        sys.exit(130)
