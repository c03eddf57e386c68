#include "symbols/elf_file.h"

#include <elf.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  auto elf = ElfFile::Open(path);
  EXPECT_TRUE(elf.ok()) << elf.status();
  return elf.ok() ? std::string((*elf)->data()) : std::string();
}

TEST(ElfFileTest, RejectsNonElfAndMissingFiles) {
  auto r = ElfFile::FromBuffer("#!/bin/sh\necho hi\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not an ELF file"));
  EXPECT_EQ(ElfFile::FromBuffer("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ElfFile::Open("/nonexistent/ctxagent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(ElfFile::Open("/proc").ok());
}

TEST(ElfFileTest, Rejects32BitElf) {
  std::string data(64, '\0');
  memcpy(data.data(), ELFMAG, SELFMAG);
  data[EI_CLASS] = ELFCLASS32;
  data[EI_DATA] = ELFDATA2LSB;
  EXPECT_EQ(ElfFile::FromBuffer(data).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ElfFileTest, EveryTruncationFailsCleanly) {
  std::string full = ReadAll("/bin/true");
  ASSERT_GT(full.size(), 4096u);
  // Cut the file at many lengths, including inside the headers and the section table.
  for (size_t len = 0; len < full.size(); len += (len < 256 ? 1 : 997)) {
    auto r = ElfFile::FromBuffer(full.substr(0, len));
    if (!r.ok()) continue;
    for (const ElfSection& s : (*r)->sections()) (void)(*r)->SectionData(s);
    (void)(*r)->LookupSymbol("main");
    (void)(*r)->ReadPointer((*r)->entry());
  }
}

TEST(ElfFileTest, AbsurdHeaderCountsAreRefused) {
  std::string full = ReadAll("/bin/true");
  ASSERT_GE(full.size(), sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  memcpy(&eh, full.data(), sizeof(eh));
  eh.e_shnum = 0xffff;
  eh.e_phnum = 0xffff;
  memcpy(full.data(), &eh, sizeof(eh));
  EXPECT_EQ(ElfFile::FromBuffer(full).status().code(), absl::StatusCode::kInvalidArgument);
  eh.e_phnum = 1;
  eh.e_shnum = 3;
  eh.e_shoff = ~0ull - 8;  // offset arithmetic must not wrap
  memcpy(full.data(), &eh, sizeof(eh));
  EXPECT_FALSE(ElfFile::FromBuffer(full).ok());
}

TEST(ElfFileTest, GoFixturesMapSymbolsToFileOffsets) {
  for (const auto& f : testing::AllFixtures("ctxprog")) {
    SCOPED_TRACE(f.path);
    auto elf = ElfFile::Open(f.path);
    ASSERT_TRUE(elf.ok()) << elf.status();
    EXPECT_EQ((*elf)->machine(), EM_X86_64);
    EXPECT_EQ((*elf)->is_pie(), f.variant == "pie" || f.variant == "pieext");
    EXPECT_EQ((*elf)->has_symtab(), f.variant != "stripped");
    const auto [start, end] = (*elf)->ImageRange();
    EXPECT_TRUE(start <= (*elf)->entry() && (*elf)->entry() < end) << start << " " << end;
    if (f.variant == "stripped") {
      EXPECT_EQ((*elf)->LookupSymbol("main.main").status().code(), absl::StatusCode::kNotFound);
      continue;
    }
    auto addr = (*elf)->LookupSymbol("main.main");
    ASSERT_TRUE(addr.ok()) << addr.status();
    auto off = (*elf)->VaddrToFileOffset(*addr);
    ASSERT_TRUE(off.ok()) << off.status();
    auto back = (*elf)->FileOffsetToVaddr(*off);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, *addr);
    // The bytes at the file offset are the function's code.
    auto code = (*elf)->ReadAt(*addr, 16);
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(code->data(), (*elf)->data().data() + *off);
  }
}

TEST(ElfFileTest, PieDataPointersComeFromRelocations) {
  for (const auto& f : testing::AllFixtures("ctxprog")) {
    if (f.variant != "pie") continue;
    SCOPED_TRACE(f.path);
    auto elf = ElfFile::Open(f.path);
    ASSERT_TRUE(elf.ok());
    // runtime.firstmoduledata's first word points at the pclntab header in every version.
    auto md = (*elf)->LookupSymbol("runtime.firstmoduledata");
    ASSERT_TRUE(md.ok());
    auto ptr = (*elf)->ReadPointer(*md);
    ASSERT_TRUE(ptr.ok()) << ptr.status();
    auto pcln = (*elf)->LookupSymbol("runtime.pclntab");
    ASSERT_TRUE(pcln.ok());
    EXPECT_EQ(*ptr, *pcln);
    EXPECT_THAT((*elf)->RelativeRelocationsTo(*pcln), ::testing::Contains(*md));
  }
}

}  // namespace
}  // namespace ctxagent::symbols
