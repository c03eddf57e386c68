#!/usr/bin/env bash
# Attach/detach soak: many short `ctxagent attach` runs, some ended by kill -9, against busy
# self-checking Go targets (ctxprog -loop: every context's behaviour is checked, a wrong result
# exits 3, a corrupted instruction crashes it) of several releases and link modes.
#
#   usage: tests/soak/run.sh [ctxagent] [go-fixture-dir]      (root; one command, prints the result)
#
# Targets: ctxprog built by go1.19/1.22/1.24/1.27 x default/stripped/PIE (12 processes, running for
# the whole soak; a dead one is counted as a crash and restarted). Each cycle attaches to one of
# them for 30-300 ms (--budget=0 or a tiny budget, so some runs duty-cycle), every 4th cycle is
# killed with SIGKILL mid-trace instead. At the end each target must stop cleanly on SIGTERM
# ("ctxprog done", exit 0) and, with no agent left, its text in memory must equal its file.
# Prints "N cycles, M target crashes" (and agent failures, leftover probe bytes).
#
# Environment: CYCLES (default 1000), PARALLEL agents at a time (default 4), KEEP=1 keeps the
# work directory.
set -uo pipefail

die() { echo "soak: error: $*" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
agent_src=$(realpath "${1:-$here/../../build/ctxagent}")
fixtures=$(realpath "${2:-$here/../../build/go_fixtures}")
[[ $(id -u) -eq 0 ]] || die "run as root (uprobes)"
[[ -x $agent_src ]] || die "$agent_src is not executable (build the ctxagent target)"
command -v python3 >/dev/null || die "needs python3"
CYCLES=${CYCLES:-1000} PARALLEL=${PARALLEL:-4}

work=$(mktemp -d /tmp/ctxagent-soak.XXXXXX)
# The agent is copied: a rebuild during the soak does not change it.
cp "$agent_src" "$work/ctxagent"
agent=$work/ctxagent

targets=() paths=()
for v in 1.19 1.22 1.24 1.27; do
  for variant in default stripped pie; do
    f=$fixtures/ctxprog/go$v/$variant
    [[ -x $f ]] || die "$f missing (build the go_fixtures target)"
    # A private copy per target: what the soak checks is only its own doing.
    cp "$f" "$work/ctxprog_${v}_$variant"
    paths+=("$work/ctxprog_${v}_$variant")
  done
done

start_target() {  # index
  local i=$1
  "${paths[$i]}" -loop -n 5 -sleep 1ms >"$work/target$i.out" 2>&1 &
  targets[$i]=$!
}

crashes=0 agent_failures=0 cycles=0 killed=0 leftover=0
cleanup() {
  for pid in "${targets[@]}"; do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  [[ ${KEEP:-0} == 1 ]] && echo "soak: work directory kept: $work" || rm -rf "$work"
}
trap cleanup EXIT

for i in "${!paths[@]}"; do start_target "$i"; done
sleep 1

# A target that died (not by our hand) is a crash: report it and start a fresh one.
check_target() {
  local i=$1 pid=${targets[$1]} rc
  if ! kill -0 "$pid" 2>/dev/null || [[ $(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$pid/stat" 2>/dev/null) == Z ]]; then
    wait "$pid"; rc=$?
    crashes=$((crashes + 1))
    echo "soak: target ${paths[$i]##*/} (pid $pid) died, rc $rc: $(tail -3 "$work/target$i.out" | tr '\n' ' ')" >&2
    start_target "$i"
  fi
}

# One cycle against target $1: a short attach, or one killed mid-trace. Its outcome in $2.
cycle() {
  local i=$1 out=$2 pid=${targets[$1]} ms budget
  ms=$((30 + RANDOM % 270))
  budget=$([[ $((RANDOM % 2)) == 0 ]] && echo 0 || echo 0.0002)
  if [[ $((RANDOM % 4)) == 0 ]]; then
    # (the shell's "Killed" notice is not an error here)
    { timeout --signal=KILL "0.$((100 + RANDOM % 800))" \
      "$agent" attach "$pid" -o json --budget="$budget" --duration=30s >"$out.log" 2>&1
    echo "killed $?" >"$out"; } 2>/dev/null
  else
    "$agent" attach "$pid" -o json --budget="$budget" --duration="${ms}ms" >"$out.log" 2>&1
    echo "rc $?" >"$out"
  fi
}

started=$(date +%s)
while ((cycles < CYCLES)); do
  batch=()
  for ((p = 0; p < PARALLEL && cycles < CYCLES; p++)); do
    i=$(((cycles + p * 5) % ${#paths[@]}))
    cycle "$i" "$work/cycle$p" &
    batch+=("$i:$!")
    cycles=$((cycles + 1))
  done
  for entry in "${batch[@]}"; do wait "${entry#*:}"; done
  for ((p = 0; p < ${#batch[@]}; p++)); do
    read -r kind rc <"$work/cycle$p"
    if [[ $kind == killed ]]; then
      killed=$((killed + 1))
    elif [[ $rc != 0 ]]; then
      # The target may have died under it: that is counted below, not as the agent's failure.
      agent_failures=$((agent_failures + 1))
      echo "soak: agent rc $rc: $(head -c 300 "$work/cycle$p.log")" >&2
    fi
  done
  for entry in "${batch[@]}"; do check_target "${entry%%:*}"; done
  ((cycles % 100 < PARALLEL)) && echo "soak: $cycles cycles, $crashes target crashes ($(($(date +%s) - started)) s)" >&2
done

# No agent left: every target's text must be its file's, byte for byte (the kernel removed every
# probe when the agents' descriptors closed, killed or not).
text_diff() {  # pid -> number of differing bytes in its executable's r-x mappings
  python3 - "$1" <<'PY'
import os, sys
pid = sys.argv[1]
exe = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
ino = os.fstat(exe).st_ino
mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
diff = 0
for line in open(f"/proc/{pid}/maps"):
    f = line.split()
    if len(f) < 6 or "x" not in f[1] or int(f[4]) != ino:
        continue
    start, end = (int(x, 16) for x in f[0].split("-"))
    off = int(f[2], 16)
    n = min(end - start, max(0, os.fstat(exe).st_size - off))
    a, b = os.pread(mem, n, start), os.pread(exe, n, off)
    diff += sum(1 for x, y in zip(a, b) if x != y)
print(diff)
PY
}
for i in "${!paths[@]}"; do
  check_target "$i"
  d=$(text_diff "${targets[$i]}" 2>/dev/null || echo 0)
  leftover=$((leftover + d))
  ((d > 0)) && echo "soak: ${paths[$i]##*/}: $d bytes of its text differ from its file" >&2
  kill -TERM "${targets[$i]}"
done
for i in "${!paths[@]}"; do
  wait "${targets[$i]}"; rc=$?
  if [[ $rc != 0 ]] || ! grep -q "ctxprog done" "$work/target$i.out"; then
    crashes=$((crashes + 1))
    echo "soak: ${paths[$i]##*/} did not stop cleanly (rc $rc)" >&2
  fi
done
targets=()
echo "$cycles cycles, $crashes target crashes ($killed agents killed with SIGKILL, $agent_failures agent failures, $leftover leftover probe bytes, $(($(date +%s) - started)) s)"
((crashes == 0 && agent_failures == 0 && leftover == 0))
