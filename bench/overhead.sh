#!/usr/bin/env bash
# What does full tracing cost a busy Go service? ctxagent attached vs not, same service, same load,
# same run. Prints one table; every ratio in it compares runs made by this invocation.
#
#   usage: overhead.sh [ctxagent-binary]        (default: build/ctxagent next to this folder; root)
#
# Target: bench/loadsvc (HTTP on loopback; per request: net/http's request context + the handler's
# WithTimeout child = 2 cancelable contexts, and 2 goroutines: the handler's worker and net/http's
# background reader). Load: bench/loadgen (fixed request rate on keep-alive connections, JSON out).
#
# Phase 1, for each contexts/s rate in RATES (request rate = rate / CTX_PER_REQ), REPEAT pairs of
# runs of DURATION seconds, agent off and `ctxagent attach <pid> -o json` on (order alternates
# ABBA-style to cancel drift). Within each run a window of DURATION-1 s is measured:
#   target CPU  utime+stime of loadsvc (/proc/<pid>/stat)     agent CPU  same for ctxagent
#   node CPU    busy jiffies of /proc/stat (every process: contention shows up here)
#   requests    loadsvc's own counter (/stats)                throughput, p99  from loadgen
#   BPF         run_time_ns / run_cnt of the agent's ctxagent_probe (kernel.bpf_stats_enabled=1)
# Extra target CPU is computed per request (on - off) so a small rate difference does not count as
# overhead; per event = that / (agent events per request); per context = that / contexts per request.
# Controller phase, for each rate: a fresh loadsvc leaking CTL_LEAK_RATE contexts/s and
# `ctxagent daemon` with its default budget (0.3% of the node) and thresholds, polled on /processes:
# time from agent start to the first finding; then, past its start-up, CTL_SECONDS of load measuring
# the agent's accounted extra CPU: its own
# CPU + BPF run time + probe hits x the trap cost it calibrated at start (an on-off difference of the
# target's CPU cannot resolve 0.3% of a node: run-to-run noise is larger). Throughput and p99 are
# compared with the off runs at the same rate.
# Phase 2: a fresh loadsvc leaking LEAK_RATE contexts/s (orphaned Done channels) and
# `ctxagent daemon --refresh=1s --include=binary:loadsvc` polled on /processes: seconds from agent
# start to the first finding, and agent VmRSS growth per live (tracked) context.
#
# Environment: GO (default newest /usr/lib/go-*/bin/go), RATES (contexts/s, default
# "1000 5000 20000 50000"), CTX_PER_REQ (2), DURATION (s, default 15), REPEAT (pairs, default 3),
# CONNS (loadgen connections, 32), LEAK_RATE (2000), LEAK_SECONDS (25), GRACE (daemon --grace, 5s),
# CTL_SECONDS (controller run length, default 150), CTL_LEAK_RATE (5), SKIP_CTL=1,
# SVC_ARGS (extra loadsvc flags for phase 1, e.g. "-children 8" with CTX_PER_REQ=10: more contexts per
# request without more goroutines, to separate context probes from goroutine probes), SKIP_LEAK=1
# (no phase 2), KEEP=1 keeps the work directory (raw samples in runs.jsonl).
set -euo pipefail

