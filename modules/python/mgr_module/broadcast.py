"""Broadcasts (chapter 3 of the book) with the wire formats of the Rust
modules (modules/src/broadcast/), so that Python and Rust instances of one
broadcast can share a run:

    BestEffortBroadcast alone   perfect link instance `beb`, text `<number> <text>`
    ReliableBroadcast (eager)   best-effort instance `rb` (its link `rb`),
                                text `DATA <sender> <number> <text>`

`number` is the message's number at its original sender, which pairs a
`broadcast` event with its `deliver`s in the events file.

Alone, a broadcast is the user's: `broadcast text` on stdin logs a
`broadcast` event (before the messages leave, so the clocks order it
first) and each delivery prints `deliver p text` and logs `deliver` with the
original sender and the number. Inside another module it hands its
deliveries to the owner's `upon_beb_deliver` / `upon_rb_deliver`.
"""

from .contract import parse_u64
from .links import PerfectLink
from .runtime import Module, period_arg, warn

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


class ReliableBroadcast(Module):
    """Module 3.2, ReliableBroadcast, instance rb (Algorithm 3.2, Eager
    Reliable Broadcast), on a BestEffortBroadcast named `rb`. Indications
    carry the original sender: <rb, Deliver | s, m>."""

    name = "rb"
    help = BROADCAST_HELP

    def __init__(self, owner=None, instance="rb", period=DEFAULT_PERIOD, **handlers):
        super().__init__(owner, instance, **handlers)
        self.beb = BestEffortBroadcast(self, instance, period)
        # The book's `delivered`, keyed by (sender, number).
        self.delivered = set()
        self.broadcasts = None

    def configure(self, args):
        self.beb.configure(args)

    def owns(self, payload):
        return self.beb.owns(payload)

    def upon_init(self):
        """upon event <rb, Init>: delivered := {}."""
        self.delivered = set()
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
        """upon event <beb, Deliver | p, [DATA, s, m]>: if m is new, deliver
        it and broadcast it again (so that if s crashed, everyone still gets it)."""
        data = Data.decode(m)
        if data is None:
            warn("rb: dropped a message from %s that is not DATA: %r" % (p, m))
            return
        if (data.sender, data.id) in self.delivered:
            return
        self.delivered.add((data.sender, data.id))
        if self.owner is None:
            self.deliver(data.sender, data.text, id=data.id)
        else:
            self.trigger("deliver", data.sender, data.text)
        self.beb.broadcast(m)
