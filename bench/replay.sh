#!/usr/bin/env bash
# How many probe events does one core of the agent decode and apply per second, and how many bytes
# does it keep per live context? Runs replay_bench (bench/replay_bench.cc) on a loaded bench/loadsvc.
#
#   usage: replay.sh [build-dir]     (default: build-bench next to this folder; root)
#
# 1. Builds loadsvc and loadgen (cached in <build-dir>/bench/go, rebuilt when their source changes)
#    and replay_bench if <build-dir> has none.
# 2. Starts loadsvc and drives it with loadgen at RATE req/s (2 contexts and 2 goroutines per
#    request: RATE 10000 = 20k contexts/s), then runs `replay_bench <pid>`: it records the service's
#    events for RECORD_SECONDS, the load stops, and it replays them REPEAT times on one pinned CPU
#    while loadsvc stays up (the decoder reads itabs from its memory).
# 3. `replay_bench --memory`: bytes per live context, without and with a goroutine bound to each.
#
# Environment: GO (default newest /usr/lib/go-*/bin/go), RATE (req/s, default 10000),
# RECORD_SECONDS (10), REPEAT (5), CONNS (loadgen connections, 32), OUT=FILE keeps the recorded
# stream (replay it again with `replay_bench <pid> --in=FILE` while that loadsvc still runs).
set -euo pipefail

die() { echo "replay: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build-bench}")
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
bench_prereqs
RATE=${RATE:-10000} RECORD_SECONDS=${RECORD_SECONDS:-10} REPEAT=${REPEAT:-5} CONNS=${CONNS:-32}

bench=$build/bench/replay_bench
if [[ ! -x $bench ]]; then
  cmake --build "$build" -j2 --target replay_bench >&2 || die "cannot build replay_bench in $build"
fi
gobin=$build/bench/go
mkdir -p "$gobin"
for prog in loadsvc loadgen; do
  if [[ ! -x $gobin/$prog || -n $(find "$here/$prog" "$here/go.mod" -newer "$gobin/$prog") ]]; then
    echo "building $prog with $($GO version | awk '{print $3}')" >&2
    (cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 \
      "$GO" build -o "$gobin/$prog" "./$prog") || die "go build $prog failed"
  fi
done

work=$(mktemp -d /tmp/ctxagent-replay.XXXXXX)
cleanup() {
  # Only this shell's children that were not reaped yet: their pids cannot have been reused.
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" INT TERM  # a signalled bench still stops its daemon and targets

"$gobin/loadsvc" >"$work/svc.out" 2>"$work/svc.err" &
svc=$!
for _ in $(seq 100); do grep -q listening "$work/svc.out" 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/listening/ {print $4}' "$work/svc.out")
[[ -n $addr ]] || die "loadsvc did not start: $(cat "$work/svc.err")"

# The load outlasts any attach time; it is stopped once the recording ends.
"$gobin/loadgen" -addr "$addr" -rate "$RATE" -duration "$((RECORD_SECONDS + 60))s" -conns "$CONNS" \
  >/dev/null 2>"$work/lg.err" &
lg=$!
sleep 1
echo "loadsvc pid $svc on $addr at $RATE req/s; recording ${RECORD_SECONDS}s" >&2
"$bench" "$svc" --record_seconds="$RECORD_SECONDS" --repeat="$REPEAT" ${OUT:+--out="$OUT"} \
  >"$work/replay.out" 2>&1 &
rb=$!
for _ in $(seq $((20 * (RECORD_SECONDS + 60)))); do
  grep -q '^recorded' "$work/replay.out" && break
  kill -0 "$rb" 2>/dev/null || break
  sleep 0.05
done
kill "$lg" 2>/dev/null || true
wait "$rb" || die "replay_bench failed: $(cat "$work/replay.out")"
cat "$work/replay.out"
"$bench" --memory
