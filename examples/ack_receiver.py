#!/usr/bin/env python3
"""A receiver of the ack lab written as the report's students would, with the
standard library only: it registers with AckDiscovery over HTTP (the
report's Flask API), heartbeats, and answers each `REQUEST r a text`
datagram with `ACK r a`, unless it crashes first (--crash-prob, as in the
report). Usage: ack_receiver.py [--discovery IP:PORT] [--crash-prob P]."""
import json, os, random, socket, sys, threading, time, urllib.request

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
peers = dict(e.split("=", 1) for e in os.environ["MGR_PEERS"].split(","))
names = {addr: name for name, addr in peers.items()}
roles = dict(r.split("=", 1) for r in os.environ.get("MGR_ROLES", "").split(";") if r)
discovery = args.get("--discovery") or peers[roles["discovery"].split(",")[0]]
crash_prob = float(args.get("--crash-prob", "0.5"))

def post(path, body):
    request = urllib.request.Request(f"http://{discovery}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as answer:
        return json.load(answer)

if os.environ.get("MGR_UDP_FD"):  # the socket mgr bound for us
    sock = socket.socket(fileno=int(os.environ["MGR_UDP_FD"]))
else:
    host, port = os.environ["MGR_ADDR"].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
while True:  # discovery may not be up yet
    try:
        me = post("/register", {"address": os.environ["MGR_ADDR"], "id": os.environ["MGR_SELF"]})
        break
    except OSError:
        time.sleep(0.2)
print(f"registered as {me['id']} with {discovery}", flush=True)

def heartbeat():
    while True:
        time.sleep(me["heartbeat_ms"] / 1000)
        try:
            post("/heartbeat", {"id": me["id"]})
        except urllib.error.HTTPError:  # expired: register again
            post("/register", {"address": os.environ["MGR_ADDR"], "id": me["id"]})
        except OSError as err:
            print(f"heartbeat: {err}", file=sys.stderr, flush=True)

threading.Thread(target=heartbeat, daemon=True).start()
while True:
    data, client = sock.recvfrom(65536)
    verb, request, attempt, *text = data.decode().split(" ", 3)
    if verb != "REQUEST":
        continue
    time.sleep(0.05)  # the work
    if random.random() < crash_prob:
        print(f"crash while processing request {request}", flush=True)
        os._exit(101)
    sock.sendto(f"ACK {request} {attempt}".encode(), client)
    print(f"ack request {request} to {names.get(f'{client[0]}:{client[1]}', client[0])}", flush=True)
