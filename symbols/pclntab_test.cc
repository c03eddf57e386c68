#include "symbols/pclntab.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "symbols/elf_file.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols::testing {
// Short names in gtest messages instead of a byte dump.
void PrintTo(const Fixture& f, std::ostream* os) {
  *os << "go" << f.go_version << "/" << f.variant;
}
}  // namespace ctxagent::symbols::testing

namespace ctxagent::symbols {
namespace {

using ::ctxagent::symbols::testing::AllFixtures;
using ::ctxagent::symbols::testing::Fixture;
using ::ctxagent::symbols::testing::GoTool;
using ::ctxagent::symbols::testing::RunCommand;
using ::ctxagent::symbols::testing::UnstrippedTwin;

constexpr char kMainGoSuffix[] = "tests/fixtures/ctxprog/main.go";

std::string SourceDir() {
  std::string here = __FILE__;  // .../symbols/pclntab_test.cc
  return here.substr(0, here.rfind("/symbols/"));
}

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 1-based line of the first line of `file` containing `needle`, 0 if none.
int LineOf(const std::string& file, absl::string_view needle) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(ReadFile(file), '\n')) {
    ++n;
    if (absl::StrContains(line, needle)) return n;
  }
  return 0;
}

struct NmSymbol {
  uint64_t addr;
  char type;
  std::string name;
};

