#include "agent/cli/symbols_command.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/view/utf8.h"

namespace ctxagent {

using symbols::GoBinary;
using symbols::GoOffsets;
using symbols::PlannedProbe;

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

}  // namespace

nlohmann::json SymbolsToJson(const GoBinary& bin) {
  nlohmann::json functions = nlohmann::json::array();
  for (const PlannedProbe& p : bin.plan().probes) {
    nlohmann::json rets = nlohmann::json::array();
    for (const auto& r : p.ret_sites) {
      rets.push_back({{"address", r.address}, {"file_offset", r.file_offset}});
    }
    nlohmann::json handoffs = nlohmann::json::array();
    for (const auto& h : p.handoff_sites) {
      handoffs.push_back({{"address", h.address}, {"file_offset", h.file_offset}});
    }
    functions.push_back({{"name", p.function.name},
                         {"hook", symbols::HookKindName(p.hook.kind)},
                         {"required", p.hook.required},
                         {"args", p.hook.args},
                         {"address", p.function.entry},
                         {"size", p.function.end - p.function.entry},
                         {"file_offset", p.entry_file_offset},
                         {"probe_address", p.probe.address},
                         {"probe_offset", p.probe.file_offset},
                         {"probe_instruction", p.probe.instruction},
                         {"emulated", p.probe.emulated},
                         {"at_stack_check", p.at_stack_check},
                         {"ret_sites", rets},
                         {"handoff_sites", handoffs}});
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
  absl::StrAppendFormat(&out, "%-42s %-16s %-10s %-10s %-10s %s\n", "FUNCTION", "HOOK", "ADDRESS",
                        "OFFSET", "PROBE@", "INSTRUCTION");
  for (const PlannedProbe& p : bin.plan().probes) {
    absl::StrAppendFormat(&out, "%-42s %-16s 0x%-8x 0x%-8x +%-9d %s%s\n", p.function.name,
                          symbols::HookKindName(p.hook.kind), p.function.entry, p.entry_file_offset,
                          p.probe.address - p.function.entry, p.probe.instruction,
                          p.probe.emulated ? " (emulated)" : " (single-stepped)");
    absl::StrAppendFormat(&out, "%-42s   args: %s\n", "", p.hook.args);
    if (!p.ret_sites.empty()) {
      std::vector<std::string> rets;
      for (const auto& r : p.ret_sites) rets.push_back(absl::StrFormat("0x%x", r.address));
      absl::StrAppendFormat(&out, "%-42s   RET at: %s\n", "", absl::StrJoin(rets, " "));
    }
    for (const auto& h : p.handoff_sites) {
      absl::StrAppendFormat(&out, "%-42s   new g handed to runqput at 0x%x: %s (emulated)\n", "",
                            h.address, h.instruction);
    }
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
