#include "symbols/go_offsets.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::ctxagent::symbols::testing::AllFixtures;
using ::ctxagent::symbols::testing::Fixture;
using ::ctxagent::symbols::testing::RunCommand;

// Every compared field with its name, so a mismatch says which one.
std::vector<std::pair<std::string, int64_t>> Fields(const GoOffsets& o) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& [name, value] : o.Named()) out.emplace_back(name, value);
  return out;
}

// Empty when equal, else one line per differing field.
std::string Diff(const GoOffsets& dwarf, const GoOffsets& table) {
  std::string out;
  auto a = Fields(dwarf);
  auto b = Fields(table);
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].second != b[i].second) {
      absl::StrAppend(&out, a[i].first, ": dwarf ", a[i].second, " table ", b[i].second, "\n");
    }
  }
  return out;
}

GoVersion Version(int minor, int patch = 0) {
  GoVersion v;
  v.major = 1;
  v.minor = minor;
  v.patch = patch;
  return v;
}

int MinorOf(const std::string& go_version) {  // "1.19" -> 19
  std::vector<std::string> parts = absl::StrSplit(go_version, '.');
  int minor = -1;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[1], &minor)) {
    ADD_FAILURE() << "bad fixture version " << go_version;
  }
  return minor;
}

bool Exists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

std::vector<Fixture> DwarfFixtures() {
  std::vector<Fixture> out;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.variant != "stripped") out.push_back(f);
  }
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

TEST(GoOffsetsTest, FixturesExist) {
  std::vector<Fixture> all = AllFixtures("ctxprog");
  ASSERT_FALSE(all.empty()) << "no Go toolchain fixtures configured";
  for (const Fixture& f : all) EXPECT_TRUE(Exists(f.path)) << f.path;
}

// The table entry of each toolchain must equal what its own DWARF says, in every link mode.
TEST(GoOffsetsTest, DwarfMatchesTableForEveryFixture) {
  std::vector<Fixture> fixtures = DwarfFixtures();
  ASSERT_FALSE(fixtures.empty());
  std::set<int> compared;
  for (const Fixture& f : fixtures) compared.insert(MinorOf(f.go_version));
  // What GoBinary trusts without reading DWARF is exactly what this test compares.
  EXPECT_EQ(compared,
            std::set<int>(std::begin(kDwarfVerifiedMinors), std::end(kDwarfVerifiedMinors)));
  for (const Fixture& f : fixtures) {
    SCOPED_TRACE(f.path);
    EXPECT_TRUE(TableVerifiedAgainstDwarf(Version(MinorOf(f.go_version))));
    absl::StatusOr<GoOffsets> dwarf = OffsetsFromDwarf(f.path);
    ASSERT_TRUE(dwarf.ok()) << dwarf.status();
    EXPECT_EQ(dwarf->source, GoOffsets::Source::kDwarf);
    absl::StatusOr<GoOffsets> table = OffsetsForVersion(Version(MinorOf(f.go_version)));
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_EQ(table->source, GoOffsets::Source::kTable);
    EXPECT_EQ(Diff(*dwarf, *table), "") << "go" << f.go_version << " " << f.variant;
    EXPECT_TRUE(*dwarf == *table);
    // The goroutine-state fields are in every runtime.
    for (int32_t off : {dwarf->g_waitreason, dwarf->g_waiting, dwarf->hchan_sendq, dwarf->sudog_c,
                        dwarf->waitq_last, dwarf->gobuf_pc, dwarf->itab_fun}) {
      EXPECT_GE(off, 0);
    }
    EXPECT_EQ(dwarf->traceable_ptr_vu >= 0, MinorOf(f.go_version) >= 26);
    // ctxprog links context: every context field must have been found.
    EXPECT_GE(dwarf->cancelctx_done, 0);
    EXPECT_GE(dwarf->timerctx_deadline, 0);
    EXPECT_GE(dwarf->valuectx_context, 0);
  }
}

