#include "agent/view/top_view.h"

#include <sys/ioctl.h>

#include <algorithm>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace ctxagent {
namespace {

// Cuts `s` to `width` columns (code points: the target's names may hold UTF-8), never inside a
// character.
std::string Fit(const std::string& s, int width) {
  int cols = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (cols == width) return s.substr(0, i);
    ++cols;
  }
  return s;
}

std::string Base(const std::string& file) { return file.substr(file.rfind('/') + 1); }

std::string Label(const SiteNode& n) {
  if (n.type == SiteNodeType::kGoroutines) {
    return absl::StrCat("go ", Base(n.site.file), ":", n.site.line, " ", n.function);
  }
  return absl::StrCat(Base(n.site.file), ":", n.site.line, " ", ContextKindName(n.kind), " ",
                      n.site.function);
}

std::string Growth(double per_s) {
  if (per_s > -0.05 && per_s < 0.05) return "";
  return absl::StrFormat("%+.1f/s", per_s);
}

std::string Short(uint64_t n) {
  if (n < 100000) return absl::StrCat(n);
  if (n < 100000000) return absl::StrCat(n / 1000, "k");
  return absl::StrCat(n / 1000000, "M");
}

// The nodes each node flows into, for the tree: derivations, spawns and creations.
std::vector<std::vector<size_t>> Children(const SiteGraph& g) {
  std::vector<std::vector<size_t>> out(g.nodes.size());
  for (const SiteEdge& e : g.edges) {
    if (e.from == e.to) continue;
    if (e.type == SiteEdgeType::kDerived || e.type == SiteEdgeType::kSpawned ||
        e.type == SiteEdgeType::kCreates) {
      out[e.from].push_back(e.to);
    }
  }
  return out;
}

// One node of the tree: indented label (and what cut it off), then its numbers in columns.
std::string TreeLine(const SiteNode& n, int depth, const std::string& cut, int columns, int numbers,
                     bool wide) {
  // The finding mark in the first column, where the eye scans for it; then the indentation.
  std::string label = absl::StrCat(n.findings.empty() ? " " : "!",
                                   std::string(1 + std::min(depth, 8) * 2, ' '), Label(n), cut);
  std::string nums =
      n.type == SiteNodeType::kContexts
          ? absl::StrFormat("%8s%9s%9s", Short(n.live), Short(n.created), Growth(n.growth_per_s))
          : absl::StrFormat("%8s%9s%9s", Short(n.goroutines), "", Growth(n.growth_per_s));
  if (wide && n.type == SiteNodeType::kContexts) {
    absl::StrAppendFormat(&nums, "  %s/%s/%s", Short(n.cancelled_own), Short(n.cancelled_parent),
                          Short(n.cancelled_deadline));
  }
  return Fit(absl::StrFormat("%-*s", columns - numbers, Fit(label, columns - numbers - 1)) + nums,
             columns);
}

}  // namespace

TerminalSize QueryTerminalSize(int fd) {
  TerminalSize size;
  winsize ws{};
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    size.columns = std::max<int>(ws.ws_col, 80);
    size.rows = std::max<int>(ws.ws_row, 24);
  }
  return size;
}

std::string TopHeader(const SiteGraph& graph, const RunInfo& run, bool probes_paused) {
  std::string sampled;
  if (probes_paused || run.sampling_ratio < 1) {
    sampled = absl::StrFormat(" | sampled %.0f%%%s", run.sampling_ratio * 100,
                              probes_paused ? " (paused)" : "");
  }
  // Most important first: a narrow terminal cuts the end.
  return absl::StrFormat(
      "ctxagent pid %d | %ds | contexts %s live of %s | goroutines %s | events %s, %s lost%s | "
      "cpu %.2f%%",
      graph.pid, absl::ToInt64Seconds(run.elapsed), Short(graph.live_contexts),
      Short(graph.tracked_contexts), Short(graph.live_goroutines), Short(run.events),
      Short(run.counters.dropped_total()), sampled, run.overhead.node_ratio * 100);
}

