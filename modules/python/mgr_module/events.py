"""The structured event log (MGR_EVENTS) and the process's logical clocks.

Every line of the file is one JSON object, in the format and field order the
Rust runtime writes (modules/src/runtime/events.rs):

    {"time_ms":1700000000000,"run":"lab1","process":"p1","event":"send","peer":"p2","id":1,"lamport":1,"vc":[1,0],"inc":1,"text":"hello"}

The clocks live here because the log is where their values are used: tools
that check runs or draw space-time diagrams order events by `lamport`,
relate them by the vector clock `vc` (one entry per process of the run, in
MGR_PEERS order), and pair a `send` with its `receive` or `deliver` by
(`process`, `peer`, `id`).
"""

import json
import os
import sys
import time

from .contract import parse_u64


class Stamp:
    """The clocks a message carries: the sender's Lamport clock and vector
    clock at the send."""

    __slots__ = ("lamport", "vc")

    def __init__(self, lamport=0, vc=()):
        self.lamport = lamport
        self.vc = list(vc)

    def __eq__(self, other):
        return isinstance(other, Stamp) and (self.lamport, self.vc) == (other.lamport, other.vc)

    def __repr__(self):
        return "Stamp(%d, %r)" % (self.lamport, self.vc)

    def encode(self):
        """One token for a frame: `LAMPORT/V1.V2.V3`."""
        return "%d/%s" % (self.lamport, ".".join(str(v) for v in self.vc))

    @staticmethod
    def decode(token):
        """Reads a token made by encode; None if it is not one."""
        lamport_text, sep, vc_text = token.partition("/")
        if not sep:
            return None
        lamport = parse_u64(lamport_text)
        if lamport is None:
            return None
        vc = []
        if vc_text:
            for part in vc_text.split("."):
                value = parse_u64(part)
                if value is None:
                    return None
                vc.append(value)
        return Stamp(lamport, vc)


class EventLog:
    """Appends events to the MGR_EVENTS file (or to nothing when there is no
    file) and keeps the Lamport and vector clocks.

    `me` is this process's index among the `n` processes of the run and
    `inc` its incarnation, written on every line as `inc`.
    """

    def __init__(self, path, run, process, me, n, inc=1):
        # O_APPEND makes each write land whole at the end of the file, so the
        # lines of several processes sharing one file do not interleave.
        self._fd = None if path is None else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self.run = run
        self.process = process
        self.inc = inc
        self.lamport = 0
        self.vc = [0] * max(n, me + 1)
        self.me = me
        self._warned = False

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _tick(self):
        self.lamport += 1
        self.vc[self.me] += 1

    def stamp(self):
        """The clocks now, as a message would carry them."""
        return Stamp(self.lamport, self.vc)

    def send(self, peer, id, text):
        """Records a send to `peer` and returns the stamp the message
        carries (the clocks tick before a send)."""
        self._tick()
        self._write("send", peer, id, text)
        return self.stamp()

    def arrive(self, event, peer, id, stamp, text):
        """Records the arrival of a message from `peer` as `event`
        (`receive` at a link below the user, `deliver` where the user sees
        it). With the sender's `stamp` the clocks take the maximum, then
        tick; without one (fair-loss payloads are bare text) the arrival is
        a local event. Returns the Lamport clock after it."""
        if stamp is not None:
            self.lamport = max(self.lamport, stamp.lamport)
            for i, theirs in enumerate(stamp.vc[: len(self.vc)]):
                if theirs > self.vc[i]:
                    self.vc[i] = theirs
        self._tick()
        self._write(event, peer, id, text)
        return self.lamport

    def deliver(self, peer, id, stamp, text):
        """Records a delivery from `peer` (see arrive)."""
        return self.arrive("deliver", peer, id, stamp, text)

    def record(self, event, peer=None, id=None, text=None):
        """Records any other event, a local event for the clocks: a
        broadcast, a suspicion, a decision..."""
        self._tick()
        self._write(event, peer, id, text)

    def line(self, event, peer, id, text, time_ms=None):
        """The line written for an event with the clocks as they are now."""
        if time_ms is None:
            time_ms = time.time_ns() // 1_000_000
        record = {
            "time_ms": time_ms,
            "run": self.run,
            "process": self.process,
            "event": event,
            "peer": peer,
            "id": id,
            "lamport": self.lamport,
            "vc": self.vc,
            "inc": self.inc,
            "text": text,
        }
        # Compact and not ASCII-escaped, as serde_json writes it.
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"

    def _write(self, event, peer, id, text):
        if self._fd is None:
            return
        data = self.line(event, peer, id, text).encode("utf-8", "replace")
        try:
            # One write per line (see __init__).
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError("short write (%d of %d bytes)" % (written, len(data)))
        except OSError as err:
            # The module keeps working without its log; one warning is enough
            # to explain the gap without flooding stderr.
            if not self._warned:
                print("events: cannot append to the events file: %s" % err, file=sys.stderr, flush=True)
                self._warned = True
