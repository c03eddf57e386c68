// Pclntab::FrameMapsAt against what Go's own objdump shows of the fixtures' code, every toolchain
// and variant (stripped and PIE included).
#include <bitset>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "symbols/elf_file.h"
#include "symbols/pclntab.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::ctxagent::symbols::testing::AllFixtures;
using ::ctxagent::symbols::testing::Fixture;
using ::ctxagent::symbols::testing::GoTool;
using ::ctxagent::symbols::testing::UnstrippedTwin;

struct Instruction {
  uint64_t pc = 0;
  std::string text;
};

// `go tool objdump -s '^<fn>$'` as (pc, instruction) pairs.
std::vector<Instruction> Objdump(const Fixture& f, const std::string& fn) {
  std::vector<Instruction> out;
  for (absl::string_view line :
       absl::StrSplit(GoTool(f, "objdump -s '^" + fn + "$' " + UnstrippedTwin(f)), '\n')) {
    std::vector<absl::string_view> cols = absl::StrSplit(line, '\t', absl::SkipWhitespace());
    Instruction in;
    if (cols.size() < 4 || !absl::SimpleHexAtoi(absl::StripAsciiWhitespace(cols[1]), &in.pc)) {
      continue;
    }
    in.text = std::string(absl::StripAsciiWhitespace(cols[3]));
    out.push_back(in);
  }
  return out;
}

int Popcount(const StackBitmap& map) {
  int n = 0;
  for (uint8_t b : map.bits) n += std::bitset<8>(b).count();
  return n;
}

class StackMapsTest : public ::testing::TestWithParam<Fixture> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::ifstream(GetParam().path).good()) << "not built: " << GetParam().path;
    auto elf = ElfFile::Open(GetParam().path);
    ASSERT_TRUE(elf.ok()) << elf.status();
    elf_ = *std::move(elf);
    auto tab = Pclntab::Parse(*elf_);
    ASSERT_TRUE(tab.ok()) << tab.status();
    tab_ = *std::move(tab);
  }
  std::unique_ptr<ElfFile> elf_;
  std::unique_ptr<Pclntab> tab_;
};

// main.workCancel(parent context.Context): its frame size is the prologue's (PUSHQ BP from 1.21,
// then SUBQ $n, SP), at every return address; its args are the interface's two words, both
// pointers; `ctx` is live across `<-done` and nothing is after the last call.
TEST_P(StackMapsTest, WorkCancelMatchesObjdump) {
  const std::vector<Instruction> code = Objdump(GetParam(), "main.workCancel");
  ASSERT_FALSE(code.empty());
  int64_t frame = 0;
  for (const Instruction& in : code) {
    if (in.text == "PUSHQ BP") frame += 8;
    int64_t n = 0;
    if (absl::StartsWith(in.text, "SUBQ $0x") && absl::EndsWith(in.text, ", SP") &&
        absl::SimpleHexAtoi(in.text.substr(6, in.text.find(',') - 6), &n)) {
      frame += n;
      break;
    }
  }
  ASSERT_GT(frame, 8);
  auto at_entry = tab_->FrameMapsAt(code[0].pc);
  ASSERT_TRUE(at_entry.ok()) << at_entry.status();
  EXPECT_EQ(at_entry->sp_delta, 0);
  EXPECT_EQ(at_entry->entry, code[0].pc);

  int after_recv = -1, after_last_check = -1, calls = 0;
  for (size_t i = 0; i + 1 < code.size(); ++i) {
    const std::string& call = code[i].text;
    if (!absl::StartsWith(call, "CALL ") || absl::StrContains(call, "morestack")) continue;
    const uint64_t ret = code[i + 1].pc;
    auto m = tab_->FrameMapsAt(ret);
    ASSERT_TRUE(m.ok()) << call << ": " << m.status();
    ++calls;
    EXPECT_EQ(m->sp_delta, frame) << call;
    EXPECT_EQ(m->args, 16);
    EXPECT_FALSE(m->top_frame || m->sp_write || m->injected);
    ASSERT_TRUE(m->locals.present) << call;
    // The locals lie between SP and the saved frame pointer.
    EXPECT_LE(m->locals.nbit * 8, frame - 8) << call;
    ASSERT_TRUE(m->arg_words.present) << call;
    EXPECT_EQ(m->arg_words.nbit, 2) << call;
    EXPECT_EQ(m->arg_words.bits.size(), 1u);
    if (absl::StrContains(call, "runtime.chanrecv1")) after_recv = Popcount(m->locals);
    if (absl::StrContains(call, "main.check")) after_last_check = Popcount(m->locals);
  }
  EXPECT_GE(calls, 4);
  EXPECT_GT(after_recv, 0);
  EXPECT_EQ(after_last_check, 0);
}

TEST_P(StackMapsTest, RuntimeFunctionsCarryTheirFlags) {
  auto goexit = tab_->FindFunction("runtime.goexit");
  ASSERT_TRUE(goexit.ok()) << goexit.status();
  auto top = tab_->FrameMapsAt(goexit->entry + 1);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_TRUE(top->top_frame);
  for (const char* name : {"runtime.asyncPreempt", "runtime.sigpanic"}) {
    auto fn = tab_->FindFunction(name);
    ASSERT_TRUE(fn.ok()) << fn.status();
    auto m = tab_->FrameMapsAt(fn->entry);
    ASSERT_TRUE(m.ok()) << name << ": " << m.status();
    EXPECT_TRUE(m->injected) << name;
    EXPECT_FALSE(m->top_frame) << name;
  }
  EXPECT_TRUE(absl::IsNotFound(tab_->FrameMapsAt(0).status()));
}

std::string FixtureName(const ::testing::TestParamInfo<Fixture>& info) {
  std::string name = absl::StrCat("go", info.param.go_version, "_", info.param.variant);
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StackMapsTest, ::testing::ValuesIn(AllFixtures("ctxprog")),
                         FixtureName);

}  // namespace
}  // namespace ctxagent::symbols
