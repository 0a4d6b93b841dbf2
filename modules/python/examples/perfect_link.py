#!/usr/bin/env python3
"""Module 2.3, perfect point-to-point link (Algorithm 2.2, Eliminate
Duplicates), on the SDK's stubborn link.

Frames are those of the Rust PerfectPointToPointLink alone,
`<id> <LAMPORT>/<V1.V2...> <text>`, retransmitted forever every Δ, so Python
and Rust instances of this link exchange messages in one run.

Arguments: --period-ms N (Δ, 500 by default).
"""

import os
import sys

_SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.path.isdir(os.path.join(_SDK, "mgr_module")):
    sys.path.insert(0, _SDK)

from mgr_module import LINK_HELP, Module, StubbornLink, period_arg, run  # noqa: E402


class PerfectPointToPointLink(Module):
    """Implements: PerfectPointToPointLinks, instance pl.
    Uses: StubbornPointToPointLinks, instance sl.

    Events
        Request:    <pl, Send | q, m>     stdin:  send q text
        Indication: <pl, Deliver | p, m>  stdout: deliver p text
    """

    help = LINK_HELP
    # The retransmission period Δ in seconds (--period-ms).
    period = 0.5

    def configure(self, args):
        self.period = period_arg(args, self.period)

    def upon_init(self):
        """upon event <pl, Init> do delivered := {}."""
        self.sl = StubbornLink(self, period=self.period)
        # The book assumes every message is unique; here a message is its
        # sender and the sender's id for it.
        self.delivered = set()

    def upon_send(self, q, m):
        """upon event <pl, Send | q, m> do trigger <sl, Send | q, m>."""
        if self.check_peer(q):
            self.sl.send(q, m)

    def upon_sl_deliver(self, p, m):
        """upon event <sl, Deliver | p, m> do
        if m not in delivered: delivered := delivered + {m}; trigger <pl, Deliver | p, m>."""
        if (p, m.id) not in self.delivered:
            self.delivered.add((p, m.id))
            self.deliver(p, m.text, id=m.id, stamp=m.stamp)


if __name__ == "__main__":
    run(PerfectPointToPointLink)
