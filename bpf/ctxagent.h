/* The contract between ctxagent.bpf.c and the agent: per-binary configuration and the events. */
#ifndef CTXAGENT_BPF_CTXAGENT_H_
#define CTXAGENT_BPF_CTXAGENT_H_

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CTX_MAX_BINARIES 256
#define CTX_MAX_FRAMES 8 /* return addresses kept per creation / cancel */
#define CTX_KEY_FRAMES                                                                            \
  3                        /* the first frames, which identify a call site: a repeated site sends \
                              only these (the agent remembers the rest) */
#define CTX_PARENT_CHAIN 4 /* parent Context interfaces read up the chain at creation */
#define GO_CAPTURE_WORDS 6 /* words of a new goroutine's funcval after its code pointer */

#define CTX_MAX_HANDLERS 32 /* probe handler programs (GO_PROBE in ctxagent.bpf.c) */

/* The attach cookie, from the high bits: the binary's configuration slot; the probe's handler (its
 * index in the `handlers` program array, which the tracer fills from the probe table's program
 * names); the argument layout its row names (ProbeRow::abi: CREATE_ABI_*, GO_ARGNUM_*); how the
 * kernel runs the probed instruction (enum ctx_trap). */
#define CTX_COOKIE(binary, handler, abi, trap) \
  (((__u64)(binary) << 24) | ((__u64)(handler) << 16) | ((__u64)(abi) << 8) | (trap))
#define CTX_COOKIE_BINARY(c) ((__u32)((c) >> 24))
#define CTX_COOKIE_HANDLER(c) ((__u32)(((c) >> 16) & 0xff))
#define CTX_COOKIE_ABI(c) ((__u32)(((c) >> 8) & 0xff))
#define CTX_COOKIE_TRAP(c) ((__u32)((c)&0xff))

/* What a probe hit costs the target beyond the BPF program: the kernel emulates the probed
 * instruction, or single-steps it out of line. Hits are counted per kind. */
enum ctx_trap {
  TRAP_EMULATED = 0,
  TRAP_STEPPED = 1,
  CTX_TRAPS = 2,
};

/* The probe_ctx_create handler's layout: where propagateCancel's arguments are. */
enum ctx_create_abi {
  CREATE_ABI_FUNC = 0,   /* <= 1.20 propagateCancel(parent AX:BX, child CX:DI) */
  CREATE_ABI_METHOD = 1, /* >= 1.21 (c AX).propagateCancel(parent BX:CX, child DI:SI) */
};

/* The probe_go_spawner handler's layout: newproc1's callergp as a Go ABI integer argument number
 * (1 = AX, 2 = BX, 3 = CX, 4 = DI). */
#define GO_ARGNUM_BX 2
#define GO_ARGNUM_DI 4

/* Per-binary facts, written by the agent into the `binaries` array at its slot. */
struct go_binary_config {
  __s32 g_goid;
  __s32 g_parent_goid; /* -1 before Go 1.21: the entry probe supplies the parent */
  __s32 g_gopc;
  __s32 g_startpc;
  __s32 g_sched_ctxt; /* g.sched.ctxt: the funcval the goroutine starts with */
  __s32 timerctx_deadline;
};

enum ctx_event_type {
  EV_CTX_CREATE = 1,
  EV_CTX_CANCEL = 2,
  EV_GO_CREATE = 3,
  EV_GO_EXIT = 4,
  EV_PROC_EXEC = 5, /* a process exec'd a new program (daemon: is it Go?) */
  EV_PROC_EXIT = 6, /* a process (thread group) ended */
  EV_HIT_ALARM = 7, /* the hits the agent asked to hear of were counted (carries nothing) */
};

enum ctx_drop_reason {
  DROP_RINGBUF_FULL = 0,
  DROP_NO_CONFIG = 1,
  DROP_READ_FAILED = 2,
  DROP_REASONS = 3,
};

/* An executable as the kernel names it at exec (its superblock's dev_t, inode, size): a file the
 * agent decided once not to trace is skipped in the kernel at every later exec of it. */
struct ctx_exec_file {
  __u64 dev;
  __u64 ino;
  __u64 size;
};

struct ctx_event {
  __u32 type; /* enum ctx_event_type */
  __u32 tgid;
  __u64 ktime_ns;
  __u64 goid; /* goroutine the event happened on; for EV_GO_* the goroutine created / exiting */
  __u64 g;    /* that goroutine's runtime.g: its liveness can be read from memory while unprobed */
  union {
    struct {
      __u64 ctx;        /* the new context's address (child data word) */
      __u64 child_itab; /* canceler itab: tells *cancelCtx / *timerCtx / *afterFuncCtx */
      __u64 parent[CTX_PARENT_CHAIN][2]; /* {itab, data} of the parent, its parent, ... */
      __s64 deadline_wall;               /* time.Time of a timerCtx (garbage for other kinds) */
      __s64 deadline_ext;
      __u32 nframes;
      __u32 pad;
      __u64 frames[CTX_MAX_FRAMES]; /* [0] = return address at [SP], then the frame-pointer chain */
    } create;
    struct {
      __u64 ctx;
      __u64 err_itab;
      __u64 remove_from_parent;
      __u64
          parent_data; /* the word at ctx+8 (its parent Context's data word; 1.20 timerCtx: not) */
      __u32 nframes;
      __u32 pad;
      __u64 frames[CTX_MAX_FRAMES];
    } cancel;
    struct {
      __u64 parent_goid;
      __u64 gopc;                    /* the `go` statement's PC */
      __u64 startpc;                 /* the goroutine's function */
      __u64 fn;                      /* its funcval */
      __u64 words[GO_CAPTURE_WORDS]; /* captured variables: matched against context addresses */
    } go_create;
    struct ctx_exec_file exec; /* EV_PROC_EXEC: the new executable */
  };
};

#endif /* CTXAGENT_BPF_CTXAGENT_H_ */
