#!/usr/bin/env bash
# make demo: the product on an embedded default. A throw-away PostgreSQL, the
# API simulator, a backfill of the last 30 days, a daily run, and a summary
# printed from the database. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib/pg.sh
bin=$PWD/bin/marketplace-etl
[[ -x $bin ]] || hack/build.sh

cleanup() { [[ -n ${SIM_PID:-} ]] && kill "$SIM_PID" 2>/dev/null; pg_stop; }
trap cleanup EXIT

echo "==> starting a throw-away PostgreSQL"
pg_start
port=$(free_port)
echo "==> starting the Marketplace API simulator on 127.0.0.1:$port"
LOG_FORMAT=text "$bin" mockapi --listen "127.0.0.1:$port" 2>"$PG_TMP/mockapi.log" &
SIM_PID=$!
wait_http "http://127.0.0.1:$port/healthz"

export MARKETPLACE_API_URL="http://127.0.0.1:$port/data" LOG_FORMAT=${LOG_FORMAT:-text}
from=$(TZ=Europe/Moscow date -d '30 days ago' +%F)
to=$(TZ=Europe/Moscow date -d '2 days ago' +%F)
echo "==> backfill $from .. $to"
"$bin" backfill --from "$from" --to "$to"
echo "==> daily run (yesterday, plus catch-up of the last ${ETL_CATCHUP_DAYS:-7} days)"
"$bin" run
echo "==> daily run again: nothing changes"
"$bin" run

echo "==> summary"
psql "$DATABASE_URL" -X -q -P footer=off <<'SQL'
SELECT status, count(*) AS days, sum(rows_loaded) AS lines_loaded, sum(rows_rejected) AS lines_rejected
  FROM marketplace.day_loads GROUP BY status ORDER BY status;
SELECT reason, count(*) AS lines FROM marketplace.rejected_purchases GROUP BY reason ORDER BY lines DESC;
SELECT day, lines, units, revenue, round(discount_share, 3) AS discount_share, clients, round(avg_line_value, 2) AS avg_line_value
  FROM marts.daily_sales ORDER BY day DESC LIMIT 7;
SELECT segment, count(*) AS clients, sum(monetary) AS revenue
  FROM marts.client_rfm GROUP BY segment ORDER BY revenue DESC;
SELECT id, mode, range_from, range_to, status, days_loaded, days_unchanged, rows_loaded, finished_at - started_at AS took
  FROM marketplace.etl_runs ORDER BY id;
SQL
