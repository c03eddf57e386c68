#!/usr/bin/env bash
# Goroutine profile cost at 1k, 10k and 100k parked goroutines (bench/README.md): ctxagent's read
# from outside (`ctxagent profile`, wall and CPU) against the runtime's own goroutine?debug=2 dump
# of the same process, and the stop-the-world pauses each caused in the target, as the runtime's
# /sched/pauses/total/other:seconds counts them.
# Usage: bench/profile.sh [build dir]   (needs root: process_vm_readv on another process)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
go=$(ls -d /usr/lib/go-1.* | sort -V | tail -n 1)/bin/go
(cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" build -o "$build/bench_profiled" ./profiled)
printf '%-8s %-28s %10s %10s %8s %12s\n' goroutines reader wall_s cpu_s pauses pause_max_s
for n in 1000 10000 100000; do
  "$build/bench_profiled" -n "$n" >"$build/bench_profiled.out" &
  pid=$!
  until grep -q ready "$build/bench_profiled.out"; do sleep 0.1; done
  addr=$(sed -n 's/.*addr=//p' "$build/bench_profiled.out")
  sleep 1
  read -r p0 _ _ < <(curl -s "http://$addr/pauses")
  t=$( { /usr/bin/time -f '%e %U %S' "$build/ctxagent" profile "$pid" /dev/null; } 2>&1 | tail -n 1)
  read -r p1 _ _ < <(curl -s "http://$addr/pauses")
  read -r wall user sys <<<"$t"
  printf '%-8s %-28s %10s %10.2f %8s %12s\n' "$n" "ctxagent profile" "$wall" \
    "$(echo "$user + $sys" | bc)" "$((p1 - p0))" "-"
  start=$(date +%s.%N)
  curl -s -o /dev/null "http://$addr/debug/pprof/goroutine?debug=2"
  end=$(date +%s.%N)
  read -r p2 _ longest < <(curl -s "http://$addr/pauses")
  printf '%-8s %-28s %10.3f %10s %8s %12s\n' "$n" "runtime goroutine?debug=2" \
    "$(echo "$end - $start" | bc)" "(in target)" "$((p2 - p1))" "<=$longest"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
