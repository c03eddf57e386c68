#include "bpf/bpf_testing.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace ctxagent::testing {

bool InCi() {
  const char* ci = getenv("CI");
  return ci != nullptr && strcmp(ci, "true") == 0;
}

std::string BpfUnavailableReason() {
  if (geteuid() != 0) return "not root (uprobes and BPF need CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)";
  struct stat st;
  if (stat("/sys/kernel/btf/vmlinux", &st) != 0)
    return "kernel has no BTF (/sys/kernel/btf/vmlinux)";
  return "";
}

}  // namespace ctxagent::testing
