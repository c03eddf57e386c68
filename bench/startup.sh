#!/usr/bin/env bash
# A busy target started under a running daemon: the extra CPU of its first WINDOWS ("20 60")
# seconds, at each of RATES ("1000 20000 100000") contexts/s, and how soon its leak is found.
# PAIRS (7) alternating off/on pairs per rate; per pair a fresh bench/loadsvc (leaking LEAK (5)
# contexts/s) under bench/loadgen. Up to 20000 contexts/s a request makes two (the server's and the
# handler's WithTimeout); above, each request adds WithCancel children, at most 10000 requests/s.
#   off: no agent.  on: `ctxagent daemon` (defaults, only loadsvc selected) started and settled
#   before the target starts.
# Measured directly: the target's CPU per request on minus off, times the requests served, plus the
# daemon's CPU over the same seconds, as a share of the node. CPU comes from per-thread schedstat
# (exact, robust to other load on the machine); request counts from loadsvc's /stats. With PIN=1
# (the default on 2+ CPUs) the target runs alone on the last CPU (GOMAXPROCS=1), loadgen and the
# daemon on the others: unpinned, the target's CPU per request varies ~5% from run to run, ten
# times the effect measured.
# Counted: what the daemon's meter says the same seconds cost (probe hits x its calibrated trap
# cost + BPF time + its CPU): from the kernel's counters at each window, and the daemon's own
# figure at its stop, at the end of the last window (ctxagent_overhead_cpu_seconds_total).
#   sudo bench/startup.sh [build/ctxagent]      # ~15 min per rate with the defaults
set -euo pipefail

