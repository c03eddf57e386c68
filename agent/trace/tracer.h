// Owns the loaded BPF object: attaches a binary's planned probes for one process, drains the ring
// buffer, and reports what was lost.
#ifndef CTXAGENT_AGENT_TRACE_TRACER_H_
#define CTXAGENT_AGENT_TRACE_TRACER_H_

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/trace/process.h"
#include "bpf/ctxagent.h"
#include "symbols/go_binary.h"

struct ctxagent_bpf;
struct bpf_link;
struct bpf_program;
struct ring_buffer;

namespace ctxagent {

// The per-binary BPF configuration for a Go binary: offsets and register conventions.
go_binary_config ConfigFor(const symbols::GoBinary& bin);

// libbpf's debug messages on stderr (its warnings and errors always are).
void SetLibbpfVerbose(bool verbose);

// "ringbuf_full", "no_config", "read_failed": the label of each enum drop_reason.
const char* DropReasonName(int reason);

// Cumulative probe hits per kind of trap (enum ctx_trap): what they cost the target differs
// tenfold.
using TrapHits = std::array<uint64_t, CTX_TRAPS>;

struct TracerCounters {
  uint64_t submitted = 0;
  std::array<uint64_t, DROP_REASONS> dropped{};
  uint64_t dropped_total() const;
};

class Tracer {
 public:
  using Handler = std::function<void(const ctx_event&)>;

  // How a binary's probes are attached. A uprobe_multi link (Linux >= 6.10) attaches a group of
  // probes in one syscall and detaches them with one RCU grace period; a perf-event uprobe per
  // probe costs a grace period per probe, each under the kernel-wide event_mutex, so concurrent
  // attach/detach by sampling agents on one node stall each other for seconds.
  enum class Links { kMultiWhenSupported, kPerProbe };

  // Whether this kernel gets kMultiWhenSupported's multi links.
  static bool KernelHasMultiLinks();

  static constexpr uint32_t kDefaultRingBytes = 16 << 20;
  // Loads the BPF object with a ring buffer of `ring_bytes` (a power of two, at least a page).
  // PermissionDenied with a clear reason without the privileges.
  static absl::StatusOr<std::unique_ptr<Tracer>> Create(Handler handler,
                                                        uint32_t ring_bytes = kDefaultRingBytes,
                                                        Links links = Links::kMultiWhenSupported);
  ~Tracer();
  Tracer(const Tracer&) = delete;  // owns libbpf objects
  Tracer& operator=(const Tracer&) = delete;

  // Attaches every planned probe of `bin`, in plan order, for `process` only, through the file
  // `bin` keeps open (never a path, which exec or pid reuse can make name another file). First
  // checks that the process still runs that file and is the process it was (FailedPrecondition
  // "pid N now runs another binary" / "pid N was reused"), and that every probe site still holds
  // its planned instruction; on any error nothing is attached. `bin` must outlive the attachment.
  // Returns the attachment's id. Without `goroutine_exits` the goroutine-exit probes are left out
  // (a goroutine's end is then read from memory: ProbeSet decides).
  absl::StatusOr<uint32_t> Attach(const Process& process, const symbols::GoBinary& bin,
                                  bool goroutine_exits = true);
  // The same for every process running `bin`'s file, now or later (the kernel puts the probes in
  // each mapping of that very file only).
  absl::StatusOr<uint32_t> AttachEveryProcess(const symbols::GoBinary& bin,
                                              bool goroutine_exits = true);
  // Removes an attachment's probes; the targets keep running untouched.
  void Detach(uint32_t attachment);
  // Exec and exit events of every process (EV_PROC_EXEC / EV_PROC_EXIT), for the daemon.
  absl::Status WatchProcesses();
  // The exec event (EV_PROC_EXEC, waking Wait) of process `pid` only.
  absl::Status WatchExec(pid_t pid);
  // Later execs of `file` (from an exec event) send no event, except by a traced process: the
  // agent decided once that it does not trace it. Best effort: the set forgets its oldest files.
  void Quiet(const ctx_exec_file& file);
  // Whether `pid` is traced: a traced process's exec is always reported.
  void SetTraced(pid_t pid, bool traced);
  // Wakes Wait once `hits` more probe hits are counted (0: disarms); the event is not handed on.
  void ArmHitAlarm(uint64_t hits);
  // Whether the armed alarm's hits were counted.
  bool HitAlarmRang() const;
  // Drains what the probes wrote so far, at most `limit` events; returns how many were handled.
  // A loop that must not fall behind its deadlines drains in chunks (a busy target's window
  // holds thousands of events, tens of milliseconds of decoding on a slow machine).
  int Drain(int limit = std::numeric_limits<int>::max());
  // Events handled by every Drain so far (the rate of events, whoever drained them).
  uint64_t handled() const { return handled_; }
  // Sleeps until the ring asks for a drain (an exec event, or the ring filling up: the probes
  // themselves never wake the agent) or `timeout` passes. True when woken by the ring.
  bool Wait(absl::Duration timeout);
  TracerCounters counters() const;
  // Cumulative probe hits per kind of trap (enum ctx_trap).
  TrapHits trap_hits() const;
  // The program every probe runs, whose run time (its handlers' included) the kernel's BPF stats
  // count.
  int probe_fd() const;
  size_t attached_probes() const;
  bool multi_links() const { return multi_; }

 private:
  Tracer() = default;
  absl::StatusOr<uint32_t> AttachPlan(pid_t pid, const symbols::GoBinary& bin,
                                      bool goroutine_exits);
  struct Attachment {
    pid_t pid;
    uint32_t slot;
    std::vector<bpf_link*> links;  // in attach order
    size_t probes = 0;
  };
  // Attaches `probes` (one phase of a plan) as one multi link or a link per probe.
  absl::Status AttachGroup(pid_t pid, const symbols::GoBinary& bin, uint32_t slot,
                           const std::vector<const symbols::Probe*>& probes, Attachment& a);
  // Puts every handler the probe table names in the `handlers` program array.
  absl::Status FillHandlers();
  // The ring's callback: hands an event to the handler, stops the drain at its limit.
  static int OnRingEvent(void* ctx, void* data, size_t size);
  ctxagent_bpf* skel_ = nullptr;
  bool multi_ = false;  // probes go through uprobe_multi links
  ring_buffer* ring_ = nullptr;
  uint64_t handled_ = 0;
  int drain_left_ = 0;  // events the drain in progress may still handle
  int epoll_fd_ = -1;   // edge-triggered on the ring: only a wakeup the BPF side asks for counts
  Handler handler_;
  std::vector<Attachment> attachments_;
  std::map<std::string, uint32_t, std::less<>> handler_index_;  // program name -> `handlers` index
  std::vector<bpf_link*> process_links_;
  uint32_t next_slot_ = 0;
  std::vector<uint32_t> free_slots_;  // configuration slots of detached processes
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_TRACER_H_