die() { echo "overhead: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
ctxagent=$(realpath "${1:-$here/../build/ctxagent}")
[[ -x $ctxagent ]] || die "$ctxagent is not executable (build it, or pass its path)"
bench_prereqs python3 curl bpftool sysctl
RATES=${RATES:-"1000 5000 20000 50000"} CTX_PER_REQ=${CTX_PER_REQ:-2}
DURATION=${DURATION:-15} REPEAT=${REPEAT:-3} CONNS=${CONNS:-32}
LEAK_RATE=${LEAK_RATE:-2000} LEAK_SECONDS=${LEAK_SECONDS:-25} GRACE=${GRACE:-5s}
CTL_SECONDS=${CTL_SECONDS:-150} CTL_LEAK_RATE=${CTL_LEAK_RATE:-5}
HZ=$(getconf CLK_TCK) NCPU=$(nproc)

work=$(mktemp -d /tmp/ctxagent-overhead.XXXXXX)
pids=()
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sysctl -qw kernel.bpf_stats_enabled="$old_stats" || true
  if [[ -n ${KEEP:-} ]]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 1" INT TERM  # a signalled bench still stops its daemon and targets
sysctl -qw kernel.bpf_stats_enabled=1

echo "building loadsvc and loadgen with $($GO version | awk '{print $3}')" >&2
(cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 \
  "$GO" build -o "$work/loadsvc" ./loadsvc && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off \
  CGO_ENABLED=0 "$GO" build -o "$work/loadgen" ./loadgen) || die "go build failed"

start_svc() {  # args...: starts loadsvc, sets svc_pid and svc_addr
  "$work/loadsvc" "$@" >"$work/svc.out" 2>"$work/svc.err" &
  svc_pid=$!
  pids+=("$svc_pid")
  for _ in $(seq 100); do grep -q listening "$work/svc.out" 2>/dev/null && break; sleep 0.05; done
  svc_addr=$(awk '/listening/ {print $4}' "$work/svc.out")
  [[ -n $svc_addr ]] || die "loadsvc did not start: $(cat "$work/svc.err")"
}
node_jiffies() { awk '/^cpu / {b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
svc_requests() { curl -s "http://$svc_addr/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
now_us() { echo "${EPOCHREALTIME/./}"; }  # no process spawned: polling must not load the machine
sample() {  # agent_pid prog_id -> one line of numbers
  local a=${1:-} t n
  t=$(date +%s.%N)
  n=$(node_jiffies)
  echo "$t $(cpu_ticks "$svc_pid") $([[ -n $a ]] && cpu_ticks "$a" || echo 0) $n $(bpf_stats "${2:-}") $(svc_requests) $([[ -n $a ]] && rss_kb "$a" || echo 0)"
}

# ---------------- phase 1: overhead at each rate ----------------
# shellcheck disable=SC2086
start_svc ${SVC_ARGS:-}
echo "loadsvc pid $svc_pid on $svc_addr; warming up" >&2
"$work/loadgen" -addr "$svc_addr" -rate 5000 -duration 3s -conns "$CONNS" >/dev/null

one_run() {  # rate rep mode(off|on)
  local rate=$1 rep=$2 mode=$3 rps agent="" prog="" r_agent0 r_agent1 s0 s1 lg summary
  rps=$(awk -v r="$rate" -v k="$CTX_PER_REQ" 'BEGIN {printf "%.0f", r / k}')
  if [[ $mode == on ]]; then
    r_agent0=$(svc_requests)
    # AGENT_ARGS: --budget=0 (default) is full tracing; e.g. --budget=0.003 measures the controller.
    "$ctxagent" attach "$svc_pid" -o json --duration 10m ${AGENT_ARGS:---budget=0} >"$work/agent.json" 2>"$work/agent.err" &
    agent=$!
    pids+=("$agent")
    for _ in $(seq 200); do grep -q tracing "$work/agent.err" 2>/dev/null && break; sleep 0.05; done
    grep -q tracing "$work/agent.err" || die "agent did not attach: $(cat "$work/agent.err")"
    prog=$(prog_id_of "$agent")
  fi
  "$work/loadgen" -addr "$svc_addr" -rate "$rps" -duration "${DURATION}s" -conns "$CONNS" >"$work/lg.json" &
  local lgpid=$!
  sleep 0.5
  s0=$(sample "$agent" "$prog")
  sleep $((DURATION - 1))
  s1=$(sample "$agent" "$prog")
  wait "$lgpid" || die "loadgen failed"
  lg=$(cat "$work/lg.json")
  summary='{}'
  if [[ -n $agent ]]; then
    if ! kill -INT "$agent" 2>/dev/null; then
      wait "$agent" || true
      echo "  rate $rate rep $rep on: THE AGENT DIED DURING THE RUN (see dmesg: $(dmesg 2>/dev/null | grep -a "ctxagent\[$agent\]" | tail -1)); retrying" >&2
      echo "$rate $rep $(dmesg 2>/dev/null | grep -a "ctxagent\[$agent\]" | tail -1)" >>"$work/crashes.txt"
      return 1
    fi
    wait "$agent" || true
    r_agent1=$(svc_requests)
    summary=$(grep '"type":"summary"' "$work/agent.json" | tail -1)
    [[ -n $summary ]] || die "no summary from the agent: $(tail -3 "$work/agent.err")"
    summary=$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); s.pop("top_sites",None); s["requests_traced"]=int(sys.argv[3])-int(sys.argv[2]); print(json.dumps(s))' "$summary" "$r_agent0" "$r_agent1")
  fi
  python3 - "$rate" "$rep" "$mode" "$rps" "$s0" "$s1" "$lg" "$summary" "$HZ" >>"$work/runs.jsonl" <<'EOF'
import json, sys
rate, rep, mode, rps, s0, s1, lg, summ, hz = sys.argv[1:]
a = [float(x) for x in s0.split()]; b = [float(x) for x in s1.split()]
d = [y - x for x, y in zip(a, b)]
hz = float(hz)
print(json.dumps({"rate": int(rate), "rep": int(rep), "mode": mode, "rps": int(rps), "window_s": d[0],
  "target_cpu_s": d[1] / hz, "agent_cpu_s": d[2] / hz, "node_busy_s": d[3] / hz, "node_total_s": d[4] / hz,
  "bpf_ns": d[5], "bpf_cnt": d[6], "requests": d[7], "agent_rss_kb": b[8],
  "lg": json.loads(lg), "agent": json.loads(summ)}))
EOF
  echo "  rate $rate rep $rep $mode: $(tail -1 "$work/runs.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("req/s %.0f target %.3f s agent %.3f s p99 %.0f us" % (r["requests"]/r["window_s"], r["target_cpu_s"], r["agent_cpu_s"], r["lg"]["p99_us"]))')" >&2
}

for rate in $RATES; do
  for rep in $(seq "$REPEAT"); do
    on_run() { local try; for try in 1 2 3; do one_run "$rate" "$rep" on && return; done; die "agent died 3 times"; }
    if ((rep % 2)); then one_run "$rate" "$rep" off; on_run
    else on_run; one_run "$rate" "$rep" off; fi
  done
done
kill "$svc_pid" 2>/dev/null || true; wait "$svc_pid" 2>/dev/null || true

start_daemon() {  # args...: starts ctxagent daemon on a free port, sets daemon and port
  "$ctxagent" daemon --listen=127.0.0.1:0 --detail_listen=127.0.0.1:0 --include=binary:loadsvc "$@" \
    >"$work/daemon.out" 2>"$work/daemon.err" &
  daemon=$!
  pids+=("$daemon")
  port=""
  for _ in $(seq 400); do
    port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$work/daemon.err" | head -1)
    dport=$(sed -n 's/.*processes on port \([0-9]*\).*/\1/p' "$work/daemon.err" | head -1)
    [[ -n $port && -n $dport ]] && break
    sleep 0.05
  done
  [[ -n $port ]] || die "daemon did not start: $(cat "$work/daemon.err")"
}

# ---------------- controller phase: the default budget, long enough for several periods ----------------
: >"$work/ctl.jsonl"
for rate in $RATES; do
  [[ -n ${SKIP_CTL:-} ]] && break
  rps=$(awk -v r="$rate" -v k="$CTX_PER_REQ" 'BEGIN {printf "%.0f", r / k}')
  # shellcheck disable=SC2086
  start_svc -leak_per_sec "$CTL_LEAK_RATE" ${SVC_ARGS:-}
  # The agent starts under load (2 s in); the measured load, CPU and latency start 5 s later, past its
  # one-off start-up (calibration, reading the binary, the first measuring window).
  "$work/loadgen" -addr "$svc_addr" -rate "$rps" -duration 7s -conns "$CONNS" >/dev/null &
  lgpid=$!
  sleep 2
  t0=$(now_us)
  start_daemon
  for _ in $(seq 200); do prog=$(prog_id_of "$daemon"); [[ -n $prog ]] && break; sleep 0.05; done
  first=""
  # Once a second (curl is a process: polling faster showed in the target's p99), until found.
  poll_first() {
    if [[ -z $first ]] && curl -s "http://127.0.0.1:$dport/processes" | grep -q '"findings":[1-9]'; then
      first=$(awk -v d="$(($(now_us) - t0))" 'BEGIN {printf "%.1f", d / 1e6}')
    fi
  }
  while kill -0 "$lgpid" 2>/dev/null; do poll_first; sleep 0.5; done
  wait "$lgpid" || die "loadgen failed"
  "$work/loadgen" -addr "$svc_addr" -rate "$rps" -duration "$((CTL_SECONDS + 1))s" -conns "$CONNS" >"$work/lg.json" &
  lgpid=$!
  s0=$(sample "$daemon" "$prog")
  end=$(($(now_us) + CTL_SECONDS * 1000000))
  while (($(now_us) < end)); do
    poll_first
    sleep 1
  done
  s1=$(sample "$daemon" "$prog")
  metrics=$(curl -s "http://127.0.0.1:$port/metrics")
  kill -INT "$daemon" || true; wait "$daemon" 2>/dev/null || true
  wait "$lgpid" || die "loadgen failed"
  trap_us=$(sed -n 's/.*trap cost \([0-9.]*\) us emulated.*/\1/p' "$work/daemon.err" | head -1)
  ratio=$(awk '/^ctxagent_sampling_ratio\{/ {print $2; exit}' <<<"$metrics")
  python3 - "$rate" "$s0" "$s1" "$(cat "$work/lg.json")" "${first:-null}" "${trap_us:-0.65}" "${ratio:-null}" "$HZ" >>"$work/ctl.jsonl" <<'EOF'
import json, sys
rate, s0, s1, lg, first, trap_us, ratio, hz = sys.argv[1:]
a = [float(x) for x in s0.split()]; b = [float(x) for x in s1.split()]
d = [y - x for x, y in zip(a, b)]
print(json.dumps({"rate": int(rate), "window_s": d[0], "target_cpu_s": d[1] / float(hz),
  "agent_cpu_s": d[2] / float(hz), "bpf_ns": d[5], "bpf_cnt": d[6], "requests": d[7],
  "agent_rss_kb": b[8], "lg": json.loads(lg), "first_finding_s": json.loads(first),
  "trap_us": float(trap_us), "sampling_ratio": json.loads(ratio)}))
EOF
  echo "  rate $rate controller: $(tail -1 "$work/ctl.jsonl")" >&2
  kill "$svc_pid" 2>/dev/null || true; wait "$svc_pid" 2>/dev/null || true
done

# ---------------- phase 2: leak detection time and agent memory per live context ----------------
if [[ -n ${SKIP_LEAK:-} ]]; then LEAK_SECONDS=0; fi
echo "leak phase: loadsvc leaking $LEAK_RATE contexts/s, daemon --refresh=1s --grace=$GRACE" >&2
start_svc -leak_per_sec "$LEAK_RATE"
sleep 2
t_start=$(date +%s.%N)
# Full tracing here: this phase measures memory per live context, which needs every leak tracked.
start_daemon --refresh=1s --grace="$GRACE" --budget=0
end=$(($(now_us) + LEAK_SECONDS * 1000000))
: >"$work/leak.txt"
while (($(now_us) < end)); do
  t=$(date +%s.%N)
  p=$(curl -s "http://127.0.0.1:$dport/processes" || true)
  echo "$t $(rss_kb "$daemon") $(cpu_ticks "$daemon") $p" >>"$work/leak.txt"
  sleep 0.25
done
kill -INT "$daemon" || true; wait "$daemon" 2>/dev/null || true

# ---------------- the table ----------------
python3 - "$work/runs.jsonl" "$work/leak.txt" "$svc_pid" "$t_start" "$NCPU" "$LEAK_RATE" "$GRACE" "$work/ctl.jsonl" "$CTL_LEAK_RATE" <<'EOF'
import json, statistics as st, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
leak_file, svc_pid, t_start, ncpu, leak_rate, grace = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
ctl = {c["rate"]: c for c in map(json.loads, open(sys.argv[8]))}
ctl_leak = sys.argv[9]

def med(xs): return st.median(xs) if xs else float("nan")
def rng(xs, f="%.2f"): return ("[" + f % min(xs) + ".." + f % max(xs) + "]") if len(xs) > 1 else ""

rates = sorted({r["rate"] for r in runs})
print(f"ctxagent overhead: {ncpu} CPUs; medians over {max(r['rep'] for r in runs)} off/on pairs, [min..max] across pairs")
rows = []
for rate in rates:
    pairs = {}
    for r in runs:
        if r["rate"] == rate: pairs.setdefault(r["rep"], {})[r["mode"]] = r
    m = {k: [] for k in ("ctx_s", "cpr", "epr", "hpr", "xreq", "xev", "xctx", "node", "tgt", "agent", "nodemeas", "thr", "p99", "bpfhit", "lost", "rps", "p99off", "p99on", "tgt_off")}
    for rep, p in sorted(pairs.items()):
        off, on = p["off"], p["on"]
        a = on["agent"]
        req_on, req_off = on["requests"], off["requests"]
        cpr = a["contexts_created"] / max(a["requests_traced"], 1)
        epr = a["events"] / max(a["requests_traced"], 1)
        hpr = on["bpf_cnt"] / max(req_on, 1)
        x_per_req = on["target_cpu_s"] / req_on - off["target_cpu_s"] / req_off  # s of target CPU per request
        x_rate = x_per_req * req_on / on["window_s"]                                  # cores
        agent_rate = on["agent_cpu_s"] / on["window_s"]
        m["ctx_s"].append(a["contexts_created"] / a["duration_s"])
        m["rps"].append(req_on / on["window_s"])
        m["cpr"].append(cpr); m["epr"].append(epr); m["hpr"].append(hpr)
        m["xreq"].append(x_per_req * 1e6)
        m["xev"].append(x_per_req * 1e6 / epr if epr else float("nan"))
        m["xctx"].append(x_per_req * 1e6 / cpr if cpr else float("nan"))
        m["node"].append(100 * (x_rate + agent_rate) / ncpu)
        m["tgt"].append(100 * x_per_req / (off["target_cpu_s"] / req_off) if off["target_cpu_s"] else float("nan"))
        m["agent"].append(100 * agent_rate / ncpu)
        m["nodemeas"].append(100 * (on["node_busy_s"] / on["node_total_s"] - off["node_busy_s"] / off["node_total_s"]))
        m["thr"].append(on["lg"]["achieved_rps"] / off["lg"]["achieved_rps"])
        m["p99"].append(on["lg"]["p99_us"] / off["lg"]["p99_us"])
        m["p99off"].append(off["lg"]["p99_us"]); m["p99on"].append(on["lg"]["p99_us"])
        m["bpfhit"].append(on["bpf_ns"] / on["bpf_cnt"] if on["bpf_cnt"] else float("nan"))
        m["lost"].append(a["events_lost"])
        m["tgt_off"].append(100 * off["target_cpu_s"] / off["window_s"])
    c = ctl.get(rate)
    if c:
        # Accounted extra CPU of the whole controller run: agent + BPF + hits x calibrated trap.
        extra = c["agent_cpu_s"] + c["bpf_ns"] * 1e-9 + c["bpf_cnt"] * c["trap_us"] * 1e-6
        offs = [p["off"] for p in pairs.values()]
        m["ctl_node"] = [100 * extra / c["window_s"] / ncpu]
        m["ctl_agent"] = [100 * c["agent_cpu_s"] / c["window_s"] / ncpu]
        m["ctl_tgt"] = [100 * (extra - c["agent_cpu_s"]) / max(c["target_cpu_s"] - extra + c["agent_cpu_s"], 1e-9)]
        m["ctl_ratio"] = [c["sampling_ratio"] if c["sampling_ratio"] is not None else float("nan")]
        m["ctl_thr"] = [c["lg"]["achieved_rps"] / med([o["lg"]["achieved_rps"] for o in offs])]
        m["ctl_p99"] = [c["lg"]["p99_us"] / med([o["lg"]["p99_us"] for o in offs])]
        m["ctl_first"] = [c["first_finding_s"] if c["first_finding_s"] is not None else float("nan")]
        m["ctl_secs"] = [c["window_s"]]
    rows.append((rate, m))

hdr = ["target ctx/s", "traced ctx/s", "req/s", "ctx/req", "events/req", "probe hits/req",
       "target CPU off (% core)", "extra target CPU / req (us)", "per event (us)", "per context lifecycle (us)",
       "BPF run time / hit (ns)", "extra CPU, % of node (target+agent)", "of which agent, % of node",
       "node busy delta, % (all processes)", "extra target CPU, % of target", "throughput on/off", "p99 off / on (us)", "p99 on/off", "events lost"]
def cell(m, k, f="%.2f"): return (f % med(m[k])) + (" " + rng(m[k], f) if rng(m[k], f) else "")
table = []
for rate, m in rows:
    table.append([str(rate), cell(m, "ctx_s", "%.0f"), cell(m, "rps", "%.0f"), "%.2f" % med(m["cpr"]), "%.2f" % med(m["epr"]),
                  "%.2f" % med(m["hpr"]), cell(m, "tgt_off", "%.1f"), cell(m, "xreq", "%.1f"), cell(m, "xev"), cell(m, "xctx"),
                  cell(m, "bpfhit", "%.0f"), cell(m, "node"), cell(m, "agent"), cell(m, "nodemeas", "%.1f"), cell(m, "tgt", "%.0f"),
                  cell(m, "thr", "%.3f"), "%.0f / %.0f" % (med(m["p99off"]), med(m["p99on"])), cell(m, "p99"), "%d" % max(m["lost"])])
print("| " + " | ".join(["metric"] + [str(r) + " ctx/s" for r, _ in rows]) + " |")
print("|" + "---|" * (len(rows) + 1))
for i, h in enumerate(hdr[1:], 1):
    print("| " + h + " | " + " | ".join(t[i] for t in table) + " |")
if ctl:
    print(f"| **controller** (daemon, default budget 0.3% of the node; loadsvc also leaking {ctl_leak}/s) | " + " | ".join("" for _ in rows) + " |")
    for k, h, f in [("ctl_secs", "run length (s)", "%.0f"), ("ctl_ratio", "sampling ratio (time attached)", "%.3f"),
                    ("ctl_node", "extra CPU, % of node (agent + BPF + traps)", "%.3f"), ("ctl_agent", "of which agent, % of node", "%.3f"),
                    ("ctl_tgt", "traps + BPF, % of the target's CPU", "%.2f"), ("ctl_thr", "throughput ctl/off", "%.3f"),
                    ("ctl_p99", "p99 ctl/off", "%.2f"), ("ctl_first", "first finding after (s)", "%.1f")]:
        print("| " + h + " | " + " | ".join((f % m[k][0]) if k in m else "" for _, m in rows) + " |")

# leak phase
samples = []
for line in open(leak_file):
    parts = line.split(" ", 3)
    t, rss, ticks = float(parts[0]), int(parts[1] or 0), int(parts[2] or 0)
    try: procs = json.loads(parts[3]) if len(parts) > 3 and parts[3].strip() else []
    except ValueError: procs = []
    p = next((p for p in procs if p["pid"] == svc_pid), None)
    samples.append((t - t_start, rss, p))
seen = [(t, rss, p) for t, rss, p in samples if p]
first = next(((t, p) for t, _, p in seen if p["findings"] > 0), None)
import os
crashes = os.path.join(os.path.dirname(sys.argv[1]), "crashes.txt")
if os.path.exists(crashes):
    for l in open(crashes): print("agent crash (run retried): rate %s rep %s: %s" % tuple(l.rstrip("\n").split(" ", 2)))
print()
if not samples:
    print("leak phase: skipped"); sys.exit(0)
print(f"leak phase: loadsvc leaking {leak_rate} contexts/s (orphaned Done channel), `ctxagent daemon --refresh=1s --grace={grace}`")
if seen:
    print("  process visible on /processes after %.2f s" % seen[0][0])
print("  first finding after %s s from agent start" % ("%.2f" % first[0] if first else "NONE (not detected)"))
if len(seen) >= 2:
    base = next(((t, rss, p) for t, rss, p in seen if p["contexts_live"] >= 1000), seen[0])
    last = seen[-1]
    dl = last[2]["contexts_live"] - base[2]["contexts_live"]
    if dl > 0:
        print("  agent VmRSS %d -> %d KiB while live contexts %d -> %d: %.0f bytes per live context (+ its waiting goroutine)"
              % (base[1], last[1], base[2]["contexts_live"], last[2]["contexts_live"], (last[1] - base[1]) * 1024 / dl))
    print("  live goroutines tracked at the end: %d" % last[2]["goroutines"])
EOF
