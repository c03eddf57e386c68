#!/usr/bin/env bash
# Installs what ctxagent needs, from Debian packages only.
#   install-deps.sh [--demo | --all] [--dry-run]
#   --demo     the build and one Go toolchain for the demo service (scripts/demo.sh)
#   --all      (default) that and what the tests add: every fixture toolchain, GoogleTest, Chromium,
#              Prometheus, tmux, the fuzzer runtime, clang-format (scripts/test.sh, CI)
#   --dry-run  print what would be installed, from which suite, and change nothing
# Idempotent: when every package is already present it returns in about a second.
set -euo pipefail

mode=all dry_run=0
for arg in "$@"; do
  case $arg in
    --demo) mode=demo ;;
    --all) mode=all ;;
    --dry-run) dry_run=1 ;;
    *) echo "usage: install-deps.sh [--demo | --all] [--dry-run]" >&2; exit 2 ;;
  esac
done

# The agent's build (cmake with -DBUILD_TESTING=OFF configures with these alone).
BUILD_PKGS=(cmake make g++ clang bpftool libelf-dev zlib1g-dev libabsl-dev prometheus-cpp-dev
  libzydis-dev libdw-dev nlohmann-json3-dev pkg-config libmicrohttpd-dev)
# What the tests add: GoogleTest, libFuzzer's runtime, the style checks, the daemon's end-to-end
# test's own Prometheus server; for the web page's and terminal view's tests headless Chromium (run
# --no-sandbox as root), fonts for its screenshots, tmux for the terminal sizes, and caddy (a real
# server built by Debian, go1.19, stripped) that tests/e2e/real_servers_test traces.
TEST_PKGS=(libgtest-dev libgmock-dev libclang-rt-14-dev llvm python3 clang-format prometheus
  chromium fonts-dejavu-core tmux caddy)
# libbpf >= 1.3 (uprobe_multi links, see agent/trace/tracer.h); bookworm has 1.1.
LIBBPF_SUITE=bookworm-backports
LIBBPF_MIN=1:1.3
# Go toolchains the tests build fixtures with, and the suite each comes from.
declare -A GO_SUITES=([1.19]=bookworm [1.21]=bookworm-backports [1.22]=bookworm-backports
  [1.23]=bookworm-backports [1.24]=trixie [1.26]=sid [1.27]=sid)
# The demo's: the newest in bookworm-backports, which libbpf needs anyway (46 MB with its sources;
# bookworm's own 1.19 is 81 MB). demo/go.mod asks for 1.19 or later.
DEMO_GO=1.23

pkgs=("${BUILD_PKGS[@]}") go_versions=("$DEMO_GO")
if [[ $mode == all ]]; then
  pkgs+=("${TEST_PKGS[@]}")
  go_versions=("${!GO_SUITES[@]}")
fi

# What is missing, per suite ("bookworm": the machine's own sources, no -t).
declare -A missing=()
add() { missing[$1]+=" $2"; }
# One dpkg-query for them all (it exits 1 when it knows a name not at all).
present=" $(dpkg-query -W -f='${db:Status-Abbrev}${Package}\n' "${pkgs[@]}" 2>/dev/null |
  awk '/^ii/ {printf "%s ", $2}' || true)"
for p in "${pkgs[@]}"; do [[ $present == *" $p "* ]] || add bookworm "$p"; done
for v in "${go_versions[@]}"; do [[ -x /usr/lib/go-$v/bin/go ]] || add "${GO_SUITES[$v]}" "golang-$v-go"; done
libbpf=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || true)
dpkg --compare-versions "${libbpf:-0}" ge "$LIBBPF_MIN" || add "$LIBBPF_SUITE" "libbpf-dev libbpf1"
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi

suites=(bookworm bookworm-backports trixie sid)  # install order: the machine's own suite first
for s in "${suites[@]}"; do
  if [[ -n ${missing[$s]:-} ]]; then echo "install-deps ($mode): $s:${missing[$s]}"; fi
done
if [[ $dry_run -eq 1 ]]; then exit 0; fi
[[ $(id -u) -eq 0 ]] || { echo "install-deps: run as root (apt-get)" >&2; exit 1; }

# Extra suites, pinned low so that only packages asked for by -t come from them. Only the suites
# something comes from are listed: each adds its package index to every apt-get update (trixie's
# and sid's are tens of MB). The list only grows: a machine set up for the tests keeps them all.
src=/etc/apt/sources.list.d/ctxagent-go.sources
listed=$(sed -n 's/^Suites: //p' "$src" 2>/dev/null || true)
wanted=$listed
for s in "${suites[@]:1}"; do
  if [[ -n ${missing[$s]:-} && " $wanted " != *" $s "* ]]; then wanted="${wanted:+$wanted }$s"; fi
done
if [[ $wanted != "$listed" ]]; then
  cat >"$src" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $wanted
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/ctxagent-go <<'PIN'
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 50

Package: *
Pin: release n=trixie
Pin-Priority: 40

Package: *
Pin: release n=sid
Pin-Priority: 30
PIN
fi
export DEBIAN_FRONTEND=noninteractive
# The prometheus package (the daemon's end-to-end test runs its own server) must not start a
# Prometheus service on this machine: a policy-rc.d that refuses service starts, for this run only.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
for s in "${suites[@]}"; do
  [[ -n ${missing[$s]:-} ]] || continue
  target=()
  [[ $s == bookworm ]] || target=(-t "$s")
  # shellcheck disable=SC2086  # the list is space-separated package names
  apt-get install -y -qq --no-install-recommends "${target[@]}" ${missing[$s]} >/dev/null
done
echo "install-deps: done"
