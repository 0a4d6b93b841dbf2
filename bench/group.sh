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
#   (e) the group at scale (PART=scale): K = 16, 32, 64, 128 managers, mDNS
#       only, medians of SCALE_RUNS (3) runs: convergence after the last
#       start, idle CPU of all K over IDLE (30) s, RSS per manager, kill -9
#       of one member until every other lists it dead, `mgrctl ps` over the
#       group, `mgrctl launch BestEffortBroadcast 2K`, a K/2 | K/2 partition
#       and its heal; and the same first four for the full-mesh membership of
#       MESH_COMMIT (built in a worktree) at MESH_KS (16 32), side by side
#   (f) PART=soak: K = 64 idle for SOAK_MIN (10) minutes, counting members
#       declared dead (none was killed, so every one is false)
# Timings at scale come from the managers' own logs (bench/group_logs.py):
# polling 128 managers would cost more CPU than the group does.
# Prints a markdown table and writes it to bench/group-latest.md (PART=small),
# bench/group-scale-latest.md (PART=scale), bench/group-soak-latest.md.
# Environment: PART (small, scale, soak or all; default all), RUNS (default
# 5), LINES (default 500000), KS, SCALE_RUNS, IDLE, MESH_COMMIT, MESH_KS,
# SOAK_MIN, MESH_BIN_DIR (mgr and mgrctl of MESH_COMMIT built already).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-5}
LINES=${LINES:-500000}
PART=${PART:-all}
KS=${KS:-16 32 64 128}
SCALE_RUNS=${SCALE_RUNS:-3}
IDLE=${IDLE:-30}
# The last commit of the full-mesh membership (heartbeat streams to every
# peer), measured beside SWIM.
MESH_COMMIT=${MESH_COMMIT:-fdb5bcf}
MESH_KS=${MESH_KS-16 32}
SOAK_MIN=${SOAK_MIN:-10}
FULL=${FULL:-1}
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
# The kernel's ARP table is one for all namespaces, 1,024 entries by
# default: K hosts that all talk to each other need K² of them (16,256 at
# 128), and past the limit sends fail with ENOBUFS ("neighbor table
# overflow"), which no real lab machine (127 neighbours) ever sees. Raised
# for the run, and put back.
ARP_SAVED=$(sysctl -n net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3 | tr '\n' ' ')
sysctl -qw net.ipv4.neigh.default.gc_thresh1=32768 net.ipv4.neigh.default.gc_thresh2=65536 net.ipv4.neigh.default.gc_thresh3=131072
cleanup() {
    local rc=$?
    read -r a1 a2 a3 <<< "$ARP_SAVED"
    sysctl -qw net.ipv4.neigh.default.gc_thresh1="$a1" net.ipv4.neigh.default.gc_thresh2="$a2" net.ipv4.neigh.default.gc_thresh3="$a3"
    for i in $(seq 1 "$HOSTS"); do
        local ns="$TAG-h$i"
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        # Deleting our end of the veth removes the pair at once (a deleted
        # namespace's own end goes only later, in the background).
        ip link del "mb$$v$i" 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "$TAG" 2>/dev/null || true
    ip link del "${TAG}p" 2>/dev/null || true
    [ -n "${MESH_TREE:-}" ] && git -C "$ROOT" worktree remove --force "$MESH_TREE" 2>/dev/null
    # KEEP=1 keeps the managers' logs and state for a look after a failure.
    if [ "${KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
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
    ip netns exec "$TAG-h$i" "${MGR_BIN:-$MGR}" start --name "h$i" --state-dir "$dir" --key-file "$W/key" \
        --listen "$SUBNET.$i:6170" --ports 24000-24999 --allow-exec --grace 1 "$@" \
        >>"$dir/mgr.log" 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 1 500); do
        [ -S "$dir/mgr.sock" ] && return 0
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
alive_count() { "$MGRCTL" --socket "$W/s$1/mgr.sock" members --json --quick 2>/dev/null | grep -c '"state":"alive"' || true; }
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

small_part() {
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
}

# ---------------------------------------------------------------- at scale

LOGS="$ROOT/bench/group_logs.py"
proc_ticks() { # PID…: utime+stime of each, summed
    local total=0 pid f
    for pid in "$@"; do
        f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        set -- $f
        total=$(( total + ${12} + ${13} ))
    done
    echo "$total"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
pids_of() { local i; for i in $(seq 1 "$1"); do cat "$W/s$i/pid"; done; }
stop_all() { # K: every manager at once (SIGTERM, then SIGKILL)
    local k=$1 i pid
    for i in $(seq 1 "$k"); do kill -TERM "$(cat "$W/s$i/pid")" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
        local left=0
        for i in $(seq 1 "$k"); do kill -0 "$(cat "$W/s$i/pid")" 2>/dev/null && left=1; done
        [ $left -eq 0 ] && break
        sleep 0.1
    done
    for i in $(seq 1 "$k"); do pid=$(cat "$W/s$i/pid"); kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}
# move_side A K BRIDGE: hosts A+1..K onto BRIDGE (a partition when it is
# not $TAG, the heal when it is).
move_side() { local i; for i in $(seq $(( $1 + 1 )) "$2"); do ip link set "mb$$v$i" master "$3"; done; }

# scale_run K FULL: one run of K managers with the binaries in MGR_BIN and
# CTL_BIN; prints "converge_ms cpu_pct rss_median_kib rss_max_kib
# kill_median_ms kill_max_ms ps_ms launch_ms running split_ms heal_ms"
# ("-" where FULL is 0: the mesh baseline runs only the first six).
scale_run() {
    local k=$1 full=$2 i last conv t0 t1 c0 c1 cpu rss ps launch running split heal
    log "scale run: $k managers"
    rm -rf "$W"/s*
    for i in $(seq 1 "$k"); do
        if [ "${DISCOVERY:-mdns}" = join ]; then
            if [ "$i" -eq 1 ]; then start_mgr "$i" --no-mdns; else start_mgr "$i" --no-mdns --join "$SUBNET.1:6170"; fi
        else
            start_mgr "$i" --iface eth0
        fi
    done
    last=$(now_ms)
    for _ in $(seq 1 120); do
        conv=$(python3 "$LOGS" converged "$k" "$W")
        [ "$conv" != no ] && break
        sleep 0.5
    done
    if [ "$conv" = no ]; then conv=-; else conv=$(( conv > last ? conv - last : 0 )); fi
    # Idle: nothing runs, nobody asks anything.
    sleep 2
    local pids; pids=$(pids_of "$k")
    c0=$(proc_ticks $pids); t0=$(now_ms)
    sleep "$IDLE"
    c1=$(proc_ticks $pids); t1=$(now_ms)
    cpu=$(python3 -c "print('%.1f' % (100.0 * ($c1 - $c0) / $(getconf CLK_TCK) / (($t1 - $t0) / 1000)))")
    rss=$(for pid in $pids; do rss_kib "$pid"; done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[NR]}')
    ps=- launch=- running=- split=- heal=-
    if [ "$full" = 1 ]; then
        local S1="$W/s1/mgr.sock"
        hyperfine -N --warmup 2 --runs 10 --export-json "$W/ps.json" "$CTL_BIN --socket $S1 ps" >/dev/null 2>&1
        ps=$(python3 -c "import json; print('%.0f' % (json.load(open('$W/ps.json'))['results'][0]['median'] * 1000))")
        t0=$(now_ms)
        "$CTL_BIN" --socket "$S1" launch BestEffortBroadcast $(( 2 * k )) --name big -d >/dev/null 2>"$W/launch.err" || log "launch: $(cat "$W/launch.err")"
        t1=$(now_ms); launch=$(( t1 - t0 ))
        running=$("$CTL_BIN" --socket "$S1" ps big 2>/dev/null | grep -c ' running ' || true)
        "$CTL_BIN" --socket "$S1" stop big >/dev/null 2>&1 || true
        # The two halves on two bridges: a partition at L2, both ways.
        local half=$(( k / 2 )) cut healed
        ip link add "${TAG}p" type bridge 2>/dev/null || true
        ip link set "${TAG}p" up
        cut=$(now_ms); move_side "$half" "$k" "${TAG}p"
        for _ in $(seq 1 60); do split=$(python3 "$LOGS" split "$cut" "$half" "$k" "$W"); [ "$split" != no ] && break; sleep 0.5; done
        sleep 2
        healed=$(now_ms); move_side "$half" "$k" "$TAG"
        for _ in $(seq 1 60); do heal=$(python3 "$LOGS" healed "$healed" "$half" "$k" "$W"); [ "$heal" != no ] && break; sleep 0.5; done
        sleep 3
    fi
    # kill -9 of the last manager: every other must list it dead.
    local killed victim="h$k"
    killed=$(now_ms)
    kill -KILL "$(cat "$W/s$k/pid")"
    sleep 6
    local dead; dead=$(python3 "$LOGS" dead "$victim" "$killed" "$k" "$W")
    local kmed kmax
    if echo "$dead" | grep -q -- '-'; then kmed=-; kmax="not all ($(echo "$dead" | grep -vc -- '-')/$(( k - 1 )))"
    else kmed=$(echo "$dead" | median); kmax=$(echo "$dead" | sort -n | tail -1); fi
    stop_all "$k"
    echo "$conv $cpu $rss $kmed $kmax $ps $launch $running $split $heal"
}

# med COLUMN FILE: the median of a column of scale_run lines ("-" if any is).
med() { awk -v c="$1" '{print $c}' "$2" | { vals=$(cat); if echo "$vals" | grep -q '^[^0-9]'; then echo "$vals" | tr '\n' ' '; else echo "$vals" | median; fi; }; }

scale_part() {
    local max=0 k
    for k in $KS $MESH_KS; do [ "$k" -gt "$max" ] && max=$k; done
    make_hosts "$max"
    local rows=()
    mkdir -p "$W/results"
    # The mesh baseline: the same measurements with the last commit before
    # SWIM, built once in a worktree.
    if [ -n "$MESH_KS" ]; then
        local bin="${MESH_BIN_DIR:-$ROOT/target/mesh-baseline/release}"
        if [ -z "${MESH_BIN_DIR:-}" ]; then
            MESH_TREE="$W/mesh"
            git -C "$ROOT" worktree add --detach "$MESH_TREE" "$MESH_COMMIT" >/dev/null 2>&1
            log "building the mesh baseline ($MESH_COMMIT)"
            (cd "$MESH_TREE" && CARGO_TARGET_DIR="$ROOT/target/mesh-baseline" cargo build --release --bins -q)
        fi
        for k in $MESH_KS; do
            log "mesh baseline: $k managers ($SCALE_RUNS runs)"
            : > "$W/results/mesh-$k.txt"
            for _ in $(seq 1 "$SCALE_RUNS"); do
                MGR_BIN="$bin/mgr" CTL_BIN="$bin/mgrctl" \
                    scale_run "$k" 0 >> "$W/results/mesh-$k.txt"
            done
            cat "$W/results/mesh-$k.txt" >&2
            rows+=("| mesh ($MESH_COMMIT) | $k | $(med 1 "$W/results/mesh-$k.txt") ms | $(med 2 "$W/results/mesh-$k.txt") % | $(med 3 "$W/results/mesh-$k.txt") / $(med 4 "$W/results/mesh-$k.txt") KiB | $(med 5 "$W/results/mesh-$k.txt") / $(med 6 "$W/results/mesh-$k.txt") ms | – | – | – | – |")
        done
    fi
    for k in $KS; do
        log "SWIM: $k managers ($SCALE_RUNS runs)"
        : > "$W/results/swim-$k.txt"
        for _ in $(seq 1 "$SCALE_RUNS"); do
            MGR_BIN="${SWIM_BIN_DIR:-$(dirname "$MGR")}/mgr" CTL_BIN="${SWIM_BIN_DIR:-$(dirname "$MGR")}/mgrctl" scale_run "$k" "$FULL" >> "$W/results/swim-$k.txt"
        done
        cat "$W/results/swim-$k.txt" >&2
        local f="$W/results/swim-$k.txt"
        rows+=("| SWIM (this commit) | $k | $(med 1 "$f") ms | $(med 2 "$f") % | $(med 3 "$f") / $(med 4 "$f") KiB | $(med 5 "$f") / $(med 6 "$f") ms | $(med 7 "$f") ms | $(med 8 "$f") ms, $(med 9 "$f") of $(( 2 * k )) running | $(med 10 "$f") ms | $(med 11 "$f") ms |")
    done
    {
        echo "Results of \`sudo PART=scale bash bench/group.sh\` (SCALE_RUNS=$SCALE_RUNS, IDLE=$IDLE s), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) CPUs; medians of $SCALE_RUNS runs"
        echo
        echo "| membership | K | convergence after the last start | idle CPU, all K together (% of one core) | RSS per manager, median / max | kill -9: every other lists it dead, median / slowest | \`mgrctl ps\` | \`launch BestEffortBroadcast 2K\` | K/2 partition: two groups | heal: one group |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
    } | tee bench/group-scale-latest.md
}

soak_part() {
    local k=64 i since
    make_hosts "$k"
    rm -rf "$W"/s*
    for i in $(seq 1 "$k"); do start_mgr "$i" --iface eth0; done
    for _ in $(seq 1 120); do [ "$(python3 "$LOGS" converged "$k" "$W")" != no ] && break; sleep 0.5; done
    since=$(now_ms)
    log "soak: $k managers idle for $SOAK_MIN minutes"
    sleep $(( SOAK_MIN * 60 ))
    read -r deaths renewals < <(python3 "$LOGS" deaths "$since" "$k" "$W")
    local alive; alive=$(alive_count 1)
    stop_all "$k"
    {
        echo "Results of \`sudo PART=soak bash bench/group.sh\` (SOAK_MIN=$SOAK_MIN), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) CPUs"
        echo
        echo "| managers | idle for | members declared dead (none was killed) | managers declared dead that renewed | h1 lists alive at the end |"
        echo "|---|---|---|---|---|"
        echo "| $k | $SOAK_MIN min | $deaths | $renewals | $alive of $k |"
    } | tee bench/group-soak-latest.md
}

case "$PART" in
    small) small_part ;;
    scale) scale_part ;;
    soak) soak_part ;;
    all) small_part; scale_part; soak_part ;;
    *) echo "PART must be small, scale, soak or all" >&2; exit 2 ;;
esac
