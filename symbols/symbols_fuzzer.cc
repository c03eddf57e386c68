// libFuzzer target for everything that parses untrusted executables: ELF, build info, pclntab,
// the prologue decoder. Any crash, leak, out-of-bounds read or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "symbols/buildinfo.h"
#include "symbols/elf_file.h"
#include "symbols/pclntab.h"
#include "symbols/probe_plan.h"

using namespace ctxagent::symbols;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)FindStackCheckBranch(bytes.substr(0, 64), 0x401000);
  (void)FindRetSites(bytes.substr(0, 4096), 0x401000);
  auto elf = ElfFile::FromBuffer(std::string(bytes));
  if (!elf.ok()) return 0;
  for (const ElfSection& s : (*elf)->sections()) (void)(*elf)->SectionData(s);
  auto info = ReadBuildInfo(**elf);
  auto pcln = Pclntab::Parse(**elf);
  if (!pcln.ok()) return 0;
  size_t n = (*pcln)->num_functions();
  for (size_t i = 0; i < n && i < 64; ++i) {
    auto f = (*pcln)->FunctionAt(i);
    if (!f.ok()) continue;
    (void)(*pcln)->FunctionForPC(f->entry);
    (void)(*pcln)->Symbolize(f->entry + 1);
  }
  (void)(*pcln)->FindFunction("runtime.main");
  if (info.ok()) (void)PlanProbes(**elf, **pcln, info->version, info->version.AtLeast(21));
  return 0;
}
