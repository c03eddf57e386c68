#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds ctxagent and the demo service, and attaches to it.
# Installs only what that needs (the build, one Go toolchain); scripts/test.sh installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --demo
export CC=clang CXX=clang++
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" --target ctxagent
# The newest installed toolchain builds the demo (install-deps --demo's, unless the tests' are
# there too), stripped as production binaries ship.
go=$(ls -d /usr/lib/go-1.* | sort -V | tail -n 1)/bin/go
(cd demo && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="$PWD/../build/gocache/demo" \
  "$go" build -ldflags='-s -w' -o ../build/leakysvc ./leakysvc)

./build/leakysvc &
svc=$!
trap 'kill $svc 2>/dev/null || true' EXIT
sleep 1
./build/ctxagent symbols "$svc" | head -n 6
echo
./build/ctxagent attach "$svc" --duration=20s --grace=2s --leak_after=5s
