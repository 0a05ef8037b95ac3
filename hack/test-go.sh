#!/usr/bin/env bash
# Every Go test: the in-process ones, those against a real PostgreSQL
# (TEST_DATABASE_URL, or a throw-away cluster each test binary starts with
# initdb/pg_ctl), the binary end to end, and those that run the pinned
# helm, promtool and pushgateway of ./bin (installed first). Fuzz seed
# corpora run as ordinary tests here.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/tools.sh
export PATH="$PWD/bin:$PATH"
hack/build.sh
export MARKETPLACE_ETL_BIN="$PWD/bin/marketplace-etl"
go test -count=1 -timeout 15m ${GO_TEST_FLAGS:-} ./...