std::vector<NmSymbol> Nm(const Fixture& f, const std::string& path) {
  std::vector<NmSymbol> out;
  for (absl::string_view line : absl::StrSplit(GoTool(f, "nm " + path), '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    // "<hex addr> <type> <name>"; names of generic instantiations may contain spaces.
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    if (parts.size() != 3 || parts[1].size() != 1) continue;
    NmSymbol s;
    if (!absl::SimpleHexAtoi(parts[0], &s.addr)) continue;
    s.type = parts[1][0];
    s.name = std::string(parts[2]);
    out.push_back(std::move(s));
  }
  return out;
}

// Whether a pclntab name and an ELF symbol name denote the same function: .symtab spells "·" as
// "." and the table abbreviates some bracketed type arguments as "[...]".
bool SameSymbol(absl::string_view pcln, absl::string_view elf) {
  std::string p = absl::StrReplaceAll(pcln, {{"·", "."}});
  size_t i = 0, j = 0;
  while (i < p.size() && j < elf.size()) {
    if (absl::string_view(p).substr(i, 5) == "[...]") {
      if (elf[j] != '[') return false;
      int depth = 0;
      for (; j < elf.size(); ++j) {
        if (elf[j] == '[') ++depth;
        if (elf[j] == ']' && --depth == 0) break;
      }
      if (j == elf.size()) return false;
      i += 5;
      ++j;
      continue;
    }
    if (p[i++] != elf[j++]) return false;
  }
  return i == p.size() && j == elf.size();
}

std::string FixtureName(const ::testing::TestParamInfo<Fixture>& info) {
  std::string name = absl::StrCat("go", info.param.go_version, "_", info.param.variant);
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

class PclntabFixtureTest : public ::testing::TestWithParam<Fixture> {
 protected:
  void SetUp() override {
    const Fixture& f = GetParam();
    ASSERT_TRUE(Exists(f.path)) << "fixture not built: " << f.path;
    auto elf = ElfFile::Open(f.path);
    ASSERT_TRUE(elf.ok()) << elf.status();
    elf_ = *std::move(elf);
    auto tab = Pclntab::Parse(*elf_);
    ASSERT_TRUE(tab.ok()) << f.path << ": " << tab.status();
    tab_ = *std::move(tab);
  }

  std::unique_ptr<ElfFile> elf_;
  std::unique_ptr<Pclntab> tab_;
};

TEST_P(PclntabFixtureTest, HeaderAndModuledata) {
  const Fixture& f = GetParam();
  EXPECT_EQ(tab_->magic(), f.go_version == "1.19" ? 0xFFFFFFF0u : 0xFFFFFFF1u);
  EXPECT_GT(tab_->num_functions(), 1000u);
  std::map<std::string, uint64_t> syms;
  for (const NmSymbol& s : Nm(f, UnstrippedTwin(f))) syms[s.name] = s.addr;
  ASSERT_TRUE(syms.count("runtime.text"));
  EXPECT_EQ(tab_->text_start(), syms["runtime.text"]);
  ASSERT_NE(tab_->moduledata(), 0u);
  auto md0 = elf_->ReadPointer(tab_->moduledata());
  ASSERT_TRUE(md0.ok());
  EXPECT_EQ(*md0, tab_->vaddr());  // moduledata.pcHeader
  if (f.variant != "stripped") {   // -s -w moves the data, not the text: only text is comparable
    if (syms.count("runtime.pcheader")) {
      EXPECT_EQ(tab_->vaddr(), syms["runtime.pcheader"]);
    }
    ASSERT_TRUE(syms.count("runtime.firstmoduledata"));
    EXPECT_EQ(tab_->moduledata(), syms["runtime.firstmoduledata"]);
  }

  // Functions come in address order and tile the text.
  uint64_t prev_end = 0;
  for (size_t i = 0; i < tab_->num_functions(); ++i) {
    auto fn = tab_->FunctionAt(i);
    ASSERT_TRUE(fn.ok()) << i << ": " << fn.status();
    ASSERT_FALSE(fn->name.empty()) << i;
    ASSERT_LT(fn->entry, fn->end) << fn->name;
    if (i > 0) {
      ASSERT_EQ(fn->entry, prev_end) << fn->name;
    }
    prev_end = fn->end;
  }
  EXPECT_FALSE(tab_->FunctionAt(tab_->num_functions()).ok());
  EXPECT_TRUE(absl::IsNotFound(tab_->FindFunction("no.such.function").status()));
  EXPECT_TRUE(absl::IsNotFound(tab_->FunctionForPC(0).status()));
  EXPECT_TRUE(absl::IsNotFound(tab_->FunctionForPC(~uint64_t{0}).status()));
}

// Every Go text symbol `go tool nm` lists is found by name and by PC at the same address.
TEST_P(PclntabFixtureTest, MatchesGoToolNm) {
  const Fixture& f = GetParam();
  std::vector<NmSymbol> nm = Nm(f, UnstrippedTwin(f));
  uint64_t text = 0, etext = 0;
  std::map<uint64_t, std::set<std::string>> by_addr;
  std::map<std::string, std::set<uint64_t>> by_name;  // several: ABI0/ABIInternal wrapper pairs
  std::map<std::string, uint64_t> exact;
  for (const NmSymbol& s : nm) {
    if (s.name == "runtime.text") text = s.addr;
    if (s.name == "runtime.etext") etext = s.addr;
    if (s.type != 'T' && s.type != 't') continue;
    std::string name(absl::StripSuffix(s.name, ".abi0"));
    by_addr[s.addr].insert(name);
    by_name[name].insert(s.addr);
    exact[s.name] = s.addr;
  }
  ASSERT_LT(text, etext);
  int checked = 0, respelled = 0;
  for (const NmSymbol& s : nm) {
    if (s.type != 'T' && s.type != 't') continue;
    // Go's text is [runtime.text, runtime.etext); external linking adds C code around it.
    if (s.addr < text || s.addr >= etext || s.name == "runtime.text" || s.name == "runtime.etext")
      continue;
    // ABI0 entry points of assembly functions: the table names them without the suffix.
    std::string name(absl::StripSuffix(s.name, ".abi0"));
    auto at = tab_->FunctionForPC(s.addr);
    ASSERT_TRUE(at.ok()) << s.name << ": " << at.status();
    EXPECT_EQ(at->entry, s.addr) << s.name;
    auto fn = tab_->FindFunction(name);
    if (!fn.ok() && SameSymbol(at->name, name)) {
      // The table spells this one differently (see SameSymbol): look it up by its own name.
      ++respelled;
      fn = tab_->FindFunction(at->name);
    } else {
      EXPECT_TRUE(at->name == name || by_addr[s.addr].count(at->name))
          << s.name << " vs " << at->name;
    }
    ASSERT_TRUE(fn.ok()) << s.name << ": " << fn.status();
    EXPECT_TRUE(by_name[name].count(fn->entry)) << s.name << " at " << std::hex << fn->entry;
    if (by_name[name].size() == 1) {
      EXPECT_EQ(fn->entry, s.addr) << s.name;
    }
    if (fn->end > fn->entry + 1) {
      auto last = tab_->FunctionForPC(fn->end - 1);
      ASSERT_TRUE(last.ok());
      EXPECT_EQ(last->entry, fn->entry) << s.name;
    }
    ++checked;
  }
  EXPECT_GT(checked, 1000);
  EXPECT_LT(respelled * 50, checked);  // a handful of autogenerated names at most

  // With a wrapper pair, the body wins: a Go function over its ABI0 wrapper, an assembly
  // function (ABI0) over its ABIInternal wrapper.
  for (auto [name, body] : {std::pair<const char*, const char*>{"runtime.args", "runtime.args"},
                            {"runtime.asmcgocall", "runtime.asmcgocall.abi0"}}) {
    if (!exact.count(name) || !exact.count(absl::StrCat(name, ".abi0"))) continue;
    auto fn = tab_->FindFunction(name);
    ASSERT_TRUE(fn.ok());
    EXPECT_EQ(fn->entry, exact[body]) << name;
  }
}

// The call to context.WithCancel in main.workCancel symbolizes to its line in main.go.
TEST_P(PclntabFixtureTest, SymbolizeWorkCancelCall) {
  const Fixture& f = GetParam();
  const std::string main_go = SourceDir() + "/" + kMainGoSuffix;
  const int want_line = LineOf(main_go, "context.WithCancel(parent)");
  ASSERT_GT(want_line, 0);
  auto fn = tab_->FindFunction("main.workCancel");
  ASSERT_TRUE(fn.ok()) << fn.status();

  // The CALL as Go's own objdump sees it (it reads the unstripped twin; same code).
  uint64_t call_pc = 0;
  int objdump_line = 0;
  for (absl::string_view line :
       absl::StrSplit(GoTool(f, "objdump -s '^main.workCancel$' " + UnstrippedTwin(f)), '\n')) {
    if (!absl::StrContains(line, "CALL context.WithCancel(SB)")) continue;
    std::vector<absl::string_view> cols = absl::StrSplit(line, '\t', absl::SkipWhitespace());
    ASSERT_GE(cols.size(), 2u) << line;
    absl::string_view pos = absl::StripAsciiWhitespace(cols[0]);
    ASSERT_TRUE(absl::SimpleAtoi(pos.substr(pos.rfind(':') + 1), &objdump_line)) << line;
    ASSERT_TRUE(absl::SimpleHexAtoi(absl::StripAsciiWhitespace(cols[1]), &call_pc)) << line;
    break;
  }
  ASSERT_NE(call_pc, 0u) << "no CALL context.WithCancel in main.workCancel";
  if (objdump_line != 0 || f.go_version != "1.19") {  // 1.19's objdump has no lines for PIE
    EXPECT_EQ(objdump_line, want_line);
  }
  ASSERT_GE(call_pc, fn->entry);
  ASSERT_LT(call_pc, fn->end);
  auto frames = tab_->Symbolize(call_pc);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->size(), 1u);
  EXPECT_EQ((*frames)[0].function, "main.workCancel");
  EXPECT_TRUE(absl::EndsWith((*frames)[0].file, kMainGoSuffix)) << (*frames)[0].file;
  EXPECT_EQ((*frames)[0].line, want_line);
  EXPECT_FALSE((*frames)[0].inlined);
  // As a return address (ret - 1) names the call's line too.
  auto ret = tab_->Symbolize(call_pc + 5 - 1);
  ASSERT_TRUE(ret.ok());
  EXPECT_EQ(ret->back().line, want_line);
}

// Inlined calls expand to several frames: context.WithCancel inlines withCancel (1.20+); in 1.19
// the inlined newCancelCtx leaves no instruction of its own there, but does in WithDeadline.
TEST_P(PclntabFixtureTest, SymbolizeExpandsInlinedFrames) {
  std::map<std::string, std::vector<std::string>> sources;  // file -> lines
  auto source_line = [&](const std::string& file, int line) -> std::string {
    if (!sources.count(file)) sources[file] = absl::StrSplit(ReadFile(file), '\n');
    const std::vector<std::string>& lines = sources[file];
    return line > 0 && line <= static_cast<int>(lines.size()) ? lines[line - 1] : "";
  };
  int inlined_pcs = 0;
  std::set<std::string> inner_names;
  ASSERT_TRUE(tab_->FindFunction("context.WithCancel").ok());
  // WithDeadline is a wrapper inlined away in 1.21+, where WithDeadlineCause has the body.
  for (const char* name :
       {"context.WithCancel", "context.WithDeadline", "context.WithDeadlineCause"}) {
    auto fn = tab_->FindFunction(name);
    if (!fn.ok()) continue;
    for (uint64_t pc = fn->entry; pc < fn->end; ++pc) {
      auto frames = tab_->Symbolize(pc);
      ASSERT_TRUE(frames.ok()) << std::hex << pc << ": " << frames.status();
      ASSERT_FALSE(frames->empty());
      if (frames->back().line == 0) continue;  // alignment padding after the code has no position
      EXPECT_EQ(frames->back().function, name);
      EXPECT_FALSE(frames->back().inlined);
      EXPECT_TRUE(absl::EndsWith(frames->back().file, "/src/context/context.go"))
          << frames->back().file;
      for (size_t i = 0; i + 1 < frames->size(); ++i) {
        const SourceFrame& inner = (*frames)[i];
        const SourceFrame& outer = (*frames)[i + 1];
        EXPECT_TRUE(inner.inlined);
        EXPECT_GT(inner.line, 0);
        // The caller's line is the call site: its source text names the callee.
        std::string callee = inner.function.substr(inner.function.rfind('.') + 1);
        if (Exists(outer.file)) {
          EXPECT_THAT(source_line(outer.file, outer.line), ::testing::HasSubstr(callee + "("))
              << std::hex << pc << " " << inner.function << " in " << outer.function << " at "
              << outer.file << ":" << std::dec << outer.line;
        }
      }
      if (frames->size() >= 2) {
        ++inlined_pcs;
        inner_names.insert((*frames)[frames->size() - 2].function);
      }
    }
  }
  EXPECT_GT(inlined_pcs, 0);
  EXPECT_TRUE(inner_names.count("context.newCancelCtx") || inner_names.count("context.withCancel"))
      << ::testing::PrintToString(inner_names);
}

// File:line and function agree with `go tool addr2line` (innermost position, outermost function).
TEST_P(PclntabFixtureTest, AgreesWithAddr2line) {
  const Fixture& f = GetParam();
  std::vector<uint64_t> pcs;
  for (const char* name : {"context.WithCancel", "context.WithDeadlineCause", "main.workCancel",
                           "main.main", "runtime.newproc1"}) {
    auto fn = tab_->FindFunction(name);
    if (!fn.ok() && std::string(name) == "context.WithDeadlineCause")
      fn = tab_->FindFunction("context.WithDeadline");
    ASSERT_TRUE(fn.ok()) << name;
    for (uint64_t pc = fn->entry; pc < fn->end; pc += 7) pcs.push_back(pc);
  }
  for (size_t i = 0; i < tab_->num_functions(); i += 97) {
    auto fn = tab_->FunctionAt(i);
    ASSERT_TRUE(fn.ok());
    pcs.push_back(fn->entry + (fn->end - fn->entry) / 2);
  }
  std::string input;
  for (uint64_t pc : pcs) absl::StrAppend(&input, absl::Hex(pc), "\n");
  const std::string in_path = ::testing::TempDir() + "/pclntab_addr2line_" + FixtureName({f, 0});
  std::ofstream(in_path) << input;
  std::vector<std::string> lines =
      absl::StrSplit(GoTool(f, "addr2line " + f.path + " < " + in_path), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2 * pcs.size());
  if (lines[0] == "?") {
    // Go 1.19's debug/gosym cannot read its own PIE tables (objdump prints ":0" there too); the
    // newest toolchain's can.
    EXPECT_EQ(f.go_version, "1.19");
    lines = absl::StrSplit(
        GoTool(AllFixtures("ctxprog").back(), "addr2line " + f.path + " < " + in_path), '\n',
        absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 2 * pcs.size());
  }
  int compared = 0;
  for (size_t i = 0; i < pcs.size(); ++i) {
    const std::string& want_fn = lines[2 * i];
    const std::string& want_pos = lines[2 * i + 1];
    auto frames = tab_->Symbolize(pcs[i]);
    ASSERT_TRUE(frames.ok()) << std::hex << pcs[i] << ": " << frames.status();
    EXPECT_EQ(frames->back().function, want_fn) << std::hex << pcs[i];
    const SourceFrame& inner = frames->front();
    // addr2line prints ":-1" where we report no position (file "", line 0).
    EXPECT_EQ(inner.line == 0 ? ":-1" : absl::StrCat(inner.file, ":", inner.line), want_pos)
        << std::hex << pcs[i] << " " << want_fn;
    ++compared;
  }
  EXPECT_GT(compared, 50);
}

// `strip --strip-all` removes .symtab from PIE binaries too: the table and moduledata must then be
// found without runtime.pcheader / runtime.firstmoduledata (scan, relocations) with equal results.
class PclntabUnstrippedTest : public PclntabFixtureTest {};

TEST_P(PclntabUnstrippedTest, SameResultsWithoutSymtab) {
  const Fixture& f = GetParam();
  ASSERT_TRUE(elf_->has_symtab());
  const std::string out = ::testing::TempDir() + "/pclntab_strip_" + FixtureName({f, 0});
  RunCommand("strip --strip-all -o " + out + " " + f.path);
  auto elf = ElfFile::Open(out);
  ASSERT_TRUE(elf.ok()) << elf.status();
  ASSERT_FALSE((*elf)->has_symtab());
  auto tab = Pclntab::Parse(**elf);
  ASSERT_TRUE(tab.ok()) << tab.status();
  EXPECT_EQ((*tab)->magic(), tab_->magic());
  EXPECT_EQ((*tab)->vaddr(), tab_->vaddr());
  EXPECT_EQ((*tab)->text_start(), tab_->text_start());
  EXPECT_EQ((*tab)->moduledata(), tab_->moduledata());
  EXPECT_EQ((*tab)->num_functions(), tab_->num_functions());
  auto fn = tab_->FindFunction("context.WithCancel");
  ASSERT_TRUE(fn.ok());
  for (uint64_t pc = fn->entry; pc < fn->end; ++pc) {
    auto a = tab_->Symbolize(pc);
    auto b = (*tab)->Symbolize(pc);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size()) << std::hex << pc;
    for (size_t i = 0; i < a->size(); ++i) {
      EXPECT_EQ((*a)[i].function, (*b)[i].function);
      EXPECT_EQ((*a)[i].line, (*b)[i].line);
    }
  }
  std::remove(out.c_str());
}

