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

# Agent pid -> id of its ctxagent_probe program, from the fdinfo of its prog/link fds. bpftool can
# fail transiently on a saturated machine (it loads its own iterator): retried.
prog_id_of() {
  local id try
  for try in 1 2 3 4 5; do
    for id in $(cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '/^prog_id:/ {print $2}' | sort -un); do
      if bpftool prog show id "$id" 2>/dev/null | grep -q ctxagent_probe; then echo "$id"; return; fi
    done
    sleep 0.2
  done
}

# Prog id -> "run_time_ns run_cnt" (kernel.bpf_stats_enabled=1); "0 0" without an id. Retried: a run
# must not read as free of BPF time because bpftool failed once.
bpf_stats() {
  [[ -n $1 ]] || { echo "0 0"; return; }
  local out try
  for try in 1 2 3; do
    out=$(bpftool prog show id "$1" -j 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["run_time_ns"], p["run_cnt"])' 2>/dev/null) && { echo "$out"; return; }
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
