#include "agent/view/site_graph.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ctxagent {

const char* SiteNodeTypeName(SiteNodeType type) {
  return type == SiteNodeType::kContexts ? "contexts" : "goroutines";
}

const char* SiteEdgeTypeName(SiteEdgeType type) {
  switch (type) {
    case SiteEdgeType::kDerived:
      return "derived";
    case SiteEdgeType::kSpawned:
      return "spawned";
    case SiteEdgeType::kCreates:
      return "creates";
    case SiteEdgeType::kRerooted:
      return "rerooted";
    case SiteEdgeType::kBroken:
      return "broken";
  }
  return "unknown";
}

const SiteNode* SiteGraph::Find(absl::string_view id) const {
  auto it = index.find(id);
  return it == index.end() ? nullptr : &nodes[it->second];
}

std::vector<size_t> SiteGraph::ByAttention() const {
  std::vector<size_t> order(nodes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto key = [&](size_t i) {
    const SiteNode& n = nodes[i];
    return std::make_tuple(n.findings.size(), n.leaked, n.growth_per_s > 0 ? n.growth_per_s : 0.0,
                           n.count());
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
  return order;
}

namespace {

constexpr size_t kNone = std::numeric_limits<size_t>::max();

bool HangsFromRoot(const ContextNode& c) {
  return c.parent == 0 && (c.root == RootKind::kBackground || c.root == RootKind::kWithoutCancel);
}

class Builder {
 public:
  Builder(const ProcessLineage& lineage, SiteGraph& graph) : lineage_(lineage), g_(graph) {}

  void Build() {
    for (const SiteCount& c : lineage_.SiteCounts()) {
      SiteNode& n = g_.nodes[CtxNode(c.site)];
      n.created = c.created;
      n.cancelled = c.cancelled;
    }
    AddContexts();
    AddGoroutines();
    AddCreators();
    AttachFindings();
  }

 private:
  struct GoInfo {
    size_t node = kNone;            // its group, kNone when its `go` statement is unknown
    SiteId spawner_site = kNoSite;  // site of the context its spawner worked under
  };
  struct Created {
    uint64_t contexts = 0, rooted = 0;
  };

  size_t CtxNode(SiteId site) { return Node(absl::StrCat("s", site), site, ""); }
  size_t GoNode(SiteId site, const std::string& function) {
    return Node(absl::StrCat("g", site), site, function);
  }
  size_t Node(std::string id, SiteId site, const std::string& function) {
    auto [it, inserted] = g_.index.try_emplace(std::move(id), g_.nodes.size());
    if (inserted) {
      SiteNode& n = g_.nodes.emplace_back();
      n.id = it->first;
      n.type = function.empty() ? SiteNodeType::kContexts : SiteNodeType::kGoroutines;
      n.site_id = site;
      n.site = lineage_.sites().Get(site);
      n.function = function;
    }
    return it->second;
  }
  size_t Edge(size_t from, size_t to, SiteEdgeType type, uint64_t count) {
    auto [it, inserted] =
        edges_.try_emplace(std::make_tuple(from, to, static_cast<int>(type)), g_.edges.size());
    if (inserted) g_.edges.push_back({from, to, type, 0, {}});
    g_.edges[it->second].count += count;
    return it->second;
  }

  // Site nodes' counts and derivations; creators are kept per (goroutine, site) for AddCreators.
  void AddContexts() {
    site_of_.reserve(lineage_.tracked_contexts());
    lineage_.ForEachContext([&](const ContextNode& c) {
      site_of_[c.id] = c.site;
      const size_t i = CtxNode(c.site);
      SiteNode& n = g_.nodes[i];
      n.kind = c.kind;
      ++n.tracked;
      if (!c.cancelled) {
        ++n.live;
      } else if (c.cause == CancelCause::kOwnCancel) {
        ++n.cancelled_own;
      } else if (c.cause == CancelCause::kParent) {
        ++n.cancelled_parent;
      } else {
        ++n.cancelled_deadline;
      }
      const bool rooted = HangsFromRoot(c);
      if (rooted) ++n.rooted;
      // Creation order: a parent is always visited before its children.
      if (auto p = site_of_.find(c.parent); c.parent != 0 && p != site_of_.end()) {
        Edge(CtxNode(p->second), i, SiteEdgeType::kDerived, 1);
      }
      Created& k = created_[std::make_pair(c.creator_goid, c.site)];
      ++k.contexts;
      if (rooted) ++k.rooted;
    });
  }

  void AddGoroutines() {
    lineage_.ForEachGoroutine([&](const GoroutineNode& r) {
      GoInfo& info = go_[r.goid];
      if (auto s = site_of_.find(r.spawner_context);
          r.spawner_context != 0 && s != site_of_.end()) {
        info.spawner_site = s->second;
      }
      if (r.go_site == kNoSite) return;  // started before attach
      info.node = GoNode(r.go_site, r.start_function.empty() ? "?" : r.start_function);
      SiteNode& n = g_.nodes[info.node];
      if (r.exited) {
        ++n.exited;
        return;
      }
      ++n.goroutines;
      if (std::string w = WaitStateOf(r); !w.empty()) ++n.wait_states[w];
      // Started under its spawner's context, or handed contexts: one edge per site.
      absl::flat_hash_set<SiteId> from;
      if (info.spawner_site != kNoSite) from.insert(info.spawner_site);
      for (ContextId b : r.bound) {
        if (auto s = site_of_.find(b); s != site_of_.end()) from.insert(s->second);
      }
      for (SiteId s : from) Edge(CtxNode(s), info.node, SiteEdgeType::kSpawned, 1);
    });
  }

  void AddCreators() {
    for (const auto& [key, k] : created_) {
      auto it = go_.find(key.first);
      if (it == go_.end()) continue;
      const size_t to = CtxNode(key.second);
      if (it->second.node != kNone) Edge(it->second.node, to, SiteEdgeType::kCreates, k.contexts);
      if (k.rooted > 0 && it->second.spawner_site != kNoSite) {
        Edge(CtxNode(it->second.spawner_site), to, SiteEdgeType::kRerooted, k.rooted);
      }
    }
  }

  void AttachFindings() {
    for (size_t fi = 0; fi < g_.findings.size(); ++fi) {
      const Finding& f = g_.findings[fi];
      if (f.kind == FindingKind::kGoroutineLeak) {
        // Its site is the line the goroutines block on, not a context's: shown on their `go`
        // statement's node, which it makes when the lineage never tracked them.
        const SiteId go = f.go_sites.empty() ? f.site : f.go_sites.front();
        const std::string& blocked_in = lineage_.sites().Get(f.site).function;
        g_.nodes[GoNode(go, blocked_in.empty() ? "?" : blocked_in)].findings.push_back(fi);
        continue;
      }
      SiteNode& n = g_.nodes[CtxNode(f.site)];
      n.findings.push_back(fi);
      if (f.kind == FindingKind::kOrphanedDone || f.kind == FindingKind::kLostCancel ||
          f.kind == FindingKind::kTimerBuildup) {
        n.leaked += f.count;
      }
      for (SiteId s : f.go_sites) {
        auto it = g_.index.find(absl::StrCat("g", s));
        if (it != g_.index.end()) g_.nodes[it->second].findings.push_back(fi);
      }
      if (f.kind != FindingKind::kBrokenChain || f.related_site == kNoSite) continue;
      // The link that cut propagation: the re-rooting edge it is about, now known to be broken.
      const size_t from = CtxNode(f.related_site), to = CtxNode(f.site);
      auto it = edges_.find(std::make_tuple(from, to, static_cast<int>(SiteEdgeType::kRerooted)));
      size_t e;
      if (it != edges_.end()) {
        e = it->second;
        g_.edges[e].type = SiteEdgeType::kBroken;
      } else {
        e = Edge(from, to, SiteEdgeType::kBroken, f.count);
      }
      g_.edges[e].findings.push_back(fi);
    }
  }

  const ProcessLineage& lineage_;
  SiteGraph& g_;
  absl::flat_hash_map<ContextId, SiteId> site_of_;
  absl::flat_hash_map<std::pair<uint64_t, SiteId>, Created> created_;
  absl::flat_hash_map<uint64_t, GoInfo> go_;
  absl::flat_hash_map<std::tuple<size_t, size_t, int>, size_t> edges_;
};

}  // namespace

SiteGraph BuildSiteGraph(const ProcessLineage& lineage, const std::vector<Finding>& findings,
                         absl::Time now) {
  SiteGraph g;
  g.pid = lineage.pid();
  g.at = now;
  g.findings = findings;
  const LineageStats st = lineage.stats();
  g.tracked_contexts = st.tracked_contexts;
  g.live_contexts = st.live_contexts;
  g.live_goroutines = st.live_goroutines;
  Builder(lineage, g).Build();
  return g;
}

void SiteGrowth::Update(SiteGraph& graph) {
  while (!samples_.empty() && samples_.front().at < graph.at - window_) samples_.pop_front();
  if (!samples_.empty()) {
    const Sample& old = samples_.front();
    const double dt = absl::ToDoubleSeconds(graph.at - old.at);
    for (SiteNode& n : graph.nodes) {
      auto it = old.counts.find(n.id);
      const double before = it == old.counts.end() ? 0 : static_cast<double>(it->second);
      n.growth_per_s = dt > 0 ? (static_cast<double>(n.count()) - before) / dt : 0;
    }
  }
  if (!samples_.empty() && graph.at - samples_.back().at < every_) return;
  Sample s{graph.at, {}};
  for (const SiteNode& n : graph.nodes) s.counts[n.id] = n.count();
  samples_.push_back(std::move(s));
}

namespace {

// Details of `nodes` in one pass over the contexts and one over the goroutines.
std::vector<SiteDetail> Details(const ProcessLineage& lineage,
                                const std::vector<const SiteNode*>& nodes, size_t max) {
  std::vector<SiteDetail> out(nodes.size());
  absl::flat_hash_map<SiteId, size_t> by_site, by_go_site;  // -> index into `nodes`
  for (size_t i = 0; i < nodes.size(); ++i) {
    (nodes[i]->type == SiteNodeType::kContexts ? by_site : by_go_site)[nodes[i]->site_id] = i;
  }
  absl::flat_hash_map<ContextId, size_t> context_node;
  absl::flat_hash_map<uint64_t, absl::flat_hash_set<size_t>> creator_of;
  // Ids only while scanning (views are copied for the few listed): a scan sees every context.
  std::vector<std::deque<ContextId>> newest(nodes.size());
  std::vector<size_t> total(nodes.size());
  lineage.ForEachContext([&](const ContextNode& c) {
    auto it = by_site.find(c.site);
    if (it == by_site.end()) return;
    context_node[c.id] = it->second;
    creator_of[c.creator_goid].insert(it->second);
    ++total[it->second];
    std::deque<ContextId>& q = newest[it->second];
    q.push_back(c.id);
    if (q.size() > max) q.pop_front();
  });
  for (size_t i = 0; i < nodes.size(); ++i) {
    out[i].more_contexts = total[i] - newest[i].size();
    for (auto id = newest[i].rbegin(); id != newest[i].rend(); ++id) {
      if (const ContextNode* c = lineage.FindContext(*id)) out[i].contexts.push_back(*c);
    }
  }
  // A goroutine belongs to its group, and to the sites whose contexts it created, was started
  // under or was handed. Live first, then newest.
  using Key = std::tuple<bool, absl::Duration, uint64_t>;  // exited, -start time, goid
  std::vector<std::vector<Key>> gs(nodes.size());
  lineage.ForEachGoroutine([&](const GoroutineNode& g) {
    absl::flat_hash_set<size_t> in;
    if (auto it = by_go_site.find(g.go_site); g.go_site != kNoSite && it != by_go_site.end()) {
      in.insert(it->second);
    }
    if (auto it = creator_of.find(g.goid); it != creator_of.end()) {
      in.insert(it->second.begin(), it->second.end());
    }
    if (auto it = context_node.find(g.spawner_context); it != context_node.end()) {
      in.insert(it->second);
    }
    for (ContextId b : g.bound) {
      if (auto it = context_node.find(b); it != context_node.end()) in.insert(it->second);
    }
    for (size_t i : in)
      gs[i].emplace_back(g.exited.has_value(), absl::UnixEpoch() - g.started, g.goid);
  });
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::vector<Key>& v = gs[i];
    const size_t keep = std::min(v.size(), max);
    std::partial_sort(v.begin(), v.begin() + keep, v.end());
    out[i].more_goroutines = v.size() - keep;
    for (size_t k = 0; k < keep; ++k) {
      if (const GoroutineNode* g = lineage.FindGoroutine(std::get<2>(v[k]))) {
        out[i].goroutines.push_back(*g);
        out[i].wait_states.push_back(WaitStateOf(*g));
      }
    }
  }
  return out;
}

}  // namespace

SiteDetail DetailOf(const ProcessLineage& lineage, const SiteNode& node, size_t max) {
  return std::move(Details(lineage, {&node}, max).front());
}

std::vector<SiteDetail> DetailsOf(const ProcessLineage& lineage, const SiteGraph& graph,
                                  size_t max) {
  std::vector<const SiteNode*> nodes;
  for (const SiteNode& n : graph.nodes) nodes.push_back(&n);
  return Details(lineage, nodes, max);
}

}  // namespace ctxagent
