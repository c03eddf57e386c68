#!/usr/bin/env bash
# How long does it take to find the functions to probe in a large Go binary?
#   ctxagent symbols <bin> -o json   (build info + pclntab + probe plan, works on stripped binaries)
# versus the stock tool, `go tool nm` (reads .symtab, so it cannot read stripped binaries at all).
#
#   usage: symbols_bench.sh <ctxagent-binary> <go-binary>
#
# If <go-binary> is stripped (every release build: esbuild, Debian's own `go`, ...), `go tool nm`
# fails with "no symbols", and so does `go tool objdump -s`. The comparison is then made on a
# reference binary that keeps its .symtab, the same for both tools: $REF_BINARY, or cmd/go built
# with -ldflags=-w by the newest local toolchain (cached in $BENCH_CACHE; the first build takes
# ~2 min on 2 cores). -w drops DWARF, like a release build: with DWARF present ctxagent also reads
# struct offsets from it, which is extra work nm does not do (and ~15x slower on cmd/go).
# ctxagent is still timed on <go-binary> too, to show that the missing .symtab costs it nothing.
#
# Environment: GO (toolchain, default newest /usr/lib/go-*/bin/go), RUNS (default 20),
# WARMUP (default 3), REF_BINARY, BENCH_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/ctxagent-bench).
# Uses hyperfine when installed (apt-get install hyperfine), else (or with BENCH_NO_HYPERFINE=1)
# a date +%s%N loop.
set -euo pipefail

