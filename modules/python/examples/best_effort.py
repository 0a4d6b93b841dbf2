#!/usr/bin/env python3
"""Module 3.1, best-effort broadcast (Algorithm 3.1, Basic Broadcast), on
the SDK's perfect link.

The wire format is that of the Rust BestEffortBroadcast: the perfect link
instance `beb` carries `<number> <text>`, the number of the broadcast at its
sender, so Python and Rust processes of this module share a run.

Arguments: --period-ms N (the link's retransmission period, 100 by default).
"""

import os
import sys

_SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.path.isdir(os.path.join(_SDK, "mgr_module")):
    sys.path.insert(0, _SDK)

from mgr_module import BROADCAST_HELP, Module, PerfectLink, period_arg, run, split_number, warn  # noqa: E402


class BestEffortBroadcast(Module):
    """Implements: BestEffortBroadcast, instance beb.
    Uses: PerfectPointToPointLinks, instance pl.

    Events
        Request:    <beb, Broadcast | m>   stdin:  broadcast text
        Indication: <beb, Deliver | p, m>  stdout: deliver p text
    """

    help = BROADCAST_HELP
    # The retransmission period Δ of the links below, in seconds (--period-ms).
    period = 0.1

    def configure(self, args):
        self.period = period_arg(args, self.period)

    def upon_init(self):
        # The link's frames start with `beb:`, as the Rust module's.
        self.pl = PerfectLink(self, "beb", period=self.period)
        # Broadcasts are numbered so that the events file pairs a
        # `broadcast` with its `deliver`s; a restarted process goes on from
        # a number no earlier incarnation used.
        self.broadcasts = self.id_base

    def upon_broadcast(self, m):
        """upon event <beb, Broadcast | m> do
        forall q in Π do trigger <pl, Send | q, m>."""
        self.broadcasts += 1
        # Logged before the messages leave, so the clocks order it first.
        self.log("broadcast", id=self.broadcasts, text=m)
        for q in self.processes:
            self.pl.send(q, "%d %s" % (self.broadcasts, m))

    def upon_pl_deliver(self, p, m):
        """upon event <pl, Deliver | p, m> do trigger <beb, Deliver | p, m>."""
        numbered = split_number(m)
        if numbered is None:
            warn("beb: dropped a message from %s without a broadcast number: %r" % (p, m))
            return
        number, text = numbered
        self.deliver(p, text, id=number)


if __name__ == "__main__":
    run(BestEffortBroadcast)
