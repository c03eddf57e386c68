// The per-process HTTP endpoints, one router for the daemon (every traced process) and for
// `ctxagent attach --http` (the attached one): /processes and /processes/<pid>/<leaf>, plus pages
// other views register (the lineage page at "/", /processes/<pid>/graph, .../goroutines).
#ifndef CTXAGENT_AGENT_NODE_PROCESS_ENDPOINTS_H_
#define CTXAGENT_AGENT_NODE_PROCESS_ENDPOINTS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "agent/heap/leak_tracker.h"
#include "agent/lineage/lineage.h"
#include "agent/node/http_server.h"
#include "agent/node/pprof_endpoints.h"
#include "agent/trace/process.h"
#include "agent/view/site_graph.h"
#include "nlohmann/json.hpp"
#include "symbols/go_binary.h"

namespace ctxagent {

// One traced process as the endpoints see it; valid only inside the provider's callback.
struct ProcessView {
  pid_t pid;
  const ProcessLineage& lineage;
  const std::vector<Finding>& findings;  // as of the last evaluation
  const symbols::GoBinary& binary;
  const Process& process;  // the target's memory
  SiteGrowth* growth;      // the site graph's growth rates (null: none)
  nlohmann::json labels;   // identity listed by /processes: binary, and namespace, pod, container
  // How much later than usual its findings can be: its memory reads and evaluations are spaced
  // to fit the budget (TracingSession::work_pause).
  absl::Duration work_pause = absl::ZeroDuration();
  const heap::LeakTracker* leaks = nullptr;  // the goroutines its heap marks proved leaked
  // What one read of its goroutines may hold (--mark_memory_mb).
  uint64_t goroutine_memory = heap::MarkLimits{}.max_memory;
};

// What is traced. Implementations run the callbacks with the lock that guards their lineages.
class ProcessProvider {
 public:
  virtual ~ProcessProvider() = default;
  virtual void ForEachProcess(absl::FunctionRef<void(const ProcessView&)> fn) = 0;
  // False (fn not called) when `pid` is not traced.
  virtual bool WithProcess(pid_t pid, absl::FunctionRef<void(const ProcessView&)> fn) = 0;
};

class ProcessEndpoints {
 public:
  // Answers for one process, under the provider's lock.
  using Leaf = std::function<HttpResponse(const ProcessView& process, const HttpRequest& request)>;
  // Answers an exact path; takes the provider's lock itself if it needs it.
  using Page = std::function<HttpResponse(ProcessProvider& provider, const HttpRequest& request)>;

  // Serves /processes, /processes/<pid>/tree, .../findings, .../goroutines and .../pprof/...
  explicit ProcessEndpoints(ProcessProvider& provider);
  // Registration must be done before the first Handle (before the server starts).
  void AddLeaf(const std::string& name, Leaf leaf);  // /processes/<pid>/<name> ("a/b" too)
  void AddPage(const std::string& path, Page page);  // e.g. "/"
  // Thread-safe. 404 with the list of endpoints for any other path.
  HttpResponse Handle(const HttpRequest& request) const;

 private:
  ProcessProvider& provider_;
  std::map<std::string, Leaf> leaves_;
  std::map<std::string, Page> pages_;
  PprofEndpoints pprof_;
};

// A JSON body (UTF-8-safe, see agent/view/utf8.h).
HttpResponse JsonResponse(const nlohmann::json& j);

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_NODE_PROCESS_ENDPOINTS_H_
