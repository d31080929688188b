#!/usr/bin/env bash
# Builds real Kubernetes components (k8s.io/kubernetes v1.37.2) into the
# gitignored cache: kube-apiserver for the chart's API-server test (make
# test-kube), and with arguments the others a one-node cluster needs (make
# test-node): scripts/kube-apiserver.sh kube-apiserver kube-controller-manager
# kube-scheduler kubelet kube-proxy. About 9 minutes cold on 2 cores for the API server,
# a few more for the rest (they share most packages); a no-op for binaries
# already there.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod points
# its 33 staging modules (k8s.io/api, k8s.io/apiserver, ...) at ./staging. A
# scratch module requires it and replaces each staging module with its
# published v0.37.x release, read from kubernetes' own go.mod so the list
# cannot drift.
set -euo pipefail
K8S_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KUBE_CACHE:-$root/.cache}"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver)
missing=()
for c in "${components[@]}"; do
  bin="$cache/bin/$c"
  if ! { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$K8S_VERSION"; }; then
    missing+=("$c")
  fi
done
[ ${#missing[@]} -gt 0 ] || exit 0
export GOFLAGS=-mod=mod
mod="$cache/kube-apiserver-mod"
mkdir -p "$mod" "$cache/bin"
cd "$mod"
cat > go.mod <<GOMOD
module vigil.local/kubeapiserver

go 1.26.0

require k8s.io/kubernetes $K8S_VERSION
GOMOD
{
  printf '//go:build tools\n\npackage tools\n\nimport (\n'
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"
  done
  printf ')\n'
} > tools.go
kmod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$kmod")
n=$(echo "$staging" | wc -w)
if [ "$n" -lt 30 ]; then
  echo "kube-apiserver.sh: found only $n staging modules in $kmod" >&2
  exit 1
fi
for m in $staging; do
  go mod edit -replace "$m=$m@$STAGING_VERSION"
done
go mod tidy -e >/dev/null 2>&1 || true
pkgs=()
for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
# One go build for all: the shared packages compile once.
go build -trimpath -o "$cache/bin/" -ldflags "-s -w \
  -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=37" \
  "${pkgs[@]}"
for c in "${missing[@]}"; do
  echo "kube-apiserver.sh: built $cache/bin/$c ($("$cache/bin/$c" --version))"
done
