#!/usr/bin/env bash
# Go tests against a real PostgreSQL (TEST_DATABASE_URL, or a throw-away
# cluster each test binary starts with initdb/pg_ctl). Fuzz seed corpora run
# as ordinary tests here.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/build.sh
export MARKETPLACE_ETL_BIN="$PWD/bin/marketplace-etl"
go test -count=1 -timeout 15m ${GO_TEST_FLAGS:-} ./...
