"""Point-to-point links (chapter 2.4 of the book), each built on the one
before: fair-loss -> stubborn -> perfect, with the wire formats of the Rust
modules (modules/src/links/), so that Python and Rust instances of one link
talk to each other:

    fair-loss   the message text itself, UTF-8; one trailing newline dropped
    stubborn,   [<instance>:]<id> <LAMPORT>/<V1.V2...> <text>
    perfect     [<instance>:]ack <id>     (acknowledged mode only)

`id` numbers the sender's messages (see Module.new_message_id); the stamp is
the sender's clocks at the send. A link inside another module is a named
instance (`beb`, `rb`...) whose frames start with its name and a colon, and
it retransmits until acknowledged rather than forever.

Each link is a Module: alone, the user is the layer above (`send q text` on
stdin, `deliver p text` on stdout); inside another module, its deliveries go
to the owner's `upon_<name>_deliver`.
"""

from .contract import parse_socket_addr, parse_u64
from .events import Stamp
from .runtime import Module, period_arg, warn

# The stdin commands of the fair-loss link (as the Rust module's).
FAIR_LOSS_HELP = (
    "  send q text   send text to process q (p2) or to any ip:port, e.g. send p2 hello\n"
    "  help          this list"
)

# The stdin commands of the links built on fair-loss links.
LINK_HELP = "  send q text   send text to process q, e.g. send p2 hello\n  help          this list"

# The default retransmission period Δ of a link alone, in seconds.
DEFAULT_PERIOD = 0.5


class Message:
    """A message of the stubborn and perfect links: the text plus what
    makes it unique (`id`, per sender) and the sender's clocks (`stamp`)."""

    __slots__ = ("id", "stamp", "text")

    def __init__(self, id, stamp, text):
        self.id = id
        self.stamp = stamp
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Message) and (self.id, self.stamp, self.text) == (other.id, other.stamp, other.text)

    def __repr__(self):
        return "Message(%d, %r, %r)" % (self.id, self.stamp, self.text)


class Ack:
    """`[<instance>:]ack <id>`: the receiver has the message `id`."""

    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id

    def __eq__(self, other):
        return isinstance(other, Ack) and self.id == other.id

    def __repr__(self):
        return "Ack(%d)" % self.id


def encode_frame(frame, instance=""):
    """A Message or an Ack as the stubborn link's frame."""
    tag = "%s:" % instance if instance else ""
    if isinstance(frame, Ack):
        return "%sack %d" % (tag, frame.id)
    return "%s%d %s %s" % (tag, frame.id, frame.stamp.encode(), frame.text)


def decode_frame(frame, instance=""):
    """Reads a frame of `instance`: a Message or an Ack; None for a frame of
    another instance or for something that is not a frame at all."""
    if instance:
        prefix = instance + ":"
        if not frame.startswith(prefix):
            return None
        frame = frame[len(prefix) :]
    parts = frame.split(" ", 2)
    if parts[0] == "ack":
        if len(parts) < 2:
            return None
        # As in Rust, anything after the id is ignored.
        id = parse_u64(parts[1])
        return None if id is None else Ack(id)
    id = parse_u64(parts[0])
    if id is None or len(parts) < 2:
        return None
    stamp = Stamp.decode(parts[1])
    if stamp is None:
        return None
    return Message(id, stamp, parts[2] if len(parts) > 2 else "")


def owns_tagged(instance, payload):
    """Whether a datagram (bytes) is a frame of the link instance `instance`
    (every datagram, for a link alone)."""
    return not instance or payload.startswith(instance.encode("utf-8") + b":")


class FairLossLink(Module):
    """Module 2.1, FairLossPointToPointLinks, instance fll. UDP itself is
    the link: a datagram may be lost, duplicated or reordered, which is all
    the properties allow.

    Requests: send(q, m). Indications: <fll, Deliver | p, m>, p the
    sender's name (or `ip:port` for a datagram from outside the run)."""

    name = "fll"
    help = FAIR_LOSS_HELP

    def upon_send(self, q, m):
        """upon event <fll, Send | q, m>: one datagram to q carrying m."""
        self.send_datagram(q, m)

    def send(self, q, m):
        self.upon_send(q, m)

    def command_send(self, q, m):
        # The user's side: a fair-loss payload is bare text, so the send is
        # logged without an id. An address outside the run is allowed too,
        # so that a user can talk to a module of another run or to nc.
        addr = parse_socket_addr(q) if self.contract.peer_addr(q) is None else None
        if addr is not None:
            self.events.send(q, None, m)
            self.send_datagram(addr, m)
        elif self.check_peer(q):
            self.events.send(q, None, m)
            self.upon_send(q, m)

    def upon_datagram(self, p, payload):
        """A datagram arrived: <fll, Deliver | p, m>. One trailing line
        ending is removed, because nc sends the newline of the typed line."""
        m = payload.decode("utf-8", "replace")
        if m.endswith("\n"):
            m = m[:-1]
            if m.endswith("\r"):
                m = m[:-1]
        if self.owner is None:
            self.deliver(p, m)
        else:
            self.trigger("deliver", p, m)


