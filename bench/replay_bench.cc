// replay_bench: the agent's per-event CPU cost and its memory per live context, each measured in
// one run.
//
//   replay_bench <pid> [--record_seconds=10] [--repeat=5] [--out=FILE]
//   replay_bench <pid> --in=FILE [--repeat=5]
//   replay_bench --memory [--contexts=200000]
//
// Replay: records every raw probe event of <pid> for --record_seconds (or reads a stream written by
// --out), then replays it --repeat times on one pinned CPU through a fresh Decoder +
// ProcessLineage, doing what `ctxagent attach` does per event (decode, apply) and per second of
// event time (Evaluate, Collect). Prints events/s per core of thread CPU time and its ratio to the
// 1M events/s target. The decoder reads itabs from the target, so <pid> must still run during the
// replay.
//
// Memory: feeds a lineage --contexts live contexts (no cancels) and reports the heap growth per
// context, alone and with one live goroutine bound to each, against the 256 bytes target.
#include <malloc.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/lineage/lineage.h"
#include "agent/trace/decoder.h"
#include "agent/trace/process.h"
#include "agent/trace/tracer.h"
#include "bpf/ctxagent.h"
#include "symbols/go_binary.h"
#include "symbols/status_macros.h"

ABSL_FLAG(int, record_seconds, 10, "how long to record the target's events");
ABSL_FLAG(int, repeat, 5, "replays of the recorded stream");
ABSL_FLAG(std::string, out, "",
          "also write the recorded stream to this file (raw ctx_event structs)");
ABSL_FLAG(std::string, in, "", "replay this file instead of recording (the pid must still run)");
ABSL_FLAG(bool, memory, false, "measure bytes per live context instead of replaying");
ABSL_FLAG(int, contexts, 200000, "--memory: live contexts to create");

