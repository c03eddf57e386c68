#!/usr/bin/env bash
# What `ctxagent daemon` costs when there is little to trace, from the daemon's per-thread CPU time
# (/proc/<pid>/task/*/schedstat: exact, and robust to other load on the machine):
#   1. no Go process selected, MEASURE s (default 60);
#   2. SERVICES (20) idle Go services (bench/idlesvc: one short-lived context a second each): the
#      minute after they are traced, then the next (the steady state the target is about);
#   3. the scaling curve: daemon CPU with SCALE_PROCS (1 10 50) idle services, and with one service
#      holding SCALE_CONTEXTS (10000 100000) live contexts, each waited on by a goroutine (probes
#      always on, so that every context is tracked; without a budget, then paced under the default
#      one), SCALE_SECONDS (30) each, paced runs PACED_SECONDS (150; the pacer's pause can be
#      longer, up to 5 min: then the average holds one paced run, not the steady state). Prints
#      what one further idle process costs (the fixed per-process cost) from the smallest and
#      largest SCALE_PROCS.
# Only bench/idlesvc processes are selected (--include=binary:idlesvc*), so other Go programs on a
# shared machine are not traced; the daemon still sees every exec on the node.
#   sudo bench/idle.sh [build/ctxagent]      # ~12 min; SKIP_SCALE=1: phases 1-2 only; SKIP_IDLE=1:
#   phase 3 only (SCALE_PROCS="" for the contexts alone)
set -euo pipefail

die() { echo "idle: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
ctxagent=$(realpath "${1:-$here/../build/ctxagent}")
[[ -x $ctxagent ]] || die "$ctxagent is not executable (build it, or pass its path)"
bench_prereqs python3 curl
MEASURE=${MEASURE:-60} SERVICES=${SERVICES:-20} SETTLE=${SETTLE:-10}
SCALE_PROCS=${SCALE_PROCS:-"1 10 50"} SCALE_CONTEXTS=${SCALE_CONTEXTS:-"10000 100000"}
SCALE_SECONDS=${SCALE_SECONDS:-30} PACED_SECONDS=${PACED_SECONDS:-150}
NCPU=$(nproc)

work=$(mktemp -d /tmp/ctxagent-idle.XXXXXX)
pids=()
daemon_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" INT TERM  # a signalled bench still stops its daemon and targets

(cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 \
  "$GO" build -o "$work/idlesvc" ./idlesvc) || die "go build failed"

start_daemon() {  # extra daemon flags...
  "$ctxagent" daemon --listen=127.0.0.1:0 --detail_listen=127.0.0.1:0 '--include=binary:idlesvc*' \
    "$@" 2>"$work/daemon.err" &
  daemon_pid=$!
  pids+=("$daemon_pid")
  daemon_ports "$work/daemon.err"
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
}
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
processes_json() { curl -s "http://127.0.0.1:$detail_port/processes"; }
wait_traced() {  # count [min live contexts]
  local n
  for _ in $(seq 600); do
    n=$(processes_json | python3 -c "import json,sys; p=json.load(sys.stdin); print(sum(1 for x in p if x['contexts_live'] >= ${2:-0}))" 2>/dev/null || echo 0)
    [[ $n -ge $1 ]] && return
    sleep 0.5
  done
  die "only $n of $1 processes traced: $(processes_json)"
}
start_services() {  # count idlesvc-args...
  local n=$1 i
  shift
  for i in $(seq "$n"); do
    "$work/idlesvc" "$@" >/dev/null &
    pids+=($!)
  done
}
measure() {  # label seconds target-% -> one result line
  local c0 c1
  sleep "$SETTLE"
  c0=$(sched_ns "$daemon_pid")
  sleep "$2"
  c1=$(sched_ns "$daemon_pid")
  python3 - "$1" "$2" "$c0" "$c1" "$NCPU" "$3" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import sys
label, secs, c0, c1, ncpu, target, load = sys.argv[1:]
cpu_s = (int(c1) - int(c0)) / 1e9
ratio = cpu_s / (float(secs) * int(ncpu)) * 100
verdict = "" if target == "-" else ("  (target <= %s%%: %s)" % (target, "met" if ratio <= float(target) else "NOT MET"))
print("%-44s %8.2f ms CPU in %s s = %.4f%% of the node%s  [loadavg %s]" % (label, cpu_s * 1e3, secs, ratio, verdict, load))
PY
}

echo "ctxagent idle: $NCPU CPUs, daemon $(basename "$ctxagent"), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -z ${SKIP_IDLE:-} ]]; then
  start_daemon
  measure "no Go process" "$MEASURE" 0.01
  start_services "$SERVICES" -per_sec 1
  wait_traced "$SERVICES"
  # The first minute holds the start-up of 20 sessions (first reads, evaluations until thresholds
  # pass, reads backing off to twice a minute); an idle fleet is then in the steady state.
  measure "$SERVICES idle Go services, first minute" "$MEASURE" -
  measure "$SERVICES idle Go services (1 context/s each)" "$MEASURE" 0.02
  stop_all
fi
[[ -n ${SKIP_SCALE:-} ]] && exit 0

procs_cpu=()  # "n ms" per SCALE_PROCS run
for n in $SCALE_PROCS; do
  start_daemon
  start_services "$n" -per_sec 1
  wait_traced "$n"
  line=$(measure "scaling: $n idle processes" "$SCALE_SECONDS" -)
  echo "$line"
  procs_cpu+=("$n $(awk '{for (i = 1; i < NF; i++) if ($(i+1) == "ms") {print $i; exit}}' <<<"$line")")
  stop_all
done
if ((${#procs_cpu[@]} >= 2)); then
  read -r n0 ms0 <<<"${procs_cpu[0]}"
  read -r n1 ms1 <<<"${procs_cpu[-1]}"
  awk -v n0="$n0" -v m0="$ms0" -v n1="$n1" -v m1="$ms1" -v s="$SCALE_SECONDS" -v c="$NCPU" 'BEGIN {
    us = (m1 - m0) / (n1 - n0) / s * 1000
    printf "fixed cost per further idle process (%d -> %d processes): %.1f us of CPU per second = %.5f%% of the node\n", n0, n1, us, us / 1e6 / c * 100 }'
fi
# Each size twice: without a budget (every memory read and evaluation at its usual period), and
# under the default budget with the probes kept on (a fixed duty cycle longer than the run, so that
# every context is still tracked), where per-process work is paced to half the budget.
for c in $SCALE_CONTEXTS; do
  for mode in unpaced paced; do
    if [[ $mode == unpaced ]]; then start_daemon --budget=0; else start_daemon --duty_cycle=1h/2h; fi
    start_services 1 -per_sec 1 -hold "$c"
    wait_traced 1 "$c"
    measure "scaling: 1 process, $c live contexts, $mode" "$([[ $mode == paced ]] && echo "$PACED_SECONDS" || echo "$SCALE_SECONDS")" -
    echo "  work_pause_s: $(processes_json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["work_pause_s"])')"
    stop_all
  done
done