std::string RenderSiteTree(const SiteGraph& g, int columns, int max_lines) {
  const std::vector<size_t> order = g.ByAttention();
  std::vector<size_t> rank(g.nodes.size());
  for (size_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  const std::vector<std::vector<size_t>> children = Children(g);
  // best[v]: the most urgent rank at or below v (relaxed to a fixed point; cycles are harmless).
  std::vector<size_t> best = rank;
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t v = 0; v < g.nodes.size(); ++v) {
      for (size_t c : children[v]) {
        if (best[c] < best[v]) best[v] = best[c], changed = true;
      }
    }
  }
  std::vector<bool> has_parent(g.nodes.size());
  for (const auto& cs : children) {
    for (size_t c : cs) has_parent[c] = true;
  }
  auto urgent = [&](size_t a, size_t b) {
    return std::tie(best[a], rank[a]) < std::tie(best[b], rank[b]);
  };
  std::vector<size_t> roots;
  for (size_t v = 0; v < g.nodes.size(); ++v) {
    if (!has_parent[v]) roots.push_back(v);
  }
  std::sort(roots.begin(), roots.end(), urgent);
  // Inbound broken links, shown on the node they cut off.
  std::vector<std::string> cut(g.nodes.size());
  for (const SiteEdge& e : g.edges) {
    if (e.type != SiteEdgeType::kBroken) continue;
    const SiteNode& from = g.nodes[e.from];
    cut[e.to] = absl::StrCat(" <- cut from ", Base(from.site.file), ":", from.site.line);
  }
  const bool wide = columns >= 110;
  const int numbers = wide ? 47 : 26;
  std::string out = Fit(absl::StrFormat("%-*s%8s%9s%9s%s", columns - numbers, "SITES", "live",
                                        "created", "growth", wide ? "  own/parent/deadline" : ""),
                        columns) +
                    "\n";
  int lines = 1;
  size_t shown = 0;
  std::vector<bool> seen(g.nodes.size());
  // Depth first from the roots, then from whatever only a cycle reaches.
  std::vector<size_t> seeds = roots;
  seeds.insert(seeds.end(), order.begin(), order.end());
  std::vector<std::pair<size_t, int>> stack;  // node, depth
  for (size_t seed : seeds) {
    if (!seen[seed]) stack.push_back({seed, 0});
    while (!stack.empty() && lines < max_lines) {
      auto [v, depth] = stack.back();
      stack.pop_back();
      if (seen[v]) continue;
      seen[v] = true;
      ++shown;
      out += TreeLine(g.nodes[v], depth, cut[v], columns, numbers, wide) + "\n";
      ++lines;
      std::vector<size_t> cs = children[v];
      std::sort(cs.begin(), cs.end(), urgent);
      for (auto c = cs.rbegin(); c != cs.rend(); ++c) {
        if (!seen[*c]) stack.push_back({*c, depth + 1});
      }
    }
  }
  if (shown < g.nodes.size()) {
    absl::StrAppend(&out, "... ", g.nodes.size() - shown, " more sites\n");
  }
  return out;
}