INSTANTIATE_TEST_SUITE_P(Ctxprog, PclntabFixtureTest, ::testing::ValuesIn(AllFixtures("ctxprog")),
                         FixtureName);

std::vector<Fixture> UnstrippedFixtures() {
  std::vector<Fixture> out;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.variant != "stripped") out.push_back(f);
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(Ctxprog, PclntabUnstrippedTest, ::testing::ValuesIn(UnstrippedFixtures()),
                         FixtureName);

// ---- Hostile and non-Go input ----

TEST(PclntabBadInput, NonGoElf) {
  auto elf = ElfFile::Open("/bin/true");
  ASSERT_TRUE(elf.ok()) << elf.status();
  auto tab = Pclntab::Parse(**elf);
  EXPECT_FALSE(tab.ok());
  EXPECT_TRUE(absl::IsNotFound(tab.status())) << tab.status();
}

void Put32(std::string& s, uint64_t off, uint32_t v) { std::memcpy(&s[off], &v, 4); }
void Put64(std::string& s, uint64_t off, uint64_t v) { std::memcpy(&s[off], &v, 8); }

// A fixture image with its .gopclntab located, for in-memory corruption.
struct Image {
  std::string bytes;
  uint64_t tab_off = 0;  // file offset of the pclntab header
  uint64_t tab_size = 0;
};

