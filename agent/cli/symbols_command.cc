#include "agent/cli/symbols_command.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/view/utf8.h"
#include "symbols/context_api.h"

namespace ctxagent {

using symbols::GoBinary;
using symbols::GoOffsets;
using symbols::PlannedHook;
using symbols::Probe;

std::string ResolveTarget(const std::string& binary_or_pid) {
  if (!binary_or_pid.empty() &&
      std::all_of(binary_or_pid.begin(), binary_or_pid.end(), absl::ascii_isdigit)) {
    return absl::StrCat("/proc/", binary_or_pid, "/exe");
  }
  return binary_or_pid;
}

namespace {

nlohmann::json OffsetsToJson(const GoOffsets& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : o.Named()) j[name] = value;
  return j;
}

std::vector<symbols::ConstructorPlan> Constructors(const GoBinary& bin) {
  return symbols::PlanConstructors(bin.pclntab(), bin.build_info().version);
}

// "WithCancel.func1 at 0x4a2b40, ..." or "-".
std::string CancelFuncsText(const symbols::ConstructorPlan& p) {
  if (p.cancel_funcs.empty()) return "-";
  return absl::StrJoin(p.cancel_funcs, ", ", [](std::string* out, const symbols::Function& f) {
    absl::StrAppendFormat(out, "%s at 0x%x", f.name.substr(f.name.find('.') + 1), f.entry);
  });
}

nlohmann::json ConstructorsToJson(const GoBinary& bin) {
  nlohmann::json out = nlohmann::json::array();
  for (const symbols::ConstructorPlan& p : Constructors(bin)) {
    nlohmann::json cancel = nlohmann::json::array();
    for (const symbols::Function& f : p.cancel_funcs) {
      cancel.push_back({{"name", f.name}, {"address", f.entry}});
    }
    out.push_back({{"name", p.constructor->name},
                   {"in_release", p.in_release},
                   {"linked", p.linked},
                   {"observed", p.constructor->observed},
                   {"cancel_funcs", cancel}});
  }
  return out;
}

}  // namespace

nlohmann::json SymbolsToJson(const GoBinary& bin) {
  nlohmann::json functions = nlohmann::json::array();
  for (const PlannedHook& h : bin.plan().hooks) {
    functions.push_back({{"name", h.function.name},
                         {"hook", symbols::HookKindName(h.hook.kind)},
                         {"required", h.hook.required},
                         {"args", h.hook.args},
                         {"address", h.function.entry},
                         {"size", h.function.end - h.function.entry},
                         {"file_offset", h.entry_file_offset}});
  }
  nlohmann::json probes = nlohmann::json::array();
  for (const Probe& p : bin.plan().probes) {
    probes.push_back({{"function", p.function},
                      {"hook", symbols::HookKindName(p.hook)},
                      {"site", symbols::SiteKindName(p.kind)},
                      {"program", p.program},
                      {"address", p.site.address},
                      {"file_offset", p.site.file_offset},
                      {"instruction", p.site.instruction},
                      {"bytes", absl::BytesToHexString(p.site.bytes)},
                      {"emulated", p.site.emulated}});
  }
  const auto& info = bin.build_info();
  return {{"binary", bin.path()},
          {"go_version", info.version.raw},
          {"main_module", info.main_module},
          {"main_path", info.main_path},
          {"stripped", bin.stripped()},
          {"pie", bin.pie()},
          {"dwarf", bin.has_dwarf()},
          {"pclntab",
           {{"magic", absl::StrFormat("0x%08x", bin.pclntab().magic())},
            {"address", bin.pclntab().vaddr()},
            {"text_start", bin.pclntab().text_start()},
            {"functions", bin.pclntab().num_functions()}}},
          {"offsets_source", symbols::SourceName(bin.offsets().source)},
          {"offsets", OffsetsToJson(bin.offsets())},
          {"functions", functions},
          {"probes", probes},
          {"constructors", ConstructorsToJson(bin)},
          {"missing_optional", bin.plan().missing},
          {"entry_fallbacks", bin.plan().entry_fallbacks}};
}

