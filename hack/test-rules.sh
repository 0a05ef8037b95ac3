#!/usr/bin/env bash
# promtool check + unit tests of the alert rules (charts/marketplace/files).
# promtool is the pinned one hack/tools.sh installs into ./bin.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/tools.sh
promtool=bin/promtool
files=charts/marketplace/files
"$promtool" check rules "$files/alerts.rules.yaml"
# The tests run on a copy whose placeholders hold what the chart renders for release "mp" in
# namespace "etl" (the chart's own substitution is checked in tests/prometheusrule_test.yaml).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e 's/${NAMESPACE}/etl/g' -e 's/${RELEASE}/mp/g' -e 's/${CRONJOB}/mp-marketplace-daily/g' \
  -e 's/${BACKFILL_JOB_PREFIX}/mp-marketplace-backfill-/g' -e 's/${BACKFILL_CRONJOB}/mp-marketplace-backfill/g' \
  "$files/alerts.rules.yaml" >"$tmp/alerts.rules.yaml"
if grep -n '${' "$tmp/alerts.rules.yaml"; then
  echo "test-rules: a placeholder of alerts.rules.yaml is not substituted above (and probably not by the chart)" >&2
  exit 1
fi
cp "$files/alerts.test.yaml" "$tmp/"
"$promtool" check rules "$tmp/alerts.rules.yaml"
"$promtool" test rules "$tmp/alerts.test.yaml"
# `promtool check metrics` on the pushed metrics runs in the Go tests of
# internal/metrics (TestPushes, TestGrafanaDashboard, TestPushgateway).
echo "test-rules: alert rules OK"
