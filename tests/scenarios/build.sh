#!/bin/sh
# build.sh OUTDIR: build every scenario with every installed Go toolchain into OUTDIR/go<v>/<name>.
# One `go build` per toolchain; GOCACHE and GOPATH live under OUTDIR; a binary newer than every source
# file of the module is not rebuilt. Toolchains: /usr/lib/go-<v>/bin/go for GO_VERSIONS (override in the env).
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")" && pwd)
versions=${GO_VERSIONS:-"1.19 1.21 1.22 1.23 1.24 1.26 1.27"}

# Scenarios: directories holding a main.go (internal/ holds shared code only).
scenarios=$(cd "$src" && for d in */main.go; do dirname "$d"; done | sort)
# Every scenario imports internal/harness, so any source change rebuilds everything.
newest=$(cd "$src" && ls -t go.mod $(find . -name '*.go') | head -n 1)

export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 GOPATH="$out/gopath"
built=0 skipped=0 failed=0
for v in $versions; do
	gobin=/usr/lib/go-$v/bin/go
	if [ ! -x "$gobin" ]; then
		echo "go$v: not installed ($gobin), skipped" >&2
		continue
	fi
	mkdir -p "$out/go$v"
	stale=0
	for s in $scenarios; do
		bin=$out/go$v/$s
		if [ ! -f "$bin" ] || [ -n "$(find "$src/$newest" -newer "$bin")" ]; then stale=1; fi
	done
	if [ "$stale" -eq 0 ]; then
		skipped=$((skipped + 1))
		continue
	fi
	# One go command per toolchain builds every program, compiling and linking in parallel.
	echo "go$v build $(echo $scenarios | wc -w) scenarios"
	if (cd "$src" && GOCACHE="$out/gocache/go$v" "$gobin" build -o "$out/go$v/" ./...); then
		touch "$out/go$v"/*
		built=$((built + 1))
	else
		echo "go$v: FAILED" >&2
		failed=$((failed + 1))
	fi
done
echo "toolchains: built $built, up to date $skipped, failed $failed"
[ "$failed" -eq 0 ]
