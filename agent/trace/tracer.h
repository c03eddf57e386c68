// Owns the loaded BPF object: attaches a binary's planned probes for one process, drains the ring
// buffer, and reports what was lost.
#ifndef CTXAGENT_AGENT_TRACE_TRACER_H_
#define CTXAGENT_AGENT_TRACE_TRACER_H_

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bpf/ctxagent.h"
#include "symbols/go_binary.h"

struct ctxagent_bpf;
struct bpf_link;
struct ring_buffer;

namespace ctxagent {

// The per-binary BPF configuration for a Go binary: offsets and register conventions.
go_binary_config ConfigFor(const symbols::GoBinary& bin);

// libbpf's debug messages on stderr (its warnings and errors always are).
void SetLibbpfVerbose(bool verbose);

// "ringbuf_full", "no_config", "read_failed": the label of each enum drop_reason.
const char* DropReasonName(int reason);

struct TracerCounters {
  uint64_t submitted = 0;
  std::array<uint64_t, DROP_REASONS> dropped{};
  uint64_t dropped_total() const;
};

class Tracer {
 public:
  using Handler = std::function<void(const ctx_event&)>;

  static constexpr uint32_t kDefaultRingBytes = 16 << 20;
  // Loads the BPF object with a ring buffer of `ring_bytes` (a power of two, at least a page).
  // PermissionDenied with a clear reason without the privileges.
  static absl::StatusOr<std::unique_ptr<Tracer>> Create(Handler handler,
                                                        uint32_t ring_bytes = kDefaultRingBytes);
  ~Tracer();

  // Attaches every planned probe of `bin` (opened from /proc/<pid>/exe), for `pid` only, or for
  // every process running that file with pid -1. Returns the attachment's id.
  absl::StatusOr<uint32_t> Attach(pid_t pid, const symbols::GoBinary& bin);
  // Removes an attachment's probes; the targets keep running untouched.
  void Detach(uint32_t attachment);
  // Exec and exit events of every process (EV_PROC_EXEC / EV_PROC_EXIT), for the daemon.
  absl::Status WatchProcesses();
  // Drains what the probes wrote so far; returns the number of events handled.
  int Drain();
  // Sleeps until the ring asks for a drain (an exec event, or the ring filling up: the probes
  // themselves never wake the agent) or `timeout` passes. True when woken by the ring.
  bool Wait(absl::Duration timeout);
  TracerCounters counters() const;
  // Cumulative probe hits per hook (enum ctx_hook).
  std::array<uint64_t, CTX_HOOKS> hook_hits() const;
  int probe_fd() const;
  size_t attached_probes() const;

 private:
  Tracer() = default;
  struct Attachment {
    pid_t pid;
    uint32_t slot;
    int exe_fd;  // keeps the file reachable: /proc/<pid>/exe vanishes with the process
    std::vector<bpf_link*> links;
  };
  ctxagent_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  int epoll_fd_ = -1;  // edge-triggered on the ring: only a wakeup the BPF side asks for counts
  Handler handler_;
  std::vector<Attachment> attachments_;
  std::vector<bpf_link*> process_links_;
  uint32_t next_slot_ = 0;
  std::vector<uint32_t> free_slots_;  // configuration slots of detached processes
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_TRACER_H_
