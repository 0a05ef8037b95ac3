#!/usr/bin/env bash
# promtool check + unit tests of the alert rules (charts/marketplace/files).
# promtool comes from Debian's prometheus package.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null; then
  echo "test-rules: promtool not found: install Debian's prometheus package (apt-get install prometheus)" >&2
  exit 1
fi
files=charts/marketplace/files
promtool check rules "$files/alerts.rules.yaml"
promtool test rules "$files/alerts.test.yaml"
# `promtool check metrics` on the pushed metrics runs in the Go tests of
# internal/metrics (TestExpositionPassesPromtool, TestPushgateway).
echo "test-rules: alert rules OK"
