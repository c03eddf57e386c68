// Turns raw probe events of one process into decoded events: addresses become context kinds, parent
// link types, cancel causes and interned source sites, using the binary's pclntab and reads of the
// target's memory (itabs only, cached).
#ifndef CTXAGENT_AGENT_TRACE_DECODER_H_
#define CTXAGENT_AGENT_TRACE_DECODER_H_

#include <cstdint>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "agent/lineage/events.h"
#include "agent/trace/process.h"
#include "bpf/ctxagent.h"
#include "symbols/go_binary.h"

namespace ctxagent {

// Monotonic (bpf_ktime_get_ns) -> wall clock.
class EventClock {
 public:
  EventClock();
  absl::Time ToTime(uint64_t ktime_ns) const { return base_ + absl::Nanoseconds(ktime_ns); }

 private:
  absl::Time base_;
};

// The type name of a Go function's receiver: "context.(*cancelCtx).Done" -> "*context.cancelCtx".
std::string ReceiverType(absl::string_view function);
// A Go time.Time {wall, ext} as absl::Time.
absl::Time GoTimeToAbsl(uint64_t wall, int64_t ext);

class Decoder {
 public:
  // `bin` must outlive the decoder. `bias` is the executable's load bias in the process.
  Decoder(const symbols::GoBinary& bin, const Process& process, uint64_t bias, SiteTable& sites);

  absl::StatusOr<DecodedEvent> Decode(const ctx_event& raw, const EventClock& clock);

  // Exposed for tests.
  ParentLink::Type ClassifyItab(uint64_t itab);
  // Whether `word` is the itab of WithoutCancel's context (a compile-time conversion: in the
  // image; anything else costs no read), as ClassifyItab says, cached.
  bool IsWithoutCancelItab(uint64_t word) {
    return word >= image_start_ && word < image_end_ &&
           ClassifyItab(word) == ParentLink::Type::kWithoutCancel;
  }
  // The cancelable contexts among a new goroutine's captured words. `uncancelable` (may be null)
  // is set when one of them is a Context no cancellation can reach: WithValue layers over
  // Background/TODO, or a WithoutCancel link anywhere in its chain.
  std::vector<uint64_t> CapturedContexts(const __u64* words, bool* uncancelable = nullptr);
  CancelCause ClassifyCancel(const __u64* frames, uint32_t n, uint64_t err_itab, SiteId* site);

  // The site of a `go` statement from its g.gopc (a return address into the spawner), and the name
  // of the function at a runtime PC ("?" when unknown): shared with the goroutine-state reader.
  SiteId GoSite(uint64_t gopc) { return Lookup(gopc).site; }
  std::string FunctionName(uint64_t pc);
  // The line a parked goroutine blocks on: the first frame of its stack (return addresses,
  // innermost first, inlined frames expanded) outside the runtime, internal/ and sync packages.
  SiteId BlockingSite(const std::vector<uint64_t>& stack);

 private:
  struct PcInfo {
    std::string function;  // innermost function at the PC
    SiteId site;           // innermost frame
    SiteId user_site;      // innermost frame outside package context (kNoSite when none)
  };
  const PcInfo& Lookup(uint64_t pc);  // runtime return address
  SiteId FirstUserSite(const __u64* frames, uint32_t n, uint32_t from);
  // What a creation or cancel stack says, cached by its first CTX_KEY_FRAMES frames: the probe
  // sends only those for a stack it has sent before.
  struct StackInfo {
    SiteId creation_site = kNoSite;  // first frame outside package context
    bool from_parent = false;        // a cancel reached through an ancestor
    SiteId cancel_site = kNoSite;    // where a CancelFunc was called
  };
  using StackKey = std::tuple<uint64_t, uint64_t, uint64_t>;
  const StackInfo& Stack(const __u64* frames, uint32_t n);
  std::string ItabType(uint64_t itab);

  const symbols::GoBinary& bin_;
  const Process& process_;
  uint64_t bias_;
  SiteTable& sites_;
  uint64_t image_start_ = UINT64_MAX;  // the executable's mapped range in the process
  uint64_t image_end_ = 0;
  absl::flat_hash_map<uint64_t, PcInfo> pcs_;
  absl::flat_hash_map<uint64_t, std::string> itabs_;
  absl::flat_hash_map<StackKey, StackInfo> stacks_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_DECODER_H_
