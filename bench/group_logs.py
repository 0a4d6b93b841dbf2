#!/usr/bin/env python3
"""Reads the logs of the managers of bench/group.sh (one folder per host,
sN/mgr.log) and answers its questions from their time stamps, so that
measuring a group of 128 does not poll 128 managers (which would cost more
CPU than the group itself).

    group_logs.py converged K ROOT          ms (Unix) when the last of h1..hK
                                            saw the K-1 others alive, or "no"
    group_logs.py dead VICTIM SINCE K ROOT  per other host, ms from SINCE until
                                            it logged VICTIM dead ("-" if not)
    group_logs.py split SINCE A K ROOT      ms from SINCE until each of h1..hA saw
                                            all of hA+1..hK dead and each of
                                            those saw all of h1..hA dead, or "no"
    group_logs.py healed SINCE A K ROOT     ms from SINCE until every host saw
                                            every host of the other side back
    group_logs.py deaths SINCE K ROOT       deaths logged after SINCE, of any
                                            member, and renewals (a manager
                                            declared dead while alive)

The log lines are those of mgr's `control::group` (and, for the mesh
baseline, of the version before it): "member joined", "member is back",
"member restarted", "member moved", "member is dead".
"""

import datetime
import os
import re
import sys

UP = ("member joined", "member is back", "member restarted", "member moved")
DOWN = ("member is dead",)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MEMBER = re.compile(r"\bmember=(\S+)")


def events(root, i):
    """(ms, kind, member) of host i's log, kind 'up', 'down' or 'renewed'."""
    path = os.path.join(root, f"s{i}", "mgr.log")
    out = []
    try:
        lines = open(path, errors="replace").read().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        line = ANSI.sub("", line)
        if not line[:4].isdigit():
            continue
        stamp = line.split()[0]
        try:
            ms = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            continue
        m = MEMBER.search(line)
        if any(w in line for w in UP) and m:
            out.append((ms, "up", m.group(1)))
        elif any(w in line for w in DOWN) and m:
            out.append((ms, "down", m.group(1)))
        elif "declared this manager dead" in line:
            out.append((ms, "renewed", f"h{i}"))
    return out


def alive_after(evs, since=0.0):
    """member -> ms it was last seen going up (None if its last event is down)."""
    state = {}
    for ms, kind, member in evs:
        if ms < since:
            continue
        if kind == "up":
            state[member] = ms
        elif kind == "down":
            state[member] = None
    return state


def converged(k, root):
    last = 0.0
    for i in range(1, k + 1):
        evs = events(root, i)
        state = {}
        reached = None
        for ms, kind, member in evs:
            if kind == "up":
                state[member] = True
            elif kind == "down":
                state[member] = False
            others = sum(1 for j in range(1, k + 1) if j != i and state.get(f"h{j}"))
            if others == k - 1 and reached is None:
                reached = ms
            elif others < k - 1:
                reached = None
        if reached is None:
            return "no"
        last = max(last, reached)
    return str(int(last))


def first(evs, kind, member, since):
    for ms, k, m in evs:
        if ms >= since and k == kind and m == member:
            return ms
    return None


def main():
    cmd = sys.argv[1]
    if cmd == "converged":
        print(converged(int(sys.argv[2]), sys.argv[3]))
    elif cmd == "dead":
        victim, since, k, root = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        for i in range(1, k + 1):
            if f"h{i}" == victim:
                continue
            ms = first(events(root, i), "down", victim, since)
            print("-" if ms is None else int(ms - since))
    elif cmd in ("split", "healed"):
        since, a, k, root = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        kind = "down" if cmd == "split" else "up"
        worst = 0.0
        for i in range(1, k + 1):
            evs = events(root, i)
            others = range(a + 1, k + 1) if i <= a else range(1, a + 1)
            for j in others:
                ms = first(evs, kind, f"h{j}", since)
                if ms is None:
                    print("no")
                    return
                worst = max(worst, ms - since)
        print(int(worst))
    elif cmd == "deaths":
        since, k, root = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        deaths = renewals = 0
        for i in range(1, k + 1):
            for ms, kind, _ in events(root, i):
                if ms >= since:
                    deaths += kind == "down"
                    renewals += kind == "renewed"
        print(deaths, renewals)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
