#include "symbols/probe_plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "symbols/test_fixtures.h"

namespace ctxagent::symbols {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr uint64_t kEntry = 0x401000;

std::string Bytes(std::initializer_list<uint8_t> b) { return std::string(b.begin(), b.end()); }

// ---------------------------------------------------------------------------------------------
// FindStackCheckBranch on hand-assembled prologues.

TEST(FindStackCheckBranch, SmallFrame) {
  // cmp rsp,[r14+0x10]; jbe rel32; push rbp
  std::string code = Bytes({0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x1c, 0x01, 0x00, 0x00, 0x55});
  absl::StatusOr<ProbeSite> site = FindStackCheckBranch(code, kEntry);
  ASSERT_TRUE(site.ok()) << site.status();
  EXPECT_EQ(site->address, kEntry + 4);
  EXPECT_EQ(site->instruction, "jbe 0x401126");  // 0x40100a + 0x11c
  EXPECT_TRUE(site->emulated);
  EXPECT_EQ(site->file_offset, 0u);
}

TEST(FindStackCheckBranch, SmallFrameShortJump) {
  // cmp rsp,[r14+0x10]; jbe rel8 (WithTimeout in go1.19)
  std::string code = Bytes({0x49, 0x3b, 0x66, 0x10, 0x76, 0x4e, 0x48, 0x83, 0xec, 0x38});
  absl::StatusOr<ProbeSite> site = FindStackCheckBranch(code, kEntry);
  ASSERT_TRUE(site.ok()) << site.status();
  EXPECT_EQ(site->address, kEntry + 4);
  EXPECT_EQ(site->instruction, "jbe 0x401054");
  EXPECT_TRUE(site->emulated);
}

TEST(FindStackCheckBranch, MediumFrameLea) {
  // lea r12,[rsp-0x40]; cmp r12,[r14+0x10]; jbe rel32; push rbp
  std::string code = Bytes({0x4c, 0x8d, 0x64, 0x24, 0xc0, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xb7,
                            0x02, 0x00, 0x00, 0x55});
  absl::StatusOr<ProbeSite> site = FindStackCheckBranch(code, kEntry);
  ASSERT_TRUE(site.ok()) << site.status();
  EXPECT_EQ(site->address, kEntry + 9);
  EXPECT_THAT(site->instruction, StartsWith("jbe "));
  EXPECT_TRUE(site->emulated);
}

TEST(FindStackCheckBranch, BigFrame) {
  // mov r12,rsp; sub r12,0x1fa8; jb rel32; cmp r12,[r14+0x10]; jbe rel32 (runtime.getproccount)
  std::string code =
      Bytes({0x49, 0x89, 0xe4, 0x49, 0x81, 0xec, 0xa8, 0x1f, 0x00, 0x00, 0x0f, 0x82, 0xb7, 0x00,
             0x00, 0x00, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xad, 0x00, 0x00, 0x00, 0x55});
  absl::StatusOr<ProbeSite> site = FindStackCheckBranch(code, kEntry);
  ASSERT_TRUE(site.ok()) << site.status();
  EXPECT_EQ(site->address, kEntry + 20);  // the branch after the CMP, not the wrap-around JB
  EXPECT_THAT(site->instruction, StartsWith("jbe "));
}

TEST(FindStackCheckBranch, SystemstackUsesStackguard1) {
  // lea r12,[rsp-0x2b0]; cmp r12,[r14+0x18]; jbe (//go:systemstack, e.g. runtime.scanstack)
  std::string code = Bytes({0x4c, 0x8d, 0xa4, 0x24, 0x50, 0xfd, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x18,
                            0x0f, 0x86, 0xd4, 0x06, 0x00, 0x00});
  absl::StatusOr<ProbeSite> site = FindStackCheckBranch(code, kEntry);
  ASSERT_TRUE(site.ok()) << site.status();
  EXPECT_EQ(site->address, kEntry + 12);
}

TEST(FindStackCheckBranch, NosplitLeafIsNotFound) {
  // inc rax; ret
  EXPECT_TRUE(
      absl::IsNotFound(FindStackCheckBranch(Bytes({0x48, 0xff, 0xc0, 0xc3}), kEntry).status()));
  // go1.21+ leaf with a frame: push rbp; mov rbp,rsp; sub rsp,0x10; ...
  EXPECT_TRUE(absl::IsNotFound(
      FindStackCheckBranch(Bytes({0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0xc3}), kEntry)
          .status()));
}

TEST(FindStackCheckBranch, RejectsLookalikes) {
  // cmp rax,[r14+0x10]; jbe: not SP/R12.
  EXPECT_TRUE(absl::IsNotFound(
      FindStackCheckBranch(Bytes({0x49, 0x3b, 0x46, 0x10, 0x76, 0x10, 0xc3}), kEntry).status()));
  // cmp rsp,[r14+0x20]; jbe: not a stack guard.
  EXPECT_TRUE(absl::IsNotFound(
      FindStackCheckBranch(Bytes({0x49, 0x3b, 0x66, 0x20, 0x76, 0x10, 0xc3}), kEntry).status()));
  // cmp rsp,[r14+0x10]; je: not the bound branch.
  EXPECT_TRUE(absl::IsNotFound(
      FindStackCheckBranch(Bytes({0x49, 0x3b, 0x66, 0x10, 0x74, 0x10, 0xc3}), kEntry).status()));
  // mov rbx,rax before the check: a probe at the branch would no longer see the arguments.
  EXPECT_TRUE(absl::IsNotFound(
      FindStackCheckBranch(Bytes({0x48, 0x89, 0xc3, 0x49, 0x3b, 0x66, 0x10, 0x76, 0x10, 0xc3}),
                           kEntry)
          .status()));
}

TEST(FindStackCheckBranch, TruncatedIsAnErrorNotNotFound) {
  for (const std::string& code : {Bytes({}), Bytes({0x49, 0x3b, 0x66}),
                                  Bytes({0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x1c, 0x01})}) {
    absl::StatusOr<ProbeSite> site = FindStackCheckBranch(code, kEntry);
    EXPECT_FALSE(site.ok()) << code.size() << " bytes";
    EXPECT_FALSE(absl::IsNotFound(site.status())) << site.status();
  }
}

// ---------------------------------------------------------------------------------------------
// FindRetSites.

// DecodeDataReferences on allgadd's `atomic.Storeuintptr(&allglen, len(allgs))` and a store.
TEST(DecodeDataReferences, LoadLeaXchgAndStores) {
  std::string code = Bytes({
      0x48, 0x8b, 0x0d, 0x10, 0x00, 0x00, 0x00,  // mov rcx, [rip+0x10]
      0x48, 0x8d, 0x15, 0x20, 0x00, 0x00, 0x00,  // lea rdx, [rip+0x20]
      0x48, 0x87, 0x0a,                          // xchg [rdx], rcx
      0x48, 0x89, 0x05, 0x08, 0x00, 0x00, 0x00,  // mov [rip+0x8], rax
      0xe8, 0x00, 0x00, 0x00, 0x00,              // call rel32
  });
  absl::StatusOr<std::vector<DataReference>> refs = DecodeDataReferences(code, kEntry);
  ASSERT_TRUE(refs.ok()) << refs.status();
  ASSERT_EQ(refs->size(), 5u);
  const std::vector<DataReference>& r = *refs;
  EXPECT_EQ(r[0].kind, DataReference::Kind::kLoad);
  EXPECT_EQ(r[0].target, kEntry + 7 + 0x10);
  EXPECT_EQ(r[1].kind, DataReference::Kind::kLea);
  EXPECT_EQ(r[1].target, kEntry + 14 + 0x20);
  EXPECT_EQ(r[2].kind, DataReference::Kind::kXchg);
  EXPECT_EQ(r[2].base, r[1].reg);  // through the LEA'd register
  EXPECT_EQ(r[2].reg, r[0].reg);   // the loaded value
  EXPECT_EQ(r[2].target, 0u);
  EXPECT_EQ(r[3].kind, DataReference::Kind::kOther);  // a store, not a load
  EXPECT_EQ(r[3].target, kEntry + 24 + 0x8);
  EXPECT_EQ(r[4].kind, DataReference::Kind::kCall);
  EXPECT_EQ(r[4].address, kEntry + 24);
  EXPECT_FALSE(DecodeDataReferences(Bytes({0x48, 0x8b}), kEntry).ok());  // truncated
}

TEST(FindRetSites, EveryRetNotBytesInsideInstructions) {
  std::string code = Bytes({
      0x49, 0x3b, 0x66, 0x10,        // 0  cmp rsp,[r14+0x10]
      0x76, 0x0c,                    // 4  jbe
      0xb8, 0xc3, 0x00, 0x00, 0x00,  // 6  mov eax,0xc3 (0xc3 inside an immediate)
      0x74, 0x01,                    // 11 je
      0xc3,                          // 13 ret
      0x5d,                          // 14 pop rbp
      0xc3,                          // 15 ret
      0xe8, 0x00, 0x00, 0x00, 0x00,  // 16 call
      0xeb, 0xe4,                    // 21 jmp
      0xcc, 0xcc,                    // 23 int3 padding
  });
  absl::StatusOr<std::vector<ProbeSite>> rets = FindRetSites(code, kEntry);
  ASSERT_TRUE(rets.ok()) << rets.status();
  ASSERT_EQ(rets->size(), 2u);
  EXPECT_EQ((*rets)[0].address, kEntry + 13);
  EXPECT_EQ((*rets)[1].address, kEntry + 15);
  EXPECT_EQ((*rets)[0].instruction, "ret");
  EXPECT_FALSE((*rets)[0].emulated);  // the kernel single-steps RET
}

TEST(FindRetSites, UndecodableOrTruncatedIsAnError) {
  // ret; then a truncated jbe rel32
  EXPECT_FALSE(FindRetSites(Bytes({0xc3, 0x0f, 0x86, 0x01}), kEntry).ok());
  // 0x06 (PUSH ES) is invalid in 64-bit mode.
  EXPECT_FALSE(FindRetSites(Bytes({0xc3, 0x06, 0xc3}), kEntry).ok());
  absl::StatusOr<std::vector<ProbeSite>> none = FindRetSites(Bytes({0x90, 0xcc}), kEntry);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST(DecodeProbeSite, KernelEmulation) {
  struct Case {
    std::string code;
    bool emulated;
    const char* text;
  };
  for (const Case& c : std::vector<Case>{
           {Bytes({0x55}), true, "push rbp"},
           {Bytes({0x41, 0x54}), true, "push r12"},
           {Bytes({0x90}), true, "nop"},
           {Bytes({0x0f, 0x86, 0x00, 0x01, 0x00, 0x00}), true, "jbe 0x401106"},
           {Bytes({0xe8, 0x00, 0x00, 0x00, 0x00}), true, "call 0x401005"},
           {Bytes({0x49, 0x3b, 0x66, 0x10}), false, "cmp rsp, [r14+0x10]"},
           {Bytes({0x48, 0xff, 0xc0}), false, "inc rax"},
           {Bytes({0x0f, 0x1f, 0x00}), false, "nop [rax], eax"},
           {Bytes({0xff, 0xd0}), false, "call rax"},
           {Bytes({0xc3}), false, "ret"},
       }) {
    absl::StatusOr<ProbeSite> site = DecodeProbeSite(c.code, kEntry);
    ASSERT_TRUE(site.ok()) << c.text << ": " << site.status();
    EXPECT_EQ(site->instruction, c.text);
    EXPECT_EQ(site->emulated, c.emulated) << c.text;
    EXPECT_EQ(site->address, kEntry);
  }
}

// ---------------------------------------------------------------------------------------------
// HooksForVersion.

GoVersion Go(int minor) { return GoVersion{1, minor, 0}; }

const HookSpec* FindHook(const std::vector<HookSpec>& hooks, absl::string_view name) {
  for (const HookSpec& h : hooks) {
    if (h.function == name) return &h;
  }
  return nullptr;
}

TEST(HooksForVersion, UnsupportedVersionsAreEmpty) {
  EXPECT_TRUE(HooksForVersion(Go(16)).empty());  // stack-based ABI
  EXPECT_TRUE(HooksForVersion(Go(28)).empty());
  EXPECT_TRUE(HooksForVersion(GoVersion{2, 0, 0}).empty());
  EXPECT_FALSE(HooksForVersion(Go(17)).empty());
  EXPECT_FALSE(HooksForVersion(Go(27)).empty());
}

TEST(HooksForVersion, RequiredHooksPerVersion) {
  for (int minor = 17; minor <= 27; ++minor) {
    SCOPED_TRACE(absl::StrCat("go1.", minor));
    std::vector<HookSpec> hooks = HooksForVersion(Go(minor));
    std::vector<std::string> required;
    for (const HookSpec& h : hooks) {
      if (h.required) required.push_back(h.function);
    }
    // Required: timerCtx and afterFuncCtx cancel through (*cancelCtx).cancel, and the
    // creation hook's stack names a constructor's caller.
    std::vector<std::string> want = {
        minor >= 21 ? "context.(*cancelCtx).propagateCancel" : "context.propagateCancel",
        "context.(*cancelCtx).cancel", "runtime.newproc1",
        minor >= 22 ? "runtime.gdestroy" : "runtime.goexit0"};
    EXPECT_EQ(required, want);
    const HookSpec* create = FindHook(hooks, want[0]);
    ASSERT_NE(create, nullptr);
    EXPECT_EQ(create->kind, HookKind::kContextCreate);
    const HookSpec* cancel = FindHook(hooks, "context.(*cancelCtx).cancel");
    ASSERT_NE(cancel, nullptr);
    EXPECT_EQ(cancel->args.find("cause=SI:R8") != std::string::npos, minor >= 20);
    const HookSpec* newproc = FindHook(hooks, "runtime.newproc1");
    ASSERT_NE(newproc, nullptr);
    EXPECT_EQ(newproc->args.find("parked=DI") != std::string::npos, minor >= 23);
    for (const HookSpec& h : hooks) {
      EXPECT_EQ(h.needs_ret, h.function == "runtime.newproc1") << h.function;
    }
  }
}

// Each handler has one row per release, and its layout fits the attach cookie's byte.
TEST(ProbeTable, OneRowPerHandlerAndRelease) {
  for (int minor = 17; minor <= 27; ++minor) {
    SCOPED_TRACE(absl::StrCat("go1.", minor));
    std::set<std::string> handlers;
    for (const ProbeRow* r : ProbeRowsForVersion(Go(minor))) {
      EXPECT_TRUE(handlers.insert(r->program).second) << r->function;
      EXPECT_LT(r->abi, 256u);
      EXPECT_EQ(r->site == SiteKind::kHandoff, r->in != nullptr && r->calls != nullptr);
      EXPECT_NE(r->site, SiteKind::kEntry);  // only where a stack check is missing
    }
  }
}

// The registers a row shows are the ones its handler reads given the row's `abi`, for the handlers
// told a layout (ctxagent.bpf.c: ctx_create picks parent and child by CREATE_ABI_*, go_spawner
// callergp by GO_ARGNUM_*); every other handler reads fixed registers and is told none.
TEST(ProbeTable, ShownRegistersAreTheHandlersAbi) {
  for (const ProbeRow& r : kProbeTable) {
    SCOPED_TRACE(r.args);
    const absl::string_view args = r.args, program = r.program;
    if (program == "ctx_create") {
      EXPECT_EQ(absl::StrContains(args, "parent=BX:CX child=DI:SI"), r.abi == CREATE_ABI_METHOD);
      EXPECT_EQ(absl::StrContains(args, "parent=AX:BX child=CX:DI"), r.abi == CREATE_ABI_FUNC);
      EXPECT_EQ(r.abi == CREATE_ABI_METHOD, r.since >= 21);
    } else if (program == "go_spawner") {
      EXPECT_EQ(absl::StrContains(args, "callergp=DI"), r.abi == GO_ARGNUM_DI);
      EXPECT_EQ(absl::StrContains(args, "callergp=BX"), r.abi == GO_ARGNUM_BX);
      EXPECT_EQ(r.when, PlaceWhen::kNoParentGoid);
    } else {
      EXPECT_EQ(r.abi, 0u) << "a handler told its layout needs its case here";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fixtures: cross-checked against `go tool objdump` / `go tool nm` of the unstripped twin.

using testing::AllFixtures;
using testing::Fixture;
using testing::RunCommand;
using testing::UnstrippedTwin;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// The fixtures that were built; fails the test when there are none at all.
std::vector<Fixture> BuiltFixtures() {
  std::vector<Fixture> out;
  for (const Fixture& f : AllFixtures("ctxprog")) {
    if (Exists(f.path)) {
      out.push_back(f);
    } else {
      ADD_FAILURE() << "fixture not built: " << f.path;
    }
  }
  return out;
}

GoVersion FixtureVersion(const Fixture& f) {
  std::vector<std::string> parts = absl::StrSplit(f.go_version, '.');
  int minor = 0;
  EXPECT_TRUE(parts.size() >= 2 && absl::SimpleAtoi(parts[1], &minor)) << f.go_version;
  return Go(minor);
}

struct ObjdumpInsn {
  std::string text;  // Go assembler syntax, e.g. "JBE 0x474de6"
};
// function -> address -> instruction
using Disassembly = std::map<std::string, std::map<uint64_t, ObjdumpInsn>>;

std::string Quote(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string("\\.()*[]^$+?|{}").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

// `go tool objdump -s '^(f1|f2)$'`, parsed.
Disassembly Objdump(const Fixture& f, const std::string& binary,
                    const std::vector<std::string>& functions) {
  std::vector<std::string> quoted;
  for (const std::string& fn : functions) quoted.push_back(Quote(fn));
  std::string out = RunCommand(
      absl::StrCat(f.go_tool, " tool objdump -s '^(", absl::StrJoin(quoted, "|"), ")$' ", binary));
  Disassembly dis;
  std::map<uint64_t, ObjdumpInsn>* current = nullptr;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "TEXT ")) {
      std::string name(line.substr(0, line.find("(SB)")));
      current = &dis[name];
      continue;
    }
    // "  file.go:123\t0x474cc0\t\t493b6610\t\tCMPQ 0x10(R14), SP\t"
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t', absl::SkipWhitespace());
    if (current == nullptr || fields.size() < 4) continue;
    uint64_t addr = 0;
    if (!absl::SimpleHexAtoi(fields[1], &addr)) continue;
    (*current)[addr].text = std::string(absl::StripAsciiWhitespace(fields[3]));
  }
  return dis;
}

// `go tool nm -size`: name -> (address, size) of text symbols.
std::map<std::string, std::pair<uint64_t, uint64_t>> Nm(const Fixture& f,
                                                        const std::string& binary) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> out;
  std::string text = RunCommand(absl::StrCat(f.go_tool, " tool nm -size ", binary));
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    // "  474e80        588 T context.propagateCancel"
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 4 || (fields[2] != "T" && fields[2] != "t")) continue;
    uint64_t addr = 0, size = 0;
    if (absl::SimpleHexAtoi(fields[0], &addr) && absl::SimpleAtoi(fields[1], &size)) {
      out[absl::StrJoin(fields.begin() + 3, fields.end(), " ")] = {addr, size};
    }
  }
  return out;
}

