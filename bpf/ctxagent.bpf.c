// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Uprobes on a Go program's context creation, cancellation, and goroutine creation/exit: one
// program per handler (GO_PROBE), each named by the rows of symbols/probe_table.h that place it.
// One loaded object serves every attached binary: the attach cookie names the binary's
// configuration slot.
// clang-format off: vmlinux.h defines the kernel types the libbpf headers use.
#include "vmlinux.h"
// clang-format on
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/ctxagent.h"
#include "bpf/go_abi.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, CTX_MAX_BINARIES);
  __type(key, __u32);
  __type(value, struct go_binary_config);
} binaries SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DROP_REASONS);
  __type(key, __u32);
  __type(value, __u64);
} drops SEC(".maps");

// Events submitted, per CPU: with the drops, the agent knows how many happened.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} submitted SEC(".maps");

// Probe hits per enum ctx_trap, per CPU: with the measured trap costs, what tracing costs the
// targets.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, CTX_TRAPS);
  __type(key, __u32);
  __type(value, __u64);
} trap_hits SEC(".maps");

// Go < 1.21: newproc1's caller goroutine, from its entry to its RET on the same thread (it runs on
// the system stack and is not preempted in between).
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, __u64);
} spawning SEC(".maps");

static __always_inline void count_drop(__u32 reason) {
  __u64 *n = bpf_map_lookup_elem(&drops, &reason);
  if (n) *n += 1;
}

static __always_inline struct ctx_event *reserve(__u32 type, __u64 goid, __u64 g) {
  struct ctx_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count_drop(DROP_RINGBUF_FULL);
    return 0;
  }
  e->type = type;
  e->tgid = bpf_get_current_pid_tgid() >> 32;
  e->ktime_ns = bpf_ktime_get_ns();
  e->goid = goid;
  e->g = g;
  return e;
}

// An event of a goroutine: goroutine ids start at 1, so 0 means its runtime.g could not be read
// and the event would name nobody. Dropped and counted, so the agent knows something went unseen.
static __always_inline struct ctx_event *reserve_go(__u32 type, __u64 goid, __u64 g) {
  if (!goid) {
    count_drop(DROP_READ_FAILED);
    return 0;
  }
  return reserve(type, goid, g);
}

