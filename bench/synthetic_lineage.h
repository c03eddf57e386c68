// A synthetic lineage shaped like a busy service, for the site graph's bench and scale test:
// `handlers` request paths of 5 derived sites each under main's root, every request in its own
// goroutine; one path in 20 never cancels (leaks), one re-roots in a `go` statement (a broken
// chain). Nothing is collected: all `contexts` stay tracked.
#ifndef CTXAGENT_BENCH_SYNTHETIC_LINEAGE_H_
#define CTXAGENT_BENCH_SYNTHETIC_LINEAGE_H_

#include <memory>

#include "absl/time/time.h"
#include "agent/lineage/lineage.h"

namespace ctxagent {

struct SyntheticLineage {
  std::unique_ptr<ProcessLineage> lineage;
  absl::Time now;  // past the grace period of every cancel
};
SyntheticLineage MakeSyntheticLineage(int contexts, int handlers);

}  // namespace ctxagent

#endif  // CTXAGENT_BENCH_SYNTHETIC_LINEAGE_H_