die() { echo "symbols_bench: error: $*" >&2; exit 1; }
[[ $# -eq 2 ]] || die "usage: $0 <ctxagent-binary> <go-binary>"
ctxagent=$(realpath "$1") target=$(realpath "$2")
[[ -x $ctxagent ]] || die "$1 is not executable"
[[ -r $target ]] || die "cannot read $2"
RUNS=${RUNS:-20} WARMUP=${WARMUP:-3}
GO=${GO:-$(ls -d /usr/lib/go-1.*/bin/go 2>/dev/null | sort -V | tail -1)}
[[ -x $GO ]] || die "no Go toolchain (set GO=/path/to/go)"
BENCH_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ctxagent-bench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Run the nm binary itself, not through `go tool` (whose dispatch would be charged to nm).
nm=$("$GO" tool -n nm 2>/dev/null | awk 'NF{print $NF}') || true
if [[ -z $nm || ! -x $nm ]]; then
  "$GO" tool nm "$GO" >/dev/null 2>&1 || true  # Go 1.24+ builds the tool into the cache on first use
  nm=$("$GO" tool -n nm 2>/dev/null | awk 'NF{print $NF}') || true
fi
[[ -n $nm && -x $nm ]] || die "cannot locate 'go tool nm' of $GO"

describe() {  # <binary>: "name (go1.x.y, stripped, 11.4 MB)"
  local v s d=""
  v=$("$GO" version "$1" 2>/dev/null | awk '{print $2}') || true
  [[ -n $v ]] || v=$(grep -aoE -m1 '^go1\.[0-9]+(\.[0-9]+)?$' <(strings -n 6 "$1") || echo "no buildinfo")
  if readelf -S "$1" 2>/dev/null | grep -q '\.symtab'; then s=symtab; else s=stripped; fi
  readelf -S "$1" 2>/dev/null | grep -qE '\.z?debug_info' && d=" + DWARF"
  printf '%s (%s, %s%s, %.1f MB)' "$(basename "$1")" "$v" "$s" "$d" "$(($(stat -c %s "$1") / 1000))e-3"
}

check_ctxagent() {  # <binary>: ctxagent must succeed and print JSON
  "$ctxagent" symbols "$1" -o json >"$tmp/out.json" 2>"$tmp/err" ||
    die "'$ctxagent symbols $1 -o json' failed: $(head -c 500 "$tmp/err")"
  if command -v python3 >/dev/null; then
    python3 -m json.tool "$tmp/out.json" >/dev/null 2>&1 || die "ctxagent symbols $1 -o json: output is not JSON"
  fi
}

# ---- pick the binary both tools run on ----
check_ctxagent "$target"
ref=$target
if ! "$nm" "$target" >/dev/null 2>"$tmp/nmerr"; then
  echo "go tool nm $(basename "$target"): $(tr '\n' ' ' <"$tmp/nmerr")"
  echo "  -> stock Go tools cannot find functions in a stripped binary; comparing on one with a .symtab"
  if [[ -n ${REF_BINARY:-} ]]; then
    ref=$(realpath "$REF_BINARY")
  else
    gover=$("$GO" env GOVERSION)
    ref=$BENCH_CACHE/go-$gover-symtab
    if [[ ! -x $ref ]]; then
      echo "  building cmd/go -ldflags=-w (symtab, no DWARF) with $gover into $ref (one-time, ~2 min)"
      mkdir -p "$BENCH_CACHE"
      (cd "$tmp" && GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 "$GO" build -trimpath -ldflags=-w -o "$ref.tmp" cmd/go) ||
        die "building the unstripped reference failed"
      mv "$ref.tmp" "$ref"
    fi
  fi
  "$nm" "$ref" >/dev/null 2>"$tmp/nmerr" || die "go tool nm cannot read the reference $ref: $(cat "$tmp/nmerr")"
  check_ctxagent "$ref"
fi

# ---- measure ----
names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }
q() { printf '%q' "$1"; }
[[ $ref != "$target" ]] && add ctxagent-target "$(q "$ctxagent") symbols $(q "$target") -o json"
add ctxagent "$(q "$ctxagent") symbols $(q "$ref") -o json"
add nm "$(q "$nm") $(q "$ref")"

declare -A mean sd
if [[ -z ${BENCH_NO_HYPERFINE:-} ]] && command -v hyperfine >/dev/null; then
  args=()
  for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
  hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" --export-csv "$tmp/h.csv" "${args[@]}" \
    >/dev/null 2>"$tmp/hf.err" || die "hyperfine failed: $(cat "$tmp/hf.err")"
  # command,mean,stddev,median,user,system,min,max (seconds)
  while IFS=, read -r n m s _; do mean[$n]=$m sd[$n]=$s; done < <(tail -n +2 "$tmp/h.csv")
  tool="hyperfine $(hyperfine --version | awk '{print $2}'), $RUNS runs, $WARMUP warmup"
else
  for i in "${!names[@]}"; do
    for ((w = 0; w < WARMUP; w++)); do eval "${cmds[$i]}" >/dev/null 2>&1; done
    for ((r = 0; r < RUNS; r++)); do
      t0=$(date +%s%N); eval "${cmds[$i]}" >/dev/null 2>&1; t1=$(date +%s%N)
      echo $((t1 - t0))
    done >"$tmp/t"
    read -r m s < <(awk '{x+=$1; xx+=$1*$1} END {m=x/NR; v=xx/NR-m*m; if (v<0) v=0; printf "%.9f %.9f\n", m/1e9, sqrt(v)/1e9}' "$tmp/t")
    mean[${names[$i]}]=$m sd[${names[$i]}]=$s
  done
  tool="date +%s%N loop, $RUNS runs, $WARMUP warmup"
fi

ms() { awk -v m="${mean[$1]}" -v s="${sd[$1]}" 'BEGIN {printf "%.1f ms ± %.1f", m*1000, s*1000}'; }
echo "machine: $(nproc) cores, kernel $(uname -r); $tool"
if [[ $ref != "$target" ]]; then
  echo "target     $(describe "$target"): ctxagent $(ms ctxagent-target); go tool nm: cannot read it"
fi
echo "reference  $(describe "$ref"): ctxagent $(ms ctxagent); go tool nm $(ms nm)"
awk -v a="${mean[nm]}" -v b="${mean[ctxagent]}" 'BEGIN {printf "ratio nm/ctxagent: %.1fx\n", a/b}'
