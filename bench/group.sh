#!/usr/bin/env bash
# Benchmark of the group: managers in network namespaces on a bridge of our
# own (a private subnet; mDNS only there, never on the host's interfaces).
#
#   sudo bash bench/group.sh          # root: it makes namespaces
#
# Measures, in one run, with real `mgr` daemons (release build, one group key):
#   (a) convergence: K managers (K = 2, 4, 8) started with mDNS discovery and no
#       --join; time from the last start until every member lists all K alive
#       (polled every 10 ms over each daemon's Unix socket); same with --join
#       instead of mDNS, as a baseline
#   (b) crash detection: kill -9 of one of 4 managers; time until another lists
#       it dead (polled every 10 ms)
#   (c) cross-host launch latency: `mgrctl exec 8 -- true` spread over 4 members,
#       against the same 8 instances on the coordinating member alone (hyperfine)
#   (d) cross-host output: 4 instances of `seq 1 $LINES` spread over 4 members
#       into a file, lines/s and lines lost, against the same on one member
# Prints a markdown table and writes it to bench/group-latest.md.
# Environment: RUNS (default 5), LINES (default 500000).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-5}
LINES=${LINES:-500000}
TAG="mgrb$$"
SUBNET="10.232.$(( $$ % 200 + 20 ))"

