#!/usr/bin/env python3
"""Module 2.1, fair-loss point-to-point link, on the mgr_module SDK.

UDP itself is the link: a datagram may be lost, duplicated or reordered,
which is all the properties allow. The payload is the text as UTF-8, so this
module talks with the Rust FairLossPointToPointLink, with the seminar's
class and with `nc -u`.
"""

import os
import sys

# Use the SDK beside this example when it is there, so that the example runs
# from a checkout without `pip install`.
_SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.path.isdir(os.path.join(_SDK, "mgr_module")):
    sys.path.insert(0, _SDK)

from mgr_module import LINK_HELP, Module, run  # noqa: E402


class FairLossPointToPointLink(Module):
    """Implements: FairLossPointToPointLinks, instance fll.

    Events
        Request:    <fll, Send | q, m>     stdin:  send q text
        Indication: <fll, Deliver | p, m>  stdout: deliver p text
    """

    help = LINK_HELP

    def upon_send(self, q, m):
        """upon event <fll, Send | q, m> do send m to q, in one datagram."""
        if self.check_peer(q):
            # A fair-loss payload is bare text, so the send has no id.
            self.events.send(q, None, m)
            self.send_datagram(q, m)

    def upon_datagram(self, p, payload):
        """A datagram from p: trigger <fll, Deliver | p, m>. One trailing
        newline is dropped, as `nc` sends the newline of the typed line."""
        m = payload.decode("utf-8", "replace")
        if m.endswith("\n"):
            m = m[:-1]
        self.deliver(p, m)


if __name__ == "__main__":
    run(FairLossPointToPointLink)
