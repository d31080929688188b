#!/usr/bin/env bash
# Installs the real backends the end-to-end tests run against, if missing:
# Prometheus, Alertmanager (with amtool) and headless Chromium from Debian's
# packages. Needs root (or sudo). `test-deps.sh etcd` installs etcd instead
# (make test-kube's API server store).
set -euo pipefail

need=()
if [ "${1:-}" = etcd ]; then
  command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
else
  command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "test-deps: need root to install ${need[*]} (apt-get); install them and re-run" >&2
    exit 1
  fi
fi
echo "test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${need[@]}"
