#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages, Go toolchains), builds everything and runs every test.
# Needs root: uprobes and BPF tests run for real.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --all
export CC=clang CXX=clang++
# BUILD_TESTING explicitly: scripts/demo.sh leaves it OFF in a shared build tree's cache.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
