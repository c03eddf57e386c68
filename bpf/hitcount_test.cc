#include "bpf/hitcount.h"

#include <bpf/libbpf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "bpf/bpf_testing.h"
#include "gtest/gtest.h"
#include "hitcount.skel.h"
#include "symbols/elf_file.h"
#include "symbols/go_binary.h"

namespace ctxagent {
namespace {

struct SkelDeleter {
  void operator()(hitcount* s) const { hitcount__destroy(s); }
};

uint64_t ReadSlot(hitcount* skel, uint32_t slot) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(ncpu);
  EXPECT_EQ(bpf_map__lookup_elem(skel->maps.hits, &slot, sizeof(slot), per_cpu.data(),
                                 per_cpu.size() * sizeof(uint64_t), 0),
            0);
  uint64_t sum = 0;
  for (uint64_t v : per_cpu) sum += v;
  return sum;
}

int RunToExit(const std::string& path, const std::string& arg) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(path.c_str(), path.c_str(), "-n", arg.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A probe on a function's entry and one on the planned site (the stack-check branch) both fire
// exactly once per call, and the target runs to a clean exit.
TEST(HitcountTest, PlannedProbeFiresOncePerCall) {
  CTXAGENT_REQUIRE_BPF();
  const std::string bin = std::string(CTXAGENT_GO_FIXTURE_DIR) + "/ctxprog/go1.27/default";
  auto go = symbols::GoBinary::Open(bin);
  ASSERT_TRUE(go.ok()) << go.status();
  // The context-creation hook: its entry, and the site the plan chose (the stack-check branch).
  const symbols::PlannedHook* create = nullptr;
  for (const auto& h : (*go)->plan().hooks) {
    if (create == nullptr && h.hook.kind == symbols::HookKind::kContextCreate) create = &h;
  }
  ASSERT_NE(create, nullptr);
  const symbols::Probe* planned = nullptr;
  for (const auto& p : (*go)->plan().probes) {
    if (planned == nullptr && p.hook == symbols::HookKind::kContextCreate) planned = &p;
  }
  ASSERT_NE(planned, nullptr);
  ASSERT_EQ(planned->kind, symbols::SiteKind::kStackCheck);
  std::unique_ptr<hitcount, SkelDeleter> skel(hitcount__open_and_load());
  ASSERT_NE(skel, nullptr) << "hitcount__open_and_load: " << strerror(errno);
  LIBBPF_OPTS(bpf_uprobe_opts, entry_opts, .bpf_cookie = 1);
  bpf_link* l1 = bpf_program__attach_uprobe_opts(skel->progs.count_hit, -1, bin.c_str(),
                                                 create->entry_file_offset, &entry_opts);
  ASSERT_NE(l1, nullptr) << strerror(errno);
  LIBBPF_OPTS(bpf_uprobe_opts, plan_opts, .bpf_cookie = 2);
  bpf_link* l2 = bpf_program__attach_uprobe_opts(skel->progs.count_hit, -1, bin.c_str(),
                                                 planned->site.file_offset, &plan_opts);
  ASSERT_NE(l2, nullptr) << strerror(errno);

  constexpr int kRounds = 37;
  EXPECT_EQ(RunToExit(bin, std::to_string(kRounds)), 0);
  // ctxprog creates at least two cancelable contexts per round (workCancel, workValue).
  EXPECT_GE(ReadSlot(skel.get(), 1), 2 * kRounds);
  EXPECT_EQ(ReadSlot(skel.get(), 2), ReadSlot(skel.get(), 1));
  bpf_link__destroy(l1);
  bpf_link__destroy(l2);
}

}  // namespace
}  // namespace ctxagent
