// Goroutine state read from a running Go process's memory, without stopping it: status and wait
// reason, how long it has waited, its `go` statement and start function, and the channels it is
// parked on (g.waiting -> sudog chain -> c). Every goroutine through runtime.allgs, or the ones
// asked for. All reads are batched (process_vm_readv) and race with the program: a g that changes
// under the read is reported with known = false, never guessed.
//
// The target may have corrupted its own runtime: every g pointer of allgs is checked against its
// writable mappings, the array is read in chunks, and the states' memory is capped, so what a
// read costs follows the goroutines that make sense, not what allglen claims.
#ifndef CTXAGENT_AGENT_TRACE_GOROUTINES_H_
#define CTXAGENT_AGENT_TRACE_GOROUTINES_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/lineage/goroutine_state.h"
#include "agent/trace/decoder.h"
#include "agent/trace/process.h"
#include "symbols/go_binary.h"

namespace ctxagent {

class GoroutineReader : public GoroutineStateReader {
 public:
  // What reading cost since construction (the agent's CPU is metered as a whole elsewhere).
  struct Cost {
    uint64_t syscalls = 0;  // process_vm_readv calls
    uint64_t regions = 0;   // regions asked for
    uint64_t bytes = 0;     // bytes asked for
    uint64_t goroutines = 0;
  };

  // All must outlive the reader. `decoder` symbolizes PCs (its cache is shared with the events).
  // A read holds at most `max_memory` bytes of states (HeldBytes).
  GoroutineReader(const symbols::GoBinary& bin, const Process& process, uint64_t bias,
                  Decoder& decoder, const EventClock& clock, uint64_t max_memory);

  std::vector<GoroutineState> Read(const std::vector<Query>& queries) override;
  // ReadEvery's known goroutines; none when it fails.
  std::vector<GoroutineState> ReadAll() override;
  // Every goroutine, with those whose g changed under the read (known = false) and the stack
  // bounds read before it did: the mark scans those as roots rather than miss what they hold.
  // DataLoss when runtime.allgs makes no sense (its length past its capacity or its mapping, most
  // of its entries not goroutines); ResourceExhausted past `max_memory`.
  absl::StatusOr<std::vector<GoroutineState>> ReadEvery();
  std::vector<uint64_t> DoneChannels(const std::vector<ContextQuery>& queries) override;

  const Cost& cost() const { return cost_; }

 private:
  // The g records at `gs`; `goids` (same length) are the expected goids, or empty for any.
  // `implausible`, when given, counts the records that cannot be a g (unreadable, a status no
  // release has, a live g without goid or stack): their states stay unknown, without stack.
  std::vector<GoroutineState> ReadGs(const std::vector<uint64_t>& gs,
                                     const std::vector<uint64_t>& goids,
                                     uint64_t* implausible = nullptr);
  // Follows g.waiting through each parked goroutine's sudogs; `waiting` holds g.waiting per state.
  void ReadParkedChannels(std::vector<GoroutineState>& states,
                          const std::vector<uint64_t>& waiting);
  void ReadMany(std::vector<Process::ReadRequest>& requests);

  const symbols::GoBinary& bin_;
  const Process& process_;
  uint64_t bias_;
  Decoder& decoder_;
  const EventClock& clock_;
  Cost cost_;
  const uint64_t max_memory_;
  const bool sync_on_g_;  // a sync wait's sudog is on g.waiting (GoRuntimeFacts::sync_waits_on_g)
  // The g records of one chunk of a read (up to kGChunk of them), kept between reads.
  static constexpr size_t kGChunk = 4096;
  std::vector<uint8_t> g_buffer_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_GOROUTINES_H_
