// Test-only: a process's executable code in memory compared with its file.
#ifndef CTXAGENT_TESTS_E2E_TEXT_CHECK_H_
#define CTXAGENT_TESTS_E2E_TEXT_CHECK_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ctxagent::testing {

// Every byte of `pid`'s executable mappings of its main executable (read from /proc/<pid>/mem)
// that differs from that file, except an int3 (0xcc) at a probe site ctxagent plans for that very
// file: one line each ("<exe>: file offset 0x…: 0x.. in memory, 0x.. in the file"), at most 20.
// Empty: untouched but for its own probes. NotFound once the process is gone.
absl::StatusOr<std::vector<std::string>> ForeignTextBytes(pid_t pid);

}  // namespace ctxagent::testing

#endif  // CTXAGENT_TESTS_E2E_TEXT_CHECK_H_
