#!/usr/bin/env bash
# The whole of `make test`: what CI runs. Each part fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/lint.sh
hack/test-go.sh
# the image, built and checked without a container engine, into a throw-away directory
image_dir=$(mktemp -d); trap 'rm -rf "$image_dir"' EXIT
IMAGE_DIR=$image_dir hack/image.sh
for part in hack/test-rules.sh hack/test-chart.sh; do
  if [[ -x $part ]]; then "$part"; fi
done
