#!/usr/bin/env python3
"""A receiver of the ack lab written as the report's students would, with the
standard library only: it registers with AckDiscovery over HTTP (the
report's Flask API), heartbeats, and answers each `REQUEST r a text`
datagram with `ACK r a`, unless it crashes first (--crash-prob, as in the
report). Usage: ack_receiver.py [--discovery IP:PORT] [--crash-prob P]."""
import json, os, random, socket, sys, threading, time, urllib.request

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
peers = dict(e.split("=", 1) for e in os.environ["MGR_PEERS"].split(","))
roles = dict(r.split("=", 1) for r in os.environ.get("MGR_ROLES", "").split(";") if r)
discovery = args.get("--discovery") or peers[roles["discovery"].split(",")[0]]
crash_prob = float(args.get("--crash-prob", "0.5"))
me = {"address": os.environ["MGR_ADDR"], "id": os.environ["MGR_SELF"]}

def post(path, body):
    request = urllib.request.Request(f"http://{discovery}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as answer:
        return json.load(answer)

def heartbeat():  # registers, then heartbeats; registers again when expired
    registered = False
    while True:
        try:
            if not registered:
                period = post("/register", me)["heartbeat_ms"] / 1000
                print(f"registered as {me['id']} with {discovery}", flush=True)
            registered = post("/heartbeat", {"id": me["id"]}) is not None
        except OSError as err:  # discovery not up yet, or it forgot us (404)
            registered = False
            print(f"discovery: {err}", file=sys.stderr, flush=True)
        time.sleep(period if registered else 0.2)

sock = socket.socket(fileno=int(os.environ["MGR_UDP_FD"]))  # mgr's socket (socket = "inherit")
names = {addr: name for name, addr in peers.items()}
threading.Thread(target=heartbeat, daemon=True).start()
while True:
    data, client = sock.recvfrom(65536)
    words = data.decode(errors="replace").split(" ", 3)
    if len(words) < 3 or words[0] != "REQUEST":
        continue  # not ours
    time.sleep(0.05)  # the work
    if random.random() < crash_prob:
        print(f"crash while processing request {words[1]}", flush=True)
        os._exit(101)
    sock.sendto(f"ACK {words[1]} {words[2]}".encode(), client)
    print(f"ack request {words[1]} to {names.get('%s:%d' % client, client[0])}", flush=True)
