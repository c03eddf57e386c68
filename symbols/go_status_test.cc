#include "symbols/go_status.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "symbols/elf_file.h"
#include "symbols/go_binary.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::ctxagent::symbols::testing::AllFixtures;
using ::ctxagent::symbols::testing::Fixture;
using ::ctxagent::symbols::testing::RunCommand;

GoVersion Go(int minor) {
  GoVersion v;
  v.major = 1;
  v.minor = minor;
  return v;
}

int MinorOf(const std::string& go_version) {  // "1.19" -> 19
  std::vector<std::string> parts = absl::StrSplit(go_version, '.');
  int minor = -1;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[1], &minor)) ADD_FAILURE() << go_version;
  return minor;
}

// The [N]string array `symbol` of a binary with a symbol table, read through its string headers
// (PIE relocations included).
std::vector<std::string> StringArray(const std::string& path, const std::string& symbol) {
  std::vector<std::string> out;
  // .symtab sizes are not kept by ElfFile: readelf gives the array's size.
  std::string line = RunCommand(absl::StrCat("readelf -sW ", path, " | grep ' ", symbol, "$'"));
  std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
  uint64_t size = 0;
  if (f.size() < 8 || !absl::SimpleAtoi(f[2], &size) || size % 16 != 0) {
    ADD_FAILURE() << "no " << symbol << " in " << path << ": " << line;
    return out;
  }
  absl::StatusOr<std::unique_ptr<ElfFile>> elf = ElfFile::Open(path);
  if (!elf.ok()) {
    ADD_FAILURE() << elf.status();
    return out;
  }
  absl::StatusOr<uint64_t> addr = (*elf)->LookupSymbol(symbol);
  if (!addr.ok()) {
    ADD_FAILURE() << addr.status();
    return out;
  }
  for (uint64_t i = 0; i < size / 16; ++i) {
    absl::StatusOr<uint64_t> ptr = (*elf)->ReadPointer(*addr + 16 * i);
    absl::StatusOr<absl::string_view> len_bytes = (*elf)->ReadAt(*addr + 16 * i + 8, 8);
    if (!ptr.ok() || !len_bytes.ok()) {
      ADD_FAILURE() << "string header " << i;
      return out;
    }
    uint64_t len = 0;
    std::memcpy(&len, len_bytes->data(), 8);
    if (len == 0) {
      out.emplace_back();
      continue;
    }
    absl::StatusOr<absl::string_view> text = (*elf)->ReadAt(*ptr, len);
    if (!text.ok()) {
      ADD_FAILURE() << "string " << i << ": " << text.status();
      return out;
    }
    out.emplace_back(*text);
  }
  return out;
}