namespace ctxagent {
namespace {

constexpr double kTargetEventsPerSecond = 1e6;
constexpr double kTargetBytesPerContext = 256;
constexpr uint64_t kRefreshNs = 1'000'000'000;  // the attach command's default --refresh

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

absl::StatusOr<std::vector<ctx_event>> Record(const Process& process, const symbols::GoBinary& bin,
                                              absl::Duration duration) {
  const pid_t pid = process.pid();
  std::vector<ctx_event> stream;
  stream.reserve(1 << 20);
  ASSIGN_OR_RETURN(std::unique_ptr<Tracer> tracer, Tracer::Create([&](const ctx_event& raw) {
                     if (raw.tgid == static_cast<uint32_t>(pid)) stream.push_back(raw);
                   }));
  ASSIGN_OR_RETURN(uint32_t attachment, tracer->Attach(process, bin));
  const absl::Time end = absl::Now() + duration;
  while (absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
    tracer->Drain();
  }
  tracer->Detach(attachment);
  tracer->Drain();
  if (uint64_t lost = tracer->counters().dropped_total(); lost > 0) {
    fprintf(stderr, "replay_bench: the probes dropped %lu events while recording\n",
            static_cast<unsigned long>(lost));
  }
  return stream;
}

absl::Status WriteStream(const std::string& path, const std::vector<ctx_event>& stream) {
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path));
  const size_t written = fwrite(stream.data(), sizeof(ctx_event), stream.size(), f);
  if (fclose(f) != 0 || written != stream.size()) {
    return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ctx_event>> ReadStream(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<ctx_event> stream;
  ctx_event e;
  while (fread(&e, sizeof(e), 1, f) == 1) stream.push_back(e);
  const bool clean_end = feof(f) && !ferror(f);
  fclose(f);
  if (!clean_end) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return stream;
}

void PrintMix(const std::vector<ctx_event>& stream) {
  uint64_t counts[EV_GO_EXIT + 1] = {};
  for (const ctx_event& e : stream) {
    if (e.type <= EV_GO_EXIT) ++counts[e.type];
  }
  const double n = std::max<size_t>(stream.size(), 1);
  printf(
      "event mix: ctx create %lu (%.1f%%), ctx cancel %lu (%.1f%%), go create %lu (%.1f%%), "
      "go exit %lu (%.1f%%)\n",
      counts[EV_CTX_CREATE], 100 * counts[EV_CTX_CREATE] / n, counts[EV_CTX_CANCEL],
      100 * counts[EV_CTX_CANCEL] / n, counts[EV_GO_CREATE], 100 * counts[EV_GO_CREATE] / n,
      counts[EV_GO_EXIT], 100 * counts[EV_GO_EXIT] / n);
}

struct ReplayResult {
  uint64_t events = 0;
  uint64_t undecodable = 0;
  double cpu_s = 0;
  uint64_t contexts_created = 0;
  uint64_t tracked_contexts = 0;  // at the end: what Collect kept
};

// One replay as the attach command would run it, from a cold decoder cache and an empty lineage.
ReplayResult Replay(const std::vector<ctx_event>& stream, const symbols::GoBinary& bin,
                    const Process& process, uint64_t bias) {
  ReplayResult r;
  ProcessLineage lineage(process.pid());
  Decoder decoder(bin, process, bias, lineage.sites());
  const EventClock clock;
  const FindingOptions options;
  uint64_t next_refresh = stream.front().ktime_ns + kRefreshNs;
  const double start = ThreadCpuSeconds();
  for (const ctx_event& raw : stream) {
    if (raw.ktime_ns >= next_refresh) {
      const absl::Time now = clock.ToTime(raw.ktime_ns);
      lineage.Evaluate(now, options);
      lineage.Collect(now, options);
      next_refresh = raw.ktime_ns + kRefreshNs;
    }
    absl::StatusOr<DecodedEvent> e = decoder.Decode(raw, clock);
    if (!e.ok()) {
      ++r.undecodable;
      continue;
    }
    lineage.Apply(*e);
  }
  r.cpu_s = ThreadCpuSeconds() - start;
  r.events = stream.size();
  LineageStats stats = lineage.stats();
  r.contexts_created = stats.contexts_created;
  r.tracked_contexts = stats.tracked_contexts;
  return r;
}

absl::Status RunReplay(pid_t pid) {
  Process process(pid);
  if (!process.Alive()) return absl::NotFoundError(absl::StrCat("no process with pid ", pid));
  ASSIGN_OR_RETURN(std::unique_ptr<symbols::GoBinary> bin,
                   symbols::GoBinary::Open(process.exe_path()));
  ASSIGN_OR_RETURN(uint64_t bias, process.LoadBias(bin->elf()));

  std::vector<ctx_event> stream;
  if (const std::string in = absl::GetFlag(FLAGS_in); !in.empty()) {
    ASSIGN_OR_RETURN(stream, ReadStream(in));
    printf("read %zu events from %s\n", stream.size(), in.c_str());
  } else {
    const int seconds = absl::GetFlag(FLAGS_record_seconds);
    ASSIGN_OR_RETURN(stream, Record(process, *bin, absl::Seconds(seconds)));
    printf("recorded %zu events of pid %d in %d s (%.0f events/s)\n", stream.size(), pid, seconds,
           static_cast<double>(stream.size()) / seconds);
    if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
      RETURN_IF_ERROR(WriteStream(out, stream));
    }
  }
  if (stream.empty()) return absl::FailedPreconditionError("no events to replay");
  PrintMix(stream);

  // One core, as the target asks: no migration, and CPU time of this thread only.
  const int cpu = sched_getcpu();
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return absl::InternalError("sched_setaffinity failed");
  }
  const int repeat = std::max(1, absl::GetFlag(FLAGS_repeat));
  printf("replay on CPU %d, %d repeats, a fresh Decoder + ProcessLineage each:\n", cpu, repeat);
  std::vector<double> rates;
  for (int i = 1; i <= repeat; ++i) {
    ReplayResult r = Replay(stream, *bin, process, bias);
    const double rate = r.events / r.cpu_s;
    rates.push_back(rate);
    printf(
        "  repeat %d: %lu events, %.3f s CPU, %.0f events/s/core, ratio to 1M/s %.2f "
        "(undecodable %lu, contexts %lu, tracked at end %lu)\n",
        i, static_cast<unsigned long>(r.events), r.cpu_s, rate, rate / kTargetEventsPerSecond,
        static_cast<unsigned long>(r.undecodable), static_cast<unsigned long>(r.contexts_created),
        static_cast<unsigned long>(r.tracked_contexts));
  }
  if (!process.Alive()) {
    return absl::FailedPreconditionError(
        "the target exited during the replay: its itabs were unreadable, the numbers are invalid");
  }
  std::sort(rates.begin(), rates.end());
  const double median = rates[rates.size() / 2];
  printf("median: %.0f events/s/core, %.3f us/event; events/s / 1,000,000 = %.2f (target >= 1)\n",
         median, 1e6 / median, median / kTargetEventsPerSecond);
  return absl::OkStatus();
}

