#!/usr/bin/env python3
"""Module 3.2, reliable broadcast (Algorithm 3.2, Eager Reliable Broadcast),
on the SDK's best-effort broadcast.

The wire format is that of the Rust ReliableBroadcast (eager): its
best-effort broadcast and link are the instance `rb`, and each message is
`DATA <sender> <number> <text>`, so Python and Rust processes share a run.

Arguments: --period-ms N (the links' retransmission period, 100 by default).
"""

import os
import sys

_SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.path.isdir(os.path.join(_SDK, "mgr_module")):
    sys.path.insert(0, _SDK)

from mgr_module import BROADCAST_HELP, BestEffortBroadcast, Data, Module, period_arg, run, warn  # noqa: E402


class ReliableBroadcast(Module):
    """Implements: ReliableBroadcast, instance rb.
    Uses: BestEffortBroadcast, instance beb.

    Events
        Request:    <rb, Broadcast | m>   stdin:  broadcast text
        Indication: <rb, Deliver | s, m>  stdout: deliver s text
    """

    help = BROADCAST_HELP
    # The retransmission period Δ of the links below, in seconds (--period-ms).
    period = 0.1

    def configure(self, args):
        self.period = period_arg(args, self.period)

    def upon_init(self):
        """upon event <rb, Init> do delivered := {}."""
        self.beb = BestEffortBroadcast(self, "rb", period=self.period)
        self.delivered = set()
        self.broadcasts = self.id_base

    def upon_broadcast(self, m):
        """upon event <rb, Broadcast | m> do
        trigger <beb, Broadcast | [DATA, self, m]>."""
        self.broadcasts += 1
        self.log("broadcast", id=self.broadcasts, text=m)
        self.beb.broadcast(Data(self.self_name, self.broadcasts, m).encode())

    def upon_beb_deliver(self, p, m):
        """upon event <beb, Deliver | p, [DATA, s, m]> do
        if m not in delivered:
            delivered := delivered + {m}
            trigger <rb, Deliver | s, m>
            trigger <beb, Broadcast | [DATA, s, m]>."""
        data = Data.decode(m)
        if data is None:
            warn("rb: dropped a message from %s that is not DATA: %r" % (p, m))
            return
        if (data.sender, data.id) not in self.delivered:
            self.delivered.add((data.sender, data.id))
            self.deliver(data.sender, data.text, id=data.id)
            self.beb.broadcast(m)


if __name__ == "__main__":
    run(ReliableBroadcast)
