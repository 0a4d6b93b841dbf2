#!/usr/bin/env bash
# Soak of a manager that runs all semester: thousands of runs launched and
# ended under a small descriptor limit, and what the manager holds after.
#
#   bash bench/soak.sh            # 5,000 runs of 2 instances (10,000 instances)
#   RUNS=500 bash bench/soak.sh   # a shorter one
#
# One `mgr` (release build, loopback only, discovery off) under
# `prlimit --nofile=256:256`, with `--keep-runs 100`: the run table is at its
# steady size after the first 100 runs, so what grows after that is a leak.
# Each cycle is `mgrctl launch FairLossPointToPointLink 2 -d` then
# `mgrctl stop RUN`. It records the daemon's descriptors, threads and VmRSS
# after the first 100 runs and at the end, counts failed launches, and the
# median time of a cycle. Prints a markdown table and writes it to
# bench/soak-latest.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-5000}
log() { printf '[soak] %s\n' "$*" >&2; }

# PROFILE=debug soaks the debug build (for a quick look while changing code).
PROFILE=${PROFILE:-release}
log "cargo build --profile $PROFILE --bins"
cargo build --profile "$([ "$PROFILE" = debug ] && echo dev || echo "$PROFILE")" --bins
MGR="$ROOT/target/$PROFILE/mgr"
MGRCTL="$ROOT/target/$PROFILE/mgrctl"

W=$(mktemp -d)
DPID=""
cleanup() {
    local rc=$?
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$DPID" 2>/dev/null && kill -KILL "$DPID" 2>/dev/null || true
    fi
    [ "$rc" -ne 0 ] && tail -n 20 "$W/daemon.log" >&2 2>/dev/null
    rm -rf "$W"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prlimit --nofile=256:256 -- "$MGR" start --state-dir "$W/state" --no-mdns --ports 30000-30999 --keep-runs 100 \
    2>"$W/daemon.log" &
DPID=$!
S="$W/state/mgr.sock"
for _ in $(seq 1 100); do [ -S "$S" ] && break; sleep 0.1; done
[ -S "$S" ] || { log "the daemon did not come up"; exit 1; }
CTL="$MGRCTL --socket $S"

usage() {
    local fds threads rss
    fds=$(ls "/proc/$DPID/fd" | wc -l)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$DPID/status")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$DPID/status")
    anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$DPID/status")
    echo "$fds $threads $rss $anon"
}

failed=0
trend=""
anon_trend=""
: > "$W/cycles"
for i in $(seq 1 "$RUNS"); do
    start=$(date +%s%N)
    if run=$($CTL launch FairLossPointToPointLink 2 -d 2>>"$W/errors"); then
        $CTL stop "$run" >/dev/null 2>>"$W/errors" || failed=$((failed + 1))
    else
        failed=$((failed + 1))
    fi
    echo $(( ($(date +%s%N) - start) / 1000 )) >> "$W/cycles"
    [ "$i" -eq 100 ] && read -r fds100 threads100 rss100 anon100 < <(usage)
    if [ $((i % 500)) -eq 0 ]; then
        read -r f t r a < <(usage)
        log "$i runs, $failed failed; fds $f, threads $t, RSS $r KiB (anonymous $a KiB)"
        trend="$trend $r"
        anon_trend="$anon_trend $a"
    fi
done
sleep 1
read -r fds_end threads_end rss_end anon_end < <(usage)
median=$(sort -n "$W/cycles" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')

within() { awk -v a="$1" -v b="$2" 'BEGIN { print (b <= a * 1.10 + 0.5) ? "yes" : "**no**" }'; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
{
    echo "Soak, $(date -u +%Y-%m-%d), commit $commit: \`RUNS=$RUNS bash bench/soak.sh\`"
    echo
    echo "| metric | after 100 runs | after $RUNS runs | target | met |"
    echo "|---|---|---|---|---|"
    echo "| failed launches or stops | | $failed of $RUNS | 0 | $([ "$failed" -eq 0 ] && echo yes || echo '**no**') |"
    echo "| daemon descriptors (\`ls /proc/\$DAEMON/fd \| wc -l\`) | $fds100 | $fds_end | within 10 % | $(within "$fds100" "$fds_end") |"
    echo "| daemon threads (\`Threads:\` in /proc/\$DAEMON/status) | $threads100 | $threads_end | within 10 % | $(within "$threads100" "$threads_end") |"
    echo "| daemon memory of its own (\`RssAnon:\`, KiB: heap, stacks) | $anon100 | $anon_end | within 10 % | $(within "$anon100" "$anon_end") |"
    echo "| daemon RSS (\`VmRSS:\`, KiB: also the pages of its binary it has run) | $rss100 | $rss_end | | |"
    echo "| median launch + stop cycle (2 instances, two mgrctl calls) | | $((median / 1000)) ms | | |"
    echo
    echo "RSS every 500 runs (KiB):$trend"
    echo
    echo "RssAnon every 500 runs (KiB):$anon_trend"
} | tee "$ROOT/bench/soak-latest.md"
