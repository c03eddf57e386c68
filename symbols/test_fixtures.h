// Test-only: paths of the Go fixture binaries built by cmake/GoFixtures.cmake.
#ifndef CTXAGENT_SYMBOLS_TEST_FIXTURES_H_
#define CTXAGENT_SYMBOLS_TEST_FIXTURES_H_

#include <string>
#include <vector>

namespace ctxagent::symbols::testing {

struct Fixture {
  std::string go_version;  // "1.19"
  std::string variant;     // default | stripped | pie | pieext
  std::string path;
  std::string go_tool;  // /usr/lib/go-<v>/bin/go
};

// Every built binary of fixture program `name` (e.g. "ctxprog"), all toolchains and variants.
std::vector<Fixture> AllFixtures(const std::string& name);
// Runs a command, returns its stdout; fails the current test on a non-zero exit.
std::string RunCommand(const std::string& command);
// `go tool <args>` of the fixture's own toolchain.
std::string GoTool(const Fixture& f, const std::string& args);
// Stripped binaries have no symbols for objdump/nm; their code is the default build's.
std::string UnstrippedTwin(const Fixture& f);

}  // namespace ctxagent::symbols::testing

#endif  // CTXAGENT_SYMBOLS_TEST_FIXTURES_H_