std::vector<std::string> HookNames(const std::vector<HookSpec>& hooks) {
  std::vector<std::string> names;
  for (const HookSpec& h : hooks) names.push_back(h.function);
  return names;
}

// Needs only ElfFile: functions located with `go tool nm`, so the decoder is checked against every
// toolchain's real prologues independently of Pclntab.
TEST(ProbePlanFixtures, StackCheckAndRetsMatchObjdumpViaNm) {
  for (const Fixture& f : BuiltFixtures()) {
    if (f.variant == "stripped") continue;  // nm needs symbols
    SCOPED_TRACE(f.path);
    absl::StatusOr<std::unique_ptr<ElfFile>> elf = ElfFile::Open(f.path);
    ASSERT_TRUE(elf.ok()) << elf.status();
    std::vector<HookSpec> hooks = HooksForVersion(FixtureVersion(f));
    ASSERT_FALSE(hooks.empty());
    auto nm = Nm(f, f.path);
    Disassembly dis = Objdump(f, f.path, HookNames(hooks));
    for (const HookSpec& hook : hooks) {
      auto it = nm.find(hook.function);
      if (it == nm.end()) {
        EXPECT_FALSE(hook.required) << "required hook not in the binary: " << hook.function;
        continue;
      }
      const auto [entry, size] = it->second;
      absl::StatusOr<absl::string_view> code = (*elf)->ReadAt(entry, size);
      ASSERT_TRUE(code.ok()) << hook.function << ": " << code.status();
      const auto& insns = dis[hook.function];
      ASSERT_FALSE(insns.empty()) << hook.function;
      absl::StatusOr<ProbeSite> branch = FindStackCheckBranch(*code, entry);
      ASSERT_TRUE(branch.ok()) << hook.function << ": " << branch.status();
      auto insn = insns.find(branch->address);
      ASSERT_NE(insn, insns.end()) << hook.function << ": not an instruction boundary";
      EXPECT_THAT(insn->second.text, StartsWith("JBE ")) << hook.function;
      if (hook.needs_ret) {
        absl::StatusOr<std::vector<ProbeSite>> rets = FindRetSites(*code, entry);
        ASSERT_TRUE(rets.ok()) << rets.status();
        std::set<uint64_t> got, want;
        for (const ProbeSite& r : *rets) got.insert(r.address);
        for (const auto& [addr, i] : insns) {
          if (i.text == "RET") want.insert(addr);
        }
        EXPECT_FALSE(want.empty());
        EXPECT_EQ(got, want) << hook.function;
      }
    }
  }
}

