#!/usr/bin/env bash
# What does tracing cost one context lifecycle (context.WithCancel(parent) + cancel())?
#
#   usage: lifecycle.sh [ctxagent-binary]     (default: build/ctxagent next to this folder; root)
#
# Target: bench/lifecycle, one goroutine locked to its thread running WithCancel(parent) + cancel()
# in a tight loop under a cancelable parent; each SIGUSR1 runs one phase of ROUNDS rounds of ROUND
# and prints ns/op per round. Phases alternate agent off / `ctxagent attach <pid> -o json
# --budget=0` on, twice (off, on, off, on). Prints:
#   ns/op off and on (medians over rounds) and their difference: the extra cost charged to the target
#   (uprobe trap + BPF program) per lifecycle;
#   the agent's CPU per lifecycle: utime+stime of ctxagent over the on phases / lifecycles in them;
#   their sum and its ratio to the 2.0 us target;
#   BPF run time per probe hit (run_time_ns / run_cnt of ctxagent_probe, kernel.bpf_stats_enabled=1,
#   restored on exit) and hits per lifecycle.
# The agent binary is copied at start, so a rebuild during the run does not change it.
#
# Environment: GO (default newest /usr/lib/go-*/bin/go), ROUNDS (per phase, default 5), ROUND
# (default 1s), GOMAXPROCS (of the target, default 1), KEEP=1 keeps the work directory.
set -euo pipefail

die() { echo "lifecycle: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
src_agent=$(realpath "${1:-$here/../build/ctxagent}")
[[ -x $src_agent ]] || die "$src_agent is not executable (build it, or pass its path)"
bench_prereqs python3 bpftool sysctl
ROUNDS=${ROUNDS:-5} ROUND=${ROUND:-1s}
export GOMAXPROCS=${GOMAXPROCS:-1}
HZ=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/ctxagent-lifecycle.XXXXXX)
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  # Only this shell's children that were not reaped yet: their pids cannot have been reused.
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sysctl -qw kernel.bpf_stats_enabled="$old_stats" || true
  if [[ -n ${KEEP:-} ]]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 1" INT TERM  # a signalled bench still stops its daemon and targets
sysctl -qw kernel.bpf_stats_enabled=1

cp "$src_agent" "$work/ctxagent"
ctxagent=$work/ctxagent
echo "building bench/lifecycle with $($GO version | awk '{print $3}')" >&2
(cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 \
  "$GO" build -o "$work/lifecycle" ./lifecycle) || die "go build failed"

"$work/lifecycle" -rounds "$ROUNDS" -round "$ROUND" >"$work/target.jsonl" 2>"$work/target.err" &
target=$!
for _ in $(seq 200); do grep -q '"ready"' "$work/target.jsonl" 2>/dev/null && break; sleep 0.05; done
grep -q '"ready"' "$work/target.jsonl" || die "lifecycle did not start: $(cat "$work/target.err")"


phase=0
run_phase() {  # off|on: one phase of the target, appends a line to phases.txt
  local mode=$1 agent="" prog="" c0=0 c1=0 b0="0 0" b1="0 0" lost=""
  phase=$((phase + 1))
  if [[ $mode == on ]]; then
    "$ctxagent" attach "$target" -o json --budget=0 --duration=10m >"$work/agent$phase.json" 2>"$work/agent$phase.err" &
    agent=$!
    for _ in $(seq 400); do grep -q tracing "$work/agent$phase.err" 2>/dev/null && break; sleep 0.05; done
    grep -q tracing "$work/agent$phase.err" || die "agent did not attach: $(cat "$work/agent$phase.err")"
    prog=$(prog_id_of "$agent")
    [[ -n $prog ]] || die "no ctxagent_probe program found for agent pid $agent"
    c0=$(cpu_ticks "$agent")
    b0=$(bpf_stats "$prog")
  fi
  kill -USR1 "$target"
  for _ in $(seq 6000); do grep -q "\"phase\":$phase,\"done\"" "$work/target.jsonl" && break; sleep 0.05; done
  grep -q "\"phase\":$phase,\"done\"" "$work/target.jsonl" || die "phase $phase did not finish"
  if [[ -n $agent ]]; then
    sleep 0.1  # the agent's last drain of the phase (it polls every 20 ms)
    c1=$(cpu_ticks "$agent")
    b1=$(bpf_stats "$prog")
    kill -INT "$agent"
    wait "$agent" || die "agent failed: $(tail -3 "$work/agent$phase.err")"
    lost=$(python3 -c 'import json,sys; s=[json.loads(l) for l in open(sys.argv[1]) if "\"summary\"" in l][-1]; print(s["events_lost"])' "$work/agent$phase.json")
  fi
  echo "$phase $mode $((c1 - c0)) $b0 $b1 ${lost:-0}" >>"$work/phases.txt"
  echo "  phase $phase ($mode) done" >&2
}

echo "target pid $target (GOMAXPROCS=$GOMAXPROCS); $ROUNDS rounds of $ROUND per phase" >&2
for mode in off on off on; do run_phase "$mode"; done

python3 - "$work/target.jsonl" "$work/phases.txt" "$HZ" <<'EOF'
import json, statistics as st, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
hz = float(sys.argv[3])
phases = {}
for l in open(sys.argv[2]):
    p, mode, ticks, rt0, cnt0, rt1, cnt1, lost = l.split()
    phases[int(p)] = dict(mode=mode, agent_s=int(ticks) / hz, bpf_ns=int(rt1) - int(rt0),
                          bpf_cnt=int(cnt1) - int(cnt0), lost=int(lost))
rounds = [l for l in lines if "round" in l]
ops = {l["phase"]: l["ops"] for l in lines if l.get("done")}
def med(mode): return st.median(r["ns_per_op"] for r in rounds if phases[r["phase"]]["mode"] == mode)
def spread(mode):
    xs = [r["ns_per_op"] for r in rounds if phases[r["phase"]]["mode"] == mode]
    return "[%.0f..%.0f]" % (min(xs), max(xs))
on = [p for p, v in phases.items() if v["mode"] == "on"]
off_ns, on_ns = med("off"), med("on")
on_ops = sum(ops[p] for p in on)
agent_us = sum(phases[p]["agent_s"] for p in on) * 1e6 / on_ops
bpf_cnt = sum(phases[p]["bpf_cnt"] for p in on)
bpf_hit = sum(phases[p]["bpf_ns"] for p in on) / bpf_cnt if bpf_cnt else float("nan")
extra_us = (on_ns - off_ns) / 1000
print("context lifecycle (WithCancel(parent) + cancel()), %d rounds per phase, phases off,on,off,on" %
      (len(rounds) // len(phases)))
print("  ns/op off: %.0f %s   on: %.0f %s   (medians over rounds, [min..max])" % (off_ns, spread("off"), on_ns, spread("on")))
print("  extra cost charged to the target: %.3f us per lifecycle (trap + BPF)" % extra_us)
print("  BPF run time per hit: %.0f ns; probe hits per lifecycle: %.2f" % (bpf_hit, bpf_cnt / on_ops))
print("  agent CPU per lifecycle: %.3f us (%.2f s over %d lifecycles traced)" %
      (agent_us, sum(phases[p]["agent_s"] for p in on), on_ops))
print("  total per lifecycle: %.3f us; ratio to the 2.0 us target: %.2f (target <= 1)" %
      (extra_us + agent_us, (extra_us + agent_us) / 2.0))
print("  events lost: %d" % sum(phases[p]["lost"] for p in on))
EOF