// Values stated in shared/notes/go-internals.md and mechanisms.md, checked against the DWARF.
struct NotedLayout {
  int minor;
  int goid, parent_goid, atomicstatus, gopc, startpc;
  int timer_deadline, cause, recvq;
};

TEST(GoOffsetsTest, DwarfShowsTheNotedOffsets) {
  const NotedLayout kNoted[] = {
      {19, 152, -1, 144, 296, 312, 72, -1, 56},  {21, 152, 272, 144, 280, 296, 88, 64, 56},
      {22, 152, 272, 144, 280, 296, 88, 64, 56}, {23, 160, 280, 152, 288, 304, 88, 64, 64},
      {24, 160, 280, 152, 288, 304, 88, 64, 64}, {26, 152, 280, 144, 288, 304, 88, 64, 64},
      {27, 152, 280, 144, 288, 304, 88, 64, 64},
  };
  int checked = 0;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.variant != "default") continue;
    const int minor = MinorOf(f.go_version);
    for (const NotedLayout& n : kNoted) {
      if (n.minor != minor) continue;
      SCOPED_TRACE(f.path);
      absl::StatusOr<GoOffsets> o = OffsetsFromDwarf(f.path);
      ASSERT_TRUE(o.ok()) << o.status();
      EXPECT_EQ(o->g_goid, n.goid);
      EXPECT_EQ(o->g_parent_goid, n.parent_goid);
      EXPECT_EQ(o->g_atomicstatus, n.atomicstatus);
      EXPECT_EQ(o->g_gopc, n.gopc);
      EXPECT_EQ(o->g_startpc, n.startpc);
      EXPECT_EQ(o->cancelctx_done, 24);
      EXPECT_EQ(o->cancelctx_children, 40);
      EXPECT_EQ(o->cancelctx_err, 48);
      EXPECT_EQ(o->cancelctx_cause, n.cause);
      EXPECT_EQ(o->timerctx_cancelctx, 0);
      EXPECT_FALSE(o->timerctx_cancelctx_is_ptr);
      EXPECT_EQ(o->timerctx_deadline, n.timer_deadline);
      EXPECT_EQ(o->valuectx_context, 0);
      EXPECT_EQ(o->hchan_closed, 28);
      EXPECT_EQ(o->hchan_recvq, n.recvq);
      EXPECT_EQ(o->sudog_g, 0);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no default fixture of a noted version";
}

