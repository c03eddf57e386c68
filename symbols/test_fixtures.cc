#include "symbols/test_fixtures.h"

#include <sys/wait.h>

#include <cstdio>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace ctxagent::symbols::testing {

std::vector<Fixture> AllFixtures(const std::string& name) {
  std::vector<Fixture> out;
  for (absl::string_view v : absl::StrSplit(CTXAGENT_GO_VERSIONS, ',', absl::SkipEmpty())) {
    for (const char* variant : {"default", "stripped", "pie", "pieext"}) {
      out.push_back({std::string(v), variant,
                     std::string(CTXAGENT_GO_FIXTURE_DIR) + "/" + name + "/go" + std::string(v) +
                         "/" + variant,
                     "/usr/lib/go-" + std::string(v) + "/bin/go"});
    }
  }
  return out;
}

std::string RunCommand(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    ADD_FAILURE() << "popen failed: " << command;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "command failed: " << command;
  return out;
}

std::string GoTool(const Fixture& f, const std::string& args) {
  return RunCommand("GOTOOLCHAIN=local " + f.go_tool + " tool " + args);
}

std::string UnstrippedTwin(const Fixture& f) {
  if (f.variant != "stripped") return f.path;
  return f.path.substr(0, f.path.size() - f.variant.size()) + "default";
}

}  // namespace ctxagent::symbols::testing
