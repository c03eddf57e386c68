#include "agent/cli/attach_http.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace ctxagent {

AttachHttp::AttachHttp(absl::Mutex& mu, pid_t pid, const ProcessLineage& lineage,
                       const std::vector<Finding>& findings, const symbols::GoBinary& binary,
                       const Process& process, SiteGrowth* growth, const heap::LeakTracker* leaks)
    : mu_(mu),
      pid_(pid),
      lineage_(lineage),
      findings_(findings),
      binary_(binary),
      process_(process),
      growth_(growth),
      leaks_(leaks) {
  // The executable's name, as the daemon lists it.
  char target[4096];
  ssize_t n = readlink(absl::StrCat("/proc/", pid, "/exe").c_str(), target, sizeof(target) - 1);
  std::string path(target, n > 0 ? n : 0);
  binary_name_ = path.substr(path.rfind('/') + 1);
}

absl::Status AttachHttp::Serve(const std::string& listen) {
  auto server = HttpServer::Start({.listen = listen},
                                  [this](const HttpRequest& r) { return endpoints_.Handle(r); });
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  fprintf(stderr, "ctxagent: serving /processes/%d/... on port %d\n", pid_, server_->port());
  return absl::OkStatus();
}

void AttachHttp::ForEachProcess(absl::FunctionRef<void(const ProcessView&)> fn) {
  WithProcess(pid_, fn);
}

bool AttachHttp::WithProcess(pid_t pid, absl::FunctionRef<void(const ProcessView&)> fn) {
  if (pid != pid_) return false;
  absl::MutexLock l(&mu_);
  fn({pid_,
      lineage_,
      findings_,
      binary_,
      process_,
      growth_,
      {{"binary", binary_name_}},
      absl::ZeroDuration(),
      leaks_});
  return true;
}

}  // namespace ctxagent
