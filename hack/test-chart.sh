#!/usr/bin/env bash
# Chart tests (part of `make test`): helm lint --strict with the default values and every
# charts/marketplace/ci/*.yaml, the check that charts/marketplace/README.md is generated from the
# current values.yaml (go run ./hack/chartdocs), the helm-unittest suites under
# charts/marketplace/tests/, and the Go tests of internal/chart: the chart rendered and every manifest
# strictly decoded into the Kubernetes API types, and the PostgreSQL init script run on a real
# PostgreSQL with each role's privileges checked.
# Installs the pinned tools into ./bin first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/tools.sh
export HELM_BIN=${HELM_BIN:-$PWD/bin/helm}
chart=charts/marketplace

echo "chart: helm lint --strict" >&2
"$HELM_BIN" lint --strict "$chart" --quiet
for values in "$chart"/ci/*.yaml; do
  "$HELM_BIN" lint --strict "$chart" --quiet --values "$values"
done

echo "chart: README.md generated from values.yaml" >&2
go run ./hack/chartdocs -check -chart "$chart"

echo "chart: helm-unittest" >&2
bin/helm-unittest --strict --color=false "$chart"

echo "chart: strict decoding of the rendered manifests" >&2
go test -count=1 ./internal/chart/
