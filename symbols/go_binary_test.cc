#include "symbols/go_binary.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::testing::HasSubstr;

TEST(GoBinaryTest, FactsOfEveryFixture) {
  for (const auto& f : testing::AllFixtures("ctxprog")) {
    SCOPED_TRACE(f.path);
    auto bin = GoBinary::Open(f.path);
    ASSERT_TRUE(bin.ok()) << bin.status();
    EXPECT_EQ((*bin)->build_info().version.ShortString(), "go" + f.go_version);
    EXPECT_EQ((*bin)->stripped(), f.variant == "stripped");
    EXPECT_EQ((*bin)->has_dwarf(), f.variant != "stripped");
    EXPECT_EQ((*bin)->pie(), f.variant == "pie" || f.variant == "pieext");
    // DWARF wins when present; the table then agrees with it (go_offsets_test checks every field).
    EXPECT_EQ((*bin)->offsets().source,
              f.variant == "stripped" ? GoOffsets::Source::kTable : GoOffsets::Source::kDwarf);
    EXPECT_GE((*bin)->plan().probes.size(), 6u);
    EXPECT_EQ((*bin)->plan().entry_fallbacks, 0);
  }
}

TEST(GoBinaryTest, ErrorsNameTheFileAndTheReason) {
  struct Case {
    std::string path;
    absl::StatusCode code;
    std::string text;
  } cases[] = {
      {"/nonexistent/app", absl::StatusCode::kNotFound, "/nonexistent/app"},
      {"/etc/hostname", absl::StatusCode::kInvalidArgument, "not an ELF file"},
      {"/bin/true", absl::StatusCode::kNotFound, "not a Go binary"},
  };
  for (const Case& c : cases) {
    auto bin = GoBinary::Open(c.path);
    ASSERT_FALSE(bin.ok()) << c.path;
    EXPECT_EQ(bin.status().code(), c.code) << bin.status();
    EXPECT_THAT(std::string(bin.status().message()), HasSubstr(c.text));
  }
}

TEST(GoBinaryTest, OpensARunningProcessThroughProc) {
  auto fixtures = testing::AllFixtures("ctxprog");
  ASSERT_FALSE(fixtures.empty());
  const std::string path = fixtures.back().path;
  pid_t pid = fork();
  if (pid == 0) {
    execl(path.c_str(), path.c_str(), "-loop", "-sleep", "1s", static_cast<char*>(nullptr));
    _exit(127);
  }
  // Until the child has exec'd, its /proc/<pid>/exe is this test (not Go).
  const std::string exe = "/proc/" + std::to_string(pid) + "/exe";
  absl::StatusOr<std::unique_ptr<GoBinary>> bin = absl::UnknownError("not tried");
  for (int i = 0; i < 200 && !bin.ok(); ++i) {
    bin = GoBinary::Open(exe);
    if (!bin.ok()) usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(bin.ok()) << bin.status();
  EXPECT_EQ((*bin)->path(), exe);
  EXPECT_EQ((*bin)->build_info().version.ShortString(), "go" + fixtures.back().go_version);

  // /proc/self/exe is this C++ test: an ELF, not Go.
  auto self = GoBinary::Open("/proc/self/exe");
  EXPECT_EQ(self.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(self.status().message()), HasSubstr("/proc/self/exe"));
}

}  // namespace
}  // namespace ctxagent::symbols
