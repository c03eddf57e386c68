// net/http/pprof's goroutine endpoints for a traced process, on the detail port:
// /processes/<pid>/pprof/goroutine, .../goroutineleak and .../goroutinecreate with its `debug`
// parameter (0: gzipped profile.proto, 1: count text, 2: the runtime's goroutine dump), so that a
// Pyroscope or Parca scrape job pointed at them works unchanged. Each read costs CPU per goroutine
// and runs under the provider's lock: reads of one process are paced to kProfileAllowance cores,
// a request within the pause getting the last answer (or 429 when there is none).
#ifndef CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_
#define CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_

#include <sys/types.h>

#include <map>
#include <string>

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
    std::map<std::string, HttpResponse> last;  // by profile type and debug
  };
  absl::Mutex mu_;  // requests of different processes run at once (one lock per provider)
  std::map<pid_t, Paced> processes_ ABSL_GUARDED_BY(mu_);
};

// The answer to one request, unpaced (exposed for tests).
HttpResponse ServeGoroutineProfile(const ProcessView& p, const HttpRequest& r,
                                   profile::ProfileType type);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_PPROF_ENDPOINTS_H_
