#include "agent/node/pprof_endpoints.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/node/process_endpoints.h"

namespace ctxagent {
namespace {

HttpResponse BadRequest(const std::string& why) { return {400, "text/plain", why + "\n"}; }

HttpResponse Failed(const absl::Status& s) {
  return {absl::IsNotFound(s) ? 404 : 503, "text/plain", std::string(s.message()) + "\n"};
}

HttpResponse Rendered(profile::GoroutineProfiler& profiler, const profile::Profile& profile,
                      int debug) {
  absl::StatusOr<std::string> body = profiler.Render(profile, debug > 0 ? 1 : 0);
  if (!body.ok()) return {500, "text/plain", std::string(body.status().message()) + "\n"};
  return {200, debug > 0 ? "text/plain; charset=utf-8" : "application/octet-stream", *body};
}

}  // namespace

void PprofEndpoints::Register(ProcessEndpoints& endpoints, ProcessProvider& provider) {
  provider_ = &provider;
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

absl::StatusOr<profile::StackSnapshot> PprofEndpoints::Take(const ProcessView& p,
                                                            profile::ProfileType type,
                                                            profile::GoroutineProfiler& profiler) {
  absl::StatusOr<profile::StackSnapshot> read = Snapshot(p, profiler);
  if (!read.ok()) return read.status();
  profile::StackSnapshot snapshot = *std::move(read);
  if (type == profile::ProfileType::kLeak) {
    if (p.leaks == nullptr) return absl::NotFoundError("no heap marks for this process");
    snapshot = profile::LeakSnapshot(*p.leaks, p.findings, p.lineage.sites(), snapshot);
  }
  profile::LabelContexts(p.lineage, snapshot);
  return snapshot;
}

HttpResponse PprofEndpoints::Serve(const ProcessView& p, const HttpRequest& r,
                                   profile::ProfileType type) {
  int debug = 0;
  if (auto d = r.query.find("debug"); d != r.query.end() && !absl::SimpleAtoi(d->second, &debug)) {
    return BadRequest("debug must be 0, 1 or 2");
  }
  if (auto s = r.query.find("seconds"); s != r.query.end()) {
    return ServeDelta(p, s->second, debug, type);
  }
  auto profiler = profile::GoroutineProfiler::Create(p.binary, p.process, p.goroutine_memory);
  if (!profiler.ok()) return Failed(profiler.status());
  absl::StatusOr<profile::StackSnapshot> snapshot = Take(p, type, **profiler);
  if (!snapshot.ok()) return Failed(snapshot.status());
  if (debug >= 2 && type == profile::ProfileType::kGoroutine) {
    return {200, "text/plain; charset=utf-8", (*profiler)->Dump(*snapshot)};
  }
  return Rendered(**profiler, profile::BuildProfile(type, *snapshot), debug);
}

// net/http/pprof's checks, in its order and with its messages.
HttpResponse PprofEndpoints::ServeDelta(const ProcessView& p, const std::string& seconds, int debug,
                                        profile::ProfileType type) {
  int64_t s = 0;
  if (!absl::SimpleAtoi(seconds, &s) || s <= 0) {
    return BadRequest("invalid value for \"seconds\" - must be a positive integer");
  }
  if (type == profile::ProfileType::kCreate) {
    return BadRequest("\"seconds\" parameter is not supported for this profile type");
  }
  if (s > kMaxDeltaSeconds) {
    return BadRequest(absl::StrCat(
        "profile duration exceeds the server's limit (seconds <= ", kMaxDeltaSeconds, ")"));
  }
  if (debug != 0) return BadRequest("seconds and debug params are incompatible");
  auto profiler = profile::GoroutineProfiler::Create(p.binary, p.process, p.goroutine_memory);
  if (!profiler.ok()) return Failed(profiler.status());
  absl::StatusOr<profile::StackSnapshot> first = Take(p, type, **profiler);
  if (!first.ok()) return Failed(first.status());
  const absl::Time at = absl::Now() + absl::Seconds(s);
  return Later(at, {p.pid, p.process.start_time(), type, profile::BuildProfile(type, *first),
                    at + absl::Seconds(kMaxDeltaSeconds)});
}

HttpResponse PprofEndpoints::Later(absl::Time at, Delta delta) {
  HttpResponse later;
  later.at = at;
  later.then = [this, delta = std::move(delta)] { return SecondRead(delta); };
  return later;
}

HttpResponse PprofEndpoints::SecondRead(const Delta& delta) {
  absl::Time due;
  {
    absl::MutexLock l(&mu_);
    due = processes_[delta.pid].pacer.due();
  }
  // Not the paced copy of the first read: the delta would be empty, its duration zero.
  if (due > absl::Now() && due <= delta.latest) return Later(due, delta);
  HttpResponse out{404, "text/plain", absl::StrCat("pid ", delta.pid, " is no longer traced\n")};
  provider_->WithProcess(delta.pid, [&](const ProcessView& p) {
    if (p.process.start_time() != delta.start_time) return;  // the pid was reused
    auto profiler = profile::GoroutineProfiler::Create(p.binary, p.process, p.goroutine_memory);
    if (!profiler.ok()) {
      out = Failed(profiler.status());
      return;
    }
    absl::StatusOr<profile::StackSnapshot> second = Take(p, delta.type, **profiler);
    out =
        second.ok()
            ? Rendered(
                  **profiler,
                  profile::DeltaProfile(delta.first, profile::BuildProfile(delta.type, *second)), 0)
            : Failed(second.status());
  });
  return out;
}

}  // namespace ctxagent
