#!/usr/bin/env bash
# Cost of reading goroutine state from memory at 10k and 100k parked goroutines (bench/README.md).
# Usage: bench/goroutines.sh [build dir]   (needs root: process_vm_readv on another process)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
go=$(ls -d /usr/lib/go-1.* | sort -V | tail -n 1)/bin/go
(cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" build -o "$build/bench_parked" ./parked)
for n in 10000 100000; do
  "$build/bench_parked" -n "$n" >"$build/bench_parked.out" &
  pid=$!
  until grep -q ready "$build/bench_parked.out"; do sleep 0.1; done
  "$build/bench/goroutines_bench" --pid="$pid" --rounds=10
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
