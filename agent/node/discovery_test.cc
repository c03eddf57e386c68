#include "agent/node/discovery.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/trace/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::HasSubstr;

const std::string kGo = CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.27/default";
const std::string kOtherGo = CTXAGENT_GO_FIXTURE_DIR "/ctxprog/go1.19/default";

// A child running `path args...` (output discarded) that has exec'd it; killed when destroyed.
class Running {
 public:
  explicit Running(const std::string& path, const char* arg = "-loop") : path_(path) {
    pid_ = fork();
    if (pid_ == 0) {
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, STDOUT_FILENO);
      execl(path.c_str(), path.c_str(), arg, static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 500 && !Execd(); ++i) absl::SleepFor(absl::Milliseconds(10));
  }
  ~Running() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  bool Execd() const {
    char exe[4096] = {};
    return readlink(absl::StrCat("/proc/", pid_, "/exe").c_str(), exe, sizeof(exe) - 1) > 0 &&
           std::string(exe) == path_;
  }
  std::string path_;
  pid_t pid_;
};

TEST(IdentifyExecutableTest, FileAndStartTime) {
  absl::StatusOr<RunningExecutable> self = IdentifyExecutable("/proc", getpid());
  ASSERT_TRUE(self.ok()) << self.status();
  struct stat st;
  ASSERT_EQ(stat("/proc/self/exe", &st), 0);
  EXPECT_TRUE(self->file == symbols::FileIdentity::Of(st));
  EXPECT_EQ(self->start_time, *ProcessStartTime(getpid()));
  EXPECT_EQ(IdentifyExecutable("/proc", 0x3ffffff0).status().code(), absl::StatusCode::kNotFound);
}

TEST(BinaryCatalogTest, OneBinaryPerFileWhileAnyProcessRunsIt) {
  Running a(kGo), b(kGo);
  BinaryCatalog catalog("/proc");
  bool opened = false;
  auto first = catalog.Acquire(a.pid(), *IdentifyExecutable("/proc", a.pid()), &opened);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(opened);
  auto second = catalog.Acquire(b.pid(), *IdentifyExecutable("/proc", b.pid()), &opened);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(opened);
  EXPECT_EQ(*first, *second);
  EXPECT_EQ((*first)->processes, 2);
  const symbols::FileIdentity file = (*first)->bin->identity();
  int last = 0;
  catalog.Release(file, [&](TracedBinary&) { ++last; });
  EXPECT_EQ(last, 0);
  EXPECT_EQ(catalog.binaries().size(), 1u);
  catalog.Release(file, [&](TracedBinary&) { ++last; });
  EXPECT_EQ(last, 1);
  EXPECT_TRUE(catalog.binaries().empty());
}

// What was identified is not what runs under the pid by the time it is opened: nothing is kept.
TEST(BinaryCatalogTest, ExecAndPidReuseBetweenIdentifyAndOpenAreRefused) {
  Running a(kGo), other(kOtherGo);
  BinaryCatalog catalog("/proc");
  const RunningExecutable seen = *IdentifyExecutable("/proc", a.pid());
  bool opened = false;
  RunningExecutable execd = seen;  // as if it ran kOtherGo when identified, kGo now
  execd.file = IdentifyExecutable("/proc", other.pid())->file;
  auto b = catalog.Acquire(a.pid(), execd, &opened);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  EXPECT_THAT(b.status().message(), HasSubstr("now runs another binary"));
  RunningExecutable reused = seen;
  reused.start_time += 1;
  b = catalog.Acquire(a.pid(), reused, &opened);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  EXPECT_THAT(b.status().message(), HasSubstr("was reused"));
  EXPECT_TRUE(catalog.binaries().empty());
  EXPECT_FALSE(catalog.Untraceable(seen.file));
  EXPECT_FALSE(catalog.Untraceable(execd.file));
}

// A file that is not Go is remembered; a Go file written where it was (same inode number, other
// size and times) is traced.
TEST(BinaryCatalogTest, UntraceableIsRememberedByFileNotByInode) {
  const std::string path = ::testing::TempDir() + "discovery_reused_inode";
  ASSERT_EQ(system(("cp /bin/sleep " + path).c_str()), 0);
  BinaryCatalog catalog("/proc");
  RunningExecutable not_go;
  {
    Running sleeper(path, "30");
    not_go = *IdentifyExecutable("/proc", sleeper.pid());
    bool opened = false;
    auto b = catalog.Acquire(sleeper.pid(), not_go, &opened);
    EXPECT_FALSE(b.ok());
    EXPECT_TRUE(catalog.Untraceable(not_go.file));
  }
  // cp onto an existing file rewrites it in place: the same inode.
  ASSERT_EQ(system(("cp " + kGo + " " + path).c_str()), 0);
  Running go(path);
  const RunningExecutable now = *IdentifyExecutable("/proc", go.pid());
  ASSERT_TRUE(now.file.SameInode(not_go.file));
  EXPECT_FALSE(catalog.Untraceable(now.file));
  bool opened = false;
  auto b = catalog.Acquire(go.pid(), now, &opened);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(opened);
  EXPECT_TRUE((*b)->bin->VerifyProbeSites().ok());
  unlink(path.c_str());
}

}  // namespace
}  // namespace ctxagent
