#!/usr/bin/env bash
# Runs every Fuzz* test of the module for FUZZTIME each (default 10s) and
# prints one line per target with the executions the fuzzer made; a crash
# fails the run and leaves the input in the package's testdata/fuzz.
# Usage: scripts/fuzz.sh [FUZZTIME]   (FUZZTIME as go test -fuzztime: 10s, 1m, 5000x)
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-${FUZZTIME:-10s}}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
total=0
printf '%-58s %-26s %12s %s\n' package target execs result
# Every package with a Fuzz function, from the test files themselves.
while IFS= read -r line; do
  file="${line%%:*}"
  name="$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"${line#*:}")"
  pkg="$(dirname "$file")"
  log="$out/$(tr '/.' '__' <<<"$pkg")_$name.log"
  # Minimizing an interesting input can take a minute of the budget; cap it.
  # Go 1.26's fuzz coordinator can report "context deadline exceeded" when
  # -fuzztime expires while a worker is mid-call (golang/go#75804, fixed in
  # Go 1.27); that failure writes no input. Such a run is retried once, and
  # counted as a flake (not a failure) only if the retry ends the same way. A
  # real finding always prints "Failing input written to" and fails.
  result=FAIL
  for attempt in 1 2; do
    if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s "$pkg" >"$log" 2>&1; then
      result=ok
      break
    fi
    if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"; then
      result="flake(go#75804)"
      continue
    fi
    result=FAIL
    break
  done
  [ "$result" = FAIL ] && status=1
  # The last progress line has the cumulative count: "execs: 123456 (...)".
  execs="$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)"
  execs="${execs:-0}"
  total=$((total + execs))
  printf '%-58s %-26s %12s %s\n' "$pkg" "$name" "$execs" "$result"
  if [ "$result" != ok ]; then
    tail -40 "$log"
  fi
done < <(grep -rEn --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . \
  | grep -v '^./.cache/' | sed -E 's/^([^:]+):[0-9]+:/\1:/' | sort)
echo "fuzz: ${total} executions in all, ${fuzztime} per target"
exit $status