Image LoadImage(const std::string& version, const std::string& variant) {
  Image img;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.go_version != version || f.variant != variant) continue;
    img.bytes = ReadFile(f.path);
    auto elf = ElfFile::FromBuffer(img.bytes);
    if (!elf.ok()) break;
    auto tab = Pclntab::Parse(**elf);
    if (!tab.ok()) break;
    auto off = (*elf)->VaddrToFileOffset((*tab)->vaddr());
    if (!off.ok()) break;
    img.tab_off = *off;
    for (const ElfSection& s : (*elf)->sections()) {
      if (s.addr <= (*tab)->vaddr() && (*tab)->vaddr() < s.addr + s.size) {
        img.tab_size = s.addr + s.size - (*tab)->vaddr();
      }
    }
  }
  return img;
}

std::string FirstVersion() {
  std::vector<Fixture> all = AllFixtures("ctxprog");
  return all.empty() ? "" : all.front().go_version;
}

absl::Status ParseBuffer(std::string bytes) {
  auto elf = ElfFile::FromBuffer(std::move(bytes));
  if (!elf.ok()) return elf.status();
  auto tab = Pclntab::Parse(**elf);
  return tab.status();
}

TEST(PclntabBadInput, CorruptedHeaderFields) {
  for (const char* variant : {"default", "pieext"}) {
    SCOPED_TRACE(variant);
    Image img = LoadImage(FirstVersion(), variant);
    ASSERT_NE(img.tab_off, 0u);
    ASSERT_TRUE(ParseBuffer(img.bytes).ok());
    const bool in_section = std::string(variant) == "default";  // pieext: found by scanning
    auto with = [&](auto mutate) {
      std::string b = img.bytes;
      mutate(b);
      return ParseBuffer(std::move(b));
    };
    // A bad field in a named section is InvalidArgument; in externally linked PIE the table is
    // found by scanning, and a header that fails validation is simply not found.
    auto rejected = [&](const absl::Status& s) {
      return in_section ? absl::IsInvalidArgument(s) : absl::IsNotFound(s);
    };
    absl::Status s;
    s = with([&](std::string& b) { Put32(b, img.tab_off, 0xFFFFFFFB); });  // Go 1.2-1.15
    EXPECT_TRUE(absl::IsUnimplemented(s)) << s;
    s = with([&](std::string& b) { Put32(b, img.tab_off, 0x12345678); });
    EXPECT_TRUE(rejected(s)) << s;
    s = with([&](std::string& b) { b[img.tab_off + 4] = 1; });  // pad1
    EXPECT_TRUE(rejected(s)) << s;
    s = with([&](std::string& b) { b[img.tab_off + 6] = 3; });  // minLC
    EXPECT_TRUE(rejected(s)) << s;
    s = with([&](std::string& b) { b[img.tab_off + 7] = 4; });  // ptrSize: 32-bit
    EXPECT_TRUE(absl::IsUnimplemented(s)) << s;
    s = with([&](std::string& b) { b[img.tab_off + 7] = 7; });
    EXPECT_TRUE(rejected(s)) << s;
    s = with([&](std::string& b) { Put64(b, img.tab_off + 8, uint64_t{1} << 62); });  // nfunc
    EXPECT_TRUE(rejected(s)) << s;
    s = with([&](std::string& b) { Put64(b, img.tab_off + 8, 0); });
    EXPECT_TRUE(rejected(s)) << s;
    for (int field = 0; field < 5; ++field) {  // funcname, cu, filetab, pctab, pcln offsets
      s = with([&](std::string& b) { Put64(b, img.tab_off + 32 + 8 * field, uint64_t{1} << 40); });
      EXPECT_TRUE(rejected(s)) << field << ": " << s;
    }
    // First functab entry pointing at a _func for another entry point.
    s = with([&](std::string& b) {
      uint64_t pcln_off;
      std::memcpy(&pcln_off, &b[img.tab_off + 64], 8);
      Put32(b, img.tab_off + pcln_off, 0x1234);
    });
    EXPECT_TRUE(rejected(s)) << s;
  }
}

