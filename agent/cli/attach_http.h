// `ctxagent attach <pid> --http ADDR`: the daemon's per-process endpoints (/processes,
// /processes/<pid>/tree, .../findings and whatever else is registered) for the attached process.
#ifndef CTXAGENT_AGENT_CLI_ATTACH_HTTP_H_
#define CTXAGENT_AGENT_CLI_ATTACH_HTTP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/node/http_server.h"
#include "agent/node/process_endpoints.h"

namespace ctxagent {

class AttachHttp : public ProcessProvider {
 public:
  // Requests read the lineage and findings under `mu`, which the attach loop holds while it
  // changes them.
  AttachHttp(absl::Mutex& mu, pid_t pid, const ProcessLineage& lineage,
             const std::vector<Finding>& findings, const symbols::GoBinary& binary,
             const Process& process, SiteGrowth* growth, const heap::LeakTracker* leaks);
  // Routes are added here before Serve.
  ProcessEndpoints& endpoints() { return endpoints_; }
  absl::Status Serve(const std::string& listen);
  int port() const { return server_ ? server_->port() : 0; }

  void ForEachProcess(absl::FunctionRef<void(const ProcessView&)> fn) override;
  bool WithProcess(pid_t pid, absl::FunctionRef<void(const ProcessView&)> fn) override;

 private:
  absl::Mutex& mu_;
  const pid_t pid_;
  const ProcessLineage& lineage_;
  const std::vector<Finding>& findings_;
  const symbols::GoBinary& binary_;
  const Process& process_;
  SiteGrowth* growth_;
  const heap::LeakTracker* leaks_;
  std::string binary_name_;
  ProcessEndpoints endpoints_{*this};
  std::unique_ptr<HttpServer> server_;  // last: stopped before the rest goes
};

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_CLI_ATTACH_HTTP_H_