std::string SymbolsToText(const GoBinary& bin) {
  const auto& info = bin.build_info();
  std::string out = absl::StrFormat(
      "binary:      %s\n"
      "go version:  %s\n"
      "module:      %s\n"
      "build:       %s, %s, %s\n"
      "pclntab:     magic 0x%08x at 0x%x, %d functions, text at 0x%x\n"
      "offsets:     from %s (g.goid=%d g.parentGoid=%d cancelCtx.err=%d timerCtx.deadline=%d)\n\n",
      bin.path(), info.version.raw, info.main_module.empty() ? "-" : info.main_module,
      bin.stripped() ? "stripped" : "symbols", bin.pie() ? "PIE" : "non-PIE",
      bin.has_dwarf() ? "DWARF" : "no DWARF", bin.pclntab().magic(), bin.pclntab().vaddr(),
      bin.pclntab().num_functions(), bin.pclntab().text_start(),
      symbols::SourceName(bin.offsets().source), bin.offsets().g_goid, bin.offsets().g_parent_goid,
      bin.offsets().cancelctx_err, bin.offsets().timerctx_deadline);
  absl::StrAppendFormat(&out, "%-42s %-16s %-10s %-10s %s\n", "FUNCTION", "HOOK", "ADDRESS",
                        "OFFSET", "ARGS");
  for (const PlannedHook& h : bin.plan().hooks) {
    absl::StrAppendFormat(&out, "%-42s %-16s 0x%-8x 0x%-8x %s\n", h.function.name,
                          symbols::HookKindName(h.hook.kind), h.function.entry, h.entry_file_offset,
                          h.hook.args);
  }
  absl::StrAppendFormat(&out, "\nprobes, in attach order:\n%-42s %-12s %-10s %-10s %s\n",
                        "FUNCTION", "SITE", "ADDRESS", "OFFSET", "INSTRUCTION");
  for (const Probe& p : bin.plan().probes) {
    absl::StrAppendFormat(&out, "%-42s %-12s 0x%-8x 0x%-8x %s%s\n", p.function,
                          symbols::SiteKindName(p.kind), p.site.address, p.site.file_offset,
                          p.site.instruction,
                          p.site.emulated ? " (emulated)" : " (single-stepped)");
  }
  absl::StrAppendFormat(&out, "\ncontext constructors:\n%-26s %-9s %-60s %s\n", "CONSTRUCTOR",
                        "LINKED", "OBSERVED", "CANCEL FUNCS (what a heap mark looks for)");
  for (const symbols::ConstructorPlan& p : Constructors(bin)) {
    absl::StrAppendFormat(&out, "%-26s %-9s %-60s %s\n", p.constructor->name,
                          !p.in_release ? "(go1." + std::to_string(p.constructor->since) + "+)"
                          : p.linked    ? "yes"
                                        : "inlined",
                          p.constructor->observed, CancelFuncsText(p));
  }
  if (!bin.plan().missing.empty()) {
    absl::StrAppend(&out, "\nnot linked in (optional): ", absl::StrJoin(bin.plan().missing, ", "),
                    "\n");
  }
  absl::StrAppendFormat(&out, "entry fallbacks (no stack check found): %d\n",
                        bin.plan().entry_fallbacks);
  return out;
}

int RunSymbolsCommand(const std::string& target, const std::string& format) {
  if (format != "text" && format != "json") {
    fprintf(stderr, "ctxagent symbols: -o must be text or json, not \"%s\"\n", format.c_str());
    return 2;
  }
  auto bin = GoBinary::Open(ResolveTarget(target));
  if (!bin.ok()) {
    fprintf(stderr, "ctxagent symbols: %s\n", std::string(bin.status().message()).c_str());
    return 1;
  }
  std::string out = format == "json" ? DumpJson(SymbolsToJson(**bin), 2) + "\n"
                                     : EscapeInvalidUtf8(SymbolsToText(**bin));
  fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace ctxagent