TEST(GoOffsetsTest, StrippedFixtureHasNoDwarf) {
  int checked = 0;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.variant != "stripped") continue;
    absl::StatusOr<GoOffsets> o = OffsetsFromDwarf(f.path);
    EXPECT_EQ(o.status().code(), absl::StatusCode::kNotFound) << f.path << " " << o.status();
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(GoOffsetsTest, NonGoAndMissingFiles) {
  // /bin/true is a stripped C program: no DWARF.
  EXPECT_EQ(OffsetsFromDwarf("/bin/true").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(OffsetsFromDwarf("/nonexistent/ctxagent").status().code(), absl::StatusCode::kNotFound);

  const std::string dir = ::testing::TempDir();
  const std::string garbage = dir + "/go_offsets_garbage";
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  WriteAll(garbage, junk);
  absl::StatusOr<GoOffsets> o = OffsetsFromDwarf(garbage);
  EXPECT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();

  const std::string empty = dir + "/go_offsets_empty";
  WriteAll(empty, "");
  EXPECT_FALSE(OffsetsFromDwarf(empty).ok());

  // An ELF header with nothing behind it.
  WriteAll(garbage, std::string("\x7f"
                                "ELF\x02\x01\x01",
                                7) +
                        std::string(57, '\xff'));
  EXPECT_FALSE(OffsetsFromDwarf(garbage).ok());
}

const Fixture* FirstFixture(const std::string& variant) {
  static const std::vector<Fixture> all = AllFixtures("ctxprog");
  for (const Fixture& f : all) {
    if (f.variant == variant && Exists(f.path)) return &f;
  }
  return nullptr;
}

// Malformed DWARF must yield an error or some result, never a crash or a hang.
TEST(GoOffsetsTest, CorruptedBinariesDoNotCrash) {
  const Fixture* f = FirstFixture("default");
  ASSERT_NE(f, nullptr);
  const std::string data = ReadAll(f->path);
  ASSERT_GT(data.size(), 4096u);
  const std::string path = ::testing::TempDir() + "/go_offsets_corrupt";

  // Truncations at several points (section headers sit at the end of Go binaries).
  for (size_t cut : {size_t{64}, data.size() / 3, data.size() / 2, data.size() - 100}) {
    WriteAll(path, data.substr(0, cut));
    absl::StatusOr<GoOffsets> o = OffsetsFromDwarf(path);
    SCOPED_TRACE(cut);
    EXPECT_FALSE(o.ok() && o->g_goid < 0);
  }
  // Overwrite stretches of the file's second half, where the (compressed) DWARF lives.
  uint32_t seed = 12345;
  for (int round = 0; round < 40; ++round) {
    std::string bad = data;
    for (int k = 0; k < 64; ++k) {
      seed = seed * 1103515245 + 12345;
      size_t at = data.size() / 2 + seed % (data.size() / 2);
      bad[at] = static_cast<char>(seed >> 16);
    }
    WriteAll(path, bad);
    (void)OffsetsFromDwarf(path);
  }
}

// The same binary with uncompressed DWARF and with GNU .zdebug_* sections (older Go and
// external linkers) must give the same offsets as the SHF_COMPRESSED original.
TEST(GoOffsetsTest, CompressionFormats) {
  const Fixture* f = FirstFixture("default");
  ASSERT_NE(f, nullptr);
  absl::StatusOr<GoOffsets> want = OffsetsFromDwarf(f->path);
  ASSERT_TRUE(want.ok()) << want.status();
  const std::string dir = ::testing::TempDir();
  const std::pair<const char*, const char*> kVariants[] = {
      {"--decompress-debug-sections", ".debug_info"},
      {"--compress-debug-sections=zlib-gnu", ".zdebug_info"}};
  for (const auto& [flag, section] : kVariants) {
    SCOPED_TRACE(flag);
    const std::string out = dir + "/go_offsets_objcopy";
    if (std::system(
            absl::StrCat("objcopy ", flag, " ", f->path, " ", out, " 2>/dev/null").c_str()) != 0) {
      GTEST_SKIP() << "objcopy " << flag << " not available";
    }
    EXPECT_NE(RunCommand(absl::StrCat("readelf -SW ", out)).find(section), std::string::npos);
    absl::StatusOr<GoOffsets> got = OffsetsFromDwarf(out);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Diff(*got, *want), "");
  }
}

// A program that does not link `context`: runtime types found, context fields left at -1.
TEST(GoOffsetsTest, ProgramWithoutContext) {
  std::vector<Fixture> all = AllFixtures("ctxprog");
  ASSERT_FALSE(all.empty());
  const Fixture& f = all.back();
  const std::string dir = ::testing::TempDir() + "/go_offsets_noctx";
  RunCommand(absl::StrCat("mkdir -p ", dir));
  WriteAll(dir + "/main.go", "package main\n\nfunc main() { println(\"hi\") }\n");
  RunCommand(absl::StrCat("cd ", dir, " && GOTOOLCHAIN=local GO111MODULE=off GOFLAGS= ",
                          "CGO_ENABLED=0 ", f.go_tool, " build -o noctx main.go"));
  absl::StatusOr<GoOffsets> o = OffsetsFromDwarf(dir + "/noctx");
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<GoOffsets> table = OffsetsForVersion(Version(MinorOf(f.go_version)));
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(o->g_goid, table->g_goid);
  EXPECT_EQ(o->hchan_recvq, table->hchan_recvq);
  EXPECT_EQ(o->cancelctx_done, -1);
  EXPECT_EQ(o->cancelctx_err, -1);
  EXPECT_EQ(o->timerctx_deadline, -1);
  EXPECT_EQ(o->valuectx_context, -1);
}