die() { echo "startup: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
ctxagent=$(realpath "${1:-$here/../build/ctxagent}")
[[ -x $ctxagent ]] || die "$ctxagent is not executable (build it, or pass its path)"
bench_prereqs python3 curl taskset
PAIRS=${PAIRS:-7} RATES=${RATES:-"1000 20000 100000"} LEAK=${LEAK:-5} CONNS=${CONNS:-32}
WINDOWS=${WINDOWS:-"20 60"} NCPU=$(nproc)
PIN=${PIN:-$((NCPU > 1 ? 1 : 0))}
last=$(echo "$WINDOWS" | tr ' ' '\n' | sort -n | tail -1)
if ((PIN)); then
  svc_cpus=$((NCPU - 1)) other_cpus=0-$((NCPU - 2))
else
  svc_cpus=0-$((NCPU - 1)) other_cpus=0-$((NCPU - 1))
fi

work=$(mktemp -d /tmp/ctxagent-startup.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" INT TERM  # a signalled bench still stops its daemon and targets
(cd "$here" && for p in loadsvc loadgen; do
  GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 "$GO" build -o "$work/$p" ./$p || exit 1
done) || die "go build failed"

now_us() { echo "${EPOCHREALTIME/./}"; }
# Probe hits and BPF run time of every ctxagent_probe program (its handlers' time included; the
# kernel's counters, the daemon turns bpf_stats on): "hits ns". Run the bench alone: another
# agent's programs would count too.
probe_counters() {
  bpftool prog show -j | python3 -c '
import json, sys
h = t = 0
for p in json.load(sys.stdin):
    if p.get("name", "").startswith("ctxagent_probe"):
        h += p.get("run_cnt", 0); t += p.get("run_time_ns", 0)
print(h, t)'
}
requests() { curl -s "http://$svc_addr/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }

one_run() {  # rate rep mode -> one JSON line
  local rate=$1 rep=$2 mode=$3 daemon="" port="" detail_port="" t0 first="" lg samples="" w next
  local children=$(((rate + 9999) / 10000 > 2 ? (rate + 9999) / 10000 - 2 : 0)) counted=null
  if [[ $mode == on ]]; then
    taskset -c "$other_cpus" "$ctxagent" daemon --listen=127.0.0.1:0 --detail_listen=127.0.0.1:0 \
      --include=binary:loadsvc 2>"$work/daemon.err" &
    daemon=$!
    pids+=("$daemon")
    daemon_ports "$work/daemon.err"
    sleep 5  # calibrated, scanned, idle
  fi
  # The daemon's CPU and the probes' hits count from before the target starts: reading and
  # attaching it, and its probes before the load begins, are part of what it costs.
  local s0_svc s0_d p0 trap_us=0
  s0_d=$([[ -n $daemon ]] && sched_ns "$daemon" || echo 0)
  p0=$(probe_counters)
  GOMAXPROCS=$((PIN ? 1 : NCPU)) taskset -c "$svc_cpus" "$work/loadsvc" -leak_per_sec "$LEAK" \
    -children "$children" >"$work/svc.out" 2>"$work/svc.err" &
  svc=$!
  pids+=("$svc")
  for _ in $(seq 100); do grep -q listening "$work/svc.out" 2>/dev/null && break; sleep 0.02; done
  svc_addr=$(awk '/listening/ {print $4}' "$work/svc.out")
  [[ -n $svc_addr ]] || die "loadsvc did not start: $(cat "$work/svc.err")"
  t0=$(now_us)
  taskset -c "$other_cpus" "$work/loadgen" -addr "$svc_addr" -rate $((rate / (2 + children))) \
    -duration "$((last + 1))s" -conns "$CONNS" >"$work/lg.json" &
  lg=$!
  s0_svc=$(sched_ns "$svc")
  [[ -n $daemon ]] && trap_us=$(awk '/trap cost/ {print $6; exit}' "$work/daemon.err")
  for w in $WINDOWS; do
    next=$((t0 + w * 1000000))
    while (($(now_us) < next)); do
      # The daemon logs each finding when first reported: watching its log costs it nothing (a
      # request to its HTTP port cost it ~0.6 ms of CPU on the test VM).
      if [[ -n $daemon && -z $first ]] && grep -q "finding: pid $svc (loadsvc): orphaned_done" "$work/daemon.err"; then
        first=$(awk -v d="$(($(now_us) - t0))" 'BEGIN {printf "%.1f", d / 1e6}')
      fi
      sleep 0.2
    done
    # The probes' cost to the target: hits x the daemon's calibrated (emulated) trap cost + BPF time.
    probes_ns=$(echo "$p0 $(probe_counters) $trap_us" | awk '{printf "%.0f", ($3 - $1) * $5 * 1000 + $4 - $2}')
    samples="$samples $w $(($(sched_ns "$svc") - s0_svc)) $(( $([[ -n $daemon ]] && sched_ns "$daemon" || echo 0) - s0_d)) $(requests) $probes_ns"
  done
  if [[ -n $daemon ]]; then  # right at the last window's end: its own count of what it cost
    kill -INT "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true
    counted=$(awk '/tracing cost/ {print $5}' "$work/daemon.err" | tail -1)
  fi
  wait "$lg" || true
  kill "$svc" 2>/dev/null; wait "$svc" 2>/dev/null || true
  pids=()
  echo "{\"rate\": $rate, \"rep\": $rep, \"mode\": \"$mode\", \"first\": ${first:-null}, \"counted_s\": ${counted:-null}, \"samples\": [$(echo $samples | awk '{for (i = 1; i <= NF; i += 5) printf "%s[%s, %s, %s, %s, %s]", (i > 1 ? ", " : ""), $i, $(i+1), $(i+2), $(i+3), $(i+4)}')]}"
}

echo "ctxagent startup: $NCPU CPUs (pinned: $PIN), rates $RATES, $PAIRS pairs, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$work/runs.jsonl"
for rate in $RATES; do
  for rep in $(seq "$PAIRS"); do
    # Alternating order: a drift of the machine's load does not favour one mode.
    if ((rep % 2)); then order="off on"; else order="on off"; fi
    for mode in $order; do
      one_run "$rate" "$rep" "$mode" | tee -a "$work/runs.jsonl" >&2
    done
  done
done
python3 - "$work/runs.jsonl" "$NCPU" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, random, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
ncpu, load = int(sys.argv[2]), sys.argv[3]
TARGETS, LEAK_WITHIN = {20: 0.3, 60: 0.2}, 15  # issue 23
RESOLUTION = 0.1  # a measured verdict needs the median known to a tenth of a percent of the node

def spread(xs):
    """Standard error of the median, by bootstrap (fixed seed: the same runs print the same)."""
    rnd = random.Random(1)
    meds = [statistics.median(rnd.choices(xs, k=len(xs))) for _ in range(2000)]
    return statistics.pstdev(meds)

def show(xs):
    return "%.3f%% +- %.3f (pairs %s)" % (statistics.median(xs), spread(xs), " ".join("%.3f" % x for x in xs))

print("ctxagent startup: %d CPUs, loadavg at the end %s" % (ncpu, load))
share = lambda ns, w: ns / 1e9 / (w * ncpu) * 100
for rate in sorted({r["rate"] for r in runs}):
    pairs = {}
    for r in runs:
        if r["rate"] == rate:
            pairs.setdefault(r["rep"], {})[r["mode"]] = r
    pairs = [p for p in pairs.values() if "on" in p and "off" in p]
    windows = [s[0] for s in pairs[0]["on"]["samples"]]
    print("%d contexts/s, %d pairs:" % (rate, len(pairs)))
    for i, w in enumerate(windows):
        direct, daemon, counted, us_off, us_on = [], [], [], [], []
        for p in pairs:
            _, off_ns, _, off_req, _ = p["off"]["samples"][i]
            _, on_ns, d_ns, on_req, probes_ns = p["on"]["samples"][i]
            per_req_off = off_ns / max(off_req, 1)
            us_off.append(per_req_off / 1e3)
            us_on.append(on_ns / max(on_req, 1) / 1e3)
            direct.append(share(on_ns - per_req_off * on_req + d_ns, w))
            daemon.append(share(d_ns, w))
            counted.append(share(probes_ns + d_ns, w))
        target = TARGETS.get(w)
        verdict = "" if target is None else "  (target <= %s%%: %s)" % (target, (
            "met" if statistics.median(direct) <= target else "NOT MET")
            if spread(direct) < RESOLUTION else "not resolved, the median's spread is over %s%%" % RESOLUTION)
        counted_verdict = "" if target is None else "  (target <= %s%%: %s)" % (
            target, "met" if statistics.median(counted) <= target else "NOT MET")
        print("  first %3d s: target CPU per request %.2f us off, %.2f us on (medians)" %
              (w, statistics.median(us_off), statistics.median(us_on)))
        print("  first %3d s: measured: target on-off + daemon %s%s" % (w, show(direct), verdict))
        print("  first %3d s:   of which the daemon %s" % (w, show(daemon)))
        print("  first %3d s: counted (hits x calibrated trap cost + BPF time + daemon) %s%s" % (
            w, show(counted), counted_verdict))
        if w == windows[-1] and all(p["on"]["counted_s"] is not None for p in pairs):
            own = [p["on"]["counted_s"] * 1e9 for p in pairs]
            print("  first %3d s: the daemon's own count %s; minus measured %s" % (
                w, show([share(x, w) for x in own]),
                show([share(x, w) - d for x, d in zip(own, direct)])))
    firsts = [p["on"]["first"] for p in pairs]
    found = all(f is not None and f <= LEAK_WITHIN for f in firsts)
    print("  leak found after (s from the target's start): %s  (target <= %d s in every pair: %s)"
          % (" ".join("none" if f is None else "%.1f" % f for f in firsts), LEAK_WITHIN, "met" if found else "NOT MET"))
PY
