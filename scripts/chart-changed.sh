#!/usr/bin/env bash
# Exits 0 when the Helm chart (or what tests it against the API server)
# changed since the last merge on this branch's first-parent history, so .ci/run
# runs `make test-kube` only then. "Since the last merge" covers a merged
# branch (the merge commit brings all of it), commits made on top of it, and a
# fast-forward. VIGIL_KUBE_TEST=always or =never overrides the check.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${VIGIL_KUBE_TEST:-}" in
  always) echo "chart-changed: VIGIL_KUBE_TEST=always"; exit 0 ;;
  never) echo "chart-changed: VIGIL_KUBE_TEST=never"; exit 1 ;;
esac
paths=(deploy/helm e2e/kube_test.go e2e/helm_test.go scripts/kube-apiserver.sh)
merge=$(git rev-list --first-parent --merges -n 1 HEAD 2>/dev/null || true)
if [ -z "$merge" ] || ! base=$(git rev-parse -q --verify "$merge^1" 2>/dev/null); then
  echo "chart-changed: no merge base in this history; testing the chart"
  exit 0
fi
if git diff --quiet "$base" HEAD -- "${paths[@]}"; then
  echo "chart-changed: chart unchanged since $(git rev-parse --short "$base"); skipping make test-kube"
  exit 1
fi
echo "chart-changed: chart changed since $(git rev-parse --short "$base"):"
git diff --stat "$base" HEAD -- "${paths[@]}" | tail -n 1
exit 0