// The table must equal the runtime's own array in every fixture toolchain's binary, so that a
// new release that reorders the enum cannot go unnoticed.
TEST(GoStatusTest, WaitReasonTableEqualsTheBinary) {
  int checked = 0;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.variant == "stripped") continue;
    SCOPED_TRACE(f.path);
    const GoVersion v = Go(MinorOf(f.go_version));
    std::vector<std::string> binary = StringArray(f.path, "runtime.waitReasonStrings");
    const std::vector<std::string> table = WaitReasonStrings(v);
    ASSERT_EQ(binary.size(), table.size());
    for (size_t i = 0; i < table.size(); ++i) {
      EXPECT_EQ(binary[i], table[i]) << "waitReason " << i;
      EXPECT_EQ(WaitReasonString(v, static_cast<uint8_t>(i)), binary[i]);
    }
    EXPECT_EQ(WaitReasonString(v, static_cast<uint8_t>(table.size())), "unknown wait reason");
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// Status names as the runtime's goroutine header prints them (gStatusStrings, then suffixes).
TEST(GoStatusTest, StatusNamesEqualTheBinary) {
  int checked = 0;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.variant != "default") continue;
    SCOPED_TRACE(f.path);
    const GoVersion v = Go(MinorOf(f.go_version));
    std::vector<std::string> binary = StringArray(f.path, "runtime.gStatusStrings");
    ASSERT_GE(binary.size(), 10u);
    for (uint32_t s = 0; s < binary.size(); ++s) {
      const std::string want = s == kGoLeaked ? binary[s] + " (leaked)" : binary[s];
      EXPECT_EQ(GoroutineStateString(v, s, 0), want) << s;
    }
    EXPECT_EQ(GoroutineStateString(v, static_cast<uint32_t>(binary.size()), 0), "???");
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// Values measured with pprof goroutine?debug=2 (shared/notes/go-internals.md): the same
// goroutines print "semacquire" on go1.19 and "sync.Mutex.Lock" / "sync.WaitGroup.Wait" on 1.27.
TEST(GoStatusTest, KnownReasons) {
  EXPECT_EQ(WaitReasonString(Go(19), 14), "chan receive");
  EXPECT_EQ(WaitReasonString(Go(19), 9), "select");
  EXPECT_EQ(WaitReasonString(Go(19), 19), "sleep");
  EXPECT_EQ(WaitReasonString(Go(19), 2), "IO wait");
  EXPECT_EQ(WaitReasonString(Go(19), 18), "semacquire");
  EXPECT_EQ(WaitReasonString(Go(19), 21), "timer goroutine (idle)");
  EXPECT_EQ(WaitReasonString(Go(20), 21), "sync.Mutex.Lock");
  EXPECT_EQ(WaitReasonString(Go(27), 19), "chan receive");
  EXPECT_EQ(WaitReasonString(Go(27), 18), "select");
  EXPECT_EQ(WaitReasonString(Go(27), 14), "sleep");
  EXPECT_EQ(WaitReasonString(Go(27), 2), "IO wait");
  EXPECT_EQ(WaitReasonString(Go(27), 13), "semacquire");
  EXPECT_EQ(WaitReasonString(Go(27), 22), "sync.Mutex.Lock");
  EXPECT_EQ(WaitReasonString(Go(27), 25), "sync.WaitGroup.Wait");
  EXPECT_EQ(WaitReasonString(Go(25), 18), "GOMAXPROCS updater (idle)");
  EXPECT_EQ(WaitReasonString(Go(25), 25), "sync.WaitGroup.Wait");
  EXPECT_EQ(WaitReasonString(Go(27), 0), "");
  EXPECT_TRUE(WaitReasonStrings(Go(16)).empty());
  EXPECT_TRUE(WaitReasonStrings(Go(28)).empty());
}

// Every release, fixtures or not: values 0..n-1 each named once.
TEST(GoStatusTest, EveryReleaseHasADenseEnum) {
  for (int minor = 17; minor <= 27; ++minor) {
    SCOPED_TRACE(minor);
    const std::vector<std::string> table = WaitReasonStrings(Go(minor));
    ASSERT_GE(table.size(), 27u);
    EXPECT_EQ(table[0], "");
    EXPECT_EQ(std::set<std::string>(table.begin(), table.end()).size(), table.size());
    for (const std::string& s : table) EXPECT_NE(s, "?");
  }
  EXPECT_EQ(WaitReasonStrings(Go(17)).size(), 27u);
  EXPECT_EQ(WaitReasonStrings(Go(20)).size(), 32u);
  EXPECT_EQ(WaitReasonStrings(Go(25)).size(), 47u);
}

TEST(GoStatusTest, StateStrings) {
  EXPECT_EQ(GoroutineStateString(Go(27), kGoRunning, 0), "running");
  EXPECT_EQ(GoroutineStateString(Go(27), kGoRunnable, 19), "runnable");  // reason ignored
  EXPECT_EQ(GoroutineStateString(Go(27), kGoWaiting, 19), "chan receive");
  EXPECT_EQ(GoroutineStateString(Go(27), kGoWaiting | kGoScanBit, 18), "select (scan)");
  EXPECT_EQ(GoroutineStateString(Go(27), kGoSyscall, 0), "syscall");
  EXPECT_EQ(GoroutineStateString(Go(27), kGoLeaked, 19), "chan receive (leaked)");
  EXPECT_EQ(GoroutineStateString(Go(19), kGoWaiting, 14), "chan receive");
  EXPECT_EQ(GoroutineStateString(Go(19), 10, 14), "???");  // no _Gleaked before 1.26
  EXPECT_EQ(GoroutineStateString(Go(27), kGoWaiting, 200), "unknown wait reason");
}

