// net/http/pprof's goroutine endpoints for a traced process, on the detail port:
// /processes/<pid>/pprof/goroutine, .../goroutineleak and .../goroutinecreate with its `debug`
// parameter (0: gzipped profile.proto, 1: count text, 2: the runtime's goroutine dump) and, for
// goroutine and goroutineleak, its `seconds` (a delta profile: what changed over that many seconds,
// at most kMaxDeltaSeconds), so that a Pyroscope or Parca scrape job pointed at them works
// unchanged. Each read costs CPU per goroutine and runs under the provider's lock: reads of one
// process are paced to kProfileAllowance cores, a request within the pause getting a profile of
// the last read. A delta's second read waits for its pause rather than reuse the first.
#ifndef CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_
#define CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_

#include <sys/types.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/control/work_pacer.h"
#include "agent/node/http_server.h"
#include "agent/profile/profiler.h"

namespace ctxagent {

struct ProcessView;
class ProcessEndpoints;
class ProcessProvider;

// A goroutine profile every 10 s of a process whose read costs 10 ms: 0.1% of a core.
inline constexpr double kProfileAllowance = 0.01;
// The longest delta profile (`seconds`): a longer one is refused with 400, as net/http/pprof
// refuses one longer than its server's WriteTimeout. A pending delta holds a suspended connection
// and its first profile (HttpLimits::max_deferred_per_client bounds them per client).
inline constexpr int kMaxDeltaSeconds = 60;

class PprofEndpoints {
 public:
  // Adds the leaves to `endpoints`; neither `endpoints` nor `provider` (whose processes they
  // serve) may outlive this.
  void Register(ProcessEndpoints& endpoints, ProcessProvider& provider);

 private:
  HttpResponse Serve(const ProcessView& p, const HttpRequest& r, profile::ProfileType type);
  // The answer to `seconds`: the first read now, the delta deferred.
  HttpResponse ServeDelta(const ProcessView& p, const std::string& seconds, int debug,
                          profile::ProfileType type);
  // A delta waiting for its second read.
  struct Delta {
    pid_t pid;
    uint64_t start_time;  // the process's, so a pid reused meanwhile is not subtracted from
    profile::ProfileType type;
    profile::Profile first;
    absl::Time latest;  // the last time the pacer may hold the second read back to
  };
  // A deferred answer: at `at`, the second read of `delta`.
  HttpResponse Later(absl::Time at, Delta delta);
  // The second read, or a later one while the pacer holds reads of the process back.
  HttpResponse SecondRead(const Delta& delta);

  struct Paced {
    WorkPacer pacer;
    profile::StackSnapshot last;  // of the last read
  };
  // A read of `p`'s goroutines, or the last one while its pacer holds reads back.
  absl::StatusOr<profile::StackSnapshot> Snapshot(const ProcessView& p,
                                                  profile::GoroutineProfiler& profiler);
  // The goroutines a profile of `type` lists (the leak snapshot for kLeak).
  absl::StatusOr<profile::StackSnapshot> Take(const ProcessView& p, profile::ProfileType type,
                                              profile::GoroutineProfiler& profiler);
  ProcessProvider* provider_ = nullptr;
  absl::Mutex mu_;  // requests of different processes run at once (one lock per provider)
  std::map<pid_t, Paced> processes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_
