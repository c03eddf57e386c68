// Goroutine state read from a running Go process's memory, without stopping it: status and wait
// reason, how long it has waited, its `go` statement and start function, and the channels it is
// parked on (g.waiting -> sudog chain -> c). Every goroutine through runtime.allgs, or the ones
// asked for. All reads are batched (process_vm_readv) and race with the program: a g that changes
// under the read is reported with known = false, never guessed.
#ifndef CTXAGENT_AGENT_TRACE_GOROUTINES_H_
#define CTXAGENT_AGENT_TRACE_GOROUTINES_H_

#include <cstdint>
#include <vector>

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
  GoroutineReader(const symbols::GoBinary& bin, const Process& process, uint64_t bias,
                  Decoder& decoder, const EventClock& clock);

  std::vector<GoroutineState> Read(const std::vector<Query>& queries) override;
  std::vector<GoroutineState> ReadAll() override;
  // ReadAll, plus the goroutines whose g changed under the read (known = false) with the stack
  // bounds read before it did: the mark scans those as roots rather than miss what they hold.
  std::vector<GoroutineState> ReadEvery();
  std::vector<uint64_t> DoneChannels(const std::vector<ContextQuery>& queries) override;

  const Cost& cost() const { return cost_; }

 private:
  // The g records at `gs`; `goids` (same length) are the expected goids, or empty for any.
  std::vector<GoroutineState> ReadGs(const std::vector<uint64_t>& gs,
                                     const std::vector<uint64_t>& goids);
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
  const bool sync_on_g_;  // a sync wait's sudog is on g.waiting (GoRuntimeFacts::sync_waits_on_g)
  // The g records of one chunk of a read (up to kGChunk of them), kept between reads.
  static constexpr size_t kGChunk = 4096;
  std::vector<uint8_t> g_buffer_;
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_TRACE_GOROUTINES_H_
