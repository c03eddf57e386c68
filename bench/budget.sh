#!/usr/bin/env bash
# Every overhead target in one run, on a quiet machine: bench/idle.sh (idle floor, the scaling
# curve, the fixed cost per process), then bench/startup.sh (a target started under the daemon at
# 1k, 20k and 100k contexts/s), then the lines that carry a target, with their verdicts.
#   sudo bench/budget.sh [build/ctxagent]      # ~60 min; logs and summary.txt stay in $OUT (/tmp)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d /tmp/ctxagent-budget.XXXXXX)}
mkdir -p "$OUT"
"$here/idle.sh" "$@" 2>&1 | tee "$OUT/idle.log"
"$here/startup.sh" "$@" 2>&1 | tee "$OUT/startup.log"
echo
{
  echo "ctxagent budget, $(nproc) CPUs, $(date -u +%F) (logs in $OUT):"
  grep -h -e "target <=" -e "fixed cost per further" -e "^scaling" -e "contexts/s, .* runs" -e "a hit costs the target" \
    -e "own count" "$OUT/idle.log" "$OUT/startup.log"
} | tee "$OUT/summary.txt"
