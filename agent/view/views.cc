#include "agent/view/views.h"

#include <algorithm>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ctxagent {
namespace {

std::string State(const ContextNode& c, absl::Time now) {
  if (!c.cancelled) {
    if (c.deadline != absl::InfiniteFuture())
      return absl::StrCat("live, deadline in ", FormatAge(c.deadline - now));
    return "live";
  }
  std::string s = absl::StrCat("cancelled ", FormatAge(now - *c.cancelled), " ago");
  switch (c.cause) {
    case CancelCause::kOwnCancel:
      return absl::StrCat(s, " by its own cancel");
    case CancelCause::kDeadline:
      return absl::StrCat(s, " by its deadline");
    case CancelCause::kParent:
      return c.cancelled_by != 0 ? absl::StrCat(s, " by parent #", c.cancelled_by)
                                 : absl::StrCat(s, " by its parent");
  }
  return s;
}

// What a goroutine is doing, as read from memory: wait reason, how long, the channels.
void AddStateJson(const GoroutineState& st, absl::Time now, nlohmann::json& j) {
  j["wait_reason"] = st.state;
  if (st.waiting_since != absl::InfinitePast()) {
    j["waiting_s"] = absl::ToDoubleSeconds(now - st.waiting_since);
  }
  if (!st.channels.empty()) j["channels"] = st.channels;
  if (st.in_select) j["in_select"] = true;
}

// " [chan receive]" (or " [sleep, 3m]") for the tree.
std::string StateTag(const GoroutineState* st, absl::Time now) {
  if (st == nullptr) return "";
  if (st->waiting_since == absl::InfinitePast()) return absl::StrCat(" [", st->state, "]");
  return absl::StrCat(" [", st->state, ", ", FormatAge(now - st->waiting_since), "]");
}

}  // namespace

nlohmann::json SiteJson(const Site& s) {
  return {{"file", s.file}, {"line", s.line}, {"function", s.function}};
}

std::string RenderTree(const ProcessLineage& lineage, absl::Time now, int max_lines) {
  // Children lists and goroutines per bound context, from the flat node sets.
  absl::flat_hash_map<ContextId, std::vector<ContextId>> children;
  std::vector<ContextId> roots;
  lineage.ForEachContext([&](const ContextNode& c) {
    if (c.parent != 0 && lineage.FindContext(c.parent) != nullptr) {
      children[c.parent].push_back(c.id);
    } else {
      roots.push_back(c.id);
    }
  });
  absl::flat_hash_map<ContextId, std::vector<std::string>> bound;
  lineage.ForEachGoroutine([&](const GoroutineNode& g) {
    if (g.exited) return;
    const std::string label = absl::StrCat("g", g.goid, StateTag(g.state, now));
    for (ContextId c : g.bound) bound[c].push_back(label);
    for (ContextId c : g.parked_on) {
      if (std::find(g.bound.begin(), g.bound.end(), c) == g.bound.end()) bound[c].push_back(label);
    }
  });
  std::string out;
  int lines = 0;
  int hidden = 0;
  std::function<void(ContextId, int)> visit = [&](ContextId id, int depth) {
    const ContextNode* c = lineage.FindContext(id);
    if (c == nullptr) return;
    if (lines >= max_lines) {
      ++hidden;
    } else {
      std::string gs;
      auto it = bound.find(id);
      if (it != bound.end()) {
        std::vector<std::string> ids = it->second;
        if (ids.size() > 6) {
          size_t more = ids.size() - 6;
          ids.resize(6);
          ids.push_back(absl::StrCat("+", more));
        }
        gs = absl::StrCat("  goroutines: ", absl::StrJoin(ids, " "));
      }
      absl::StrAppendFormat(&out, "%s#%d %s %s age %s, %s%s\n", std::string(depth * 2, ' '), c->id,
                            ContextKindName(c->kind), SiteString(lineage.sites().Get(c->site)),
                            FormatAge(now - c->created), State(*c, now), gs);
      ++lines;
    }
    auto ch = children.find(id);
    if (ch != children.end()) {
      for (ContextId k : ch->second) visit(k, depth + 1);
    }
  };
  // Roots grouped by what they hang from.
  for (ContextId r : roots) {
    const ContextNode* c = lineage.FindContext(r);
    if (c != nullptr && lines < max_lines && c->parent == 0) {
      // Root marker on its own line keeps the tree readable when many roots share a kind.
    }
    visit(r, 0);
  }
  if (hidden > 0) absl::StrAppend(&out, "... ", hidden, " more contexts\n");
  absl::StrAppend(&out, RenderGoroutineGroups(lineage, now, 10));
  return out;
}

