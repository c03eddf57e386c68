#!/usr/bin/env bash
# Cost of one heap mark (agent/heap) at 10 MiB, 100 MiB and 1 GiB of live heap: the agent's CPU
# and peak memory per mark, what it read, and the pause between marks the default budget implies
# for one process (bench/README.md).
# Usage: sudo bench/heap_mark.sh [build dir]   (MBS="10 100" for other heap sizes)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
go=$(ls -d /usr/lib/go-1.* | sort -V | tail -n 1)/bin/go
(cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" build -o "$build/bench_heapprog" ./heapprog)
budget=0.003  # the daemon's default --budget: a third of half of it goes to one process's marks
printf '%-9s %8s %10s %10s %9s %9s %9s %12s\n' heap spans heap_MiB read_MiB objects cpu_ms mem_MiB pause_s
for mb in ${MBS:-10 100 1024}; do
  "$build/bench_heapprog" -mb "$mb" >"$build/bench_heapprog.out" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  until grep -q ready "$build/bench_heapprog.out"; do sleep 0.2; done
  out=$("$build/ctxagent" attach "$pid" -o json --duration=9s --mark_every=3s --budget=0 \
        --mark_memory_mb=1024 2>/dev/null | grep '"type":"summary"')
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  python3 - "$mb" "$budget" <<PY
import json, sys
s = json.loads('''$out''')["heap_marks"]
mb, budget = sys.argv[1], float(sys.argv[2])
pause = s["cpu_s"] / (budget / 2 / 3)
print(f'{mb+"MiB":9} {s["spans"]:8} {s["heap_bytes"]/2**20:10.1f} {s["bytes_read"]/2**20:10.1f} '
      f'{s["objects_marked"]:9} {s["cpu_s"]*1e3:9.1f} {s["memory_bytes"]/2**20:9.1f} {pause:12.1f}'
      f'   leaked {s["leaked_goroutines"]}, marks {s["count"]}')
PY
done
