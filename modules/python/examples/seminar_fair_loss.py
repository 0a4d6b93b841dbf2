#!/usr/bin/env python3
"""The seminar's fair-loss link, unmodified, as a module of mgr.

The class FairLossPointToPointLink below is the one of the seminar that
defined mgr (shared/seeds, "Exemplo de módulo"), kept as the seminar wrote
it: it binds its own address and watches its socket on a thread of its own.
It does not use the mgr_module SDK. The few lines after it are all a
program of this kind needs to follow mgr's launch contract: read MGR_ADDR
and MGR_PEERS, turn `send q text` on stdin into Send, and print each
delivery as `deliver p text` with p the peer's name. Its manifest says
`socket = "bind"`, so mgr lets it bind MGR_ADDR itself.

Limits that come from the seminar's code, left as they are: IPv4 only
(`socket(type=SOCK_DGRAM)`), datagrams of at most 1024 bytes, no events file
and no faults.
"""

import os
import sys
from socket import socket, SOCK_DGRAM
from threading import Thread


# The seminar's class used a `solve_address` it did not show: here it turns
# a process name of MGR_PEERS, an `ip:port` text or an (ip, port) pair from
# recvfrom into the (ip, port) pair the socket functions take.
def solve_address(address):
    if isinstance(address, tuple):
        return address[:2]
    if address in PEERS:
        return PEERS[address]
    host, _, port = address.rpartition(":")
    return (host, int(port))


class FairLossPointToPointLink:

    """
    Module 2.1: Interface and properties of fair-loss point-to-point links

    Events
    -----
    Send(q, m):
        Requests to send message m to process q.
    Deliver(p, m):
        Delivers message m sent by process p.

    Properties
    -----
    FLL1: Fair-loss:
        If a correct process p infinitely often sends a message m to a
        correct process q, then q delivers m an infinite number of times.
    FLL2: Finite duplication:
        If a correct process p sends a message m a finite number
        of times to process q, then m cannot be delivered an infinite number of times by q.
    FLL3: No creation:
        If some process q delivers a message m with sender p, then m
        was previously sent to q by process p.
    """

    def __init__(self, address, on_delivery = print):
        self.handle_delivery = on_delivery

        self.socket = socket(type=SOCK_DGRAM)
        self.socket.bind(solve_address(address))


        self.threads = [Thread(target=f) for f in (self.watch,)]
        for t in self.threads:
            t.start()

    def Send(self, q, m):
        # Requests to send message m to process q.
        q = solve_address(q)
        self.socket.sendto(m.encode(), q)

    def Deliver(self, p, m):
        # Delivers message m sent by process p.
        p = solve_address(p)
        self.handle_delivery('.'.join(map(str, p)), m)

    def watch(self):
        # Watches the link.
        while(True):
            message, address = self.socket.recvfrom(1024)
            self.Deliver(address, message.decode())


# ---- the launch contract around it ------------------------------------------

HELP = "  send q text   send text to process q, e.g. send p2 hello\n  help          this list"

# MGR_PEERS: p1=ip:port,p2=ip:port,... as {name: (ip, port)}.
PEERS = {}
for entry in os.environ["MGR_PEERS"].split(","):
    if entry.strip():
        name, _, addr = entry.strip().partition("=")
        host, _, port = addr.rpartition(":")
        PEERS[name] = (host, int(port))
# Deliver names the sender 'ip.port' (the seminar's join): back to its name.
NAMES = {".".join(map(str, addr)): name for name, addr in PEERS.items()}


def say(line):
    # stdout is a pipe: one write per line, flushed, or the user never sees it.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def on_delivery(p, m):
    ip, _, port = p.rpartition(".")
    say("deliver %s %s" % (NAMES.get(p, "%s:%s" % (ip, port)), m[:-1] if m.endswith("\n") else m))


link = FairLossPointToPointLink(os.environ["MGR_ADDR"], on_delivery)
for line in sys.stdin:
    words = line.split(None, 2)
    if not words:
        continue
    if words[0] == "help":
        say(HELP)
    elif words[0] != "send":
        say("error: unknown command '%s' (try: send, help)" % words[0])
    elif len(words) < 3:
        say("error: usage: send q text   send text to process q, e.g. send p2 hello")
    elif words[1] not in PEERS:
        say("error: unknown process '%s' (peers: %s)" % (words[1], ", ".join(PEERS)))
    else:
        link.Send(words[1], words[2].rstrip("\r\n"))
# End of stdin is not the end of the module: the link's thread keeps
# delivering until mgr stops the process.