log() { printf '[group-bench] %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { echo "bench/group.sh makes network namespaces: run it as root" >&2; exit 1; }
command -v hyperfine >/dev/null 2>&1 || { log "installing hyperfine"; apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }

log "cargo build --release --bins"
cargo build --release --bins
MGR="$ROOT/target/release/mgr"
MGRCTL="$ROOT/target/release/mgrctl"

W=$(mktemp -d)
HOSTS=0
cleanup() {
    local rc=$?
    for i in $(seq 1 "$HOSTS"); do
        local ns="$TAG-h$i"
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        # Deleting our end of the veth removes the pair at once (a deleted
        # namespace's own end goes only later, in the background).
        ip link del "mb$$v$i" 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "$TAG" 2>/dev/null || true
    rm -rf "$W"
    exit $rc
}
trap cleanup EXIT INT TERM

# K hosts h1..hK on bridge $TAG, 10.232.X.i/24, multicast routed to eth0.
ip link add "$TAG" type bridge
ip link set "$TAG" up
make_hosts() {
    local k=$1
    while [ "$HOSTS" -lt "$k" ]; do
        HOSTS=$((HOSTS + 1))
        local i=$HOSTS ns="$TAG-h$HOSTS" veth="mb$$v$HOSTS"
        ip netns add "$ns"
        ip link add "$veth" type veth peer name eth0 netns "$ns"
        ip link set "$veth" master "$TAG" up
        ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" route add 224.0.0.0/4 dev eth0
    done
}

"$MGR" keygen "$W/key" >/dev/null
# start_mgr I [extra args…]: a manager in namespace I, state in $W/sI; waits
# for its socket.
start_mgr() {
    local i=$1; shift
    local dir="$W/s$i"
    mkdir -p "$dir"
    ip netns exec "$TAG-h$i" "$MGR" start --name "h$i" --state-dir "$dir" --key-file "$W/key" \
        --listen "$SUBNET.$i:6170" --ports 24000-24999 --allow-exec --grace 1 "$@" \
        >>"$dir/mgr.log" 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 1 500); do
        "$MGRCTL" --socket "$dir/mgr.sock" members >/dev/null 2>&1 && return 0
        sleep 0.01
    done
    log "h$i did not start"; cat "$dir/mgr.log" >&2; return 1
}
stop_mgr() {
    local i=$1 pid
    pid=$(cat "$W/s$i/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
alive_count() { "$MGRCTL" --socket "$W/s$1/mgr.sock" members --json 2>/dev/null | grep -c '"state":"alive"' || true; }
now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# converge K MODE: starts K managers (mdns or join), prints ms from the last
# start until all see K alive, then stops them.
converge() {
    local k=$1 mode=$2 i last done_ms
    rm -rf "$W"/s*
    for i in $(seq 1 "$k"); do
        if [ "$mode" = mdns ]; then
            start_mgr "$i" --iface eth0
        else
            # Each joins the first: the group is one hop from everyone.
            if [ "$i" -eq 1 ]; then start_mgr "$i" --no-mdns; else start_mgr "$i" --no-mdns --join "$SUBNET.1:6170"; fi
        fi
    done
    last=$(now_ms)
    while :; do
        local all=1
        for i in $(seq 1 "$k"); do [ "$(alive_count "$i")" -eq "$k" ] || { all=0; break; }; done
        [ $all -eq 1 ] && break
        [ $(( $(now_ms) - last )) -gt 20000 ] && { log "no convergence in 20 s"; break; }
        sleep 0.01
    done
    done_ms=$(now_ms)
    for i in $(seq 1 "$k"); do stop_mgr "$i"; done
    echo $((done_ms - last))
}

ROWS=()
row() { ROWS+=("$1"); }

# Every host the runs below use, made once here: the measurements run in
# subshells, which could not record hosts made inside them for cleanup.
make_hosts 8

for k in 2 4 8; do
    log "convergence: $k managers, mDNS and --join ($RUNS runs each)"
    MD=$(for _ in $(seq 1 "$RUNS"); do converge "$k" mdns; done | median)
    JN=$(for _ in $(seq 1 "$RUNS"); do converge "$k" join; done | median)
    row "| convergence, $k managers, mDNS only (no --join) | $MD ms | with --join instead of mDNS: $JN ms | – | ≤ 1000 ms after the last start | $( [ "${MD%.*}" -le 1000 ] && echo yes || echo no ) |"
done

log "crash detection: kill -9 of one of 4 ($RUNS runs)"
DETECT=()
for _ in $(seq 1 "$RUNS"); do
    rm -rf "$W"/s*
    for i in 1 2 3 4; do start_mgr "$i" --iface eth0; done
    until [ "$(alive_count 1)" -eq 4 ]; do sleep 0.01; done
    killed=$(now_ms)
    kill -KILL "$(cat "$W/s4/pid")"
    until "$MGRCTL" --socket "$W/s1/mgr.sock" members --json | grep '"name":"h4"' | grep -q '"state":"dead"'; do sleep 0.01; done
    DETECT+=($(( $(now_ms) - killed )))
    for i in 1 2 3; do stop_mgr "$i"; done
done
DET=$(printf '%s\n' "${DETECT[@]}" | median)
row "| crash detection: \`kill -9\` of 1 of 4 managers until another lists it dead | $DET ms | the failure timeout, 1500 ms, is the floor by design | – | ≤ 2000 ms | $( [ "${DET%.*}" -le 2000 ] && echo yes || echo no ) |"

log "cross-host launch and output (4 members)"
rm -rf "$W"/s*
for i in 1 2 3 4; do start_mgr "$i" --iface eth0; done
until [ "$(alive_count 1)" -eq 4 ]; do sleep 0.01; done
S1="$W/s1/mgr.sock"
hyperfine -N --warmup 3 --runs 30 --export-json "$W/launch.json" \
    -n spread "$MGRCTL --socket $S1 exec 8 -- true" \
    -n local "$MGRCTL --socket $S1 exec 8 --on h1 -- true" >&2
read -r SPREAD LOCAL < <(python3 -c "
import json; r={x['command']: x['median']*1000 for x in json.load(open('$W/launch.json'))['results']}
print('%.1f %.1f' % (r['spread'], r['local']))")
RATIO=$(python3 -c "print('%.2f' % ($SPREAD / $LOCAL))")
row "| cross-host launch: \`mgrctl exec 8 -- true\` spread over 4 members | $SPREAD ms | the same 8 on one member (\`--on h1\`): $LOCAL ms | ${RATIO}× | – | – |"

through() { # through PLACEMENT-ARGS…: prints "seconds lost"
    local t0 t1 out="$W/out.txt"
    t0=$(date +%s.%N)
    NO_COLOR=1 "$MGRCTL" --socket "$S1" exec 4 "$@" -- seq 1 "$LINES" > "$out"
    t1=$(date +%s.%N)
    local lost
    lost=$(python3 - "$out" "$LINES" <<'EOF'
import sys, re, collections
seen = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(p\d+)@\S+\s*\| (\d+)$", line.rstrip("\n"))
    if m:
        seen[m.group(1), int(m.group(2))] += 1
want = int(sys.argv[2])
print(sum(1 for p in ("p1", "p2", "p3", "p4") for x in range(1, want + 1) if seen[p, x] != 1))
EOF
)
    echo "$(python3 -c "print($t1 - $t0)") $lost"
}
SP=(); LO=(); LOST=0
for _ in $(seq 1 "$RUNS"); do
    read -r s l < <(through); SP+=("$s"); LOST=$((LOST + l))
    read -r s l < <(through --on h1); LO+=("$s"); LOST=$((LOST + l))
done
SPS=$(printf '%s\n' "${SP[@]}" | median); LOS=$(printf '%s\n' "${LO[@]}" | median)
RATE=$(python3 -c "print('%.2f' % (4 * $LINES / $SPS / 1e6))"); LRATE=$(python3 -c "print('%.2f' % (4 * $LINES / $LOS / 1e6))")
row "| cross-host output: 4 × \`seq 1 $LINES\` spread over 4 members into a file | $RATE M lines/s | the same on one member: $LRATE M lines/s | $(python3 -c "print('%.2f' % ($RATE / $LRATE))")× | nothing lost ($LOST lines lost in $((2 * RUNS)) runs) | $( [ "$LOST" -eq 0 ] && echo yes || echo no ) |"
for i in 1 2 3 4; do stop_mgr "$i"; done

{
    echo "Results of \`sudo bash bench/group.sh\` (RUNS=$RUNS, LINES=$LINES), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) CPUs"
    echo
    echo "| metric | mgr (median) | baseline in the same run | ratio / note | target | met |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee bench/group-latest.md