size_t HeapBytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;  // large hash tables are mmapped (hblkhd), not in uordblks
}

// Heap growth per live context of a lineage fed `n` creations and no cancel: a random tree (each
// context under an earlier one, or under Background), 8 sites, 1024 creator goroutines. With
// `with_goroutines`, each context also gets a live goroutine bound to it, as a request handler has.
double BytesPerLiveContext(int n, bool with_goroutines) {
  constexpr uint64_t kBackgroundAddr = 0x5ad3c0;
  constexpr uint64_t kFirstAddr = 0xc000400000;
  constexpr uint64_t kAddrStep = 0x80;
  constexpr int kSites = 8, kCreators = 1024;
  const absl::Time start = absl::FromUnixSeconds(1'700'000'000);
  // Everything the loop needs is allocated before the first heap reading.
  std::vector<std::string> functions = {"main.(*server).handleRequest", "main.worker",
                                        "net/http.(*conn).serve", "main.fanOut.func1"};
  std::mt19937_64 rng(42);
  malloc_trim(0);
  const size_t before = HeapBytes();
  double per_context;
  {
    ProcessLineage lineage(4242);
    std::vector<SiteId> sites;
    for (int i = 0; i < kSites; ++i) {
      sites.push_back(lineage.sites().Intern(Site{"main.handler", "/src/app/main.go", 100 + i}));
    }
    ContextCreated c;
    c.kind = ContextKind::kCancel;
    c.parents.resize(1);
    GoroutineCreated g;
    g.captured.resize(1);
    for (int i = 0; i < n; ++i) {
      c.time = g.time = start + absl::Microseconds(i);
      c.goid = 1 + i % kCreators;
      c.addr = kFirstAddr + static_cast<uint64_t>(i) * kAddrStep;
      c.site = sites[i % kSites];
      if (i % 4 == 0) {
        c.parents[0] = {kBackgroundAddr, ParentLink::Type::kBackground};
      } else {
        c.parents[0] = {kFirstAddr + (rng() % i) * kAddrStep, ParentLink::Type::kCancelable};
      }
      lineage.OnContextCreated(c);
      if (with_goroutines) {
        g.goid = 1'000'000 + i;
        g.parent_goid = c.goid;
        g.go_site = sites[(i + 1) % kSites];
        g.start_function = functions[i % functions.size()];
        g.captured[0] = c.addr;
        lineage.OnGoroutineCreated(g);
      }
    }
    const size_t after = HeapBytes();
    per_context = static_cast<double>(after - before) / n;
    LineageStats stats = lineage.stats();
    printf("  (live contexts %lu, live goroutines %lu)\n",
           static_cast<unsigned long>(stats.live_contexts),
           static_cast<unsigned long>(stats.live_goroutines));
  }
  return per_context;
}

void RunMemory() {
  const int n = std::max(1, absl::GetFlag(FLAGS_contexts));
  for (bool with_goroutines : {false, true}) {
    printf("memory: %d live contexts%s\n", n,
           with_goroutines ? ", each with 1 live goroutine bound to it" : "");
    const double per = BytesPerLiveContext(n, with_goroutines);
    printf("  %.1f bytes per live context; ratio to %.0f B: %.2f (target <= 1)\n", per,
           kTargetBytesPerContext, per / kTargetBytesPerContext);
  }
}

}  // namespace
}  // namespace ctxagent

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_memory)) {
    ctxagent::RunMemory();
    return 0;
  }
  int pid = 0;
  if (args.size() != 2 || !absl::SimpleAtoi(args[1], &pid) || pid <= 0) {
    fprintf(stderr,
            "usage: replay_bench <pid> [--record_seconds=N] [--repeat=K] [--out=FILE | --in=FILE]\n"
            "       replay_bench --memory [--contexts=N]\n");
    return 2;
  }
  if (absl::Status s = ctxagent::RunReplay(pid); !s.ok()) {
    fprintf(stderr, "replay_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
