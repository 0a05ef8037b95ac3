#!/usr/bin/env bash
# Runs every `go test -fuzz` target of the module for FUZZTIME each (default
# 30s). A crasher is written by Go to <package>/testdata/fuzz/<Target>/ and
# from then on runs as a regression test in every `make test`: commit it with
# the fix. Exit status: non-zero when any target found a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
failed=()
total=0
for pkg in $(go list ./...); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for target in $targets; do
    total=$((total + 1))
    echo "== $pkg $target ($FUZZTIME)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"; then
      failed+=("$pkg $target")
    fi
  done
done
if [[ $total -eq 0 ]]; then
  echo "no fuzz targets found" >&2
  exit 1
fi
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing found failures (crashers kept under testdata/fuzz):" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzzed $total targets for $FUZZTIME each: no failure"
