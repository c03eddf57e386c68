#include "agent/control/overhead.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>
#include <unistd.h>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/control/work_pacer.h"
#include "agent/trace/process.h"
#include "hitcount.skel.h"
#include "symbols/elf_file.h"

// Two probe targets shaped like what the plan probes: a conditional branch (emulated, as after a Go
// stack check) and a plain MOV (single-stepped, like most first instructions and RETs).
extern "C" uint64_t ctxagent_calib_branch(uint64_t);
extern "C" uint64_t ctxagent_calib_step(uint64_t);
asm(R"(
  .text
  .globl ctxagent_calib_branch
  .type ctxagent_calib_branch, @function
ctxagent_calib_branch:
  test %rdi, %rdi
  jz 1f
1:
  mov %rdi, %rax
  ret
  .size ctxagent_calib_branch, .-ctxagent_calib_branch
  .globl ctxagent_calib_step
  .type ctxagent_calib_step, @function
ctxagent_calib_step:
  mov %rdi, %rax
  ret
  .size ctxagent_calib_step, .-ctxagent_calib_step
)");

namespace ctxagent {
namespace {

constexpr int kBranchOffset = 3;  // `test %rdi,%rdi` is 3 bytes: the probe goes on the `jz`

// CPU seconds per call of `fn`, best of three batches. The trap is handled on the calling thread,
// so its CPU time holds it whole; wall time would also hold whatever ran while this thread waited
// for a core (21 agents starting together on 2 cores calibrated 105 us for a 0.65 us trap, and
// sampled a cheap target 2.5% of the time).
double TimePerCall(uint64_t (*fn)(uint64_t), int calls) {
  double best = 1e9;
  for (int round = 0; round < 3; ++round) {
    const double start = ThreadCpuSeconds();
    uint64_t sink = 0;
    for (int i = 0; i < calls; ++i) sink += fn(static_cast<uint64_t>(i));
    asm volatile("" : : "r"(sink));
    best = std::min(best, (ThreadCpuSeconds() - start) / calls);
  }
  return best;
}

struct HitcountDeleter {
  void operator()(hitcount* h) const { hitcount__destroy(h); }
};

}  // namespace

double ProcessCpuSeconds(pid_t pid) {
  // The kernel's sum of every thread's run time, in nanoseconds: /proc/<pid>/stat counts 10 ms
  // ticks, coarser than a quarter-second window's difference.
  clockid_t clock = CLOCK_PROCESS_CPUTIME_ID;
  if (pid != 0 && clock_getcpuclockid(pid, &clock) != 0) return 0;
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string OverheadCounted(const TrapCosts& c) {
  const std::string trap =
      c.measured() ? absl::StrFormat(
                         "measured on the traced processes (%.2f us per hit, the median of %d "
                         "on/off pairs)",
                         c.measured_us, c.measured_pairs)
                   : absl::StrFormat(
                         "calibrated on the agent's own functions (%.2f us emulated, %.2f us "
                         "single-stepped)",
                         c.emulated_us, c.stepped_us);
  return absl::StrCat("probe hits x the trap cost ", trap, ", BPF run time, the agent's CPU");
}

TracedCpu ReadTracedCpu(const std::vector<pid_t>& pids) {
  TracedCpu t;
  for (pid_t pid : pids) {
    t.seconds += ProcessCpuSeconds(pid);
    t.processes = absl::HashOf(t.processes, pid);
  }
  if (t.processes == 0 && !pids.empty()) t.processes = 1;
  return t;
}

absl::StatusOr<TrapCosts> CalibrateTrapCosts() {
  auto self = symbols::ElfFile::Open("/proc/self/exe");
  if (!self.ok()) return self.status();
  Process me(getpid());
  auto bias = me.LoadBias(**self);
  if (!bias.ok()) return bias.status();
  std::unique_ptr<hitcount, HitcountDeleter> skel(hitcount__open_and_load());
  if (skel == nullptr) return absl::ErrnoToStatus(errno, "cannot load the calibration probe");

  auto cost = [&](uint64_t (*fn)(uint64_t), int offset, int calls) -> absl::StatusOr<double> {
    uint64_t addr = reinterpret_cast<uint64_t>(fn) + offset - *bias;
    auto file_offset = (*self)->VaddrToFileOffset(addr);
    if (!file_offset.ok()) return file_offset.status();
    double base = TimePerCall(fn, calls);
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = 0);
    bpf_link* link = bpf_program__attach_uprobe_opts(skel->progs.count_hit, getpid(),
                                                     "/proc/self/exe", *file_offset, &opts);
    if (link == nullptr) return absl::ErrnoToStatus(errno, "cannot attach the calibration probe");
    double probed = TimePerCall(fn, calls);
    bpf_link__destroy(link);
    return std::max(0.0, (probed - base) * 1e6);
  };
  TrapCosts c;
  auto branch = cost(ctxagent_calib_branch, kBranchOffset, 20000);
  if (!branch.ok()) return branch.status();
  auto step = cost(ctxagent_calib_step, 0, 3000);
  if (!step.ok()) return step.status();
  c.emulated_us = *branch;
  c.stepped_us = *step;
  return c;
}

OverheadMeter::OverheadMeter(TrapCosts costs, int prog_fd, pid_t target)
    : costs_(costs), prog_fd_(prog_fd), target_(target) {
  stats_fd_ = bpf_enable_stats(BPF_STATS_RUN_TIME);  // < 0: BPF time is then not counted
  ncpu_ = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  last_time_ = absl::Now();
  last_agent_s_ = ProcessCpuSeconds(0);
  if (target_ > 0) last_target_s_ = ProcessCpuSeconds(target_);
}

OverheadMeter::~OverheadMeter() {
  if (stats_fd_ >= 0) close(stats_fd_);
}

OverheadSample OverheadMeter::Update(absl::Time now, const TrapHits& hits) {
  OverheadSample s;
  double dt = absl::ToDoubleSeconds(now - last_time_);
  if (dt <= 0) return s;
  const uint64_t stepped = hits[TRAP_STEPPED] - last_hits_[TRAP_STEPPED];
  const uint64_t all = stepped + hits[TRAP_EMULATED] - last_hits_[TRAP_EMULATED];
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  uint64_t bpf_ns = last_bpf_ns_;
  if (bpf_obj_get_info_by_fd(prog_fd_, &info, &len) == 0) bpf_ns = info.run_time_ns;
  double agent_s = ProcessCpuSeconds(0);
  double target_s = target_ > 0 ? ProcessCpuSeconds(target_) : 0;

  s.hits = all;
  s.hits_per_s = static_cast<double>(all) / dt;
  s.trap_cpu_s = (static_cast<double>(stepped) * costs_.trap_us(true) +
                  static_cast<double>(all - stepped) * costs_.trap_us(false)) *
                 1e-6 / dt;
  s.bpf_s = static_cast<double>(bpf_ns - last_bpf_ns_) * 1e-9;
  s.bpf_cpu_s = s.bpf_s / dt;
  s.agent_cpu_s = (agent_s - last_agent_s_) / dt;
  double total = s.trap_cpu_s + s.bpf_cpu_s + s.agent_cpu_s;
  s.node_ratio = total / ncpu_;
  // The trap and BPF time are charged to the target: its CPU includes them.
  double target_cpu = (target_s - last_target_s_) / dt;
  s.target_cpu_s = std::max(target_cpu - s.trap_cpu_s - s.bpf_cpu_s, 0.0);
  if (target_cpu > 0) s.target_ratio = total / std::max(s.target_cpu_s, 1e-6);

  last_time_ = now;
  last_hits_ = hits;
  last_bpf_ns_ = bpf_ns;
  last_agent_s_ = agent_s;
  last_target_s_ = target_s;
  return s;
}

}  // namespace ctxagent
