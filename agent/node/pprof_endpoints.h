// net/http/pprof's goroutine endpoints for a traced process, on the detail port:
// /processes/<pid>/pprof/goroutine, .../goroutineleak and .../goroutinecreate with its `debug`
// parameter (0: gzipped profile.proto, 1: count text, 2: the runtime's goroutine dump), so that a
// Pyroscope or Parca scrape job pointed at them works unchanged. Each read costs CPU per goroutine
// and runs under the provider's lock: reads of one process are paced to kProfileAllowance cores, a
// request within the pause getting a profile of the last read.
#ifndef CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_
#define CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_

#include <sys/types.h>

#include <map>

#include "absl/synchronization/mutex.h"
#include "agent/control/work_pacer.h"
#include "agent/node/http_server.h"
#include "agent/profile/profiler.h"

namespace ctxagent {

struct ProcessView;
class ProcessEndpoints;

// A goroutine profile every 10 s of a process whose read costs 10 ms: 0.1% of a core.
inline constexpr double kProfileAllowance = 0.01;

class PprofEndpoints {
 public:
  // Adds the leaves to `endpoints`, which must not outlive this.
  void Register(ProcessEndpoints& endpoints);

 private:
  HttpResponse Serve(const ProcessView& p, const HttpRequest& r, profile::ProfileType type);

  struct Paced {
    WorkPacer pacer;
    profile::StackSnapshot last;  // of the last read
  };
  // A read of `p`'s goroutines, or the last one while its pacer holds reads back.
  absl::StatusOr<profile::StackSnapshot> Snapshot(const ProcessView& p,
                                                  profile::GoroutineProfiler& profiler);
  absl::Mutex mu_;  // requests of different processes run at once (one lock per provider)
  std::map<pid_t, Paced> processes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_