// The loader, not the file, may supply PIE pointers (R_X86_64_RELATIVE addends with zeros in the
// file, as some linkers emit): zero every relocated word of the header and moduledata and expect
// the same answers.
TEST(PclntabPie, PointersOnlyInRelocations) {
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (f.variant != "pieext" && f.variant != "pie") continue;
    SCOPED_TRACE(f.path);
    std::string bytes = ReadFile(f.path);
    auto orig_elf = ElfFile::FromBuffer(bytes);
    ASSERT_TRUE(orig_elf.ok());
    auto orig = Pclntab::Parse(**orig_elf);
    ASSERT_TRUE(orig.ok()) << orig.status();
    ASSERT_NE((*orig)->moduledata(), 0u);
    std::vector<uint64_t> words = {(*orig)->vaddr() + 24};  // pcHeader.textStart
    for (uint64_t i = 0; i < 48; ++i) words.push_back((*orig)->moduledata() + 8 * i);
    std::string zeroed = bytes;
    int relocated = 0;
    for (uint64_t w : words) {
      auto off = (*orig_elf)->VaddrToFileOffset(w);
      ASSERT_TRUE(off.ok());
      auto ptr = (*orig_elf)->ReadPointer(w);
      ASSERT_TRUE(ptr.ok());
      std::vector<uint64_t> relocs = (*orig_elf)->RelativeRelocationsTo(*ptr);
      if (*ptr == 0 || std::find(relocs.begin(), relocs.end(), w) == relocs.end()) continue;
      Put64(zeroed, *off, 0);
      ++relocated;
    }
    EXPECT_GT(relocated, 10);
    auto elf = ElfFile::FromBuffer(std::move(zeroed));
    ASSERT_TRUE(elf.ok());
    auto tab = Pclntab::Parse(**elf);
    ASSERT_TRUE(tab.ok()) << tab.status();
    EXPECT_EQ((*tab)->text_start(), (*orig)->text_start());
    EXPECT_EQ((*tab)->moduledata(), (*orig)->moduledata());
    auto fn = (*tab)->FindFunction("context.WithCancel");
    ASSERT_TRUE(fn.ok());
    for (uint64_t pc = fn->entry; pc < fn->end; ++pc) {
      auto a = (*orig)->Symbolize(pc);
      auto b = (*tab)->Symbolize(pc);
      ASSERT_TRUE(a.ok() && b.ok());
      ASSERT_EQ(a->size(), b->size()) << std::hex << pc;
    }
  }
}