std::string RenderGoroutineGroups(const ProcessLineage& lineage, absl::Time now, int max_lines) {
  // By `go` site and wait reason, largest first, with the longest wait.
  struct Group {
    int count = 0;
    absl::Time since = absl::InfiniteFuture();
    int before_attach = 0;
  };
  absl::flat_hash_map<std::pair<SiteId, std::string>, Group> groups;
  lineage.ForEachGoroutineState([&](const GoroutineState& st, const GoroutineNode* n) {
    Group& g = groups[std::make_pair(st.go_site, st.state)];
    ++g.count;
    g.since = std::min(g.since, st.waiting_since == absl::InfinitePast() ? absl::InfiniteFuture()
                                                                         : st.waiting_since);
    if (n != nullptr && n->before_attach) ++g.before_attach;
  });
  if (groups.empty()) return "";
  std::vector<std::pair<std::pair<SiteId, std::string>, Group>> order(groups.begin(), groups.end());
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second.count != b.second.count ? a.second.count > b.second.count : a.first < b.first;
  });
  std::string out = "goroutines by go statement and state:\n";
  for (int i = 0; i < static_cast<int>(order.size()) && i < max_lines; ++i) {
    const auto& [key, g] = order[i];
    absl::StrAppendFormat(
        &out, "  %6d  [%s]%s  %s%s\n", g.count, key.second,
        g.since == absl::InfiniteFuture() ? "" : absl::StrCat(", >=", FormatAge(now - g.since)),
        SiteString(lineage.sites().Get(key.first)),
        g.before_attach > 0 ? absl::StrCat("  (", g.before_attach, " before attach)") : "");
  }
  return out;
}

std::string RenderFindings(const ProcessLineage& lineage, const std::vector<Finding>& findings) {
  if (findings.empty()) return "no findings\n";
  std::string out = absl::StrCat(findings.size(), " finding(s):\n");
  for (const Finding& f : findings) {
    absl::StrAppendFormat(&out, "\n[%s] %s  x%d\n  %s\n", FindingKindName(f.kind),
                          SiteString(lineage.sites().Get(f.site)), f.count, f.explanation);
    if (f.related_site != kNoSite) {
      absl::StrAppend(&out, "  related: ", SiteString(lineage.sites().Get(f.related_site)), "\n");
    }
    if (!f.goroutines.empty()) {
      std::vector<std::string> ids;
      for (uint64_t g : f.goroutines) ids.push_back(absl::StrCat(g));
      absl::StrAppend(&out, "  goroutines: ", absl::StrJoin(ids, " "), "\n");
    }
    for (SiteId s : f.go_sites) {
      absl::StrAppend(&out, "  started at: ", SiteString(lineage.sites().Get(s)), "\n");
    }
    absl::StrAppendFormat(&out, "  ages: oldest %s, newest %s\n", FormatAge(f.oldest_age),
                          FormatAge(f.newest_age));
  }
  return out;
}

std::string RenderSummary(const ProcessLineage& lineage, const RunInfo& run) {
  LineageStats s = lineage.stats();
  // Sampled: counts cover the traced windows; the estimate scales them by the share of time traced.
  std::string created = absl::StrCat(s.contexts_created, " created");
  if (run.sampling_ratio < 1.0) {
    absl::StrAppendFormat(&created, " in traced windows (~%.0f estimated)",
                          s.contexts_created / std::max(run.sampling_ratio, 1e-6));
  }
  return absl::StrFormat(
      "contexts: %s, cancelled %d own / %d by parent / %d deadline, %d live | goroutines: "
      "%d seen, %d live | events: %d, lost %d | overhead %.3f%% of the node (trap cost: %s), "
      "sampling %.1f%% | %s\n",
      created, s.cancelled_own, s.cancelled_parent, s.cancelled_deadline, s.live_contexts,
      s.goroutines_seen, s.live_goroutines, run.events, run.counters.dropped_total(),
      run.overhead.node_ratio * 100, run.trap_costs.source(), run.sampling_ratio * 100,
      FormatAge(run.elapsed));
}