TEST(GoOffsetsTest, TableRange) {
  for (int minor : {0, 16, 28, 40}) {
    EXPECT_EQ(OffsetsForVersion(Version(minor)).status().code(), absl::StatusCode::kUnimplemented)
        << minor;
  }
  GoVersion two = Version(17);
  two.major = 2;
  EXPECT_EQ(OffsetsForVersion(two).status().code(), absl::StatusCode::kUnimplemented);
  for (int minor = 17; minor <= 27; ++minor) {
    SCOPED_TRACE(minor);
    absl::StatusOr<GoOffsets> o = OffsetsForVersion(Version(minor, 9));
    ASSERT_TRUE(o.ok()) << o.status();
    // Patch level does not change the entry.
    EXPECT_TRUE(*o == *OffsetsForVersion(Version(minor)));
    EXPECT_GT(o->g_goid, 0);
    EXPECT_GT(o->g_atomicstatus, 0);
    EXPECT_GT(o->g_startpc, o->g_gopc);
    EXPECT_EQ(o->g_parent_goid >= 0, minor >= 21);
    EXPECT_EQ(o->cancelctx_cause >= 0, minor >= 20);
    EXPECT_EQ(o->timerctx_cancelctx_is_ptr, minor == 20);
  }
}

// Entries without a toolchain here: from source, or read in running esbuild releases (go_facts.cc).
TEST(GoOffsetsTest, TableEntriesFromSource) {
  // The heap facts read in running esbuild releases ([run]): mheap.allspans after the page
  // allocator, moduledata's pointer masks; 1.17 and 1.18 otherwise as 1.19.
  struct HeapFacts {
    int minor;
    int32_t allspans, gcdatamask, gcbssmask;
  };
  for (const HeapFacts& h : {HeapFacts{17, 65848, 480, 496}, HeapFacts{18, 65848, 496, 512},
                             HeapFacts{20, 65824, 512, 528}}) {
    SCOPED_TRACE(h.minor);
    GoOffsets o = *OffsetsForVersion(Version(h.minor));
    EXPECT_EQ(o.mheap_allspans, h.allspans);
    EXPECT_EQ(o.moduledata_gcdatamask, h.gcdatamask);
    EXPECT_EQ(o.moduledata_gcbssmask, h.gcbssmask);
    EXPECT_EQ(o.mspan_spanclass, 98);
    EXPECT_EQ(o.mspan_elemsize, 104);
    GoOffsets go119 = *OffsetsForVersion(Version(19));
    go119.mheap_allspans = h.allspans;
    go119.moduledata_gcdatamask = h.gcdatamask;
    go119.moduledata_gcbssmask = h.gcbssmask;
    EXPECT_EQ(o == go119, h.minor < 19);
  }
  GoOffsets go117 = *OffsetsForVersion(Version(17));
  EXPECT_EQ(go117.g_goid, 152);
  EXPECT_EQ(go117.g_gopc, 296);
  EXPECT_EQ(go117.g_startpc, 312);
  EXPECT_EQ(go117.timerctx_deadline, 72);

  GoOffsets go120 = *OffsetsForVersion(Version(20));
  EXPECT_EQ(go120.g_goid, 152);
  EXPECT_EQ(go120.g_parent_goid, -1);
  EXPECT_EQ(go120.g_startpc, 312);
  EXPECT_TRUE(go120.timerctx_cancelctx_is_ptr);
  EXPECT_EQ(go120.timerctx_cancelctx, 0);
  EXPECT_EQ(go120.timerctx_deadline, 16);
  EXPECT_EQ(go120.cancelctx_cause, 64);
  EXPECT_EQ(go120.hchan_recvq, 56);

  // Goroutine-state fields: 1.17 and 1.20 as 1.19 (same g, sudog and hchan field lists).
  for (const GoOffsets& o : {go117, go120}) {
    EXPECT_EQ(o.g_waitsince, 168);
    EXPECT_EQ(o.g_waitreason, 176);
    EXPECT_EQ(o.g_waiting, 328);
    EXPECT_EQ(o.hchan_sendq, 72);
    EXPECT_EQ(o.sudog_c, 80);
    EXPECT_EQ(o.sudog_waitlink, 64);
    EXPECT_EQ(o.traceable_ptr_vu, -1);
  }

  GoOffsets go125 = *OffsetsForVersion(Version(25));
  // 1.25.3: g as 1.22 up to waiting (gobuf.ret gone cancels syscallbp); sudog with plain pointers;
  // hchan with timer (and bubble after sendq).
  EXPECT_EQ(go125.g_waitsince, 168);
  EXPECT_EQ(go125.g_waitreason, 176);
  EXPECT_EQ(go125.g_waiting, 312);
  EXPECT_EQ(go125.hchan_sendq, 80);
  EXPECT_EQ(go125.sudog_isselect, 52);
  EXPECT_EQ(go125.sudog_c, 80);
  EXPECT_EQ(go125.traceable_ptr_vu, -1);
  EXPECT_EQ(go125.g_goid, 152);
  EXPECT_EQ(go125.g_atomicstatus, 144);
  EXPECT_EQ(go125.g_parent_goid, 272);
  EXPECT_EQ(go125.g_gopc, 280);
  EXPECT_EQ(go125.g_startpc, 296);
  EXPECT_EQ(go125.hchan_recvq, 64);
  EXPECT_EQ(go125.timerctx_deadline, 88);
}

