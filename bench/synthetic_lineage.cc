#include "bench/synthetic_lineage.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace ctxagent {

SyntheticLineage MakeSyntheticLineage(int contexts, int handlers) {
  using Link = ParentLink::Type;
  SyntheticLineage out{std::make_unique<ProcessLineage>(4242), absl::FromUnixSeconds(1795564800)};
  ProcessLineage& l = *out.lineage;
  absl::Time t = out.now;
  const SiteId root = l.sites().Intern({"main.main", "/src/svc/main.go", 20});
  l.OnContextCreated(
      {t, 1, 0x10, ContextKind::kCancel, absl::InfiniteFuture(), {{0x1, Link::kBackground}}, root});
  std::vector<std::vector<SiteId>> sites(handlers);
  std::vector<SiteId> go_sites(handlers), reroot(handlers);
  for (int h = 0; h < handlers; ++h) {
    const std::string file = absl::StrCat("/src/svc/handler", h, ".go");
    for (int k = 0; k < 5; ++k) {
      sites[h].push_back(l.sites().Intern({absl::StrCat("svc.(*H", h, ").step", k), file, 10 + k}));
    }
    go_sites[h] = l.sites().Intern({absl::StrCat("svc.(*H", h, ").serve"), file, 40});
    reroot[h] = l.sites().Intern({absl::StrCat("svc.(*H", h, ").audit"), file, 60});
  }
  uint64_t addr = 0x100000, goid = 100;
  int made = 1;
  for (int i = 0; made < contexts; ++i) {
    const int h = i % handlers;
    const uint64_t g = ++goid;
    l.OnGoroutineCreated({t, g, 1, go_sites[h], absl::StrCat("svc.(*H", h, ").serve"), {}});
    uint64_t parent = 0x10;
    std::vector<uint64_t> chain;
    for (int k = 0; k < 5 && made < contexts; ++k, ++made) {
      const uint64_t a = addr += 0x40;
      l.OnContextCreated({t,
                          g,
                          a,
                          k == 4 ? ContextKind::kTimer : ContextKind::kCancel,
                          k == 4 ? t + absl::Seconds(30) : absl::InfiniteFuture(),
                          {{parent, Link::kCancelable}},
                          sites[h][k]});
      chain.push_back(a);
      parent = a;
    }
    const bool broken = h == 1, leaks = h % 20 == 3;
    if (broken && made < contexts) {
      // `go audit()` under the request's context, rooting its own at Background.
      const uint64_t a = ++goid;
      l.OnGoroutineCreated({t, a, g, reroot[h], absl::StrCat("svc.(*H", h, ").audit"), {}});
      l.OnContextCreated({t,
                          a,
                          addr += 0x40,
                          ContextKind::kTimer,
                          t + absl::Hours(1),
                          {{0x1, Link::kBackground}},
                          reroot[h]});
      ++made;
    }
    if (!leaks) {
      l.OnContextCancelled({t, g, chain[0], CancelCause::kOwnCancel, sites[h][0]});
      for (size_t k = 1; k < chain.size(); ++k) {
        l.OnContextCancelled({t, g, chain[k], CancelCause::kParent, kNoSite});
      }
    }
    l.OnGoroutineExited({t, g});
    t += absl::Microseconds(50);
  }
  out.now = t + absl::Minutes(1);
  return out;
}

}  // namespace ctxagent