nlohmann::json FindingToJson(const ProcessLineage& lineage, const Finding& f, absl::Time now) {
  nlohmann::json goroutines = nlohmann::json::array();
  for (uint64_t g : f.goroutines) {
    nlohmann::json j = {{"goid", g}};
    if (const GoroutineNode* n = lineage.FindGoroutine(g)) {
      j["go_site"] = SiteJson(lineage.sites().Get(n->go_site));
      j["function"] = n->start_function;
      if (n->state != nullptr) AddStateJson(*n->state, now, j);
    }
    goroutines.push_back(j);
  }
  nlohmann::json ctx = {{"id", f.example}, {"kind", ContextKindName(f.example_kind)}};
  if (const ContextNode* c = lineage.FindContext(f.example)) {
    ctx["age_s"] = absl::ToDoubleSeconds(now - c->created);
    ctx["addr"] = absl::StrFormat("%#x", c->addr);
  } else {
    ctx["age_s"] = absl::ToDoubleSeconds(f.newest_age);
  }
  nlohmann::json j = {{"type", "finding"},
                      {"kind", FindingKindName(f.kind)},
                      {"site", SiteJson(lineage.sites().Get(f.site))},
                      {"count", f.count},
                      {"goroutines", goroutines},
                      {"context", ctx},
                      {"oldest_age_s", absl::ToDoubleSeconds(f.oldest_age)},
                      {"parked_goroutines", f.parked},
                      {"explanation", f.explanation}};
  if (f.related_site != kNoSite) j["related_site"] = SiteJson(lineage.sites().Get(f.related_site));
  if (!f.go_sites.empty()) {
    nlohmann::json go_sites = nlohmann::json::array();
    for (SiteId s : f.go_sites) go_sites.push_back(SiteJson(lineage.sites().Get(s)));
    j["go_sites"] = go_sites;
  }
  if (!f.wait_reason.empty()) j["wait_reason"] = f.wait_reason;
  if (f.blocked_at != kNoSite) j["blocked_at"] = SiteJson(lineage.sites().Get(f.blocked_at));
  // What decided a context finding: the two marks whose facts it rests on (no cancel func
  // reachable; a cancelled context held; nothing under the spawner's context held), or the
  // history of the contexts and goroutines alone (docs/diagnoses.md).
  if (f.kind != FindingKind::kGoroutineLeak) {
    nlohmann::json marks = nlohmann::json::array();
    for (absl::Time t : f.proof_marks)
      marks.push_back(absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone()));
    j["decided_by"] =
        f.proof_marks.empty() ? nlohmann::json("history") : nlohmann::json({{"marks", marks}});
  }
  return j;
}

