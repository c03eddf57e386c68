#!/usr/bin/env python3
"""Product code size limits (issue 9): no function over 100 lines, no source file over 600 lines,
in agent/, symbols/ and bpf/ (tests and fuzzers aside). Prints each violation; exits 1 if any.

Functions are found by brace structure after comments, strings and preprocessor lines are blanked:
a `{` whose preceding declaration ends in `)` (optionally `const`, `override`, `noexcept`, a trailing
return type or a constructor's initializer list) at namespace or class scope opens a function body.
"""
import pathlib
import re
import sys

MAX_FUNCTION_LINES = 100
MAX_FILE_LINES = 600
ROOTS = ("agent", "symbols", "bpf")
SKIP = re.compile(r"(_test\.cc|_fuzzer\.cc|test_fixtures\.(cc|h)|bpf_testing\.(cc|h))$")


def blank(text):
    """Comments, string/char literals and preprocessor lines replaced by spaces, newlines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i) or (c == "#" and (i == 0 or text[i - 1] == "\n")):
            j = text.find("\n", i)
            while c == "#" and j > 0 and text[j - 1] == "\\":
                j = text.find("\n", j + 1)
            j = n if j < 0 else j
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (j + 1 - i))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


FUNC_TAIL = re.compile(
    r"\)\s*(const)?\s*(noexcept)?\s*(override|final)?\s*(->\s*[\w:<>,\s\*&]+)?\s*$"
    r"|\)\s*:\s*[\w:]+[({].*$",
    re.S)


def functions(text):
    """(name, first line, last line) of each function body."""
    code = blank(text)
    stack, found, decl_start = [], [], 0
    for i, c in enumerate(code):
        if c in ";":
            decl_start = i + 1
        elif c == "{":
            decl = code[decl_start:i]
            scope = "other"
            if all(s[0] in ("ns", "type") for s in stack):
                if re.search(r"\bnamespace\b|extern\s*$", decl):
                    scope = "ns"
                elif re.search(r"\b(class|struct|union|enum)\b[^()]*$", decl):
                    scope = "type"
                elif FUNC_TAIL.search(decl.strip()):
                    scope = "func"
            stack.append((scope, i, decl))
            decl_start = i + 1
        elif c == "}":
            if stack:
                scope, start, decl = stack.pop()
                if scope == "func":
                    name = re.findall(r"([~\w:]+)\s*\(", decl)
                    found.append((name[0] if name else "?", code.count("\n", 0, start) + 1,
                                  code.count("\n", 0, i) + 1))
            decl_start = i + 1
    return found


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    bad = []
    for top in ROOTS:
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in (".cc", ".h", ".c") or SKIP.search(path.name):
                continue
            text = path.read_text(errors="replace")
            lines = text.count("\n")
            rel = path.relative_to(root)
            if lines > MAX_FILE_LINES:
                bad.append(f"{rel}: {lines} lines (limit {MAX_FILE_LINES})")
            for name, first, last in functions(text):
                if last - first + 1 > MAX_FUNCTION_LINES:
                    bad.append(f"{rel}:{first}: {name} is {last - first + 1} lines "
                               f"(limit {MAX_FUNCTION_LINES})")
    for b in bad:
        print(b)
    print(f"check-sizes: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
