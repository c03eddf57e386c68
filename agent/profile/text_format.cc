#include "agent/profile/text_format.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ctxagent::profile {
namespace {

void AppendHeader(std::string& out, const GoroutineStack& g, absl::Time now) {
  absl::StrAppend(&out, "goroutine ", g.state.goid, " [", g.state.state);
  // runtime.goroutineheader: whole minutes, from the time a GC saw it parked.
  if (g.state.waiting_since != absl::InfinitePast()) {
    const int64_t minutes = absl::ToInt64Minutes(now - g.state.waiting_since);
    if (minutes >= 1) absl::StrAppend(&out, ", ", minutes, " minutes");
  }
  absl::StrAppend(&out, "]:\n");
}

void AppendFrames(std::string& out, const GoroutineStack& g, StackSymbolizer& symbolizer) {
  bool first = true;
  for (uint64_t pc : g.pcs) {
    const PcInfo& info = symbolizer.Lookup(pc);
    for (const symbols::SourceFrame& f : info.frames) {
      if (f.wrapper || !ShownInTraceback(f.function, first)) continue;
      first = false;
      absl::StrAppend(&out, PrintedFunctionName(f.function), "(...)\n\t", f.file, ":", f.line);
      if (!f.inlined && pc > info.entry)
        absl::StrAppend(&out, absl::StrFormat(" +%#x", pc - info.entry));
      out += '\n';
    }
  }
}

void AppendCreatedBy(std::string& out, const GoroutineStack& g, StackSymbolizer& symbolizer,
                     bool parent_goid) {
  if (g.state.goid == 1 || g.state.gopc == 0) return;
  const PcInfo& info = symbolizer.Lookup(g.state.gopc);
  if (info.frames.empty() || !ShownInTraceback(info.function, false)) return;
  // runtime.printcreatedby1: the physical function, the innermost frame's line.
  absl::StrAppend(&out, "created by ", PrintedFunctionName(info.function));
  if (parent_goid && g.state.parent_goid != 0) {
    absl::StrAppend(&out, " in goroutine ", g.state.parent_goid);
  }
  absl::StrAppend(&out, "\n\t", info.frames[0].file, ":", info.frames[0].line);
  if (g.state.gopc > info.entry) {
    absl::StrAppend(&out, absl::StrFormat(" +%#x", g.state.gopc - info.entry));
  }
  out += '\n';
}

}  // namespace

std::string GoroutineDump(const StackSnapshot& snapshot, StackSymbolizer& symbolizer,
                          bool parent_goid) {
  std::string out;
  for (const GoroutineStack& g : snapshot.goroutines) {
    if (!out.empty()) out += '\n';
    AppendHeader(out, g, snapshot.taken);
    AppendFrames(out, g, symbolizer);
    AppendCreatedBy(out, g, symbolizer, parent_goid);
  }
  return out;
}

std::string CountProfileText(const Profile& profile, StackSymbolizer& symbolizer) {
  std::string out = absl::StrCat(profile.name, " profile: total ", profile.total, "\n");
  for (const Sample& s : profile.samples) {
    absl::StrAppend(&out, s.count, " @");
    for (uint64_t pc : s.pcs) absl::StrAppend(&out, absl::StrFormat(" %#x", pc));
    out += '\n';
    if (!s.labels.empty()) {
      out += "# labels: {";
      for (size_t i = 0; i < s.labels.size(); ++i) {
        absl::StrAppend(&out, i ? ", " : "", "\"", s.labels[i].first, "\":[\"", s.labels[i].second,
                        "\"]");
      }
      out += "}\n";
    }
    // runtime/pprof's printStackRecord: runtime frames before the first other one, and
    // runtime.goexit, are hidden.
    bool show = false;
    for (uint64_t pc : s.pcs) {
      const PcInfo& info = symbolizer.Lookup(pc);
      for (const symbols::SourceFrame& f : info.frames) {
        show = show || !(absl::StartsWith(f.function, "runtime.") ||
                         absl::StartsWith(f.function, "internal/runtime/"));
        if (!show || f.wrapper || f.function == "runtime.goexit") continue;
        absl::StrAppend(&out, absl::StrFormat("#\t%#x\t%s+%#x\t%s:%d\n", pc - 1, f.function,
                                              pc - 1 - info.entry, f.file, f.line));
      }
    }
    out += '\n';
  }
  return out;
}

}  // namespace ctxagent::profile
