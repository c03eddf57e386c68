#!/usr/bin/env bash
# Installs everything ctxagent builds and tests with, from Debian packages only.
# Idempotent: when every package is already present it returns in about a second.
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "install-deps: run as root (apt-get)" >&2; exit 1; }

BUILD_PKGS=(cmake make g++ clang llvm python3 bpftool libelf-dev zlib1g-dev libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libzydis-dev libdw-dev nlohmann-json3-dev
  libclang-rt-14-dev clang-format pkg-config prometheus libmicrohttpd-dev
  # The web page's and terminal view's tests: headless Chromium (run --no-sandbox as root), fonts
  # for its screenshots, tmux for the terminal sizes.
  chromium fonts-dejavu-core tmux)
# libbpf >= 1.3 (uprobe_multi links, see agent/trace/tracer.h); bookworm has 1.1.
LIBBPF_SUITE=bookworm-backports
LIBBPF_MIN=1:1.3
# Go toolchains the tests build fixtures with, and the suite each comes from.
declare -A GO_SUITES=([1.19]=bookworm [1.21]=bookworm-backports [1.22]=bookworm-backports
  [1.23]=bookworm-backports [1.24]=trixie [1.26]=sid [1.27]=sid)

missing=()
for p in "${BUILD_PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
for v in "${!GO_SUITES[@]}"; do [[ -x /usr/lib/go-$v/bin/go ]] || missing+=("golang-$v-go"); done
libbpf=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || true)
dpkg --compare-versions "${libbpf:-0}" ge "$LIBBPF_MIN" || missing+=(libbpf-dev)
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi
echo "install-deps: installing ${missing[*]}"

# Extra suites, pinned low so that only packages asked for by -t come from them.
src=/etc/apt/sources.list.d/ctxagent-go.sources
if [[ ! -f $src ]]; then
  cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie sid
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
apt-get install -y -qq --no-install-recommends "${BUILD_PKGS[@]}" >/dev/null
apt-get install -y -qq --no-install-recommends -t "$LIBBPF_SUITE" libbpf-dev libbpf1 >/dev/null
for v in "${!GO_SUITES[@]}"; do
  [[ -x /usr/lib/go-$v/bin/go ]] && continue
  suite=${GO_SUITES[$v]}
  if [[ $suite == bookworm ]]; then
    apt-get install -y -qq --no-install-recommends "golang-$v-go" >/dev/null
  else
    apt-get install -y -qq --no-install-recommends -t "$suite" "golang-$v-go" >/dev/null
  fi
done
echo "install-deps: done"
