#include "agent/cli/profile_command.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/profile/profiler.h"
#include "agent/session/session.h"

namespace ctxagent {

absl::Status RunProfileCommand(const ProfileOptions& o) {
  const Process process(o.pid);
  absl::StatusOr<std::unique_ptr<symbols::GoBinary>> bin =
      symbols::GoBinary::Open(process.exe_path());
  if (!bin.ok()) return bin.status();
  absl::StatusOr<std::unique_ptr<profile::GoroutineProfiler>> profiler =
      profile::GoroutineProfiler::Create(**bin, process,
                                         MarkLimitsFor(o.mark_memory_mb).max_memory);
  if (!profiler.ok()) return profiler.status();
  profile::ProfileType type = profile::ProfileType::kGoroutine;
  if (o.type == "leak") type = profile::ProfileType::kLeak;
  if (o.type == "create") type = profile::ProfileType::kCreate;
  auto read = [&]() -> absl::StatusOr<profile::StackSnapshot> {
    if (type == profile::ProfileType::kLeak) {
      return (*profiler)->ProveLeaks(o.mark_every, MarkLimitsFor(o.mark_memory_mb));
    }
    return (*profiler)->Read();
  };
  absl::StatusOr<profile::StackSnapshot> snapshot = read();
  if (!snapshot.ok()) return snapshot.status();
  absl::StatusOr<std::string> out;
  if (o.seconds > 0) {
    const profile::Profile first = profile::BuildProfile(type, *snapshot);
    absl::SleepFor(absl::Seconds(o.seconds));
    snapshot = read();
    if (!snapshot.ok()) return snapshot.status();
    out = (*profiler)->Render(profile::DeltaProfile(first, profile::BuildProfile(type, *snapshot)),
                              0);
  } else if (o.output == "text" && type == profile::ProfileType::kGoroutine) {
    // The text form of the goroutine profile is the runtime's dump (debug=2); of the others, the
    // count text (debug=1), as net/http/pprof serves them.
    out = (*profiler)->Dump(*snapshot);
  } else {
    out = (*profiler)->Render(profile::BuildProfile(type, *snapshot), o.output == "text" ? 1 : 0);
  }
  if (!out.ok()) return out.status();
  if (o.output_file.empty()) {
    fwrite(out->data(), 1, out->size(), stdout);
    return absl::OkStatus();
  }
  std::ofstream file(o.output_file, std::ios::binary);
  file << *out;
  if (!file.good()) return absl::UnavailableError(absl::StrCat("cannot write ", o.output_file));
  return absl::OkStatus();
}

}  // namespace ctxagent
