#!/usr/bin/env python3
"""A deliberately broken best-effort broadcast, for `mgrctl check` to catch.

It is the best-effort broadcast of best_effort.py (same wire format, so it
even shares a run with correct processes), except that every third message
it delivers it delivers twice: BEB2 (no duplication) is violated, and the
events file shows where.
"""

import os
import sys

_SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.path.isdir(os.path.join(_SDK, "mgr_module")):
    sys.path.insert(0, _SDK)

from mgr_module import BROADCAST_HELP, Module, PerfectLink, period_arg, run, split_number  # noqa: E402


class BrokenBroadcast(Module):
    """Claims: BestEffortBroadcast, instance beb. Delivers every third
    message twice."""

    help = BROADCAST_HELP
    # The retransmission period Δ of the links below, in seconds (--period-ms).
    period = 0.1

    def configure(self, args):
        self.period = period_arg(args, self.period)

    def upon_init(self):
        self.pl = PerfectLink(self, "beb", period=self.period)
        self.broadcasts = self.id_base
        self.deliveries = 0

    def upon_broadcast(self, m):
        self.broadcasts += 1
        self.log("broadcast", id=self.broadcasts, text=m)
        for q in self.processes:
            self.pl.send(q, "%d %s" % (self.broadcasts, m))

    def upon_pl_deliver(self, p, m):
        numbered = split_number(m)
        if numbered is None:
            return
        number, text = numbered
        self.deliver(p, text, id=number)
        self.deliveries += 1
        # The bug: every third delivery happens twice.
        if self.deliveries % 3 == 0:
            self.deliver(p, text, id=number)


if __name__ == "__main__":
    run(BrokenBroadcast)
