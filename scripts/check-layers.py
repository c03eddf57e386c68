#!/usr/bin/env python3
"""Layering check: which folder's C/C++ code may `#include "..."` which folder's headers.

Reads every `#include "..."` under the folders of LAYERS and fails (exit 1) when an include crosses
to a folder its file may not use. The allowed graph is the data below, acyclic (checked too):
adding a dependency between folders is an edit here, made on purpose, not a side effect.

  check-layers.py [ROOT]       check the tree at ROOT (default: the current directory)
  check-layers.py --self-test  check that violations in a made-up tree are caught

Product code is everything in agent/, symbols/ and bpf/ except test files (*_test.cc,
*_fuzzer.cc, test_fixtures.*, *_testing.*). Test files may also use test support: the headers
named like test files in the folders they may use, and tests/e2e's helpers. Everything under
tests/ and bench/ is test code. Includes that name no folder of the tree (absl/, gtest/, ...) are
not checked; BPF skeletons and vmlinux.h are generated from bpf/ and count as bpf/.
"""
import pathlib
import re
import sys
import tempfile

# Product layers, each with the folders it may include (besides itself), lowest first.
PRODUCT = {
    "bpf": [],  # the BPF programs and ctxagent.h, the ABI they share with user space
    "symbols": ["bpf"],  # bpf/ctxagent.h's CREATE_ABI_*, GO_ARGNUM_*: what a probe's handler is told
    "agent/lineage": [],  # the lineage tree: plain data, fed events by agent/trace
    "agent/trace": ["symbols", "bpf", "agent/lineage"],
    "agent/heap": ["agent/trace", "agent/lineage", "symbols"],  # the mark of the target's memory
    # goroutine profiles (pprof) read from outside
    "agent/profile": ["agent/heap", "agent/trace", "agent/lineage", "symbols"],
    "agent/control": ["agent/trace", "symbols", "bpf"],
    "agent/session": ["agent/heap", "agent/control", "agent/trace", "agent/lineage", "symbols",
                      "bpf"],
    "agent/view": ["agent/control", "agent/trace", "agent/lineage"],
    "agent/node": ["agent/session", "agent/profile", "agent/heap", "agent/view", "agent/control",
                   "agent/trace", "agent/lineage", "symbols"],
    "agent/cli": ["agent/node", "agent/session", "agent/profile", "agent/heap", "agent/view",
                  "agent/control", "agent/trace", "agent/lineage", "symbols"],
}
# Test-only folders: they may use every product layer, plus these.
TESTS = {
    "bench": [],
    "tests/e2e": ["tests/realbin"],  # the esbuild releases it runs (realbin_list.h)
    "tests/realbin": [],
    "tests/view": ["tests/e2e"],
    "tests/web": ["tests/e2e", "bench"],
}
# What a product folder's test files may use beyond the folder's own layers.
TEST_FILES_EXTRA = {"bpf": ["symbols"]}
TEST_SUPPORT = ["tests/e2e"]

TEST_FILE = re.compile(r"(_test\.cc|_fuzzer\.cc|test_fixtures\.(cc|h)|_testing\.(cc|h))$")
GENERATED = re.compile(r"(\.skel\.h|^vmlinux\.h)$")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
SOURCE_SUFFIXES = (".c", ".cc", ".h")


def layers():
    """Folder -> the folders its product files may include (itself included)."""
    allowed = {f: set(deps) | {f} for f, deps in PRODUCT.items()}
    for f, deps in TESTS.items():
        allowed[f] = set(PRODUCT) | set(deps) | {f}
    return allowed


def check_acyclic():
    """The product graph must be a DAG whose edges name known layers."""
    bad, state = [], {}

    def visit(f, path):
        if state.get(f) == "done":
            return
        if state.get(f) == "open":
            bad.append("layering table: cycle " + " -> ".join(path + [f]))
            return
        state[f] = "open"
        for d in PRODUCT[f]:
            if d not in PRODUCT:
                bad.append(f"layering table: {f} uses unknown layer {d}")
            else:
                visit(d, path + [f])
        state[f] = "done"

    for f in PRODUCT:
        visit(f, [])
    return bad


