#!/usr/bin/env bash
# Benchmark of mgr against MPICH's mpiexec (and a plain pipe) on this machine.
#
#   bash bench/run.sh
#
# Measures, in one run, against one mgr daemon started here (loopback only):
#   (a) launch wall time: mgrctl exec N -- true  vs  mpiexec -n N true  (N = 2, 64; hyperfine)
#   (b) tagged output throughput: N instances of `seq 1 2000000` into a file (N = 1, 4)
#       vs mpiexec -l and vs a plain pipe; checks that mgr lost no line
#   (c) idle daemon RSS after one exec
# Prints a markdown table and writes it to bench/results-latest.md.
# Environment: RUNS_THROUGHPUT (default 5), LINES (default 2000000).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH="$ROOT/bench"
LINES=${LINES:-2000000}
RUNS_T=${RUNS_THROUGHPUT:-5}
PY=$(command -v python3)

log() { printf '[bench] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- 1. tools
if ! command -v mpiexec >/dev/null 2>&1 || ! command -v hyperfine >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    log "installing mpich and hyperfine"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq mpich hyperfine >/dev/null
fi
# Prefer MPICH's launcher by name in case `mpiexec` points to another MPI.
MPIEXEC=mpiexec
command -v mpiexec.mpich >/dev/null 2>&1 && MPIEXEC=mpiexec.mpich
MPI_NOTE="$MPIEXEC (hydra, default launcher)"
if ! $MPIEXEC -n 2 true >/dev/null 2>&1; then
    if $MPIEXEC -launcher fork -n 2 true >/dev/null 2>&1; then
        MPIEXEC="$MPIEXEC -launcher fork"
        MPI_NOTE="$MPIEXEC (the default launcher failed, so -launcher fork)"
    else
        log "mpiexec does not work here"; exit 1
    fi
fi
log "mpi: $MPI_NOTE"

log "cargo build --release --bins"
cargo build --release --bins
MGR="$ROOT/target/release/mgr"
MGRCTL="$ROOT/target/release/mgrctl"

# ---------------------------------------------------------------- 2. daemon
W=$(mktemp -d)
DPID=""
cleanup() {
    local rc=$?
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$DPID" 2>/dev/null && kill -KILL "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ]; then
        log "failed (exit $rc); last command stderr and daemon log:"
        tail -n 20 "$W/cmd.err" "$W/daemon.log" >&2 2>/dev/null || true
    fi
    rm -rf "$W"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$MGR" start --state-dir "$W/state" --no-mdns --allow-exec --ports 30000-30999 \
    2>"$W/daemon.log" &
DPID=$!
S="$W/state/mgr.sock"
for _ in $(seq 1 100); do [ -S "$S" ] && break; kill -0 "$DPID" || break; sleep 0.1; done
if [ ! -S "$S" ]; then log "daemon did not come up:"; cat "$W/daemon.log" >&2; exit 1; fi
log "daemon pid $DPID, socket $S"
CTL="$MGRCTL --socket $S"

RES="$W/results.tsv"   # metric, mgr, baseline_name, baseline, ratio, target, met, command, baseline command
: >"$RES"
row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RES"; }

# ---------------------------------------------------------------- (c) idle RSS
# One exec served, then 2 s idle.
$CTL exec 1 -- true >/dev/null 2>&1
sleep 2
RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$DPID/status")

# ---------------------------------------------------------------- (a) launch
hf_median() { "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.6f" % x["median"] for x in r))' "$1"; }
for N in 2 64; do
    log "launch N=$N (hyperfine)"
    # The floor: N processes of `true` started in parallel by the smallest
    # launcher at hand (xargs), with nothing else: what any launcher pays.
    seq 1 "$N" >"$W/n$N"
    FLOOR="xargs -P $N -n 1 -a $W/n$N true"
    hyperfine -N --warmup 3 --runs 30 --export-json "$W/launch$N.json" \
        "$CTL exec $N -- true" "$MPIEXEC -n $N true" "$FLOOR" >&2
    read -r M B F < <(hf_median "$W/launch$N.json")
    row "launch floor, N=$N (median of 30): $N x true in parallel, no launcher" "" "xargs -P $N" \
        "$(awk -v f="$F" 'BEGIN { printf "%.1f ms", f * 1000 }')" \
        "$(awk -v m="$M" -v f="$F" 'BEGIN { printf "mgr %.2fx", m / f }')" "" "" "" \
        "$(echo "$FLOOR" | sed "s#$W#\$W#")"
    if [ "$N" = 2 ]; then T=1.0; else T=0.5; fi
    "$PY" - "$M" "$B" "$T" "$N" "$CTL exec $N -- true" "$MPIEXEC -n $N true" >>"$RES" <<'EOF'