nlohmann::json SummaryToJson(const ProcessLineage& lineage, const RunInfo& run) {
  LineageStats s = lineage.stats();
  nlohmann::json sites = nlohmann::json::array();
  for (const SiteCount& c : lineage.SiteCounts()) {
    if (sites.size() == 20) break;
    sites.push_back({{"site", SiteJson(lineage.sites().Get(c.site))},
                     {"created", c.created},
                     {"cancelled", c.cancelled}});
  }
  // The trap costs in force: measured on the target once its on/off windows agree.
  const nlohmann::json trap_cost = {{"emulated", run.trap_costs.trap_us(false)},
                                    {"stepped", run.trap_costs.trap_us(true)}};
  return {{"type", "summary"},
          {"top_sites", sites},
          {"pid", lineage.pid()},
          {"duration_s", absl::ToDoubleSeconds(run.elapsed)},
          {"contexts_created", s.contexts_created},
          {"cancelled",
           {{"own", s.cancelled_own},
            {"parent", s.cancelled_parent},
            {"deadline", s.cancelled_deadline}}},
          {"live_contexts", s.live_contexts},
          {"goroutines_seen", s.goroutines_seen},
          {"live_goroutines", s.live_goroutines},
          {"events", run.events},
          {"events_lost", run.counters.dropped_total()},
          {"events_lost_by_reason",
           {{"ringbuf_full", run.counters.dropped[DROP_RINGBUF_FULL]},
            {"no_config", run.counters.dropped[DROP_NO_CONFIG]},
            {"read_failed", run.counters.dropped[DROP_READ_FAILED]}}},
          {"loss_episodes", s.loss_episodes},
          {"heap_marks",
           {{"count", run.marks.count},
            {"stopped", run.marks.stopped},
            {"spans", run.marks.spans},
            {"heap_bytes", run.marks.heap_bytes},
            {"objects_marked", run.marks.objects_marked},
            {"bytes_read", run.marks.bytes_read},
            {"memory_bytes", run.marks.memory},
            {"contexts", run.marks.contexts},
            {"cancel_funcs_held", run.marks.cancel_funcs_held},
            {"context_holds", run.marks.context_holds},
            {"cpu_s", run.marks.cpu_seconds},
            {"leaked_goroutines", run.marks.leaked_goids.size()},
            {"leaked_goids", run.marks.leaked_goids}}},
          {"overhead",
           {{"node_cpu_ratio", run.overhead.node_ratio},
            {"target_cpu_ratio", run.overhead.target_ratio},
            {"trap_cpu_s_per_s", run.overhead.trap_cpu_s},
            {"bpf_cpu_s_per_s", run.overhead.bpf_cpu_s},
            {"agent_cpu_s_per_s", run.overhead.agent_cpu_s},
            {"probe_hits_per_s", run.overhead.hits_per_s},
            {"trap_cost_us", trap_cost},
            {"trap_cost_source", run.trap_costs.source()},
            {"trap_cost_pairs", run.trap_costs.measured_pairs}}},
          {"unknown_exits", s.unknown_exits},
          {"unknown_cancels", s.unknown_cancels},
          {"sampling_ratio", run.sampling_ratio},
          {"sampling",
           {{"budget", run.plan.budget},
            {"window_s", run.plan.window_s},
            {"period_s", run.plan.period_s},
            {"cost_attached", run.plan.cost_attached},
            {"cost_detached", run.plan.cost_detached},
            {"switch_cost", run.plan.switch_cost}}},
          // Ends of contexts and goroutines live at a pause, read from the target's memory.
          {"pauses", s.pauses},
          {"inferred_cancels", s.inferred_cancels},
          {"inferred_exits", s.inferred_exits},
          // Below full sampling, created/cancelled counts cover only the traced windows; the
          // estimate scales them by the share of time traced.
          {"contexts_created_estimate",
           static_cast<double>(s.contexts_created) / std::max(run.sampling_ratio, 1e-6)},
          {"counts_exact", run.counters.dropped_total() == 0 && run.sampling_ratio >= 1.0}};
}

nlohmann::json GoroutineJson(const ProcessLineage& lineage, const GoroutineNode& g,
                             absl::Time now) {
  nlohmann::json j = {{"goid", g.goid},
                      {"parent_goid", g.parent_goid},
                      {"function", g.start_function},
                      {"go_site", SiteJson(lineage.sites().Get(g.go_site))},
                      {"bound", g.bound},
                      {"parked_on", g.parked_on}};
  if (g.before_attach) j["before_attach"] = true;
  if (g.state != nullptr) AddStateJson(*g.state, now, j);
  return j;
}

