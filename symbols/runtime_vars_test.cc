#include "symbols/runtime_vars.h"

#include <map>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "symbols/elf_file.h"
#include "symbols/go_binary.h"
#include "symbols/pclntab.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::ctxagent::symbols::testing::AllFixtures;
using ::ctxagent::symbols::testing::Fixture;

struct Opened {
  std::unique_ptr<ElfFile> elf;
  std::unique_ptr<Pclntab> pclntab;
};

Opened Open(const std::string& path) {
  Opened o;
  absl::StatusOr<std::unique_ptr<ElfFile>> elf = ElfFile::Open(path);
  if (!elf.ok()) {
    ADD_FAILURE() << elf.status();
    return o;
  }
  o.elf = *std::move(elf);
  absl::StatusOr<std::unique_ptr<Pclntab>> pcln = Pclntab::Parse(*o.elf);
  if (!pcln.ok()) {
    ADD_FAILURE() << pcln.status();
    return o;
  }
  o.pclntab = *std::move(pcln);
  return o;
}

const ElfSection* SectionOf(const ElfFile& elf, uint64_t addr) {
  for (const ElfSection& s : elf.sections()) {
    if (s.addr != 0 && addr >= s.addr && addr < s.addr + s.size) return &s;
  }
  return nullptr;
}

// The code-derived addresses equal the symbol table's in every variant that has one. A stripped
// link lays data out differently (its twin's addresses differ by a few words on some toolchains):
// there the variables must sit in the same sections, the same distance apart, as in the twin
// (go_status_test then reads live goroutines through them in stripped processes).
TEST(RuntimeVarsTest, CodeScanEqualsSymtabOnEveryFixture) {
  std::map<std::string, AllgVars> twin;  // go version -> default variant's symbols
  std::map<std::string, std::pair<std::string, std::string>> twin_sections;
  int checked = 0;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    SCOPED_TRACE(f.path);
    Opened o = Open(f.path);
    ASSERT_NE(o.pclntab, nullptr);
    absl::StatusOr<AllgVars> code = FindAllgVarsInCode(*o.elf, *o.pclntab);
    ASSERT_TRUE(code.ok()) << code.status();
    const ElfSection* allgs_in = SectionOf(*o.elf, code->allgs);
    const ElfSection* allglen_in = SectionOf(*o.elf, code->allglen);
    ASSERT_TRUE(allgs_in != nullptr && allglen_in != nullptr);
    AllgVars want;
    if (f.variant == "stripped") {
      ASSERT_TRUE(twin.count(f.go_version)) << "default variant comes first";
      EXPECT_EQ(code->allglen - code->allgs, twin[f.go_version].allglen - twin[f.go_version].allgs);
      EXPECT_EQ(allgs_in->name, twin_sections[f.go_version].first);
      EXPECT_EQ(allglen_in->name, twin_sections[f.go_version].second);
      want = *code;
    } else {
      absl::StatusOr<uint64_t> allgs = o.elf->LookupSymbol("runtime.allgs");
      absl::StatusOr<uint64_t> allglen = o.elf->LookupSymbol("runtime.allglen");
      ASSERT_TRUE(allgs.ok() && allglen.ok());
      want = {*allgs, *allglen};
      EXPECT_EQ(code->allgs, want.allgs);
      EXPECT_EQ(code->allglen, want.allglen);
      if (f.variant == "default") {
        twin[f.go_version] = want;
        twin_sections[f.go_version] = {allgs_in->name, allglen_in->name};
      }
    }
    absl::StatusOr<std::unique_ptr<GoBinary>> bin = GoBinary::Open(f.path);
    ASSERT_TRUE(bin.ok()) << bin.status();
    EXPECT_EQ((*bin)->AllgsAddress().value_or(0), want.allgs);
    EXPECT_EQ((*bin)->AllglenAddress().value_or(0), want.allglen);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// runtime.mheap_ and runtime.semtable from code equal the symbol table's in every variant that
// has one; stripped, they are .bss addresses (goroutine_leaks_test reads live spans and
// semaphores through them).
TEST(RuntimeVarsTest, HeapAndSemaphoresFromCodeEqualSymtabOnEveryFixture) {
  int checked = 0;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    SCOPED_TRACE(f.path);
    Opened o = Open(f.path);
    ASSERT_NE(o.pclntab, nullptr);
    for (const auto& [symbol, find] : {std::make_pair("runtime.mheap_", &FindMheapInCode),
                                       std::make_pair("runtime.semtable", &FindSemtableInCode)}) {
      absl::StatusOr<uint64_t> code = find(*o.elf, *o.pclntab);
      ASSERT_TRUE(code.ok()) << symbol << ": " << code.status();
      const ElfSection* in = SectionOf(*o.elf, *code);
      ASSERT_NE(in, nullptr);
      EXPECT_EQ(in->name, ".bss");
      if (f.variant != "stripped") {
        EXPECT_EQ(*code, o.elf->LookupSymbol(symbol).value_or(0)) << symbol;
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace ctxagent::symbols
