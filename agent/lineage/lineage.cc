#include "agent/lineage/lineage.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "agent/lineage/lineage_state.h"

namespace ctxagent {

using namespace lineage_internal;  // NOLINT: the lineage's own internals

const char* FindingKindName(FindingKind kind) {
  switch (kind) {
    case FindingKind::kOrphanedDone:
      return "orphaned_done";
    case FindingKind::kLostCancel:
      return "lost_cancel";
    case FindingKind::kBrokenChain:
      return "broken_chain";
    case FindingKind::kIgnoredCancel:
      return "ignored_cancel";
    case FindingKind::kTimerBuildup:
      return "timer_buildup";
    case FindingKind::kGoroutineLeak:
      return "goroutine_leak";
  }
  return "unknown";
}

ProcessLineage::ProcessLineage(int pid) : pid_(pid), state_(std::make_unique<State>()) {}
ProcessLineage::~ProcessLineage() = default;

void ProcessLineage::OnContextCreated(const ContextCreated& e) { state_->CreateContext(e); }

void ProcessLineage::OnContextCancelled(const ContextCancelled& e) { state_->OnCancelEvent(e); }

void ProcessLineage::OnGoroutineCreated(const GoroutineCreated& e) { state_->StartGoroutine(e); }

void ProcessLineage::OnGoroutineExited(const GoroutineExited& e) { state_->OnExitEvent(e); }

void ProcessLineage::Apply(const DecodedEvent& e) {
  struct Visitor {
    ProcessLineage& l;
    void operator()(const ContextCreated& x) { l.OnContextCreated(x); }
    void operator()(const ContextCancelled& x) { l.OnContextCancelled(x); }
    void operator()(const GoroutineCreated& x) { l.OnGoroutineCreated(x); }
    void operator()(const GoroutineExited& x) { l.OnGoroutineExited(x); }
  };
  std::visit(Visitor{*this}, e);
}

void ProcessLineage::OnEventsLost() { state_->EventsLost(); }

void ProcessLineage::OnProbesPaused() { state_->ProbesPaused(); }

std::vector<uint64_t> ProcessLineage::ContextAddresses() const {
  return state_->TrackedAddresses();
}

bool ProcessLineage::ObserveMark(absl::Time now, const std::vector<uint64_t>& addrs,
                                 const std::vector<uint8_t>& facts,
                                 const std::vector<std::pair<uint64_t, uint32_t>>& holds) {
  return state_->ObserveMark(ToNs(now), addrs, facts, holds);
}

void ProcessLineage::OnMarksStopped() { state_->MarksStopped(); }

void ProcessLineage::Collect(absl::Time now_time, const FindingOptions& options) {
  // Keep finished nodes one more grace period after they could last have been reported.
  state_->Collect(ToNs(now_time) - 2 * Ns(options.grace));
}

namespace {

void FillContextView(ContextId id, const Ctx& c, ContextId cancelled_by,
                     const std::vector<ContextId>* children, ContextNode& n) {
  n.id = id;
  n.addr = c.addr;
  n.kind = c.ckind();
  n.parent = c.parent;
  n.root = c.rkind();
  n.creator_goid = c.creator_goid;
  n.site = c.site;
  n.created = FromNs(c.created);
  n.deadline = FromNs(c.deadline);
  n.cancelled.reset();
  if (c.is_cancelled()) n.cancelled = FromNs(c.cancelled);
  n.cause = static_cast<CancelCause>(c.cause);
  n.cancelled_by = cancelled_by;
  n.cancel_site = c.cancel_site;
  n.cancel_goid = c.cancel_goid();
  n.children.clear();
  if (children != nullptr) n.children = *children;
}

}  // namespace

const ContextNode* ProcessLineage::FindContext(ContextId id) const {
  State& s = *state_;
  const Ctx* c = s.FindCtx(id);
  if (c == nullptr) return nullptr;
  s.EnsureChildrenIndex();
  auto& view = s.context_views[id];
  if (view == nullptr) {
    view = std::make_unique<ContextNode>();
    auto it = s.children_index.find(id);
    FillContextView(id, *c, s.CancelledBy(*c), it == s.children_index.end() ? nullptr : &it->second,
                    *view);
  }
  return view.get();
}

void State::FillGoroutineView(uint64_t goid, const Go& g, GoroutineNode& n) const {
  n.goid = goid;
  n.parent_goid = g.parent_goid;
  n.go_site = g.go_site;
  n.start_function = functions_[g.start_function];
  n.started = FromNs(g.started);
  n.exited.reset();
  if (!g.alive()) n.exited = FromNs(g.exited);
  n.bound.assign(g.bound.begin(), g.bound.end());
  n.spawner_context = g.spawner_context;
  n.rooted.clear();
  for (ContextId id : {g.first_rooted, g.last_rooted}) {
    if (id != 0 && FindCtx(id) != nullptr &&
        std::find(n.rooted.begin(), n.rooted.end(), id) == n.rooted.end()) {
      n.rooted.push_back(id);
    }
  }
  n.before_attach = g.before_attach;
  n.captured_uncancelable = g.captured_uncancelable;
  FillStateView(goid, n);
}

void State::FillStateView(uint64_t goid, GoroutineNode& n) const {
  n.state = StateOf(goid);
  n.parked_on.clear();
  if (n.state == nullptr) return;
  for (const auto& [id, goids] : parked) {
    if (std::binary_search(goids.begin(), goids.end(), goid)) n.parked_on.push_back(id);
  }
  std::sort(n.parked_on.begin(), n.parked_on.end());
}

const GoroutineNode* ProcessLineage::FindGoroutine(uint64_t goid) const {
  State& s = *state_;
  const Go* g = s.FindGo(goid);
  if (g == nullptr) return nullptr;
  s.cached = true;
  auto& view = s.goroutine_views[goid];
  if (view == nullptr) {
    view = std::make_unique<GoroutineNode>();
    s.FillGoroutineView(goid, *g, *view);
  }
  return view.get();
}

ContextId ProcessLineage::ContextAt(uint64_t addr) const { return state_->ContextAt(addr); }

// Views are built one at a time on the stack: iterating a large tree must not cache every node.
void ProcessLineage::ForEachContext(const std::function<void(const ContextNode&)>& fn) const {
  State& s = *state_;
  s.EnsureChildrenIndex();
  std::vector<ContextId> ids;
  ids.reserve(s.contexts().size());
  for (const auto& [id, c] : s.contexts()) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ContextNode view;
  for (ContextId id : ids) {
    auto it = s.children_index.find(id);
    const Ctx& c = *s.FindCtx(id);
    FillContextView(id, c, s.CancelledBy(c), it == s.children_index.end() ? nullptr : &it->second,
                    view);
    fn(view);
  }
}

void ProcessLineage::ForEachGoroutine(const std::function<void(const GoroutineNode&)>& fn) const {
  State& s = *state_;
  std::vector<uint64_t> goids;
  goids.reserve(s.goroutines().size());
  for (const auto& [goid, g] : s.goroutines()) goids.push_back(goid);
  std::sort(goids.begin(), goids.end());
  GoroutineNode view;
  for (uint64_t goid : goids) {
    s.FillGoroutineView(goid, s.GoAt(goid), view);
    fn(view);
  }
}

void ProcessLineage::ForEachGoroutineState(
    const std::function<void(const GoroutineState&, const GoroutineNode*)>& fn) const {
  State& s = *state_;
  GoroutineNode view;
  for (const GoroutineState& st : s.states) {
    const Go* g = s.FindGo(st.goid);
    if (g != nullptr) s.FillGoroutineView(st.goid, *g, view);
    fn(st, g != nullptr ? &view : nullptr);
  }
}

std::vector<SiteCount> ProcessLineage::SiteCounts() const {
  std::vector<SiteCount> out;
  for (const auto& [site, count] : state_->site_counts()) out.push_back(count);
  std::sort(out.begin(), out.end(),
            [](const SiteCount& a, const SiteCount& b) { return a.created > b.created; });
  return out;
}

size_t ProcessLineage::tracked_contexts() const { return state_->contexts().size(); }

uint64_t ProcessLineage::LiveFingerprint() const { return state_->live_sum(); }

LineageStats ProcessLineage::stats() const {
  LineageStats st = state_->counters();
  st.live_contexts = state_->live_contexts();
  st.tracked_contexts = state_->contexts().size();
  st.live_goroutines = state_->live_goroutines();
  return st;
}

}  // namespace ctxagent
