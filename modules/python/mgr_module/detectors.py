"""Failure detectors (chapter 2.6 of the book) with the wire format of the
Rust modules (modules/src/detectors/perfect.rs): heartbeat requests and
replies, `HEARTBEATREQUEST` and `HEARTBEATREPLY`, over an acknowledged
perfect link named after the detector's instance (`pfd` alone, `rb.pfd`
inside a lazy reliable broadcast).
"""

from .contract import parse_u64
from .links import PerfectLink
from .runtime import Module, UsageError, say, warn

HEARTBEAT_REQUEST = "HEARTBEATREQUEST"
HEARTBEAT_REPLY = "HEARTBEATREPLY"

# The default timeout Δ and retransmission period of the links, in seconds.
DEFAULT_DELTA = 1.0
DEFAULT_PERIOD = 0.1

# The stdin commands of the detector alone (as the Rust module's).
DETECTOR_HELP = "  detected   print the processes detected so far\n  help       this list"


def timing_args(args, delta, period):
    """Reads `--delta-ms N` and `--period-ms N` (also `--name=N`) as the Rust
    detectors do, in their words; returns (delta, period) in seconds."""
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if "=" in arg:
            name, value = arg.split("=", 1)
        else:
            name, value = arg, (args[i] if i < len(args) else None)
            i += 1
        ms = parse_u64(value) if value is not None else None
        if not ms:
            raise UsageError("%s needs a positive number of milliseconds" % name)
        if name == "--delta-ms":
            delta = ms / 1000
        elif name == "--period-ms":
            period = ms / 1000
        else:
            raise UsageError("unexpected argument '%s' (usage: --delta-ms N --period-ms N)" % arg)
    return delta, period


class PerfectFailureDetector(Module):
    """Module 2.6, PerfectFailureDetector, instance P (Algorithm 2.5,
    Exclude on Timeout), on a PerfectLink of the same instance name.

    Every Δ, a process that did not answer the last heartbeat request is
    detected (<P, Crash | p>); then every process not yet detected is asked
    again. Alone, it prints `crash p`; inside another module, the owner's
    `upon_P_crash(p)` is called."""

    name = "P"
    help = DETECTOR_HELP

    def __init__(self, owner=None, instance="pfd", delta=DEFAULT_DELTA, period=DEFAULT_PERIOD, **handlers):
        super().__init__(owner, instance, **handlers)
        self.delta = delta
        self.pl = PerfectLink(self, instance, period, acked=True)
        self.alive = set()
        self.detected = set()

    def configure(self, args):
        self.delta, self.pl.sl.period = timing_args(args, self.delta, self.pl.sl.period)

    def owns(self, payload):
        return self.pl.owns(payload)

    def upon_init(self):
        """upon event <P, Init>: alive := Π; detected := {}; starttimer(Δ)."""
        self.alive = set(self.processes)
        self.detected = set()
        self.start_timer("timeout", self.delta)

    def upon_timeout(self, timer):
        """upon event <Timeout>: detect who did not answer, ask the others again."""
        if timer != "timeout":
            return
        crashed = []
        for p in self.processes:
            if p not in self.alive and p not in self.detected:
                self.detected.add(p)
                crashed.append(p)
            # A detected process stays detected: asking it again would only
            # grow the link's retransmissions.
            if p not in self.detected:
                self.pl.send(p, HEARTBEAT_REQUEST)
        self.alive = set()
        self.start_timer("timeout", self.delta)
        for p in crashed:
            if self.owner is None:
                self.indicate("crash", p)
            else:
                self.trigger("crash", p)

    def upon_pl_deliver(self, q, m):
        """upon event <pl, Deliver | q, [HEARTBEATREQUEST]> and <pl, Deliver | p, [HEARTBEATREPLY]>."""
        if m == HEARTBEAT_REQUEST:
            self.pl.send(q, HEARTBEAT_REPLY)
        elif m == HEARTBEAT_REPLY:
            self.alive.add(q)
        else:
            warn("P: ignored an unknown message from %s: %r" % (q, m))

    def command_detected(self):
        say(("detected " + " ".join(sorted(self.detected))).rstrip())