TEST(PclntabBadInput, TruncatedTable) {
  Image img = LoadImage(FirstVersion(), "default");
  ASSERT_NE(img.tab_off, 0u);
  for (uint64_t keep :
       {uint64_t{0}, uint64_t{7}, uint64_t{40}, uint64_t{71}, uint64_t{4096}, img.tab_size / 2}) {
    // Cutting the file makes the section point past EOF: either ElfFile or Pclntab must refuse.
    std::string b = img.bytes.substr(0, img.tab_off + keep);
    EXPECT_FALSE(ParseBuffer(b).ok()) << keep;
  }
}

// Random corruption inside the table: whatever Parse accepts must answer every query without
// crashing (errors are fine).
TEST(PclntabBadInput, RandomCorruptionNeverCrashes) {
  for (const char* variant : {"default", "pieext"}) {
    Image img = LoadImage(FirstVersion(), variant);
    ASSERT_NE(img.tab_off, 0u);
    ASSERT_GT(img.tab_size, 0u);
    std::mt19937_64 rng(42);
    int accepted = 0;
    for (int iter = 0; iter < 60; ++iter) {
      std::string b = img.bytes;
      // Header-heavy mutations early, then anywhere in the table.
      uint64_t span = iter < 20 ? 80 : img.tab_size;
      for (int k = 0; k < 1 + iter % 16; ++k) {
        b[img.tab_off + rng() % span] = static_cast<char>(rng());
      }
      auto elf = ElfFile::FromBuffer(std::move(b));
      ASSERT_TRUE(elf.ok());
      auto tab = Pclntab::Parse(**elf);
      if (!tab.ok()) continue;
      ++accepted;
      const Pclntab& t = **tab;
      for (size_t i = 0; i < t.num_functions(); i += 1 + t.num_functions() / 300) {
        auto fn = t.FunctionAt(i);
        if (!fn.ok()) continue;
        (void)t.FunctionForPC(fn->entry);
        for (uint64_t pc = fn->entry; pc < fn->end && pc < fn->entry + 64; pc += 3)
          (void)t.Symbolize(pc);
      }
      (void)t.FindFunction("main.workCancel");
      (void)t.Symbolize(t.text_start() + rng() % 0x100000);
    }
    EXPECT_GT(accepted, 0) << variant;  // the body of the table is not vetted by Parse
  }
}

}  // namespace
}  // namespace ctxagent::symbols
