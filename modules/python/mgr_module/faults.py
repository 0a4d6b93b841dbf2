"""Network faults: loss, duplication, delay and partitions, applied to every
datagram a process sends (and, for partitions, receives), so that the links
above really have to cope.

The manager gives a run's faults in MGR_FAULTS at start and writes the whole
new state as a line `faults SPEC` on the control pipe (MGR_CONTROL_FD) when
they change. SPEC is words separated by spaces, each optional:

    loss=0.2 dup=0.1 delay=10-50 partition=p1,p2/p3,p4 seed=42

The grammar and the error messages are those of the Rust runtime
(modules/src/runtime/faults.rs), plus `seed`: with a seed the random choices
of a process repeat from run to run (see Faults.rng). This file is pure:
parsing, printing and decisions; the runtime applies them.
"""

import random
import re
from decimal import Decimal

from .contract import parse_u64

# Longest delay accepted, in milliseconds.
MAX_DELAY_MS = 60_000

# The verb of a control line that sets the faults: `faults SPEC`.
CONTROL_FAULTS = "faults"

# The keys an error lists, in the Rust runtime's words: its refusal of a word
# without '=' does not name `seed` (yet), and these texts are kept identical.
KEYS = "loss, dup, delay, partition"
KNOWN = "loss, dup, delay, partition, seed"


class FaultsError(Exception):
    """A fault specification that cannot be understood."""


class Faults:
    """The faults in force for one process."""

    def __init__(self, loss=0.0, dup=0.0, delay_ms=(0, 0), partition=(), seed=None):
        # Probability that a datagram is dropped.
        self.loss = loss
        # Probability that a datagram is sent twice.
        self.dup = dup
        # Each datagram waits a uniform time in this range, in milliseconds.
        self.delay_ms = tuple(delay_ms)
        # Blocks of processes that can talk among themselves only.
        self.partition = [list(block) for block in partition]
        # The seed of the random choices (None: unseeded).
        self.seed = seed

    @staticmethod
    def parse(spec):
        """Parses a SPEC; the empty string means no fault."""
        faults = Faults()
        for word in spec.split():
            key, sep, value = word.partition("=")
            if not sep:
                raise FaultsError("'%s' is not of the form key=value (keys: %s)" % (shown(word), KEYS))
            if key == "loss":
                faults.loss = _probability(key, value)
            elif key == "dup":
                faults.dup = _probability(key, value)
            elif key == "delay":
                faults.delay_ms = parse_delay(value)
            elif key == "partition":
                faults.partition = parse_partition(value)
            elif key == "seed":
                faults.seed = parse_seed(value)
            else:
                raise FaultsError("unknown fault '%s' (known: %s)" % (shown(key), KNOWN))
        return faults

    def _fields(self):
        return (self.loss, self.dup, self.delay_ms, self.partition, self.seed)

    def __eq__(self, other):
        return isinstance(other, Faults) and self._fields() == other._fields()

    def __repr__(self):
        return "Faults(%r)" % str(self)

    def is_none(self):
        """No fault at all (a seed alone changes nothing)."""
        return self.loss == 0 and self.dup == 0 and self.delay_ms == (0, 0) and not self.partition

    def connected(self, sender, receiver):
        """Can a datagram go from process `sender` to process `receiver`?"""
        return not self.partition or self._block_of(sender) == self._block_of(receiver)

    def _block_of(self, process):
        # Processes listed nowhere share one more block.
        for i, block in enumerate(self.partition):
            if process in block:
                return i
        return len(self.partition)

    def rng(self, self_name, incarnation):
        """The source of this process's random choices: seeded with
        `SEED/SELF/INCARNATION` when the spec has a seed, so that a run
        repeats its drops and each process (and each restart of one) draws
        its own sequence; otherwise seeded by the system."""
        if self.seed is None:
            return random.Random()
        return random.Random("%d/%s/%d" % (self.seed, self_name, incarnation))

    def __str__(self):
        """The SPEC that parse reads back, leaving out what is off."""
        words = []
        if self.loss > 0:
            words.append("loss=%s" % _float_text(self.loss))
        if self.dup > 0:
            words.append("dup=%s" % _float_text(self.dup))
        if self.delay_ms != (0, 0):
            words.append("delay=%d-%d" % self.delay_ms)
        if self.partition:
            words.append("partition=%s" % "/".join(",".join(block) for block in self.partition))
        if self.seed is not None:
            words.append("seed=%d" % self.seed)
        return " ".join(words)


def _float_text(value):
    # Rust prints 1.0 as "1" and never uses an exponent.
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse_delay(value):
    """Parses `MIN-MAX` milliseconds (a single number means MIN = MAX)."""
    low, sep, high = value.partition("-")
    if not sep:
        high = low
    lo, hi = parse_u64(low.strip()), parse_u64(high.strip())
    if lo is None or hi is None or lo > hi or hi > MAX_DELAY_MS:
        raise FaultsError(
            "delay must be MIN-MAX milliseconds with MIN <= MAX <= %d, not '%s'" % (MAX_DELAY_MS, shown(value))
        )
    return (lo, hi)


def parse_partition(value):
    """Parses `p1,p2/p3,p4`; the empty string means no partition."""
    if value == "":
        return []
    blocks = []
    for block in value.split("/"):
        names = [name.strip() for name in block.split(",")]
        if any(not name or not re.fullmatch(r"[A-Za-z0-9_-]+", name) for name in names):
            raise FaultsError(
                "partition must be blocks of process names such as p1,p2/p3, not '%s'" % shown(value)
            )
        for name in names:
            if any(name in other for other in blocks) or names.count(name) > 1:
                raise FaultsError("%s is in two blocks of the partition" % shown(name))
        blocks.append(names)
    return blocks


def parse_seed(value):
    seed = parse_u64(value)
    if seed is None:
        raise FaultsError("seed must be a whole number, not '%s'" % shown(value))
    return seed


# Rust's f64 grammar: no underscores or spaces (which Python's float takes).
_FLOAT = re.compile(r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)


def _probability(key, value):
    if _FLOAT.fullmatch(value):
        p = float(value)
        if 0.0 <= p <= 1.0:
            return p
    raise FaultsError("%s must be a probability between 0 and 1, not '%s'" % (key, shown(value)))


def shown(text):
    """A piece of a spec as an error quotes it: control characters escaped
    as Rust's char::escape_default does, and at most 40 characters. A
    manager gets specs from the network and sends its errors back: a spec
    must not write to the reader's terminal, nor come back a megabyte long."""
    keep = 40
    out = []
    for c in text[:keep]:
        code = ord(c)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            out.append({"\t": "\\t", "\r": "\\r", "\n": "\\n"}.get(c, "\\u{%x}" % code))
        else:
            out.append(c)
    if len(text) > keep:
        out.append("\u2026")
    return "".join(out)


def parse_control(line):
    """Parses one line of the control pipe: `faults SPEC`, the faults now in
    force (the whole state, not a change)."""
    stripped = line.strip()
    parts = stripped.split(None, 1)
    verb = parts[0] if parts else ""
    if verb != CONTROL_FAULTS:
        raise FaultsError("'%s' is not a control line (expected: faults SPEC)" % stripped)
    return Faults.parse(parts[1] if len(parts) > 1 else "")
