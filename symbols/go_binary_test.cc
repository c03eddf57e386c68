#include "symbols/go_binary.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

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
    // The fixtures' toolchains are the ones whose table go_offsets_test verified against their
    // DWARF: it is not read again.
    EXPECT_EQ((*bin)->offsets().source, GoOffsets::Source::kTable);
    // propagateCancel, (*cancelCtx).cancel, gdestroy/goexit0, and newproc1's hand-off CALL (plus
    // its entry where g has no parentGoid).
    EXPECT_EQ((*bin)->plan().hooks.size(), 4u);
    EXPECT_GE((*bin)->plan().probes.size(), 4u);
    EXPECT_EQ((*bin)->plan().entry_fallbacks, 0);
    EXPECT_TRUE((*bin)->VerifyProbeSites().ok()) << (*bin)->VerifyProbeSites();
  }
}

std::string CopyFixture(const std::string& from, const std::string& name) {
  const std::string to = ::testing::TempDir() + "" + name;
  testing::RunCommand("cp " + from + " " + to);
  return to;
}

// A file rewritten in place after it was planned: its probes must not be attached.
TEST(GoBinaryTest, ProbeSiteBytesThatChangedAreRefused) {
  const auto fixtures = testing::AllFixtures("ctxprog");
  ASSERT_FALSE(fixtures.empty());
  const std::string path = CopyFixture(fixtures.back().path, "verify_copy");
  auto bin = GoBinary::Open(path);
  ASSERT_TRUE(bin.ok()) << bin.status();
  ASSERT_TRUE((*bin)->VerifyProbeSites().ok());
  const Probe& last = (*bin)->plan().probes.back();
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const char int3 = '\xcc';
  ASSERT_EQ(pwrite(fd, &int3, 1, static_cast<off_t>(last.site.file_offset)), 1);
  close(fd);
  absl::Status s = (*bin)->VerifyProbeSites();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("changed since it was read"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(last.function));
  EXPECT_THAT(std::string(s.message()), HasSubstr("holds cc"));
  unlink(path.c_str());
}

// The path is only how the file was found: once open, a binary is that file, whatever the path
// names later (as /proc/<pid>/exe does after exec).
TEST(GoBinaryTest, KeepsTheFileItOpenedWhenThePathChanges) {
  const auto fixtures = testing::AllFixtures("ctxprog");
  ASSERT_GE(fixtures.size(), 2u);
  const std::string path = CopyFixture(fixtures.back().path, "identity_copy");
  const std::string other = CopyFixture(fixtures.front().path, "identity_other");
  auto bin = GoBinary::Open(path);
  ASSERT_TRUE(bin.ok()) << bin.status();
  const FileIdentity before = (*bin)->identity();
  ASSERT_EQ(rename(other.c_str(), path.c_str()), 0);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_FALSE(FileIdentity::Of(st).SameInode(before));
  ASSERT_EQ(stat((*bin)->fd_path().c_str(), &st), 0);
  EXPECT_TRUE(FileIdentity::Of(st).SameInode(before));
  EXPECT_TRUE((*bin)->VerifyProbeSites().ok());
  unlink(path.c_str());
}

// Size and times tell a file that got a reused inode number (or was rewritten) from the old one.
TEST(GoBinaryTest, FileIdentityIncludesSizeAndTimes) {
  const std::string path = ::testing::TempDir() + "identity_times";
  testing::RunCommand("printf abc > " + path);
  struct stat a, b;
  ASSERT_EQ(stat(path.c_str(), &a), 0);
  usleep(20000);
  testing::RunCommand("printf abcd > " + path);
  ASSERT_EQ(stat(path.c_str(), &b), 0);
  EXPECT_TRUE(FileIdentity::Of(a).SameInode(FileIdentity::Of(b)));
  EXPECT_FALSE(FileIdentity::Of(a) == FileIdentity::Of(b));
  EXPECT_TRUE(FileIdentity::Of(b) == FileIdentity::Of(b));
  unlink(path.c_str());
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