// The consumer drains on its own timer: waking it per event would triple the probe's cost. It is
// woken only for what cannot wait for that timer: a ring an eighth full (it would overflow first)
// and, with `wake`, a new program to look at.
static __always_inline void submit_and_wake(struct ctx_event *e, bool wake) {
  __u32 zero = 0;
  __u64 *n = bpf_map_lookup_elem(&submitted, &zero);
  if (n) *n += 1;
  if (!wake)
    wake = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >
           bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 8;
  bpf_ringbuf_submit(e, wake ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline void submit(struct ctx_event *e) { submit_and_wake(e, false); }

static __always_inline __u64 read_u64(__u64 addr) {
  __u64 v = 0;
  bpf_probe_read_user(&v, sizeof(v), (void *)addr);
  return v;
}

static __always_inline __u64 goid_of(const struct go_binary_config *cfg, __u64 g) {
  return g ? read_u64(g + cfg->g_goid) : 0;
}

// Stacks already sent, by process and first CTX_KEY_FRAMES return addresses: a hot call site costs
// one full walk, then only the frames that identify it.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, __u8);
} known_stacks SEC(".maps");

// Return addresses: [SP] first (the probe sits before the frame is set up, so the kernel's own walk
// would skip the immediate caller), then the caller frames through the saved frame pointers.
static __always_inline __u32 read_frames(struct pt_regs *ctx, __u64 *frames) {
  frames[0] = read_u64(PT_REGS_SP(ctx));
  __u64 fp = PT_REGS_FP(ctx);
  __u32 n = 1;
  // Per process: each process's decoder learns its stacks afresh (and PIE addresses differ).
  __u64 key = frames[0] ^ ((bpf_get_current_pid_tgid() >> 32) * 0x9E3779B97F4A7C15ull);
#pragma unroll
  for (int i = 1; i < CTX_MAX_FRAMES; i++) {
    __u64 pair[2] = {0, 0};  // saved BP, return address
    if (!fp || bpf_probe_read_user(pair, sizeof(pair), (void *)fp) != 0 || !pair[1]) break;
    frames[i] = pair[1];
    fp = pair[0];
    n++;
    if (i < CTX_KEY_FRAMES) key = key * 0x9E3779B97F4A7C15ull + pair[1];
    if (i == CTX_KEY_FRAMES - 1) {
      if (bpf_map_lookup_elem(&known_stacks, &key)) return n;  // seen: the key frames suffice
      __u8 one = 1;
      bpf_map_update_elem(&known_stacks, &key, &one, BPF_ANY);
    }
  }
  return n;
}

// While a new binary's cost is unknown the agent arms an alarm (alarm_hits > 0): the probes wake it
// once that many hits were counted, so that a target turning busy is measured again after a
// bounded cost, not at the next timer (a 250 ms timer let a 20k contexts/s target use a third of
// the node that long). Unarmed, the probes pay one load.
__u64 alarm_hits = 0;
__u64 alarm_count = 0;
__u32 alarm_sent = 0;

static __always_inline void count_for_alarm(void) {
  if (!alarm_hits) return;
  __sync_fetch_and_add(&alarm_count, 1);
  // Racing CPUs can both send: a second wakeup is harmless.
  if (alarm_sent || alarm_count < alarm_hits) return;
  alarm_sent = 1;
  struct ctx_event *e = reserve(EV_HIT_ALARM, 0, 0);
  if (e) submit_and_wake(e, true);
}

// The handlers, by the index the attach cookie names (filled by the tracer from the probe table).
struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, CTX_MAX_HANDLERS);
  __type(key, __u32);
  __type(value, __u32);
} handlers SEC(".maps");

// The program every probe runs: it counts the hit by its kind of trap, rings the alarm and jumps to
// the probe's handler. One program keeps a binary's probes in one multi link per attach phase: each
// link costs the kernel a grace period to release (a link per handler made a daemon switching ten
// binaries stall for seconds).
SEC("uprobe.multi")
int ctxagent_probe(struct pt_regs *ctx) {
  __u64 cookie = bpf_get_attach_cookie(ctx);
  __u32 trap = CTX_COOKIE_TRAP(cookie);
  __u64 *hits = bpf_map_lookup_elem(&trap_hits, &trap);
  if (hits) *hits += 1;
  count_for_alarm();
  bpf_tail_call(ctx, &handlers, CTX_COOKIE_HANDLER(cookie));
  count_drop(DROP_NO_CONFIG);  // no handler at that index
  return 0;
}

// GO_PROBE(name) defines handler program `name`, which a probe table row (symbols/probe_table.h)
// names, around the block that follows it; the block sees `ctx`, the binary's `cfg` and `abi` (the
// row's argument layout). uprobe.multi like ctxagent_probe, which tail-calls it: the agent turns
// both into plain uprobes before loading them where the kernel has no multi links
// (Tracer::Create).
#define GO_PROBE(name)                                                                            \
  static __always_inline int name##_body(struct pt_regs *ctx, const struct go_binary_config *cfg, \
                                         __u32 abi);                                              \
  SEC("uprobe.multi") int name(struct pt_regs *ctx) {                                             \
    __u64 cookie = bpf_get_attach_cookie(ctx);                                                    \
    __u32 slot = CTX_COOKIE_BINARY(cookie);                                                       \
    const struct go_binary_config *cfg = bpf_map_lookup_elem(&binaries, &slot);                   \
    if (!cfg) {                                                                                   \
      count_drop(DROP_NO_CONFIG);                                                                 \
      return 0;                                                                                   \
    }                                                                                             \
    return name##_body(ctx, cfg, CTX_COOKIE_ABI(cookie));                                         \
  }                                                                                               \
  static __always_inline int name##_body(struct pt_regs *ctx, const struct go_binary_config *cfg, \
                                         __u32 abi)