std::string RenderTop(const SiteGraph& g, const std::string& header, TerminalSize size) {
  const int width = size.columns, rows = size.rows - 1;
  std::string out = Fit(header, width) + "\n";
  int lines = 1;
  if (g.findings.empty()) {
    out += "no findings\n";
  } else {
    out += absl::StrCat(g.findings.size(), " finding(s):\n");
  }
  ++lines;
  // Findings first: with their explanation (up to two lines) while they fit in half the screen,
  // else one line each.
  const int budget = std::max(2, rows / 2);
  const int per = static_cast<int>(g.findings.size()) * 3 <= budget   ? 3
                  : static_cast<int>(g.findings.size()) * 2 <= budget ? 2
                                                                      : 1;
  size_t listed = 0;
  for (const Finding& f : g.findings) {
    if (lines + per > budget + 2) break;
    const SiteNode* n = g.Find(absl::StrCat("s", f.site));
    std::string line = absl::StrFormat("! %s  %s  x%d", FindingKindName(f.kind),
                                       n != nullptr ? Label(*n) : "?", f.count);
    if (f.related_site != kNoSite && f.kind == FindingKind::kBrokenChain) {
      if (const SiteNode* r = g.Find(absl::StrCat("s", f.related_site))) {
        absl::StrAppend(&line, "  (from ", Base(r->site.file), ":", r->site.line, ")");
      }
    }
    out += Fit(line, width) + "\n";
    ++lines;
    ++listed;
    std::string why = absl::StrReplaceAll(f.explanation, {{"\n", " "}});
    for (int k = 1; k < per && !why.empty(); ++k) {
      std::string part = Fit(why, width - 4);
      // Break at a space when there is one in the second half of the line.
      if (part.size() < why.size()) {
        const size_t space = part.rfind(' ');
        if (space != std::string::npos && space > part.size() / 2) part.resize(space + 1);
      }
      why = why.substr(part.size());
      out += absl::StrCat("    ", part, "\n");
      ++lines;
    }
  }
  if (listed < g.findings.size()) {
    out += absl::StrCat("... ", g.findings.size() - listed, " more findings\n");
    ++lines;
  }
  out += "\n";
  ++lines;
  if (rows - lines >= 2) out += RenderSiteTree(g, width, rows - lines);
  return out;
}

std::string RenderLiveTop(const ProcessLineage& lineage, const std::vector<Finding>& findings,
                          const RunInfo& run, absl::Time now, bool probes_paused,
                          SiteGrowth& growth, TerminalSize size) {
  SiteGraph g = BuildSiteGraph(lineage, findings, now);
  growth.Update(g);
  return RenderTop(g, TopHeader(g, run, probes_paused), size);
}

std::string RenderSiteDot(const SiteGraph& g) {
  auto quote = [](const std::string& s) {
    return absl::StrCat(
        "\"", absl::StrReplaceAll(s, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}}), "\"");
  };
  std::string out =
      "digraph sites {\n  rankdir=LR;\n  node [shape=box, fontsize=10, style=rounded];\n";
  for (const SiteNode& n : g.nodes) {
    std::string counts =
        n.type == SiteNodeType::kContexts
            ? absl::StrCat("live ", n.live, " / created ", n.created,
                           n.leaked > 0 ? absl::StrCat(" / leaked ", n.leaked) : "")
            : absl::StrCat(n.goroutines, " goroutines");
    const bool alarm = !n.findings.empty() || n.leaked > 0;
    absl::StrAppend(&out, "  ", n.id, " [label=", quote(absl::StrCat(Label(n), "\n", counts)),
                    n.type == SiteNodeType::kGoroutines ? ", shape=ellipse" : "",
                    alarm ? ", style=\"rounded,filled\", fillcolor=\"#ffd6cc\", color=red" : "",
                    "];\n");
  }
  for (const SiteEdge& e : g.edges) {
    std::string style;
    switch (e.type) {
      case SiteEdgeType::kDerived:
        style = "color=\"#2a9d3a\"";
        break;
      case SiteEdgeType::kSpawned:
      case SiteEdgeType::kCreates:
        style = "color=gray40";
        break;
      case SiteEdgeType::kRerooted:
        style = "color=gray40, style=dashed";
        break;
      case SiteEdgeType::kBroken:
        style = "color=red, style=dashed, penwidth=2, label=\"broken\", fontcolor=red";
        break;
    }
    absl::StrAppend(&out, "  ", g.nodes[e.from].id, " -> ", g.nodes[e.to].id, " [", style,
                    ", tooltip=", quote(absl::StrCat(SiteEdgeTypeName(e.type), " x", e.count)),
                    "];\n");
  }
  out += "}\n";
  return out;
}

}  // namespace ctxagent
