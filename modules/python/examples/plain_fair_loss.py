#!/usr/bin/env python3
"""Module 2.1, fair-loss point-to-point link, in Python: an example of a
module in another language, speaking mgr's launch contract
(modules/README.md) with the standard library only.

Events
    Request  <fll, Send | q, m>     stdin:  send q text   (q: p2, or ip:port)
    Indication <fll, Deliver | p, m>  stdout: deliver p text

Properties: FLL1 fair-loss, FLL2 finite duplication, FLL3 no creation.
UDP itself is the link; the payload is the text as UTF-8, so it talks with
the Rust FairLossPointToPointLink and with any UDP tool.
"""

import os
import socket
import sys
import threading


def peers():
    """MGR_PEERS as {name: (ip, port)}."""
    table = {}
    for entry in os.environ["MGR_PEERS"].split(","):
        name, addr = entry.split("=", 1)
        host, port = addr.rsplit(":", 1)
        table[name] = (host.strip("[]"), int(port))
    return table


def open_socket():
    """The socket mgr bound for us (MGR_UDP_FD), else bind MGR_ADDR."""
    if os.environ.get("MGR_UDP_FD"):
        return socket.socket(fileno=int(os.environ["MGR_UDP_FD"]))
    host, port = os.environ["MGR_ADDR"].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host.strip("[]"), int(port)))
    return sock


def say(line):
    # stdout is a pipe: flush every line, or the user never sees it.
    print(line, flush=True)


def main():
    table = peers()
    names = {addr: name for name, addr in table.items()}
    sock = open_socket()

    def upon_deliver():
        while True:
            data, addr = sock.recvfrom(65536)
            p = names.get(addr, "%s:%d" % addr)
            say("deliver %s %s" % (p, data.decode("utf-8", "replace").rstrip("\r\n")))

    threading.Thread(target=upon_deliver, daemon=True).start()

    for line in sys.stdin:
        line = line.strip()
        # Lines from mgr itself (such as "#mgr faults ...") are not user input;
        # this example applies no faults.
        if not line or line.startswith("#mgr "):
            continue
        words = line.split(None, 2)
        if words[0] == "send" and len(words) == 3:
            q, m = words[1], words[2]
            if q in table:
                sock.sendto(m.encode(), table[q])
            elif ":" in q:
                host, port = q.rsplit(":", 1)
                sock.sendto(m.encode(), (host, int(port)))
            else:
                say("error: unknown process '%s'" % q)
        else:
            say("error: unknown command '%s' (try: send q text)" % words[0])
    # End of stdin is not the end of the module: keep delivering until killed.
    threading.Event().wait()


if __name__ == "__main__":
    main()