nlohmann::json GoroutinesToJson(const ProcessLineage& lineage, absl::Time now, size_t max) {
  nlohmann::json out = nlohmann::json::array();
  size_t omitted = 0;
  lineage.ForEachGoroutineState([&](const GoroutineState& st, const GoroutineNode* n) {
    if (out.size() >= max) {
      ++omitted;
      return;
    }
    if (n != nullptr) {
      out.push_back(GoroutineJson(lineage, *n, now));
      return;
    }
    nlohmann::json j = {{"goid", st.goid},
                        {"parent_goid", st.parent_goid},
                        {"function", st.start_function},
                        {"go_site", SiteJson(lineage.sites().Get(st.go_site))},
                        {"bound", nlohmann::json::array()},
                        {"parked_on", nlohmann::json::array()}};
    AddStateJson(st, now, j);
    out.push_back(std::move(j));
  });
  return {{"pid", lineage.pid()}, {"goroutines", out}, {"omitted", omitted}};
}

nlohmann::json TreeToJson(const ProcessLineage& lineage, absl::Time now, size_t max_nodes) {
  nlohmann::json contexts = nlohmann::json::array();
  size_t omitted = 0;
  lineage.ForEachContext([&](const ContextNode& c) {
    if (contexts.size() >= max_nodes) {
      ++omitted;
      return;
    }
    nlohmann::json j = {{"id", c.id},
                        {"parent", c.parent},
                        {"kind", ContextKindName(c.kind)},
                        {"site", SiteJson(lineage.sites().Get(c.site))},
                        {"age_s", absl::ToDoubleSeconds(now - c.created)},
                        {"creator_goid", c.creator_goid}};
    if (c.parent == 0) j["root"] = RootKindName(c.root);
    if (c.cancelled) {
      j["cancelled_s_ago"] = absl::ToDoubleSeconds(now - *c.cancelled);
      j["cause"] = CancelCauseName(c.cause);
    }
    contexts.push_back(std::move(j));
  });
  nlohmann::json goroutines = nlohmann::json::array();
  lineage.ForEachGoroutine([&](const GoroutineNode& g) {
    if (g.exited || goroutines.size() >= max_nodes) return;
    goroutines.push_back(GoroutineJson(lineage, g, now));
  });
  return {{"pid", lineage.pid()},
          {"contexts", contexts},
          {"omitted_contexts", omitted},
          {"goroutines", goroutines}};
}

std::string RenderDot(const ProcessLineage& lineage, const std::vector<Finding>& findings) {
  absl::flat_hash_set<SiteId> broken_roots;
  for (const Finding& f : findings) {
    if (f.kind == FindingKind::kBrokenChain) broken_roots.insert(f.site);
  }
  std::string out = "digraph lineage {\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n";
  lineage.ForEachContext([&](const ContextNode& c) {
    absl::StrAppendFormat(&out, "  c%d [label=\"#%d %s\\n%s\"%s];\n", c.id, c.id,
                          ContextKindName(c.kind), SiteString(lineage.sites().Get(c.site)),
                          c.cancelled ? "" : ", color=orange");
    if (c.parent != 0 && lineage.FindContext(c.parent) != nullptr) {
      absl::StrAppendFormat(&out, "  c%d -> c%d;\n", c.parent, c.id);
    }
  });
  lineage.ForEachGoroutine([&](const GoroutineNode& g) {
    absl::StrAppendFormat(&out, "  g%d [shape=ellipse, label=\"g%d %s\"%s];\n", g.goid, g.goid,
                          g.start_function, g.exited ? ", style=dotted" : "");
    for (ContextId c : g.bound) {
      if (lineage.FindContext(c) != nullptr)
        absl::StrAppendFormat(&out, "  c%d -> g%d [style=dotted];\n", c, g.goid);
    }
    // The link that cut propagation: the spawner's context did not reach what this goroutine
    // rooted.
    if (g.spawner_context != 0 && lineage.FindContext(g.spawner_context) != nullptr) {
      for (ContextId r : g.rooted) {
        const ContextNode* rc = lineage.FindContext(r);
        if (rc == nullptr) continue;
        bool broken = broken_roots.contains(rc->site);
        absl::StrAppendFormat(
            &out, "  c%d -> c%d [%s];\n", g.spawner_context, r,
            broken ? "style=dashed, color=red, label=\"broken\"" : "style=dashed");
      }
    }
  });
  out += "}\n";
  return out;
}

}  // namespace ctxagent
