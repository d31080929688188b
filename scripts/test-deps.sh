#!/usr/bin/env bash
# Installs the real backends the end-to-end tests run against, if missing:
# Prometheus, Alertmanager (with amtool), headless Chromium and PostgreSQL
# (the testbed's database) from Debian's packages (needs root or sudo); VictoriaLogs and toxiproxy built with go
# install into .cache/bin. `test-deps.sh etcd` installs etcd instead (make
# test-kube's API server store).
set -euo pipefail

need=()
if [ "${1:-}" = etcd ]; then
  command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
else
  command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
  # PostgreSQL for the testbed of real services (its fulfil topology).
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then

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
fi

[ "${1:-}" = etcd ] && exit 0

# Backends built from source with the Go toolchain, once, into .cache/bin:
# VictoriaLogs and toxiproxy for the reliability tests.
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.cache/bin"
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
if [ ! -x "$bin/victoria-logs" ]; then
  echo "test-deps: building victoria-logs"
  GOBIN="$bin" go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1
fi
if [ ! -x "$bin/toxiproxy-server" ]; then
  echo "test-deps: building toxiproxy"
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0
  mv "$tmp/server" "$bin/toxiproxy-server"
  rm -rf "$tmp"
fi
