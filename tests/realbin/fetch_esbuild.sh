#!/usr/bin/env bash
# Downloads the esbuild releases listed in esbuild_versions.txt from npm and extracts each binary to
# <outdir>/<go version>/esbuild. Idempotent: a binary already in place is not fetched again.
# Every tarball is checked against the pinned npm sha512 integrity before it is extracted.
#
#   usage: fetch_esbuild.sh <outdir> [versions-file]
set -euo pipefail

die() { echo "fetch_esbuild: error: $*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 <outdir> [versions-file]"
outdir=$1
list=${2:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/esbuild_versions.txt"}
[[ -r $list ]] || die "cannot read version list $list"
command -v npm >/dev/null || die "npm not found (needed to download esbuild from the npm registry)"
command -v openssl >/dev/null || die "openssl not found (needed to verify the sha512 integrity)"

mkdir -p "$outdir" || die "cannot create $outdir"
outdir=$(cd "$outdir" && pwd)
tmp=$(mktemp -d "$outdir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fetched=0 cached=0
while read -r spec gover integrity rest; do
  [[ -z ${spec:-} || $spec == \#* ]] && continue
  [[ -n ${integrity:-} && -z ${rest:-} ]] || die "$list: malformed line: $spec $gover $integrity $rest"
  [[ $gover =~ ^go1\.[0-9]+ ]] || die "$list: bad Go version '$gover' for $spec"
  [[ $integrity == sha512-* ]] || die "$list: $spec: only sha512-<base64> integrity is supported"

  dest=$outdir/$gover/esbuild
  # Skip when this exact package already produced the binary (SOURCE records which one did).
  if [[ -x $dest && -s $dest && "$(cat "$outdir/$gover/SOURCE" 2>/dev/null)" == "$spec $integrity" ]]; then
    cached=$((cached + 1))
    continue
  fi

  # npm names the tarball <name without @, / -> ->-<version>.tgz
  name=${spec%@*} version=${spec##*@}
  tarball=$tmp/$(echo "${name#@}" | tr / -)-$version.tgz
  echo "fetch_esbuild: npm pack $spec ($gover)"
  if ! npm pack "$spec" --pack-destination "$tmp" --silent >"$tmp/pack.log" 2>&1; then
    cat "$tmp/pack.log" >&2
    die "npm pack $spec failed (is the npm registry reachable?)"
  fi
  [[ -f $tarball ]] || die "npm pack $spec did not produce $tarball"

  actual=sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)
  [[ $actual == "$integrity" ]] ||
    die "$spec: integrity mismatch: expected $integrity, got $actual"

  rm -rf "$tmp/x" && mkdir "$tmp/x"
  tar -xzf "$tarball" -C "$tmp/x" package/bin/esbuild ||
    die "$spec: tarball has no package/bin/esbuild"
  chmod 0755 "$tmp/x/package/bin/esbuild"
  touch "$tmp/x/package/bin/esbuild"  # npm tarballs carry 1985 mtimes; keep make dependency checks sane
  mkdir -p "$outdir/$gover"
  rm -f "$outdir/$gover/SOURCE"
  mv -f "$tmp/x/package/bin/esbuild" "$dest"  # atomic: a partial file is never left at $dest
  echo "$spec $integrity" >"$outdir/$gover/SOURCE"
  rm -f "$tarball"
  fetched=$((fetched + 1))
done <"$list"

echo "fetch_esbuild: $fetched fetched, $cached already present in $outdir"