// A running fixture: its stdout up to "END" and its memory.
class Target {
 public:
  explicit Target(const std::string& path) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    FILE* out = fdopen(fds[0], "r");
    char line[4096];
    while (out != nullptr && fgets(line, sizeof(line), out) != nullptr) {
      if (std::strcmp(line, "END\n") == 0) break;
      output_ += line;
    }
    if (out != nullptr) fclose(out);
    mem_ = open(absl::StrCat("/proc/", pid_, "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~Target() {
    if (mem_ >= 0) close(mem_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& output() const { return output_; }
  pid_t pid() const { return pid_; }
  uint64_t Word(uint64_t addr) const { return Get<uint64_t>(addr); }
  template <typename T>
  T Get(uint64_t addr) const {
    T v{};
    if (pread(mem_, &v, sizeof(v), static_cast<off_t>(addr)) != sizeof(v)) {
      ADD_FAILURE() << "cannot read " << sizeof(v) << " bytes at " << std::hex << addr;
    }
    return v;
  }

 private:
  pid_t pid_ = -1;
  int mem_ = -1;
  std::string output_;
};

// Load bias of a PIE process: where its first PT_LOAD landed.
uint64_t LoadBias(const GoBinary& bin, pid_t pid) {
  if (!bin.pie()) return 0;
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  std::string line;
  uint64_t lowest = ~0ull;
  for (const ElfSegment& s : bin.elf().segments()) {
    if (s.type == 1 /* PT_LOAD */ && s.vaddr < lowest) lowest = s.vaddr;
  }
  while (std::getline(maps, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 6 || f[2] != "00000000") continue;
    uint64_t start = 0;
    std::string range = f[0].substr(0, f[0].find('-'));
    if (absl::SimpleHexAtoi(range, &start)) return start - (lowest & ~0xfffull);
  }
  ADD_FAILURE() << "no mapping at offset 0";
  return 0;
}

struct LiveG {
  uint64_t addr = 0;
  std::string state;     // as the runtime prints it
  std::string function;  // startpc's function
};

// Every goroutine of the target through runtime.allglen / allgs, by goid (dead ones left out).
std::map<uint64_t, LiveG> ReadGoroutines(const GoBinary& bin, const Target& t, uint64_t bias) {
  std::map<uint64_t, LiveG> out;
  const GoOffsets& o = bin.offsets();
  const GoVersion& v = bin.build_info().version;
  absl::StatusOr<uint64_t> allglen = bin.AllglenAddress(), allgs = bin.AllgsAddress();
  if (!allglen.ok() || !allgs.ok()) {
    ADD_FAILURE() << allgs.status();
    return out;
  }
  const uint64_t n = t.Word(*allglen + bias);
  const uint64_t array = t.Word(*allgs + bias);
  EXPECT_GE(n, 8u);
  EXPECT_LE(n, t.Word(*allgs + bias + 8));  // allglen <= len(allgs)
  for (uint64_t i = 0; i < n && i < 10000; ++i) {
    const uint64_t g = t.Word(array + 8 * i);
    const uint32_t status = t.Get<uint32_t>(g + o.g_atomicstatus);
    if ((status & ~kGoScanBit) == kGoDead) continue;
    LiveG& live = out[t.Word(g + o.g_goid)];
    live.addr = g;
    live.state = GoroutineStateString(v, status, t.Get<uint8_t>(g + o.g_waitreason));
    absl::StatusOr<Function> f = bin.pclntab().FunctionForPC(t.Word(g + o.g_startpc) - bias);
    if (f.ok()) live.function = f->name;
  }
  return out;
}

uint64_t PrintedAddress(const std::string& output, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    uint64_t a = 0;
    if (absl::ConsumePrefix(&line, name + " 0x") && absl::SimpleHexAtoi(line, &a)) return a;
  }
  ADD_FAILURE() << "no address of " << name;
  return 0;
}

// The goroutine states of the runtime's own dump, by goid, without ", N minutes".
std::map<uint64_t, std::string> DumpStates(const std::string& output) {
  std::map<uint64_t, std::string> out;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    uint64_t goid = 0;
    if (!absl::ConsumePrefix(&line, "goroutine ")) continue;
    const size_t open = line.find(" [");
    const size_t close = line.find(']');
    if (open == line.npos || close == line.npos || !absl::SimpleAtoi(line.substr(0, open), &goid)) {
      continue;
    }
    absl::string_view state = line.substr(open + 2, close - open - 2);
    out[goid] = std::string(state.substr(0, state.find(", ")));
  }
  return out;
}

// Functions of the goroutines queued on a channel's recvq or sendq, each sudog checked to name
// the channel and its goroutine.
std::multiset<std::string> Waiters(const Target& t, const GoOffsets& o, uint64_t chan, int queue,
                                   std::map<uint64_t, std::string>& function_of_g) {
  std::multiset<std::string> out;
  for (uint64_t sg = t.Word(chan + queue + o.waitq_first); sg != 0 && out.size() < 16;
       sg = t.Word(sg + o.sudog_next)) {
    EXPECT_EQ(t.Word(sg + o.SudogChanWord()), chan);
    out.insert(function_of_g[t.Word(sg + o.sudog_g)]);
  }
  return out;
}

// The goroutines of a live process, read from its memory with the offsets (DWARF or table), the
// allgs addresses (symtab or code scan) and the wait-reason table, show what the runtime's own dump
// shows; and channel waiters are found through g.waiting, sudog and hchan's wait queues.
TEST(GoStatusTest, LiveGoroutinesMatchTheRuntimeDump) {
  int checked = 0;
  for (const Fixture& f : AllFixtures("gostates")) {
    if (f.variant == "pieext") continue;  // pie covers the load bias
    SCOPED_TRACE(f.path);
    absl::StatusOr<std::unique_ptr<GoBinary>> bin = GoBinary::Open(f.path);
    ASSERT_TRUE(bin.ok()) << bin.status();
    const GoOffsets& o = (*bin)->offsets();
    Target t(f.path);
    ASSERT_NE(t.output().find("goroutine 1 [running]"), std::string::npos) << t.output();
    const uint64_t bias = LoadBias(**bin, t.pid());
    std::map<uint64_t, LiveG> live = ReadGoroutines(**bin, t, bias);

    int compared = 0;
    for (const auto& [goid, state] : DumpStates(t.output())) {
      if (state == "running") continue;  // main, parked since
      ASSERT_TRUE(live.count(goid)) << "goroutine " << goid << " not in allgs";
      EXPECT_EQ(live[goid].state, state) << "goroutine " << goid << " " << live[goid].function;
      ++compared;
    }
    EXPECT_EQ(compared, 7);
    std::map<std::string, uint64_t> g_of;  // "main.main.func1" -> its g
    std::map<uint64_t, std::string> function_of_g;
    for (const auto& [goid, g] : live) {
      g_of[g.function] = g.addr;
      function_of_g[g.addr] = g.function;
    }

    // recv: a plain receive (func1) and a select case (func2), in recvq and in each g.waiting.
    const uint64_t recv = PrintedAddress(t.output(), "recv");
    EXPECT_EQ(Waiters(t, o, recv, o.hchan_recvq, function_of_g),
              (std::multiset<std::string>{"main.main.func1", "main.main.func2"}));
    const uint64_t own = t.Word(g_of["main.main.func1"] + o.g_waiting);
    EXPECT_EQ(t.Word(own + o.sudog_g), g_of["main.main.func1"]);
    EXPECT_EQ(t.Word(own + o.SudogChanWord()), recv);
    EXPECT_EQ(t.Get<uint8_t>(own + o.sudog_isselect), 0);
    EXPECT_NE(t.Word(own + o.SudogElemWord()), 0u);  // `v := <-recv` receives into its stack
    int cases = 0;  // the select's g.waiting: one sudog per case, linked by waitlink
    for (uint64_t sg = t.Word(g_of["main.main.func2"] + o.g_waiting); sg != 0 && cases < 8;
         sg = t.Word(sg + o.sudog_waitlink)) {
      EXPECT_EQ(t.Get<uint8_t>(sg + o.sudog_isselect), 1);
      ++cases;
    }
    EXPECT_EQ(cases, 2);

    const uint64_t send = PrintedAddress(t.output(), "send");
    EXPECT_EQ(Waiters(t, o, send, o.hchan_sendq, function_of_g),
              (std::multiset<std::string>{"main.main.func3"}));
    EXPECT_EQ(t.Word(send + o.hchan_sendq + o.waitq_last),
              t.Word(send + o.hchan_sendq + o.waitq_first));
    EXPECT_EQ(t.Word(send + o.hchan_qcount), 0u);
    EXPECT_EQ(t.Get<uint32_t>(send + o.hchan_closed), 0u);

    // A goroutine parked on a context's Done channel: cancelCtx.done's data word is that channel.
    const uint64_t done = PrintedAddress(t.output(), "done");
    EXPECT_EQ(t.Word(PrintedAddress(t.output(), "ctx") + o.cancelctx_done + 8), done);
    EXPECT_EQ(Waiters(t, o, done, o.hchan_recvq, function_of_g),
              (std::multiset<std::string>{"main.main.func7"}));

    // The sleeper's go statement, named through pclntab.
    absl::StatusOr<Function> go_site =
        (*bin)->pclntab().FunctionForPC(t.Word(g_of["main.main.func4"] + o.g_gopc) - bias);
    ASSERT_TRUE(go_site.ok());
    EXPECT_EQ(go_site->name, "main.main");
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace ctxagent::symbols
