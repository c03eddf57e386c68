#!/usr/bin/env bash
# Validates deploy/ offline, without a cluster:
#   1. renders deploy/base and every deploy/overlays/* with `kubectl kustomize`;
#   2. validates every rendered object against the Kubernetes API schemas and the Prometheus Operator
#      CRD schemas (node script deploy/validate/validate.mjs), checks that the PrometheusRule's spec
#      equals deploy/prometheus/ctxagent-rules.yml, and cross-checks DaemonSet, probes and PodMonitor;
#   3. `promtool check rules` and `promtool test rules` on deploy/prometheus/.
# Installs what is missing (Debian packages prometheus, kubernetes-client, nodejs, npm; npm packages
# from deploy/validate/package-lock.json) and is safe to run again. Needs root only to install.
#
#   scripts/validate-deploy.sh [--work-dir DIR]      validate (DIR default: build/validate-deploy)
#   scripts/validate-deploy.sh --write-prometheusrule
#       regenerate deploy/base/prometheusrule.yaml from deploy/prometheus/ctxagent-rules.yml
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$REPO/deploy"
RULES="$DEPLOY/prometheus/ctxagent-rules.yml"
RULE_TESTS="$DEPLOY/prometheus/ctxagent-rules.test.yml"
WORK="$REPO/build/validate-deploy"
WRITE_RULE=0

log() { echo "validate-deploy: $*" >&2; }
die() { echo "validate-deploy: FAILED: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --work-dir) [ $# -ge 2 ] || die "--work-dir needs a directory"; WORK="$2"; shift 2 ;;
    --work-dir=*) WORK="${1#--work-dir=}"; shift ;;
    --write-prometheusrule) WRITE_RULE=1; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

# --- tools -----------------------------------------------------------------------------------------
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "missing $*; install them (apt-get install $*) or run as root"
  command -v apt-get >/dev/null || die "missing $* and no apt-get to install them"
  log "installing $* with apt-get"
  # Installing the prometheus package must not start a Prometheus server on this machine:
  # a policy-rc.d that refuses service starts, for the duration of the install only.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && added_policy=1
  fi
  if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
    apt-get update -qq || { [ "$added_policy" = 1 ] && rm -f "$policy"; die "apt-get update failed"; }
  fi
  local ok=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 || {
    # A stale package list: refresh once and retry.
    apt-get update -qq >>"$WORK/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1
  } || ok=0
  [ "$added_policy" = 1 ] && rm -f "$policy"
  [ "$ok" = 1 ] || { tail -20 "$WORK/apt.log" >&2; die "apt-get install $* failed (log: $WORK/apt.log)"; }
}

need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v kubectl >/dev/null || need+=(kubernetes-client)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
for t in promtool kubectl node npm; do command -v "$t" >/dev/null || die "$t not found after installing"; done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  die "node $(node --version) is too old (>= 18 needed)"
kubectl kustomize --help >/dev/null 2>&1 || die "this kubectl has no 'kustomize' subcommand"

# --- node validator: a copy of deploy/validate with its dependencies, in the work dir ---------------
VDIR="$WORK/validator"
mkdir -p "$VDIR"
cp "$DEPLOY/validate/package.json" "$DEPLOY/validate/package-lock.json" "$DEPLOY/validate/validate.mjs" "$VDIR/"
[ -f "$DEPLOY/validate/.npmrc" ] && cp "$DEPLOY/validate/.npmrc" "$VDIR/"
stamp="$(cat "$VDIR/package-lock.json" "$VDIR/package.json" | sha256sum | cut -d' ' -f1)"
if [ ! -d "$VDIR/node_modules" ] || [ "$(cat "$VDIR/.installed" 2>/dev/null)" != "$stamp" ]; then
  log "npm ci (deploy/validate/package-lock.json) into $VDIR"
  (cd "$VDIR" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1) ||
    { tail -20 "$WORK/npm.log" >&2; die "npm ci failed (log: $WORK/npm.log)"; }
  echo "$stamp" > "$VDIR/.installed"
fi

if [ "$WRITE_RULE" = 1 ]; then
  node "$VDIR/validate.mjs" --rules "$RULES" --write-prometheusrule "$DEPLOY/base/prometheusrule.yaml"
  exit 0
fi

# --- 1. render ---------------------------------------------------------------------------------------
rendered=()
kustomizations=("$DEPLOY/base")
for d in "$DEPLOY"/overlays/*/; do kustomizations+=("${d%/}"); done
[ ${#kustomizations[@]} -ge 2 ] || die "no overlays under deploy/overlays"
mkdir -p "$WORK/rendered"
for k in "${kustomizations[@]}"; do
  name="${k#"$DEPLOY"/}"
  out="$WORK/rendered/${name//\//_}.yaml"
  if ! kubectl kustomize "$k" >"$out" 2>"$out.err"; then
    cat "$out.err" >&2
    die "kubectl kustomize deploy/$name failed"
  fi
  # Fields kept for old kubectl (bases, patchesJson6902) draw deprecation warnings from new ones.
  grep -v "^# Warning: '[A-Za-z0-9]*' is deprecated" "$out.err" >&2 || true
  log "rendered deploy/$name -> $out"
  rendered+=("$out")
done

# --- 2. schemas and consistency ----------------------------------------------------------------------
if ! node "$VDIR/validate.mjs" --rules "$RULES" "${rendered[@]}" >"$WORK/validate.out"; then
  cat "$WORK/validate.out" >&2
  die "rendered manifests are not valid (see INVALID lines above)"
fi
objects="$(sed -n 's/^objects \([0-9]*\)$/\1/p' "$WORK/validate.out")"
[ -n "$objects" ] && [ "$objects" -gt 0 ] || die "the validator validated no objects"

# --- 3. rules ----------------------------------------------------------------------------------------
promtool check rules "$RULES" >"$WORK/promtool-check.out" 2>&1 ||
  { cat "$WORK/promtool-check.out" >&2; die "promtool check rules $RULES"; }
promtool test rules "$RULE_TESTS" >"$WORK/promtool-test.out" 2>&1 ||
  { cat "$WORK/promtool-test.out" >&2; die "promtool test rules $RULE_TESTS"; }
rule_count="$(sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p' "$WORK/promtool-check.out")"

echo "validate-deploy: ${#kustomizations[@]} kustomizations (base + $(( ${#kustomizations[@]} - 1 )) overlays), $objects objects valid, rules OK (${rule_count:-?} alerts, unit tests pass)"