// propagateCancel, at its stack check:
//   <= 1.20: func propagateCancel(parent Context, child canceler)
//   >= 1.21: func (c *cancelCtx) propagateCancel(parent Context, child canceler)
GO_PROBE(ctx_create) {
  __u64 g = GO_G(ctx);
  struct ctx_event *e = reserve_go(EV_CTX_CREATE, goid_of(cfg, g), g);
  if (!e) return 0;
  // Load every candidate register first: the verifier rejects a ctx access at a computed offset.
  __u64 a1 = GO_ARG1(ctx), a2 = GO_ARG2(ctx), a3 = GO_ARG3(ctx), a4 = GO_ARG4(ctx),
        a5 = GO_ARG5(ctx);
  bool method = abi == CREATE_ABI_METHOD;
  __u64 parent_itab = method ? a2 : a1;
  __u64 parent_data = method ? a3 : a2;
  e->create.child_itab = method ? a4 : a3;
  e->create.ctx = method ? a5 : a4;
  // Every context type keeps its parent Context at +0: the agent walks this chain to the nearest
  // cancelable ancestor through WithValue / WithoutCancel wrappers.
#pragma unroll
  for (int i = 0; i < CTX_PARENT_CHAIN; i++) {
    e->create.parent[i][0] = parent_itab;
    e->create.parent[i][1] = parent_data;
    __u64 next[2] = {0, 0};
    if (i + 1 < CTX_PARENT_CHAIN && parent_data)
      bpf_probe_read_user(next, sizeof(next), (void *)parent_data);
    parent_itab = next[0];
    parent_data = next[1];
  }
  __u64 deadline[2] = {0, 0};
  bpf_probe_read_user(deadline, sizeof(deadline), (void *)(e->create.ctx + cfg->timerctx_deadline));
  e->create.deadline_wall = deadline[0];
  e->create.deadline_ext = deadline[1];
  e->create.nframes = read_frames(ctx, e->create.frames);
  submit(e);
  return 0;
}

// func (c *cancelCtx) cancel(removeFromParent bool, err error[, cause error (>= 1.20)])
GO_PROBE(ctx_cancel) {
  struct ctx_event *e = reserve_go(EV_CTX_CANCEL, goid_of(cfg, GO_G(ctx)), 0);
  if (!e) return 0;
  e->cancel.ctx = GO_ARG1(ctx);
  e->cancel.remove_from_parent = GO_ARG2(ctx) & 0xff;
  e->cancel.err_itab = GO_ARG3(ctx);
  // Tells this context from an earlier one the GC freed at the same address while detached.
  e->cancel.parent_data = read_u64(e->cancel.ctx + 8);
  e->cancel.nframes = read_frames(ctx, e->cancel.frames);
  submit(e);
  return 0;
}

// newproc1's entry, for its caller goroutine (Go < 1.21 has no g.parentGoid):
//   1.17:     func newproc1(fn *funcval, argp unsafe.Pointer, narg int32, callergp *g,
//                           callerpc uintptr) *g
//   1.18-22:  func newproc1(fn *funcval, callergp *g, callerpc uintptr) *g
//   >= 1.23:  func newproc1(fn *funcval, callergp *g, callerpc uintptr, parked bool,
//                           waitreason waitReason) *g
GO_PROBE(go_spawner) {
  // callergp's argument number comes from the probe table (BX since Go 1.18, DI in 1.17). Both
  // candidates are loaded first: the verifier rejects a ctx access at a computed offset.
  __u64 tid = bpf_get_current_pid_tgid();
  __u64 bx = GO_ARG2(ctx), di = GO_ARG4(ctx);
  barrier_var(bx);  // else clang selects the register's offset in ctx, not the loaded value
  barrier_var(di);
  __u64 parent = goid_of(cfg, abi == GO_ARGNUM_DI ? di : bx);
  bpf_map_update_elem(&spawning, &tid, &parent, BPF_ANY);
  return 0;
}