TEST(ProbePlanFixtures, PlanMatchesObjdump) {
  for (const Fixture& f : BuiltFixtures()) {
    SCOPED_TRACE(f.path);
    absl::StatusOr<std::unique_ptr<ElfFile>> elf = ElfFile::Open(f.path);
    ASSERT_TRUE(elf.ok()) << elf.status();
    absl::StatusOr<std::unique_ptr<Pclntab>> pcln = Pclntab::Parse(**elf);
    ASSERT_TRUE(pcln.ok()) << pcln.status();
    const GoVersion version = FixtureVersion(f);
    const bool parent_goid = version.AtLeast(21);
    absl::StatusOr<ProbePlan> plan = PlanProbes(**elf, **pcln, version, parent_goid);
    ASSERT_TRUE(plan.ok()) << plan.status();

    const std::string twin = UnstrippedTwin(f);
    std::vector<HookSpec> hooks = HooksForVersion(version);
    auto nm = Nm(f, twin);
    std::vector<std::string> names = HookNames(hooks);
    names.push_back("runtime.newproc.func1");
    Disassembly dis = Objdump(f, twin, names);

    // Every hook is either planned or reported missing, exactly as the symbol table says.
    EXPECT_EQ(plan->hooks.size() + plan->missing.size(), hooks.size());
    for (const std::string& missing : plan->missing) {
      EXPECT_EQ(nm.count(missing), 0u) << missing << " is in the binary but reported missing";
    }
    for (const PlannedHook& h : plan->hooks) {
      SCOPED_TRACE(h.hook.function);
      EXPECT_EQ(h.function.name, h.hook.function);
      ASSERT_EQ(nm.count(h.hook.function), 1u);
      EXPECT_EQ(h.function.entry, nm[h.hook.function].first);
      absl::StatusOr<uint64_t> entry_off = (*elf)->VaddrToFileOffset(h.function.entry);
      ASSERT_TRUE(entry_off.ok());
      EXPECT_EQ(h.entry_file_offset, *entry_off);
    }

    std::vector<std::string> not_at_check;
    int fallbacks = 0, rank = 0;
    std::map<std::string, int> handlers;
    for (const Probe& p : plan->probes) {
      SCOPED_TRACE(absl::StrCat(p.function, " ", SiteKindName(p.kind)));
      // Endings first: exit, then cancel, then the beginnings.
      const absl::string_view program = p.program;
      const int r = program == "go_exit" ? 0 : program == "ctx_cancel" ? 1 : 2;
      EXPECT_GE(r, rank);
      EXPECT_EQ(IsEnding(p.order), r < 2);
      rank = r;
      ++handlers[p.program];
      const auto& insns = dis[p.function];
      ASSERT_FALSE(insns.empty());
      auto insn = insns.find(p.site.address);
      ASSERT_NE(insn, insns.end()) << std::hex << p.site.address << " is not an instruction";
      // The recorded bytes are the file's at both the address and the file offset.
      absl::StatusOr<absl::string_view> at_addr =
          (*elf)->ReadAt(p.site.address, p.site.bytes.size());
      ASSERT_TRUE(at_addr.ok()) << at_addr.status();
      EXPECT_EQ(*at_addr, p.site.bytes);
      EXPECT_EQ((*elf)->data().substr(p.site.file_offset, p.site.bytes.size()), p.site.bytes);
      switch (p.kind) {
        case SiteKind::kStackCheck:
          EXPECT_THAT(insn->second.text, StartsWith("JBE "));
          EXPECT_TRUE(p.site.emulated);
          break;
        case SiteKind::kEntry:
          EXPECT_EQ(p.site.address, insns.begin()->first);
          ++fallbacks;
          not_at_check.push_back(p.function + " (" + p.site.instruction + ")");
          break;
        case SiteKind::kReturn:
          EXPECT_EQ(insn->second.text, "RET");
          EXPECT_FALSE(p.site.emulated);
          break;
        case SiteKind::kHandoff:
          EXPECT_EQ(p.function, "runtime.newproc.func1");
          EXPECT_THAT(insn->second.text, HasSubstr("CALL runtime.runqput(SB)"));
          EXPECT_TRUE(p.site.emulated);
          break;
      }
    }
    // Each hook once, the new g where it is handed on (so no RET is single-stepped), and the
    // creator at newproc1's entry only where g has no parentGoid.
    EXPECT_EQ(handlers["ctx_create"], 1);
    EXPECT_EQ(handlers["ctx_cancel"], 1);
    EXPECT_EQ(handlers["go_exit"], 1);
    EXPECT_GE(handlers["go_handed_off"], 1);
    EXPECT_EQ(handlers["go_returned"], 0);
    EXPECT_EQ(handlers["go_spawner"], parent_goid ? 0 : 1);
    EXPECT_EQ(plan->entry_fallbacks, fallbacks);
    std::cout << f.go_version << "/" << f.variant << ": " << plan->probes.size() << " probes, "
              << fallbacks << " entry fallbacks, missing [" << absl::StrJoin(plan->missing, " ")
              << "]\n";
    // Every hook function in ctxprog has a stack check (none is NOSPLIT in any toolchain's source).
    EXPECT_TRUE(not_at_check.empty())
        << "required hooks not at the stack check: " << absl::StrJoin(not_at_check, ", ");
    EXPECT_EQ(plan->entry_fallbacks, 0);
  }
}

