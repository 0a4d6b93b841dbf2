"""Broadcasts (chapter 3 of the book) with the wire formats of the Rust
modules (modules/src/broadcast/), so that Python and Rust instances of one
broadcast can share a run:

    BestEffortBroadcast alone   perfect link instance `beb`, text `<number> <text>`
    ReliableBroadcast           best-effort instance `rb` (its link `rb`),
                                text `DATA <sender> <number> <text>`; the
                                lazy algorithm's detector is instance `rb.pfd`

`number` is the message's number at its original sender, which pairs a
`broadcast` event with its `deliver`s in the events file.

Alone, a broadcast is the user's: `broadcast text` on stdin logs a
`broadcast` event (before the messages leave, so the clocks order it
first) and each delivery prints `deliver p text` and logs `deliver` with the
original sender and the number. Inside another module it hands its
deliveries to the owner's `upon_beb_deliver` / `upon_rb_deliver`.
"""

from .contract import parse_u64
from .detectors import PerfectFailureDetector, timing_args
from .links import PerfectLink
from .runtime import Module, UsageError, period_arg, warn

# The stdin commands of the broadcast modules (as the Rust modules').
BROADCAST_HELP = "  broadcast text   broadcast text to every process\n  help             this list"

# The retransmission period of the perfect links below broadcasts, in seconds.
DEFAULT_PERIOD = 0.1


def split_number(m):
    """`<number> <text>` as (number, text); None if m does not start with a
    number and a space."""
    number, sep, text = m.partition(" ")
    value = parse_u64(number) if sep else None
    return None if value is None else (value, text)


class BestEffortBroadcast(Module):
    """Module 3.1, BestEffortBroadcast, instance beb (Algorithm 3.1, Basic
    Broadcast), on a PerfectLink of the same instance name."""

    name = "beb"
    help = BROADCAST_HELP

    def __init__(self, owner=None, instance="beb", period=DEFAULT_PERIOD, **handlers):
        super().__init__(owner, instance, **handlers)
        self.pl = PerfectLink(self, instance, period, acked=True)
        # The numbers of this process's own broadcasts, when it is the user's.
        self.broadcasts = None

    def configure(self, args):
        self.pl.sl.period = period_arg(args, self.pl.sl.period)

    def owns(self, payload):
        return self.pl.owns(payload)

    def upon_init(self):
        self.broadcasts = self.id_base

    def broadcast(self, m):
        self.upon_broadcast(m)

    def upon_broadcast(self, m):
        """upon event <beb, Broadcast | m>: forall q in Π, <pl, Send | q, m>."""
        for q in self.processes:
            self.pl.send(q, m)

    def command_broadcast(self, m):
        # The user's side: each broadcast carries its number at the sender.
        self.broadcasts += 1
        self.log("broadcast", id=self.broadcasts, text=m)
        self.upon_broadcast("%d %s" % (self.broadcasts, m))

    def upon_pl_deliver(self, p, m):
        """upon event <pl, Deliver | p, m>: <beb, Deliver | p, m>."""
        if self.owner is not None:
            self.trigger("deliver", p, m)
            return
        numbered = split_number(m)
        if numbered is None:
            warn("beb: dropped a message from %s without a broadcast number: %r" % (p, m))
            return
        self.deliver(p, numbered[1], id=numbered[0])


class Data:
    """A message of reliable broadcast: its original sender, its number
    there, and the text. On the wire: `DATA <sender> <number> <text>`."""

    __slots__ = ("sender", "id", "text")

    def __init__(self, sender, id, text):
        self.sender = sender
        self.id = id
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Data) and (self.sender, self.id, self.text) == (other.sender, other.id, other.text)

    def __repr__(self):
        return "Data(%r, %d, %r)" % (self.sender, self.id, self.text)

    def encode(self):
        return "DATA %s %d %s" % (self.sender, self.id, self.text)

    @staticmethod
    def decode(m):
        """Reads back what encode wrote; None for anything else."""
        parts = m.split(" ", 3)
        if parts[0] != "DATA" or len(parts) < 3:
            return None
        id = parse_u64(parts[2])
        if id is None:
            return None
        return Data(parts[1], id, parts[3] if len(parts) > 3 else "")


def algorithm_arg(args, known):
    """Splits `--algorithm NAME` (default the first of `known`) from the other
    arguments, as the Rust modules do; an unknown name is a UsageError."""
    algorithm = known[0]
    rest = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--algorithm":
            value = args[i] if i < len(args) else None
            i += 1
        elif arg.startswith("--algorithm="):
            value = arg[len("--algorithm=") :]
        else:
            rest.append(arg)
            continue
        if value not in known:
            raise UsageError("unknown algorithm %s (known: %s)" % (rust_debug(value or ""), ", ".join(known)))
        algorithm = value
    return algorithm, rest


