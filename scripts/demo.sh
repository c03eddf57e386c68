#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds ctxagent and runs it on the bundled demo Go program.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CC=clang CXX=clang++
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ctxagent go_fixture_ctxprog
# A stripped binary, as production services ship: no symbol table, no DWARF.
./build/ctxagent symbols build/go_fixtures/ctxprog/go1.27/stripped