// A hook only sees every event if its function is really called, not inlined into its callers:
// propagateCancel (every cancelable constructor), cancel, newproc1 (from newproc's systemstack
// closure) and, from 1.22, gdestroy (from goexit0, reached through mcall).
TEST(ProbePlanFixtures, RequiredHooksAreCalledNotInlined) {
  for (const Fixture& f : BuiltFixtures()) {
    if (f.variant != "default") continue;
    SCOPED_TRACE(f.path);
    const GoVersion version = FixtureVersion(f);
    std::string dis = RunCommand(absl::StrCat(f.go_tool, " tool objdump ", f.path));
    for (const HookSpec& hook : HooksForVersion(version)) {
      if (!hook.required || hook.function == "runtime.goexit0") continue;  // goexit0: via mcall
      EXPECT_THAT(dis, HasSubstr(absl::StrCat("CALL ", hook.function, "(SB)"))) << hook.function;
    }
    if (version.AtLeast(22)) {
      std::string goexit0 =
          RunCommand(absl::StrCat(f.go_tool, " tool objdump -s '^runtime\\.goexit0$' ", f.path));
      EXPECT_THAT(goexit0, HasSubstr("CALL runtime.gdestroy(SB)"));
    }
  }
}

TEST(ProbePlanFixtures, MissingRequiredHookIsFailedPrecondition) {
  // A go1.21+ binary planned as go1.19 lacks the function form of propagateCancel.
  for (const Fixture& f : BuiltFixtures()) {
    if (f.variant != "default" || !FixtureVersion(f).AtLeast(21)) continue;
    SCOPED_TRACE(f.path);
    absl::StatusOr<std::unique_ptr<ElfFile>> elf = ElfFile::Open(f.path);
    ASSERT_TRUE(elf.ok()) << elf.status();
    absl::StatusOr<std::unique_ptr<Pclntab>> pcln = Pclntab::Parse(**elf);
    ASSERT_TRUE(pcln.ok()) << pcln.status();
    absl::StatusOr<ProbePlan> plan = PlanProbes(**elf, **pcln, Go(19), false);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition) << plan.status();
    EXPECT_THAT(plan.status().message(), HasSubstr("context.propagateCancel"));
    EXPECT_THAT(plan.status().message(), HasSubstr("binary does not use context.WithCancel"));
    EXPECT_EQ(PlanProbes(**elf, **pcln, Go(28), true).status().code(),
              absl::StatusCode::kUnimplemented);
    return;
  }
}

}  // namespace
}  // namespace ctxagent::symbols