def rust_debug(text):
    """A string quoted as Rust's `{:?}` quotes it, for messages in its words."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\n\r\t\0":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}[c])
        elif ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F:
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


class ReliableBroadcast(Module):
    """Module 3.2, ReliableBroadcast, instance rb, on a BestEffortBroadcast
    named `rb`: Algorithm 3.2, Eager Reliable Broadcast (every process
    relays every message the first time it delivers it), or with
    `algorithm="lazy"` Algorithm 3.3, Lazy Reliable Broadcast (a process
    relays the messages of a sender only once its PerfectFailureDetector,
    instance `rb.pfd`, detects that sender's crash). Indications carry the
    original sender: <rb, Deliver | s, m>.

    Alone it takes the Rust module's arguments: `--algorithm eager|lazy`,
    `--period-ms N`, and for lazy `--delta-ms N`."""

    name = "rb"
    help = BROADCAST_HELP

    def __init__(self, owner=None, instance="rb", period=DEFAULT_PERIOD, algorithm="eager", delta=1.0, **handlers):
        super().__init__(owner, instance, **handlers)
        if algorithm not in ("eager", "lazy"):
            raise ValueError("algorithm must be 'eager' or 'lazy', not %r" % algorithm)
        self.period = period
        self.algorithm = algorithm
        self.delta = delta
        self.broadcasts = None

    def configure(self, args):
        self.algorithm, rest = algorithm_arg(args, ["eager", "lazy"])
        if self.algorithm == "lazy":
            self.delta, self.period = timing_args(rest, self.delta, self.period)
        else:
            self.period = period_arg(rest, self.period)

    def owns(self, payload):
        return any(component.owns(payload) for component in self.components)

    def upon_init(self):
        """upon event <rb, Init>: delivered := {} (eager);
        correct := Π; from[p] := {} for all p in Π (lazy)."""
        self.beb = BestEffortBroadcast(self, self.instance, self.period)
        # The book's `delivered` (eager), keyed by (sender, number).
        self.delivered = set()
        # The book's `correct` and `from[p]` (lazy): the messages delivered
        # with sender p, by number.
        self.P = None
        self.correct = set(self.processes)
        self.from_ = {}
        if self.algorithm == "lazy":
            self.P = PerfectFailureDetector(self, self.instance + ".pfd", self.delta, self.period)
        self.broadcasts = self.id_base

    def broadcast(self, m):
        return self.upon_broadcast(m)

    def upon_broadcast(self, m):
        """upon event <rb, Broadcast | m>: <beb, Broadcast | [DATA, self, m]>.
        Returns the message's number here."""
        self.broadcasts += 1
        self.beb.broadcast(Data(self.self_name, self.broadcasts, m).encode())
        return self.broadcasts

    def command_broadcast(self, m):
        self.log("broadcast", id=self.broadcasts + 1, text=m)
        self.upon_broadcast(m)

    def upon_beb_deliver(self, p, m):
        """upon event <beb, Deliver | p, [DATA, s, m]>. Eager: if m is new,
        deliver it and broadcast it again (so that if s crashed, everyone
        still gets it). Lazy: if m is new, deliver it, keep it in from[s],
        and broadcast it again only if s is already detected."""
        data = Data.decode(m)
        if data is None:
            warn("rb: dropped a message from %s that is not DATA: %r" % (p, m))
            return
        if self.P is None:
            if (data.sender, data.id) in self.delivered:
                return
            self.delivered.add((data.sender, data.id))
            self._deliver(data)
            self.beb.broadcast(m)
            return
        from_s = self.from_.setdefault(data.sender, {})
        if data.id in from_s:
            return
        from_s[data.id] = data
        self._deliver(data)
        if data.sender not in self.correct:
            self.beb.broadcast(m)

    def upon_P_crash(self, p):
        """upon event <P, Crash | p> (lazy): correct := correct \\ {p};
        forall m in from[p]: <beb, Broadcast | [DATA, p, m]>."""
        self.correct.discard(p)
        for _, data in sorted(self.from_.get(p, {}).items()):
            self.beb.broadcast(data.encode())

    def _deliver(self, data):
        if self.owner is None:
            self.deliver(data.sender, data.text, id=data.id)
        else:
            self.trigger("deliver", data.sender, data.text)
