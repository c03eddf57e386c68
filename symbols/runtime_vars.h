// Addresses of the runtime's global variables that list every goroutine, in binaries with or
// without a symbol table.
#ifndef CTXAGENT_SYMBOLS_RUNTIME_VARS_H_
#define CTXAGENT_SYMBOLS_RUNTIME_VARS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "symbols/elf_file.h"
#include "symbols/pclntab.h"

namespace ctxagent::symbols {

// Link-time addresses (a PIE process adds its load bias).
struct AllgVars {
  uint64_t allgs = 0;    // runtime.allgs: []*g {array, len, cap}, every g ever made (never shrinks)
  uint64_t allglen = 0;  // runtime.allglen: uintptr, stored (atomically) after allgs grows
};

// From `runtime.allgadd`'s code, which every release 1.17+ compiles to
//   MOV r1, [allgs+8]; LEA r2, [allglen]; XCHG [r2], r1   (atomic.Storeuintptr(&allglen, len))
// after appending to allgs (loads of allgs, allgs+8 and allgs+16). pclntab names allgadd in
// stripped binaries too; the data symbols are gone there, so this is the only way. NotFound when
// the function or either pattern is missing or ambiguous.
absl::StatusOr<AllgVars> FindAllgVarsInCode(const ElfFile& elf, const Pclntab& pclntab);

// The .symtab addresses when the binary has them, else FindAllgVarsInCode.
absl::StatusOr<AllgVars> FindAllgVars(const ElfFile& elf, const Pclntab& pclntab);

// runtime.mheap_ (the heap: its spans, for the mark in agent/heap). Stripped binaries lose the
// symbol; the runtime's span and stack allocators pass `&mheap_` in AX to mheap's methods, so
// the address two or more of them LEA right before such a call is it. NotFound otherwise.
absl::StatusOr<uint64_t> FindMheapInCode(const ElfFile& elf, const Pclntab& pclntab);
// The .symtab address when the binary has it, else FindMheapInCode.
absl::StatusOr<uint64_t> FindMheap(const ElfFile& elf, const Pclntab& pclntab);

// runtime.semtable: the semaphore table (251 roots of treaps of waiting sudogs keyed by address),
// where a goroutine parked on a Mutex, RWMutex or WaitGroup waits before Go 1.26 names the
// primitive. Stripped, it is the one .bss address both semacquire1 and semrelease1 LEA (for
// semTable.rootFor, inlined). NotFound otherwise.
absl::StatusOr<uint64_t> FindSemtableInCode(const ElfFile& elf, const Pclntab& pclntab);
absl::StatusOr<uint64_t> FindSemtable(const ElfFile& elf, const Pclntab& pclntab);

}  // namespace ctxagent::symbols

#endif  // CTXAGENT_SYMBOLS_RUNTIME_VARS_H_