class StubbornLink(Module):
    """Module 2.2, StubbornPointToPointLinks, instance sl (Algorithm 2.1,
    Retransmit Forever), on a FairLossLink.

    `acked`: retransmit each message until its receiver acknowledges it
    rather than forever; the links built on it keep their properties and
    the cost of a long run stays bounded. Its indications carry Message
    objects (id, stamp, text)."""

    name = "sl"
    help = LINK_HELP

    def __init__(self, owner=None, instance="", period=DEFAULT_PERIOD, acked=False, **handlers):
        super().__init__(owner, instance, **handlers)
        self.period = period
        self.acked = acked
        # The book's `sent`, by (q, id) so that an acknowledgement removes its
        # message at once.
        self.sent = {}
        self.fll = FairLossLink(self)

    def configure(self, args):
        self.period = period_arg(args, self.period)

    def owns(self, payload):
        return owns_tagged(self.instance, payload)

    def upon_init(self):
        """upon event <sl, Init>: sent := {}; starttimer(Δ)."""
        self.start_timer("retransmit", self.period)

    def upon_timeout(self, timer):
        """upon event <Timeout>: send every message again, then restart the timer."""
        if timer != "retransmit":
            return
        for (q, _), m in list(self.sent.items()):
            self.fll.send(q, encode_frame(m, self.instance))
        self.start_timer("retransmit", self.period)

    def new_message(self, q, text):
        """A text for q as a new message: a fresh id, and the clocks taken
        as the send is logged."""
        id = self.new_message_id()
        stamp = self.events.send(q, id, text)
        return Message(id, stamp, text)

    def send(self, q, text):
        """<sl, Send | q, m> for a new text."""
        self.upon_send(q, self.new_message(q, text))

    def upon_send(self, q, m):
        """upon event <sl, Send | q, m>: m is a Message."""
        self.fll.send(q, encode_frame(m, self.instance))
        self.sent[(q, m.id)] = m

    def command_send(self, q, m):
        if self.check_peer(q):
            self.send(q, m)

    def upon_fll_deliver(self, p, frame):
        """upon event <fll, Deliver | p, m>: <sl, Deliver | p, m>."""
        decoded = decode_frame(frame, self.instance)
        if isinstance(decoded, Message):
            if self.acked:
                self.fll.send(p, encode_frame(Ack(decoded.id), self.instance))
            if self.owner is None:
                self.deliver(p, decoded.text, decoded.id, decoded.stamp)
            else:
                self.trigger("deliver", p, decoded)
        elif isinstance(decoded, Ack):
            self.sent.pop((p, decoded.id), None)
        else:
            warn("sl: dropped a datagram from %s that is not '<id> <stamp> <text>': %r" % (p, frame))


class PerfectLink(Module):
    """Module 2.3, PerfectPointToPointLinks, instance pl (Algorithm 2.2,
    Eliminate Duplicates), on a StubbornLink with the same instance name.

    Alone it delivers to the user; inside another module it logs each
    first arrival as `receive` and hands <pl, Deliver | p, text> to the
    owner's upon_pl_deliver(p, m) (the owner logs its own indication)."""

    name = "pl"
    help = LINK_HELP

    def __init__(self, owner=None, instance="", period=DEFAULT_PERIOD, acked=None, **handlers):
        super().__init__(owner, instance, **handlers)
        # Inside another module the link retransmits until acknowledged, as
        # the Rust modules' links do; alone it retransmits forever (the book).
        acked = owner is not None if acked is None else acked
        # The book's `delivered`, keyed by (sender, id).
        self.delivered = set()
        self.sl = StubbornLink(self, instance, period, acked)

    def configure(self, args):
        self.sl.period = period_arg(args, self.sl.period)

    def owns(self, payload):
        return self.sl.owns(payload)

    def send(self, q, text):
        """<pl, Send | q, m> for a new text: a fresh id, logged as a `send`."""
        self.upon_send(q, self.sl.new_message(q, text))

    def upon_send(self, q, m):
        """upon event <pl, Send | q, m>: <sl, Send | q, m>."""
        self.sl.upon_send(q, m)

    def command_send(self, q, m):
        if self.check_peer(q):
            self.send(q, m)

    def upon_sl_deliver(self, p, m):
        """upon event <sl, Deliver | p, m>: deliver it the first time only."""
        if (p, m.id) in self.delivered:
            return
        self.delivered.add((p, m.id))
        if self.owner is None:
            self.deliver(p, m.text, m.id, m.stamp)
        else:
            self.events.arrive("receive", p, m.id, m.stamp, m.text)
            self.trigger("deliver", p, m.text)


# The book's names.
FairLossPointToPointLink = FairLossLink
StubbornPointToPointLink = StubbornLink
PerfectPointToPointLink = PerfectLink
