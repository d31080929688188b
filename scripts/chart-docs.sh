#!/usr/bin/env bash
# Writes a chart's README.md with helm-docs from its README.md.gotmpl and the
# `# --` comments of its values.yaml, or with -check fails when README.md is
# not what helm-docs would write (and changes nothing).
# Usage: scripts/chart-docs.sh [-check] [CHART_DIR]  (default deploy/helm/vigil)
# HELM_DOCS names the helm-docs binary (make chart-docs builds the pinned one).
set -euo pipefail

check=false
if [ "${1:-}" = "-check" ]; then
  check=true
  shift
fi
chart="${1:-deploy/helm/vigil}"
helm_docs="${HELM_DOCS:?set HELM_DOCS to the helm-docs binary (make chart-docs builds it)}"

# helm-docs falls back to its default template when the named one is missing.
if [ ! -f "$chart/Chart.yaml" ] || [ ! -f "$chart/README.md.gotmpl" ]; then
  echo "chart-docs: $chart needs Chart.yaml and README.md.gotmpl" >&2
  exit 1
fi

out="$(mktemp)"
errs="$(mktemp)"
trap 'rm -f "$out" "$errs"' EXIT

# -d prints the README to stdout. helm-docs logs a values.yaml it cannot parse
# or a template error as a warning and still exits 0, so any log line fails.
# -s file: the table follows values.yaml's order, not the alphabet.
"$helm_docs" -d -c "$chart" -t README.md.gotmpl -s file -l warning >"$out" 2>"$errs" || {
  cat "$errs" >&2
  exit 1
}
if [ -s "$errs" ]; then
  echo "chart-docs: helm-docs reported problems:" >&2
  cat "$errs" >&2
  exit 1
fi

if ! $check; then
  cp "$out" "$chart/README.md"
  exit 0
fi
if ! diff -u --label "$chart/README.md" --label "generated from values.yaml" "$chart/README.md" "$out" >&2; then
  echo "chart-docs: $chart/README.md is not current with values.yaml and README.md.gotmpl; run make chart-docs and commit it" >&2
  exit 1
fi
