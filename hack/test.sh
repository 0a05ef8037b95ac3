#!/usr/bin/env bash
# The whole of `make test`: what CI runs. Each part fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/lint.sh
hack/test-go.sh
for part in hack/test-rules.sh hack/test-chart.sh; do
  if [[ -x $part ]]; then "$part"; fi
done