def folder_of(rel, folders):
    """The table folder holding path `rel` (the longest matching prefix), or None."""
    best = None
    for f in folders:
        if (rel == f or rel.startswith(f + "/")) and (best is None or len(f) > len(best)):
            best = f
    return best


def target_folder(inc, src_dir, root, folders):
    """The table folder an include names, or None for headers outside the tree (absl/, gtest/)."""
    if GENERATED.search(inc):
        return "bpf"
    for base in (root, root / src_dir):
        path = base / inc
        if path.exists():
            rel = path.resolve().relative_to(root.resolve()).parent.as_posix()
            return folder_of(rel, folders) or rel
    return None  # not in the tree: a library's header (the compiler finds a missing one of ours)


def check(root):
    allowed = layers()
    bad = check_acyclic()
    tops = sorted({f.split("/")[0] for f in allowed})
    for top in tops:
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            rel = path.relative_to(root)
            src = folder_of(rel.parent.as_posix(), allowed)
            if src is None:
                bad.append(f"{rel}: folder {rel.parent} is not in the layering table "
                           "(scripts/check-layers.py)")
                continue
            is_test = src in TESTS or bool(TEST_FILE.search(path.name))
            ok = set(allowed[src])
            if is_test:
                ok |= set(TEST_FILES_EXTRA.get(src, [])) | set(TEST_SUPPORT)
            text = path.read_text(errors="replace")
            for m in INCLUDE.finditer(text):
                inc = m.group(1)
                dst = target_folder(inc, rel.parent, root, allowed)
                if dst is None:
                    continue
                line = text.count("\n", 0, m.start()) + 1
                if dst not in ok:
                    bad.append(f"{rel}:{line}: {src} may not include {inc} ({dst})")
                elif not is_test and (dst in TESTS or TEST_FILE.search(inc)):
                    bad.append(f"{rel}:{line}: product code may not include test support {inc}")
    return bad


def self_test():
    """A made-up tree with one violation of each kind must report exactly those."""
    files = {
        "bpf/ctxagent.h": "",
        "bpf/bpf_testing.h": '#include "symbols/elf_file.h"\n',  # test support: allowed
        "symbols/elf_file.h": '#include "bpf/ctxagent.h"\n',
        "symbols/bad.cc": '#include "agent/trace/decoder.h"\n',  # upward
        "agent/lineage/lineage.h": '#include "absl/strings/str_cat.h"\n',
        "agent/trace/decoder.h": '#include "agent/lineage/lineage.h"\n#include "ctxagent_bpf.skel.h"\n',
        "agent/trace/decoder_test.cc": '#include "bpf/bpf_testing.h"\n#include "tests/e2e/util.h"\n',
        "agent/trace/probes.cc": '#include "bpf/bpf_testing.h"\n',  # product -> test support
        "agent/view/bad.h": '#include "agent/node/daemon.h"\n',  # upward
        "agent/node/daemon.h": '#include "agent/view/bad.h"\n',
        "agent/newdir/x.h": "",  # a folder the table does not place
        "tests/e2e/util.h": '#include "agent/node/daemon.h"\n',
        "tests/e2e/bad.cc": '#include "tests/web/browser.h"\n',  # test folder not allowed
        "tests/web/browser.h": "",
    }
    expected = {"symbols/bad.cc", "agent/trace/probes.cc", "agent/view/bad.h",
                "agent/newdir/x.h", "tests/e2e/bad.cc"}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        found = {b.split(":")[0] for b in check(root)}
        if found != expected:
            failures.append(f"made-up tree: reported {sorted(found)}, expected {sorted(expected)}")
    PRODUCT["symbols"].append("agent/cli")  # a cycle: agent/cli -> symbols -> agent/cli
    try:
        if not any("cycle" in b for b in check_acyclic()):
            failures.append("a cycle in the table was not reported")
    finally:
        PRODUCT["symbols"].remove("agent/cli")
    for f in failures:
        print("check-layers self-test:", f)
    print(f"check-layers self-test: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    bad = check(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    for b in bad:
        print(b)
    print(f"check-layers: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
