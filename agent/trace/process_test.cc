#include "agent/trace/process.h"

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

symbols::FileIdentity IdentityOf(const std::string& path) {
  struct stat st {};
  stat(path.c_str(), &st);
  return symbols::FileIdentity::Of(st);
}

TEST(ProcessTest, OnlyAThreadGroupLeaderIsAProcess) {
  EXPECT_TRUE(Process(getpid()).CheckIsProcess().ok());
  std::atomic<pid_t> tid{0};
  std::atomic<bool> stop{false};
  std::thread t([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    while (!stop) usleep(1000);
  });
  while (tid == 0) usleep(1000);
  absl::Status s = Process(tid).CheckIsProcess();
  stop = true;
  t.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), absl::StrCat(tid.load(), " is a thread of process ", getpid(),
                                      ", not a process: give its pid, ", getpid()));
  for (pid_t bad : {0, -1, 0x3ffffff0}) {
    s = Process(bad).CheckIsProcess();
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << bad;
    EXPECT_EQ(s.message(), absl::StrCat("no process with pid ", bad));
  }
}

TEST(ProcessTest, ChecksTheFileAndTheStartTime) {
  Process self(getpid());
  EXPECT_GT(self.start_time(), 0u);
  EXPECT_TRUE(self.Alive());
  EXPECT_TRUE(self.CheckRuns(IdentityOf("/proc/self/exe")).ok());
  absl::Status s = self.CheckRuns(IdentityOf("/bin/sh"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            absl::StrCat("pid ", getpid(), " now runs another binary (it called exec)"));

  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  Process child(pid);
  EXPECT_TRUE(child.Alive());
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_FALSE(child.Alive());
  EXPECT_EQ(child.CheckRuns(IdentityOf("/proc/self/exe")).code(), absl::StatusCode::kNotFound);
}

TEST(WritableMemoryTest, OnlyWritableMappingsMergedWhereAdjacent) {
  const WritableMemory m = WritableMemory::Parse(
      "00400000-00500000 r-xp 00000000 08:01 12 /bin/prog\n"
      "00500000-00600000 rw-p 00100000 08:01 12 /bin/prog\n"
      "00600000-00700000 rw-p 00000000 00:00 0\n"
      "c000000000-c004000000 rw-p 00000000 00:00 0\n"
      "c004000000-c008000000 ---p 00000000 00:00 0\n"
      "garbage line\n");
  EXPECT_EQ(m.Extent(0x400000), 0u);  // text
  EXPECT_EQ(m.Extent(0x500000), 0x200000u);
  EXPECT_EQ(m.Extent(0x6ffff8), 8u);
  EXPECT_EQ(m.Extent(0x700000), 0u);
  EXPECT_EQ(m.Extent(0xc000000010), 0x3fffff0u);
  EXPECT_EQ(m.Extent(0xc004000000), 0u);  // reserved, not mapped
  EXPECT_TRUE(m.Contains(0x5ffff8, 16));
  EXPECT_FALSE(m.Contains(0x6ffff8, 16));
  EXPECT_FALSE(m.Contains(0x500000, 0));
  EXPECT_FALSE(m.Contains(0x500000, ~uint64_t{0}));
}

TEST(WritableMemoryTest, OfALiveProcessHoldsItsHeapNotItsCode) {
  auto m = Process(getpid()).Writable();
  ASSERT_TRUE(m.ok()) << m.status();
  static int global = 1;
  auto heap = std::make_unique<int>(2);
  EXPECT_TRUE(m->Contains(reinterpret_cast<uint64_t>(&global), sizeof(global)));
  EXPECT_TRUE(m->Contains(reinterpret_cast<uint64_t>(heap.get()), sizeof(int)));
  EXPECT_EQ(m->Extent(reinterpret_cast<uint64_t>(&IdentityOf)), 0u);
  EXPECT_EQ(Process(0x3ffffff0).Writable().status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ctxagent
