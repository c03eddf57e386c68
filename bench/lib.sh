# Helpers shared by the benchmark scripts (sourced after `die` is defined).

# The newest local Go toolchain unless GO is set; root and the tools each script needs.
bench_prereqs() {
  [[ $(id -u) -eq 0 ]] || die "run as root (uprobes, bpf_stats)"
  local t
  for t in "$@"; do command -v "$t" >/dev/null || die "needs $t"; done
  GO=${GO:-$(ls -d /usr/lib/go-1.*/bin/go 2>/dev/null | sort -V | tail -1)}
  [[ -x $GO ]] || die "no Go toolchain (set GO=/path/to/go)"
}

cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Prog ids (one word) -> bpftool's JSON of each, a line each; a failed lookup prints nothing.
prog_json() {
  local id
  for id in $1; do bpftool -j prog show id "$id" 2>/dev/null | grep -v '"error"' && echo; done
}

# Agent pid -> ids of its probe programs (the uprobes, one per handler: type kprobe), from the
# fdinfo of its prog/link fds, space-separated. bpftool can fail transiently on a saturated machine
# (it loads its own iterator): retried.
prog_ids_of() {
  local ids try
  for try in 1 2 3 4 5; do
    ids=$(cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '/^prog_id:/ {print $2}' | sort -un | tr '\n' ' ')
    if [[ -n $ids ]]; then
      ids=$(prog_json "$ids" | python3 -c 'import json,sys; print(" ".join(str(p["id"]) for p in (json.loads(l) for l in sys.stdin if l.strip()) if p["type"] == "kprobe"))' 2>/dev/null)
      [[ -n $ids ]] && { echo "$ids"; return; }
    fi
    sleep 0.2
  done
}

# Prog ids (one word) -> their summed "run_time_ns run_cnt" (kernel.bpf_stats_enabled=1); "0 0"
# without ids. Retried: a run must not read as free of BPF time because bpftool failed once.
bpf_stats() {
  [[ -n $1 ]] || { echo "0 0"; return; }
  local out try
  for try in 1 2 3; do
    out=$(prog_json "$1" | python3 -c '
import json, sys
ps = [json.loads(l) for l in sys.stdin if l.strip()]
assert ps
print(sum(p.get("run_time_ns", 0) for p in ps), sum(p.get("run_cnt", 0) for p in ps))' 2>/dev/null) && { echo "$out"; return; }
    sleep 0.1
  done
  echo "0 0"
}

# CPU time of every live thread of a process in ns, from /proc/<pid>/task/*/schedstat (exact, and
# unaffected by other load on the machine, unlike wall-clock or tick-based measurements).
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }  # %d saturates at 2^31 in mawk

# Waits for a daemon started with --listen=127.0.0.1:0 --detail_listen=127.0.0.1:0 and writing its
# log to $1; sets `port` (metrics, /readyz) and `detail_port` (/processes).
daemon_ports() {
  for _ in $(seq 300); do grep -q "processes on port" "$1" 2>/dev/null && break; sleep 0.1; done
  port=$(awk '/listening on port/ {print $NF}' "$1")
  detail_port=$(awk '/processes on port/ {print $NF}' "$1")
  [[ -n $port && -n $detail_port ]] || { echo "daemon did not start: $(cat "$1")" >&2; exit 1; }
}
