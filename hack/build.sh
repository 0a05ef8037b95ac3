#!/usr/bin/env bash
# Builds bin/marketplace-etl: static, trimmed, version stamped.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
mkdir -p bin
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/marketplace-etl/marketplace-etl/internal/cli.version=${version}" \
  -o bin/marketplace-etl ./cmd/marketplace-etl
