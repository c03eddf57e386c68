// The `ctxagent` command line, run as a user would: help, version, flag spellings, and one clear
// line (exit 2) for every value that cannot work. Nothing here needs BPF: all of it is refused or
// answered before the agent starts.
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxagent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Result RunAgent(const std::vector<std::string>& args) {
  const std::string dir = ::testing::TempDir();
  // Per test process: ctest runs these tests in parallel.
  const std::string out = absl::StrCat(dir, "/ctxagent_main_out.", getpid()),
                    err = absl::StrCat(dir, "/ctxagent_main_err.", getpid());
  const std::string cmd = absl::StrCat(CTXAGENT_BIN, " ", absl::StrJoin(args, " "), " >", out,
                                       " 2>", err, " </dev/null");
  Result r;
  int status = system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

// Refused before anything starts: exit 2 and exactly one line on stderr that says `what`.
void ExpectRefused(const std::vector<std::string>& args, const std::string& what) {
  Result r = RunAgent(args);
  const std::string cmd = absl::StrJoin(args, " ");
  EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << cmd << ": " << r.err;
  EXPECT_THAT(r.err, HasSubstr(what)) << cmd;
  EXPECT_EQ(r.out, "") << cmd;
}

TEST(MainTest, HelpListsCommandsAndExitsZero) {
  for (const char* h : {"--help", "-h", "help"}) {
    Result r = RunAgent({h});
    EXPECT_EQ(r.code, 0) << h;
    EXPECT_THAT(r.out, ::testing::AllOf(HasSubstr("symbols"), HasSubstr("attach"),
                                        HasSubstr("daemon"), HasSubstr("--help")))
        << h;
  }
  Result none = RunAgent({});
  EXPECT_EQ(none.code, 2);
  EXPECT_THAT(none.err, HasSubstr("usage"));
  ExpectRefused({"nope"}, "unknown command \"nope\"");
}

TEST(MainTest, CommandHelpListsOnlyThatCommandsFlagsWithItsDefaults) {
  Result attach = RunAgent({"attach", "--help"});
  EXPECT_EQ(attach.code, 0);
  EXPECT_THAT(attach.out,
              ::testing::AllOf(HasSubstr("--leak_after=30s"), HasSubstr("--refresh=1s"),
                               HasSubstr("--http="), HasSubstr("--o=tree"),
                               Not(HasSubstr("--listen")), Not(HasSubstr("--include"))));
  // One flag, two commands, each with its own default.
  Result daemon = RunAgent({"daemon", "-h"});
  EXPECT_EQ(daemon.code, 0);
  EXPECT_THAT(daemon.out,
              ::testing::AllOf(HasSubstr("--refresh=5s"), HasSubstr("--listen=0.0.0.0:9464"),
                               HasSubstr("--detail_listen=127.0.0.1:9465"),
                               HasSubstr("--series_ttl=5m"), HasSubstr("--max_workloads=10000"),
                               HasSubstr("--http_max_connections_per_client=16"),
                               HasSubstr("--http_reserved_connections=64"),
                               Not(HasSubstr("--target_budget")), Not(HasSubstr("--http="))));
  EXPECT_EQ(RunAgent({"help", "daemon"}).out, daemon.out);
  Result symbols = RunAgent({"symbols", "--help"});
  EXPECT_EQ(symbols.code, 0);
  EXPECT_THAT(symbols.out, ::testing::AllOf(HasSubstr("--o=text"), Not(HasSubstr("--budget"))));
}

TEST(MainTest, Version) {
  for (const char* v : {"--version", "version"}) {
    Result r = RunAgent({v});
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out, absl::StrCat("ctxagent ", CTXAGENT_VERSION, "\n"));
  }
}

TEST(MainTest, DashedAndUnderscoredSpellingsAreTheSameFlag) {
  // Recognised in either spelling: the error is about the value, not the name.
  ExpectRefused({"attach", "--leak-after=-1s", "1"}, "--leak_after must be a positive duration");
  ExpectRefused({"attach", "--leak_after", "-1s", "1"}, "--leak_after must be a positive duration");
  ExpectRefused({"daemon", "--max-site-labels=-1"}, "--max_site_labels");
  ExpectRefused({"attach", "--target-budget=2", "1"}, "--target_budget must be a share");
}

TEST(MainTest, ImpossibleValuesAreRefusedInOneLine) {
  for (const char* b : {"-1", "nan", "inf", "1.5"}) {
    ExpectRefused({"attach", absl::StrCat("--budget=", b), "1"}, "--budget must be a share");
    ExpectRefused({"daemon", absl::StrCat("--budget=", b)}, "--budget must be a share");
  }
  for (const char* d : {"0s", "-1s"}) {
    ExpectRefused({"attach", absl::StrCat("--duration=", d), "1"}, "--duration must be a positive");
    ExpectRefused({"daemon", absl::StrCat("--refresh=", d)}, "--refresh must be a positive");
  }
  ExpectRefused({"attach", "--grace=-1s", "1"}, "--grace must be a duration of 0 or more");
  ExpectRefused({"attach", "--min_count=0", "1"}, "--min_count must be at least 1");
  ExpectRefused({"attach", "--ring_buffer_kb=1000", "1"},
                "--ring_buffer_kb must be a power of two");
  ExpectRefused({"attach", "--budget=abc", "1"}, "--budget");
  ExpectRefused({"attach", "-o", "xml", "1"}, "-o must be tree, json, dot or html");
  ExpectRefused({"daemon", "--include=nope:x"}, "selector");
  ExpectRefused({"daemon", "--series_ttl=0s"}, "--series_ttl must be a positive duration");
  ExpectRefused({"daemon", "--http_request_timeout=0s"}, "--http_request_timeout must be a");
  ExpectRefused({"daemon", "--max_workloads=0"}, "--max_workloads");
  ExpectRefused({"daemon", "--http_max_connections=64", "--http_reserved_connections=64"},
                "--http_reserved_connections from 0 to less than --http_max_connections");
  ExpectRefused({"daemon", "--http_max_connections_per_client=0"},
                "--http_max_connections_per_client");
  ExpectRefused({"daemon", "--refresh"}, "--refresh needs a value");
  ExpectRefused({"attach", "--nope=1", "1"}, "unknown flag --nope");
  ExpectRefused({"symbols", "--listen=:1", "x"}, "takes no flag --listen");
}

TEST(MainTest, PidsMustBeProcessesNotNumbersOrThreads) {
  ExpectRefused({"attach", "-1"}, "expected a pid (a positive number), not \"-1\"");
  ExpectRefused({"attach", "0"}, "expected a pid");
  ExpectRefused({"attach", "12abc"}, "expected a pid");
  ExpectRefused({"attach"}, "expected one pid");
  absl::Notification done;
  pid_t tid = 0;
  absl::Notification started;
  std::thread t([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    started.Notify();
    done.WaitForNotification();
  });
  started.WaitForNotification();
  ExpectRefused({"attach", absl::StrCat(tid)}, absl::StrCat("is a thread of process ", getpid()));
  done.Notify();
  t.join();
}

}  // namespace
}  // namespace ctxagent