TEST(GoOffsetsTest, EqualityIgnoresSourceButNotFields) {
  GoOffsets a = *OffsetsForVersion(Version(27));
  GoOffsets b = a;
  b.source = GoOffsets::Source::kDwarf;
  EXPECT_TRUE(a == b);
  // Each field, changed alone, must break equality.
  int32_t GoOffsets::*const kInts[] = {&GoOffsets::g_goid,
                                       &GoOffsets::g_parent_goid,
                                       &GoOffsets::g_gopc,
                                       &GoOffsets::g_startpc,
                                       &GoOffsets::g_atomicstatus,
                                       &GoOffsets::cancelctx_done,
                                       &GoOffsets::cancelctx_children,
                                       &GoOffsets::cancelctx_err,
                                       &GoOffsets::cancelctx_cause,
                                       &GoOffsets::timerctx_cancelctx,
                                       &GoOffsets::timerctx_deadline,
                                       &GoOffsets::valuectx_context,
                                       &GoOffsets::hchan_closed,
                                       &GoOffsets::hchan_recvq,
                                       &GoOffsets::sudog_g,
                                       &GoOffsets::g_sched,
                                       &GoOffsets::gobuf_ctxt,
                                       &GoOffsets::g_m,
                                       &GoOffsets::g_waitsince,
                                       &GoOffsets::g_waitreason,
                                       &GoOffsets::g_waiting,
                                       &GoOffsets::gobuf_sp,
                                       &GoOffsets::gobuf_pc,
                                       &GoOffsets::hchan_qcount,
                                       &GoOffsets::hchan_sendq,
                                       &GoOffsets::waitq_first,
                                       &GoOffsets::waitq_last,
                                       &GoOffsets::sudog_next,
                                       &GoOffsets::sudog_prev,
                                       &GoOffsets::sudog_elem,
                                       &GoOffsets::sudog_isselect,
                                       &GoOffsets::sudog_waitlink,
                                       &GoOffsets::sudog_c,
                                       &GoOffsets::traceable_ptr_vu,
                                       &GoOffsets::itab_fun};
  for (auto field : kInts) {
    GoOffsets c = a;
    c.*field += 1;
    EXPECT_FALSE(a == c);
  }
  GoOffsets d = a;
  d.timerctx_cancelctx_is_ptr = !d.timerctx_cancelctx_is_ptr;
  EXPECT_FALSE(a == d);
}

TEST(GoOffsetsTest, SourceName) {
  EXPECT_STREQ(SourceName(GoOffsets::Source::kDwarf), "dwarf");
  EXPECT_STREQ(SourceName(GoOffsets::Source::kTable), "table");
}

}  // namespace
}  // namespace ctxagent::symbols