import sys
m, b, t = map(float, sys.argv[1:4]); n = sys.argv[4]
r = m / b
print("\t".join([f"launch wall time, N={n} (median of 30)", f"{m*1e3:.1f} ms", "mpiexec",
                 f"{b*1e3:.1f} ms", f"{r:.2f}x", f"<= {t}x mpiexec", "yes" if r <= t else "NO",
                 sys.argv[5], sys.argv[6]]))
EOF
done

# ---------------------------------------------------------------- (b) throughput
# check_mgr FILE N: every "pK | X" for X = 1..LINES exactly once and in order, for K = 1..N.
# Prints the number of lines lost, duplicated or malformed (0 = all there).
check_mgr() {
    local f=$1 n=$2 bad=0 k
    if [ "$(LC_ALL=C grep -cv ' # ' "$f")" -eq $((n * LINES)) ]; then
        for k in $(seq 1 "$n"); do
            LC_ALL=C grep "^p$k | " "$f" | cut -c$((${#k} + 5))- | cmp -s - <(seq 1 "$LINES") || bad=1
        done
        [ $bad = 0 ] && { echo 0; return; }
    fi
    # Slow path (only when something is wrong): exact count of missing/duplicated/malformed.
    "$PY" "$BENCH/check_lines.py" "$f" "$n" "$LINES" mgr | cut -d' ' -f1
}
# check_mpi FILE N: "LINECOUNT/MALFORMED" for mpiexec -l output ("[R] X" lines);
# malformed = lines that are not exactly "[R] X" (mpiexec -l tags chunks, not lines).
check_mpi() {
    local f=$1
    echo "$(wc -l <"$f")/$(LC_ALL=C grep -cvE '^\[[0-9]+\] [0-9]+$' "$f" || true)"
}
# cpu_ticks: utime stime cutime cstime of the daemon
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12, $13, $14, $15}' "/proc/$DPID/stat"; }
HZ=$(getconf CLK_TCK)

# timed CMD OUTFILE -> appends "wall user sys" (seconds; user/sys of the shell's children) to $W/t.last
TIMEFORMAT='%R %U %S'
timed() {
    local cmd=$1
    { time eval "$cmd" 2>>"$W/cmd.err"; } 2>"$W/t.last"
}

for N in 1 4; do
    OUT="$W/out$N.txt"
    C_MGR="NO_COLOR=1 $CTL exec $N -- seq 1 $LINES > $OUT"
    C_MPI="$MPIEXEC -l -n $N seq 1 $LINES > $OUT"
    if [ "$N" = 1 ]; then C_PIPE="seq 1 $LINES | cat > $OUT"
    else C_PIPE="(for i in \$(seq 1 $N); do seq 1 $LINES; done) | cat > $OUT"; fi
    : >"$W/mgr$N" "$W/mpi$N" "$W/pipe$N" "$W/lost$N" "$W/mpiok$N" "$W/cpu$N"
    for run in $(seq 1 "$RUNS_T"); do
        log "throughput N=$N run $run/$RUNS_T"
        # Runs are interleaved so that noise on the machine hits all three alike.
        before=$(cpu_ticks)
        timed "$C_MGR"
        after=$(cpu_ticks)
        read -r wall cu cs <"$W/t.last"
        echo "$wall" >>"$W/mgr$N"
        check_mgr "$OUT" "$N" >>"$W/lost$N"
        # daemon own cpu, daemon's reaped children (the seqs) cpu, mgrctl cpu
        echo "$before $after $cu $cs" | awk -v hz="$HZ" '{printf "%.3f %.3f %.3f\n", ($5+$6-$1-$2)/hz, ($7+$8-$3-$4)/hz, $9+$10}' >>"$W/cpu$N"

        timed "$C_MPI"
        read -r wall _ _ <"$W/t.last"; echo "$wall" >>"$W/mpi$N"
        check_mpi "$OUT" "$N" >>"$W/mpiok$N"

        timed "$C_PIPE"
        read -r wall _ _ <"$W/t.last"; echo "$wall" >>"$W/pipe$N"
    done
    rm -f "$OUT"
    "$PY" - "$W" "$N" "$LINES" "$C_MGR" "$C_MPI" "$C_PIPE" "$RUNS_T" >>"$RES" <<'EOF'
import sys, statistics as st
w, n, lines, c_mgr, c_mpi, c_pipe, runs = sys.argv[1:8]
n, lines = int(n), int(lines)
rd = lambda name: [float(x) for x in open(f"{w}/{name}{n}").read().split()]
mgr, mpi, pipe = (st.median(rd(x)) for x in ("mgr", "mpi", "pipe"))
lost = [int(x) for x in rd("lost")]
mpiok = open(f"{w}/mpiok{n}").read().split()
cpu = [l.split() for l in open(f"{w}/cpu{n}").read().splitlines()]
d, ch, c = (st.median(float(r[i]) for r in cpu) for i in range(3))
total = n * lines
lps = lambda t: f"{total / t / 1e6:.2f} M lines/s"
met = total / mgr >= 10e6 and max(lost) == 0
lab = f"(median of {runs}, {total:,} lines)"
print("\t".join([f"tagged output, N={n}: wall time {lab}", f"{mgr:.3f} s", "mpiexec -l",
                 f"{mpi:.3f} s", f"{mgr / mpi:.3f}x", "", "", c_mgr, c_mpi]))
print("\t".join([f"tagged output, N={n}: wall time vs plain pipe", f"{mgr:.3f} s", "pipe",
                 f"{pipe:.3f} s", f"{mgr / pipe:.1f}x", "", "", c_mgr, c_pipe]))
print("\t".join([f"tagged output, N={n}: throughput", lps(mgr), "mpiexec -l / pipe",
                 f"{lps(mpi)} / {lps(pipe)}", "", ">= 10 M lines/s, 0 lost",
                 "yes" if met else "NO", c_mgr, ""]))
print("\t".join([f"tagged output, N={n}: lines lost/duplicated/malformed, each run (mpiexec: lines written/malformed)",
                 " ".join(map(str, lost)), "mpiexec -l",
                 " ".join(mpiok), "", "0", "yes" if max(lost) == 0 else "NO", c_mgr, c_mpi]))
print("\t".join([f"tagged output, N={n}: CPU s (median) daemon / seq children / mgrctl",
                 f"{d:.2f} / {ch:.2f} / {c:.2f}", "", "", "", "", "", "/proc/DAEMON/stat, bash time", ""]))
EOF
done

# ---------------------------------------------------------------- (c) report + RSS after load
sleep 2
RSS2_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$DPID/status")
"$PY" - "$RSS_KB" "$RSS2_KB" >>"$RES" <<'EOF'
import sys
a, b = int(sys.argv[1]) / 1024, int(sys.argv[2]) / 1024
print("\t".join(["idle daemon RSS (after 1 exec, 2 s idle)", f"{a:.1f} MiB", "", "", "",
                 "<= 10 MiB", "yes" if a <= 10 else "NO", "grep VmRSS /proc/DAEMON/status", ""]))
print("\t".join(["idle daemon RSS at the end (after all runs, 2 s idle; info)", f"{b:.1f} MiB",
                 "", "", "", "", "", "grep VmRSS /proc/DAEMON/status", ""]))
EOF

"$PY" - "$RES" "$BENCH/results-latest.md" "$MPI_NOTE" "$W" "$S" <<'EOF'
import sys, datetime, platform, os, subprocess
res, out, note, w, s = sys.argv[1:6]
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return "?"
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
clean = lambda c: c.replace(s, "$S").replace(w + "/", "$W/").replace(os.getcwd() + "/", "")
lines = [
    "# mgr benchmark results (generated by bench/run.sh)", "",
    f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
    f"- host: {platform.node()}, {os.cpu_count()} CPUs, {sh('uname -sr')}",
    f"- commit: {sh('git rev-parse --short HEAD 2>/dev/null')}{' (dirty tree)' if sh('git status --porcelain 2>/dev/null') else ''}",
    f"- mpiexec: {note}; {sh('mpiexec --version 2>/dev/null | grep -m1 Version').split(':')[-1].strip()}",
    "- `$S` is the daemon's socket in a temporary state dir; `$W` a temporary dir. All traffic on loopback.",
    "",
    "| metric | mgr (median) | baseline | baseline (median) | ratio | target | met | mgr command | baseline command |",
    "|---|---|---|---|---|---|---|---|---|",
]
for r in rows:
    r += [""] * (9 - len(r))
    r[7] = f"`{clean(r[7])}`" if r[7] else ""
    r[8] = f"`{clean(r[8])}`" if r[8] else ""
    lines.append("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
log "written bench/results-latest.md"
