"""mgr_module: write mgr modules in Python the way the book writes them.

A module is a class whose methods are the book's handlers:

    from mgr_module import Module, PerfectLink, run

    class BestEffortBroadcast(Module):
        help = "  broadcast text   broadcast text to every process\\n  help             this list"

        def upon_init(self):
            self.pl = PerfectLink(self, "beb")          # Uses: PerfectPointToPointLinks
            self.broadcasts = self.id_base

        def upon_broadcast(self, m):                   # stdin: broadcast text
            self.broadcasts += 1
            self.log("broadcast", id=self.broadcasts, text=m)
            for q in self.processes:
                self.pl.send(q, "%d %s" % (self.broadcasts, m))

        def upon_pl_deliver(self, p, m):               # <pl, Deliver | p, m>
            number, _, text = m.partition(" ")
            self.deliver(p, text, id=int(number))      # stdout: deliver p text

    run(BestEffortBroadcast)

The package speaks mgr's launch contract (modules/README.md) with the
standard library only; see README.md beside it.
"""

from .broadcast import BROADCAST_HELP, BestEffortBroadcast, Data, ReliableBroadcast, split_number
from .detectors import DETECTOR_HELP, PerfectFailureDetector
from .commands import Command
from .contract import Contract, ContractError, SocketAddr, parse_socket_addr
from .events import EventLog, Stamp
from .faults import Faults, FaultsError
from .links import (
    FAIR_LOSS_HELP,
    LINK_HELP,
    Ack,
    FairLossLink,
    FairLossPointToPointLink,
    Message,
    PerfectLink,
    PerfectPointToPointLink,
    StubbornLink,
    StubbornPointToPointLink,
    decode_frame,
    encode_frame,
)
from .runtime import Module, Runtime, UsageError, period_arg, run, say, warn

__version__ = "0.1.0"

# The library's modules by the names `python3 -m mgr_module NAME` takes,
# which are those of the built-in Rust modules with the same wire formats.
MODULES = {
    "FairLossPointToPointLink": FairLossLink,
    "StubbornPointToPointLink": StubbornLink,
    "PerfectPointToPointLink": PerfectLink,
    "PerfectFailureDetector": PerfectFailureDetector,
    "BestEffortBroadcast": BestEffortBroadcast,
    "ReliableBroadcast": ReliableBroadcast,
}

__all__ = [
    "Ack",
    "BROADCAST_HELP",
    "BestEffortBroadcast",
    "Command",
    "Contract",
    "ContractError",
    "DETECTOR_HELP",
    "Data",
    "EventLog",
    "FAIR_LOSS_HELP",
    "FairLossLink",
    "FairLossPointToPointLink",
    "Faults",
    "FaultsError",
    "LINK_HELP",
    "MODULES",
    "Message",
    "Module",
    "PerfectFailureDetector",
    "PerfectLink",
    "PerfectPointToPointLink",
    "ReliableBroadcast",
    "Runtime",
    "SocketAddr",
    "Stamp",
    "StubbornLink",
    "StubbornPointToPointLink",
    "UsageError",
    "decode_frame",
    "encode_frame",
    "parse_socket_addr",
    "period_arg",
    "run",
    "say",
    "split_number",
    "warn",
]
