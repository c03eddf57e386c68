#include "agent/node/pprof_endpoints.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/node/process_endpoints.h"

namespace ctxagent {
namespace {

HttpResponse BadRequest(const std::string& why) { return {400, "text/plain", why + "\n"}; }

}  // namespace

void PprofEndpoints::Register(ProcessEndpoints& endpoints) {
  for (auto [name, type] : {std::make_pair("goroutine", profile::ProfileType::kGoroutine),
                            std::make_pair("goroutineleak", profile::ProfileType::kLeak),
                            std::make_pair("goroutinecreate", profile::ProfileType::kCreate)}) {
    endpoints.AddLeaf(absl::StrCat("pprof/", name),
                      [this, type = type](const ProcessView& p, const HttpRequest& r) {
                        return Serve(p, r, type);
                      });
  }
}

absl::StatusOr<profile::StackSnapshot> PprofEndpoints::Snapshot(
    const ProcessView& p, profile::GoroutineProfiler& profiler) {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock l(&mu_);
    Paced& paced = processes_[p.pid];
    paced.pacer.set_allowance(kProfileAllowance);
    if (!paced.pacer.Due(now)) return paced.last;
  }
  const double cpu = ThreadCpuSeconds();
  absl::StatusOr<profile::StackSnapshot> snapshot = profiler.Read();
  absl::MutexLock l(&mu_);
  Paced& paced = processes_[p.pid];
  paced.pacer.Ran(now, ThreadCpuSeconds() - cpu);
  if (snapshot.ok()) paced.last = *snapshot;
  return snapshot;
}

HttpResponse PprofEndpoints::Serve(const ProcessView& p, const HttpRequest& r,
                                   profile::ProfileType type) {
  int debug = 0;
  if (auto d = r.query.find("debug"); d != r.query.end() && !absl::SimpleAtoi(d->second, &debug)) {
    return BadRequest("debug must be 0, 1 or 2");
  }
  if (r.query.count("seconds") > 0) {
    // net/http/pprof's delta profiles: what changed over `seconds`, for cumulative profiles.
    return BadRequest("\"seconds\" parameter is not supported for this profile type");
  }
  auto profiler = profile::GoroutineProfiler::Create(p.binary, p.process, p.goroutine_memory);
  if (!profiler.ok()) return {503, "text/plain", std::string(profiler.status().message()) + "\n"};
  absl::StatusOr<profile::StackSnapshot> read = Snapshot(p, **profiler);
  if (!read.ok()) return {503, "text/plain", std::string(read.status().message()) + "\n"};
  profile::StackSnapshot& snapshot = *read;
  if (type == profile::ProfileType::kLeak) {
    if (p.leaks == nullptr) return {404, "text/plain", "no heap marks for this process\n"};
    snapshot = profile::LeakSnapshot(*p.leaks, p.findings, p.lineage.sites(), snapshot);
  }
  if (debug >= 2 && type == profile::ProfileType::kGoroutine) {
    return {200, "text/plain; charset=utf-8", (*profiler)->Dump(snapshot)};
  }
  absl::StatusOr<std::string> body =
      (*profiler)->Render(profile::BuildProfile(type, snapshot), debug > 0 ? 1 : 0);
  if (!body.ok()) return {500, "text/plain", std::string(body.status().message()) + "\n"};
  return {200, debug > 0 ? "text/plain; charset=utf-8" : "application/octet-stream", *body};
}

}  // namespace ctxagent