// The new goroutine `g`, once newproc1 made it.
static __always_inline int send_go_create(const struct go_binary_config *cfg, __u64 g) {
  struct ctx_event *e = reserve_go(EV_GO_CREATE, goid_of(cfg, g), g);
  if (!e) return 0;
  if (cfg->g_parent_goid >= 0) {
    e->go_create.parent_goid = read_u64(g + cfg->g_parent_goid);
  } else {
    __u64 tid = bpf_get_current_pid_tgid();
    __u64 *parent = bpf_map_lookup_elem(&spawning, &tid);
    e->go_create.parent_goid = parent ? *parent : 0;
  }
  e->go_create.gopc = read_u64(g + cfg->g_gopc);
  e->go_create.startpc = read_u64(g + cfg->g_startpc);
  __u64 fn = read_u64(g + cfg->g_sched_ctxt);
  e->go_create.fn = fn;
  if (fn) bpf_probe_read_user(e->go_create.words, sizeof(e->go_create.words), (void *)(fn + 8));
  submit(e);
  return 0;
}

// newproc.func1's `runqput(pp *p, gp *g, next bool)`, right after newproc1 returned.
GO_PROBE(go_handed_off) { return send_go_create(cfg, GO_ARG2(ctx)); }

// newproc1's `return newg`, where no handoff site was found.
GO_PROBE(go_returned) { return send_go_create(cfg, GO_ARG1(ctx)); }

// <= 1.21: func goexit0(gp *g); >= 1.22: func gdestroy(gp *g)
GO_PROBE(go_exit) {
  struct ctx_event *e = reserve_go(EV_GO_EXIT, goid_of(cfg, GO_ARG1(ctx)), 0);
  if (e) submit(e);
  return 0;
}

// Process lifecycle: the daemon watches every process (exec to find new Go programs without
// polling /proc, exit to forget them); `attach` watches its target's exec only, to stop at once.
// Raw tracepoints: they need no tracefs mount (often absent in containers) and run in the task's
// context, so the helpers name the process.
__u32 watched_tgid = 0;  // 0: every process

// Executables the agent decided not to trace (not Go, not selected), and the processes it traces.
// A node runs the same few programs over and over (shells, probes, cron): each exec of them woke
// the daemon to stat and read /proc for nothing, ~130 us of its CPU per exec on the test VM.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct ctx_exec_file);
  __type(value, __u8);
} quiet_files SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, __u8);
} traced_tgids SEC(".maps");

SEC("raw_tp/sched_process_exec")
int ctxagent_exec(struct bpf_raw_tracepoint_args *ctx) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (watched_tgid && tgid != watched_tgid) return 0;
  struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
  struct ctx_exec_file file = {
      .dev = BPF_CORE_READ(bprm, file, f_inode, i_sb, s_dev),
      .ino = BPF_CORE_READ(bprm, file, f_inode, i_ino),
      .size = BPF_CORE_READ(bprm, file, f_inode, i_size),
  };
  // A traced process always reports its exec: the agent must forget the program it left.
  if (!bpf_map_lookup_elem(&traced_tgids, &tgid) && bpf_map_lookup_elem(&quiet_files, &file))
    return 0;
  struct ctx_event *e = reserve(EV_PROC_EXEC, 0, 0);
  if (!e) return 0;
  e->exec = file;
  submit_and_wake(e, true);
  return 0;
}

SEC("raw_tp/sched_process_exit")
int ctxagent_exit(void *ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  if ((__u32)id != (id >> 32)) return 0;  // a thread, not the whole process
  struct ctx_event *e = reserve(EV_PROC_EXIT, 0, 0);
  if (e) submit(e);
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
