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

HttpResponse PprofEndpoints::Serve(const ProcessView& p, const HttpRequest& r,
                                   profile::ProfileType type) {
  auto debug = r.query.find("debug");
  const std::string key =
      absl::StrCat(static_cast<int>(type), "/", debug == r.query.end() ? "0" : debug->second);
  const absl::Time now = absl::Now();
  {
    absl::MutexLock l(&mu_);
    Paced& paced = processes_[p.pid];
    paced.pacer.set_allowance(kProfileAllowance);
    if (!paced.pacer.Due(now)) {
      auto last = paced.last.find(key);
      if (last != paced.last.end()) return last->second;
      return {429, "text/plain",
              absl::StrCat("paced: the next read of pid ", p.pid, " in ",
                           absl::FormatDuration(paced.pacer.pause()), "\n")};
    }
  }
  const double cpu = ThreadCpuSeconds();
  HttpResponse out = ServeGoroutineProfile(p, r, type);
  absl::MutexLock l(&mu_);
  Paced& paced = processes_[p.pid];
  paced.pacer.Ran(now, ThreadCpuSeconds() - cpu);
  if (out.status == 200) paced.last[key] = out;
  return out;
}

HttpResponse ServeGoroutineProfile(const ProcessView& p, const HttpRequest& r,
                                   profile::ProfileType type) {
  int debug = 0;
  if (auto d = r.query.find("debug"); d != r.query.end() && !absl::SimpleAtoi(d->second, &debug)) {
    return BadRequest("debug must be 0, 1 or 2");
  }
  if (r.query.count("seconds") > 0) {
    // net/http/pprof's delta profiles: what changed over `seconds`, for cumulative profiles.
    return BadRequest("\"seconds\" parameter is not supported for this profile type");
  }
  auto profiler = profile::GoroutineProfiler::Create(p.binary, p.process);
  if (!profiler.ok()) return {503, "text/plain", std::string(profiler.status().message()) + "\n"};
  profile::StackSnapshot snapshot = (*profiler)->Read();
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
