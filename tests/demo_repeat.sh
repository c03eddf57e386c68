#!/usr/bin/env bash
# Attaches to demo/leakysvc as scripts/demo.sh does (default budget: sampling on), RUNS times, BATCH
# at a time, and checks that every run reports exactly the demo's two documented findings:
# broken_chain at main.go:25 (the audit rooted at Background) and orphaned_done at main.go:48 (the
# dropped session). Usage: tests/demo_repeat.sh [BUILD_DIR] (env RUNS=30 BATCH=3). Needs root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
runs=${RUNS:-30}
batch=${BATCH:-3}
go=$(ls -d /usr/lib/go-1.* | sort -V | tail -n 1)/bin/go
(cd "$root/demo" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="$build/gocache/demo" \
  "$go" build -ldflags='-s -w' -o "$build/leakysvc" ./leakysvc)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

one() {  # one run: its findings as "kind file:line" lines in $out/$1.findings
  local n=$1 svc
  "$build/leakysvc" >"$out/$n.svc" 2>&1 &
  svc=$!
  sleep 1
  "$build/ctxagent" attach "$svc" --duration=20s --grace=2s --leak_after=5s -o json \
    >"$out/$n.json" 2>"$out/$n.err" || true
  kill "$svc" 2>/dev/null || true
  wait "$svc" 2>/dev/null || true
  python3 - "$out/$n.json" >"$out/$n.findings" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("type") == "finding":
        print(j["kind"], "%s:%d" % (j["site"]["file"].rsplit("/", 1)[-1], j["site"]["line"]))
PY
}

for ((i = 0; i < runs; i += batch)); do
  for ((k = i; k < i + batch && k < runs; k++)); do one "$k" & done
  wait
done
expected=$'broken_chain main.go:25\norphaned_done main.go:48'
bad=0
for ((k = 0; k < runs; k++)); do
  got=$(sort "$out/$k.findings")
  if [[ "$got" != "$expected" ]]; then
    bad=$((bad + 1))
    echo "run $k: got:"; sed 's/^/  /' <<<"$got"
  fi
done
echo "demo_repeat: $((runs - bad))/$runs runs with exactly the two documented findings"
[[ $bad -eq 0 ]]
