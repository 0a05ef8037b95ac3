#!/usr/bin/env bash
# make bench: marketplace-etl against the limit (psql \copy of the same rows)
# and the original's loader (multi-row INSERT of 100 rows in autocommit), in
# one run on the same data, on a throw-away PostgreSQL tuned like a small
# server. See docs/benchmarks.md.
#
#   DAYS=30 ROWS=50000   backfill size (1.5 M lines)
#   ROWS_BIG=1000000     lines of the one big day (peak RSS must stay flat)
#   DAILY_ROWS=5500      lines of a normal day (the daily pass)
#   REPEAT=3             runs of every figure; the median is reported
#   OUT=bin/bench-results.json
#   BIN=bin/marketplace-etl (built by make bench)
#   KEEP=1               keep the scratch directory (the product's JSON logs)
#
# Quick run: DAYS=3 ROWS=20000 ROWS_BIG=200000 REPEAT=1 make bench
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib/pg.sh

export DAYS=${DAYS:-30} ROWS=${ROWS:-50000} ROWS_BIG=${ROWS_BIG:-1000000} DAILY_ROWS=${DAILY_ROWS:-5500} REPEAT=${REPEAT:-3}
export OUT=${OUT:-$PWD/bin/bench-results.json}
export BIN=${BIN:-$PWD/bin/marketplace-etl}
[[ -x $BIN ]] || hack/build.sh
mkdir -p "$(dirname "$OUT")"

SIM_PIDS=""
WORK=""
cleanup() {
  for pid in $SIM_PIDS; do kill "$pid" 2>/dev/null || true; done
  for pid in $SIM_PIDS; do wait "$pid" 2>/dev/null || true; done
  pg_stop
  if [[ -n $WORK && -z ${KEEP:-} ]]; then rm -rf "$WORK"; elif [[ -n $WORK ]]; then echo "kept $WORK" >&2; fi
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WORK=$(mktemp -d /tmp/marketplace-bench.XXXXXX)
export WORK
echo "==> building the benchmark driver"
go build -o "$WORK/bench" ./hack/bench
# A private copy: a rebuild of bin/ during the run must not swap the binary.
cp "$BIN" "$WORK/marketplace-etl"
BIN=$WORK/marketplace-etl

# The same server for every contender: a small production-like setup
# (durable commits, WAL on, checkpoints spread out, 256 MB of buffers).
PG_EXTRA_OPTS="-c shared_buffers=256MB -c work_mem=16MB -c maintenance_work_mem=256MB \
  -c wal_buffers=16MB -c max_wal_size=8GB -c min_wal_size=1GB -c checkpoint_timeout=30min \
  -c checkpoint_completion_target=0.9 -c effective_cache_size=1GB -c random_page_cost=1.1 \
  -c synchronous_commit=on -c fsync=on -c full_page_writes=on -c wal_level=replica \
  -c max_parallel_workers_per_gather=2 -c jit=off -c autovacuum=off"
export PG_EXTRA_OPTS
echo "==> starting a throw-away PostgreSQL"
pg_start
PG_PID=$(head -1 "$PG_TMP/data/postmaster.pid")
export PG_PID

start_sim() { # rows-per-day -> sets SIM_URL
  local port
  port=$(free_port)
  LOG_FORMAT=json LOG_LEVEL=warn "$BIN" mockapi --listen "127.0.0.1:$port" --rows-per-day "$1" \
    2>>"$WORK/mockapi.log" &
  SIM_PIDS="$SIM_PIDS $!"
  wait_http "http://127.0.0.1:$port/healthz"
  SIM_URL="http://127.0.0.1:$port/data"
}
echo "==> starting the simulators ($ROWS, $ROWS_BIG and $DAILY_ROWS lines per day)"
start_sim "$ROWS"; export API_URL=$SIM_URL
start_sim "$ROWS_BIG"; export API_URL_BIG=$SIM_URL
start_sim "$DAILY_ROWS"; export API_URL_DAILY=$SIM_URL
export SIM_PIDS

echo "==> nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$WORK/bench"
