#!/usr/bin/env bash
# Every C/C++ source under git is formatted as .clang-format says (Google, 100 columns).
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
git ls-files agent symbols bpf bench tests | grep -E '\.(cc|h|c)$' |
  xargs clang-format --dry-run -Werror
