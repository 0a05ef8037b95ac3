# Sourced by hack scripts: start a throw-away PostgreSQL cluster from the
# server binaries on PATH (as the postgres user when run as root) and stop it
# on exit. Sets PG_TMP, PG_PORT and DATABASE_URL.
pg_start() {
  local initdb pgctl
  initdb=$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1)
  pgctl=$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | tail -1)
  if [[ -z $initdb || -z $pgctl ]]; then
    echo "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql" >&2
    return 1
  fi
  PG_TMP=$(mktemp -d /tmp/marketplace-pg.XXXXXX)
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
  local as=()
  if [[ $(id -u) == 0 ]]; then
    chown postgres "$PG_TMP"
    as=(runuser -u postgres --)
  fi
  (cd /tmp && "${as[@]}" "$initdb" -D "$PG_TMP/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$PG_TMP/initdb.log" 2>&1) \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  (cd /tmp && "${as[@]}" "$pgctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_TMP -c listen_addresses=127.0.0.1 ${PG_EXTRA_OPTS:-}" start >/dev/null) \
    || { cat "$PG_TMP/server.log" >&2; return 1; }
  PG_STOP=("${as[@]}" "$pgctl" -D "$PG_TMP/data" -m fast -w stop)
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
}

pg_stop() {
  if [[ -n ${PG_TMP:-} ]]; then
    (cd /tmp && "${PG_STOP[@]}" >/dev/null 2>&1) || true
    rm -rf "$PG_TMP"
  fi
}

# free_port prints a free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL: poll until it answers (30 s).
wait_http() {
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}
