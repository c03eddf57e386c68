// goroutines_bench: the cost of reading goroutine state from a running Go process (agent/trace/
// goroutines.h): per goroutine read (ReadAll over runtime.allgs), and per evaluation (the lineage's
// ObserveGoroutines + Evaluate). bench/goroutines.sh runs it against bench/parked at 10k and 100k.
#include <time.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "agent/lineage/lineage.h"
#include "agent/trace/decoder.h"
#include "agent/trace/goroutines.h"
#include "agent/trace/process.h"
#include "symbols/go_binary.h"

ABSL_FLAG(int, pid, 0, "the Go process to read");
ABSL_FLAG(int, rounds, 10, "reads to average over");

namespace {

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace ctxagent;  // NOLINT: a bench
  Process process(absl::GetFlag(FLAGS_pid));
  auto bin = symbols::GoBinary::Open(process.exe_path());
  if (!bin.ok()) {
    fprintf(stderr, "goroutines_bench: %s\n", std::string(bin.status().message()).c_str());
    return 1;
  }
  auto bias = process.LoadBias((*bin)->elf());
  if (!bias.ok()) return 1;
  ProcessLineage lineage(process.pid());
  Decoder decoder(**bin, process, *bias, lineage.sites());
  EventClock clock;
  GoroutineReader reader(**bin, process, *bias, decoder, clock, uint64_t{1} << 30);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  size_t n = reader.ReadAll().size();  // warm the symbol caches
  double cpu = CpuSeconds();
  absl::Time wall = absl::Now();
  for (int i = 0; i < rounds; ++i) n = reader.ReadAll().size();
  const double read_cpu = (CpuSeconds() - cpu) / rounds;
  const double read_wall = absl::ToDoubleSeconds(absl::Now() - wall) / rounds;
  cpu = CpuSeconds();
  wall = absl::Now();
  FindingOptions options;
  size_t findings = 0;
  for (int i = 0; i < rounds; ++i) {
    lineage.ObserveGoroutines(absl::Now(), reader);
    findings = lineage.Evaluate(absl::Now(), options).size();
  }
  const double eval_cpu = (CpuSeconds() - cpu) / rounds;
  const double eval_wall = absl::ToDoubleSeconds(absl::Now() - wall) / rounds;
  const auto& c = reader.cost();
  const double reads = static_cast<double>(2 * rounds + 1);
  printf(
      "goroutines %zu: read all %.2f ms CPU (%.2f ms wall), %.3f us CPU per goroutine; "
      "evaluation (observe + evaluate) %.2f ms CPU (%.2f ms wall); per read %.0f syscalls, "
      "%.0f regions, %.1f KiB; findings %zu\n",
      n, read_cpu * 1e3, read_wall * 1e3, n ? read_cpu * 1e6 / n : 0.0, eval_cpu * 1e3,
      eval_wall * 1e3, c.syscalls / reads, c.regions / reads, c.bytes / reads / 1024, findings);
  return 0;
}
