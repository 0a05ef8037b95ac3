#!/usr/bin/env bash
# make e2e-k8s: installs the chart into the API server at $KUBECONFIG and runs its pods for real.
# Needs ../shared/tools/kube-local started with the process kubelet mapping the chart's image to
# bin/marketplace-etl:
#   KUBE_LOCAL_RUN_IMAGES=ghcr.io/marketplace-etl/marketplace-etl=$PWD/bin/marketplace-etl \
#     ../shared/tools/kube-local up
# (.ci/run does that). The pods run as host processes; kube-local has no Services or DNS, so the
# chart is pointed at a throw-away PostgreSQL and the API simulator that this script starts on
# loopback. Checked, in a namespace enforcing Pod Security "restricted":
#   1. every object of the default chart (bundled PostgreSQL, Metabase, Pushgateway, simulator,
#      NetworkPolicies, Ingress, hooks, test pod) passes server-side validation;
#   2. `helm install` on an empty database returns with the schema migrated (migrate hook), without
#      waiting for Metabase (which never starts here; metabase-setup is a plain Job), and
#      `helm test` passes right after it;
#   3. a Job created from the daily CronJob completes and loads rows;
#   4. a kubectl-only backfill (cloned from the <fullname>-backfill CronJob) with 3 indexed shards
#      completes, every day loaded exactly once;
#   5. a pod exiting with the configuration-error code (2) fails its Job at once (podFailurePolicy,
#      no retry);
#   6. a backfill Job of the release keeps running through an upgrade that drops it and changes
#      the image, and completes;
#   7. uninstall leaves only what is kept on purpose.
# Everything it starts is stopped on exit (E2E_KEEP=1 keeps the namespace for a post-mortem).
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."
source hack/lib/pg.sh
: "${KUBECONFIG:?set KUBECONFIG (../shared/tools/kube-local up prints one)}"
export KUBECONFIG
helm=${HELM_BIN:-$PWD/bin/helm}
bin=$PWD/bin/marketplace-etl
kube_local=${KUBE_LOCAL:-../shared/tools/kube-local}
[[ -x $helm ]] || { echo "e2e: $helm not found: run make tools" >&2; exit 1; }
[[ -x $bin ]] || { echo "e2e: $bin not found: run make build" >&2; exit 1; }
ns=${E2E_NAMESPACE:-marketplace-e2e}
release=${E2E_RELEASE:-mp}
chart=charts/marketplace
fullname=$release-marketplace
started=$SECONDS

log() { printf 'e2e [%3ds]: %s\n' $((SECONDS - started)) "$*" >&2; }
k() { kubectl -n "$ns" "$@"; }
sql() { psql "$DATABASE_URL_E2E" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
# post-mortem of a failure: the namespace's Jobs and pods and the last pods' logs
fail() {
  printf 'e2e: FAIL: %s\n' "$*" >&2
  {
    k get jobs,pods -o wide 2>&1 | sed 's/^/  /'
    for pod in $(k get pods -o name 2>/dev/null | sed 's|pod/||' | tail -6); do
      echo "  --- logs of $pod"
      "$kube_local" logs "$ns" "$pod" 2>&1 | tail -15 | sed 's/^/    /'
    done
  } >&2 || true
  exit 1
}
# wait_for <seconds> <description> <command...>: retry until the command succeeds
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
    sleep 1
  done
}
job_condition() { # job_condition JOB TYPE: the status of condition TYPE (True when set)
  k get job "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status}"
}
job_done() { [[ $(job_condition "$1" Complete) == True ]] || { [[ $(job_condition "$1" Failed) == True ]] && fail "Job $1 failed"; }; }

sims=()
cleanup() {
  local rc=$?
  if [[ ${E2E_KEEP:-} != 1 ]]; then
    "$helm" uninstall "$release" -n "$ns" --no-hooks --wait --timeout 60s >/dev/null 2>&1 || true
    kubectl delete namespace "$ns" --wait=true --timeout=90s >/dev/null 2>&1 || true
  fi
  for pid in "${sims[@]}"; do kill "$pid" 2>/dev/null || true; done
  pg_stop
  exit $rc
}
trap cleanup EXIT

kubectl get --raw /readyz >/dev/null || fail "no API server at $KUBECONFIG"
[[ $(kubectl get node kube-local -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] ||
  fail "no Ready node: start kube-local with its process kubelet: KUBE_LOCAL_RUN_IMAGES=ghcr.io/marketplace-etl/marketplace-etl=$bin $kube_local up"

log "a throw-away PostgreSQL and two API simulators (fast; slow, 6 s a request) on loopback"
pg_start
api_port=$(free_port) slow_port=$(free_port)
LOG_FORMAT=text "$bin" mockapi --listen "127.0.0.1:$api_port" --rows-per-day 300 2>"$PG_TMP/mockapi.log" &
sims+=($!)
LOG_FORMAT=text "$bin" mockapi --listen "127.0.0.1:$slow_port" --rows-per-day 300 --latency 6s 2>"$PG_TMP/mockapi-slow.log" &
sims+=($!)
wait_http "http://127.0.0.1:$api_port/healthz"
wait_http "http://127.0.0.1:$slow_port/healthz"

# the warehouse as the bundled PostgreSQL would set it up: the chart's own init script, then the
# chart connects as the non-superuser ETL role it created
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE warehouse" >/dev/null
"$helm" template "$release" "$chart" --show-only templates/postgresql-init-configmap.yaml |
  sed -n '/^  10-roles.sh: |/,$p' | tail -n +2 | sed 's/^    //' > "$PG_TMP/10-roles.sh"
PGHOST=127.0.0.1 PGPORT=$PG_PORT POSTGRES_USER=postgres POSTGRES_DB=warehouse \
  ETL_USER=etl ETL_PASSWORD=etl-e2e READONLY_USER=etl_readonly READONLY_PASSWORD=ro-e2e \
  METABASE_DB_USER=metabase METABASE_DB_PASSWORD=mb-e2e METABASE_DB=metabase \
  bash "$PG_TMP/10-roles.sh" || fail "the chart's init script failed"
DATABASE_URL_E2E="postgres://postgres@127.0.0.1:$PG_PORT/warehouse?sslmode=disable"

if kubectl get namespace "$ns" >/dev/null 2>&1; then
  log "deleting leftover namespace $ns"
  kubectl delete namespace "$ns" --timeout=120s >/dev/null
fi
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/warn=restricted >/dev/null

log "1. the default chart, every option on, passes server-side validation (Pod Security restricted)"
# a Pod is admitted only when its ServiceAccount exists: a stand-in for the dry run
k create serviceaccount "$fullname" --save-config >/dev/null
"$helm" template "$release" "$chart" -n "$ns" --set mockApi.enabled=true --set pushgateway.enabled=true \
  --set networkPolicy.enabled=true --set metabase.ingress.enabled=true --set metabase.setup.useHelmHooks=true |
  k apply --dry-run=server -f - >/dev/null || fail "the default chart was rejected by the API server"
k delete serviceaccount "$fullname" >/dev/null

k create secret generic e2e-db --from-literal=password=etl-e2e --from-literal=readonly-password=ro-e2e \
  --from-literal=metabase-password=mb-e2e >/dev/null
k create secret generic e2e-metabase --from-literal=encryption-key=0123456789abcdef0123456789abcdef \
  --from-literal=admin-password=admin-e2e >/dev/null
# Metabase's image cannot run here (its pod stays Pending): a Metabase that never starts, which
# must not hold up the release; metabase-setup's pods run and retry
values=(--set image.tag=e2e --set postgresql.enabled=false --set metabase.existingSecret=e2e-metabase
  --set metabase.setup.timeout=5s
  --set externalDatabase.host=127.0.0.1 --set externalDatabase.port="$PG_PORT"
  --set externalDatabase.database=warehouse --set externalDatabase.username=etl
  --set externalDatabase.readonlyUsername=etl_readonly --set externalDatabase.sslmode=disable
  --set externalDatabase.existingSecret=e2e-db --set etl.apiUrl="http://127.0.0.1:$api_port/data"
  --set etl.logFormat=text --set etl.httpRetries=1 --set etl.catchupDays=3)

log "2. helm install on an empty database (the migrate hook runs), then helm test"
"$helm" install "$release" "$chart" -n "$ns" "${values[@]}" --timeout 3m >/dev/null ||
  fail "helm install failed"
[[ $(sql "SELECT count(*) FROM public.marketplace_etl_schema_migrations WHERE version_id > 0") -ge 1 ]] ||
  fail "helm install returned before the schema was migrated"
"$helm" test "$release" -n "$ns" --timeout 2m >/dev/null || fail "helm test failed right after install"
setup_job=$(k get jobs -l app.kubernetes.io/component=metabase-setup -o name)
[[ $setup_job == job.batch/$fullname-metabase-setup-* ]] || fail "no plain metabase-setup Job: '$setup_job'"
[[ -z $(k get "$setup_job" -o jsonpath='{.metadata.annotations.helm\.sh/hook}') ]] || fail "metabase-setup is a Helm hook"

log "3. a Job from the daily CronJob loads rows"
k create job --from="cronjob/$fullname-daily" e2e-daily >/dev/null
wait_for 120 "the daily Job to complete" job_done e2e-daily
rows=$(sql "SELECT count(*) FROM marketplace.purchases")
((rows > 0)) || fail "the daily Job completed but loaded no rows"
log "   loaded $rows lines"

log "4. a backfill with kubectl alone (the NOTES' recipe): 3 indexed shards, 2024-01-01..2024-01-31"
backfill=${fullname}-backfill-e2e1
[[ $(k get cronjob "$fullname-backfill" -o jsonpath='{.spec.jobTemplate.spec.completions}') == 4 ]] ||
  fail "the backfill CronJob does not have the default 4 shards"
k create job --from="cronjob/$fullname-backfill" "$backfill" --dry-run=client -o yaml |
  kubectl set env --local -f - -o yaml BACKFILL_FROM=2024-01-01 BACKFILL_TO=2024-01-31 BACKFILL_SHARD_COUNT=3 |
  kubectl patch --local -f - -o yaml --type merge -p '{"spec":{"completions":3,"parallelism":3}}' |
  k create -f - >/dev/null || fail "could not create the backfill Job with kubectl"
[[ $(k get job "$backfill" -o jsonpath='{.spec.completions}/{.spec.completionMode}') == 3/Indexed ]] ||
  fail "the backfill Job is not 3 indexed shards"
wait_for 180 "the backfill to complete" job_done "$backfill"
days=$(sql "SELECT count(*) || '/' || count(*) FILTER (WHERE attempts = 1 AND status = 'loaded') || '/' || count(DISTINCT run_id)
  FROM marketplace.day_loads WHERE purchase_date BETWEEN '2024-01-01' AND '2024-01-31'")
[[ $days == 31/31/3 ]] || fail "backfill days (all/loaded once/runs) = $days, expected 31/31/3"
indexes=$(k get pods -l "batch.kubernetes.io/job-name=$backfill" \
  -o jsonpath='{range .items[*]}{.metadata.labels.batch\.kubernetes\.io/job-completion-index}{"\n"}{end}' | sort | tr '\n' ' ')
[[ $indexes == '0 1 2 ' ]] || fail "backfill pods by index: '$indexes', expected one pod for each of 0 1 2"

log "5. a configuration error (exit code 2) fails the Job at once, without a retry"
k create job --from="cronjob/$fullname-daily" e2e-bad-config --dry-run=client -o yaml |
  kubectl set env --local -f - -o yaml ETL_CATCHUP_DAYS=many | k create -f - >/dev/null
wait_for 60 "the misconfigured Job to fail" bash -c "[[ \$(kubectl -n $ns get job e2e-bad-config -o jsonpath='{.status.conditions[?(@.type==\"Failed\")].reason}') == PodFailurePolicy ]]"
[[ $(k get pods -l batch.kubernetes.io/job-name=e2e-bad-config -o name | wc -l) -eq 1 ]] ||
  fail "the misconfigured Job was retried"
pod=$(k get pods -l batch.kubernetes.io/job-name=e2e-bad-config -o jsonpath='{.items[0].metadata.name}')
[[ $(k get pod "$pod" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}') == 2 ]] ||
  fail "the misconfigured pod did not exit with code 2"

log "6. an upgrade does not kill a running backfill of the release"
slow=(--set etl.apiUrl="http://127.0.0.1:$slow_port/data" --set backfill.enabled=true
  --set backfill.from=2024-02-01 --set backfill.to=2024-02-12 --set backfill.shards=2 --set backfill.parallelism=2)
"$helm" upgrade "$release" "$chart" -n "$ns" "${values[@]}" "${slow[@]}" --timeout 3m >/dev/null ||
  fail "helm upgrade with a backfill failed"
running=$(k get jobs -l app.kubernetes.io/component=backfill,app.kubernetes.io/instance="$release" -o name |
  grep "$fullname-backfill-20240201-20240212-" | sed 's|.*/||')
[[ -n $running ]] || fail "the release's backfill Job is missing"
wait_for 60 "the release's backfill to run" bash -c "[[ \$(kubectl -n $ns get job $running -o jsonpath='{.status.active}') -ge 1 ]]"
# an unrelated change: a new image, the backfill switched off
"$helm" upgrade "$release" "$chart" -n "$ns" "${values[@]}" --set image.tag=e2e-2 --timeout 3m >/dev/null ||
  fail "the second helm upgrade failed"
[[ $(job_condition "$running" Complete) != True ]] ||
  fail "the backfill had finished before the upgrade: make it slower (the test proves nothing)"
k get job "$running" >/dev/null 2>&1 || fail "the upgrade deleted the running backfill Job"
wait_for 180 "the release's backfill to complete after the upgrade" job_done "$running"
[[ $(k get job "$running" -o jsonpath='{.status.failed}') == "" ]] || fail "a backfill pod was killed by the upgrade"
[[ $(sql "SELECT count(*) FROM marketplace.day_loads WHERE purchase_date BETWEEN '2024-02-01' AND '2024-02-12' AND status = 'loaded'") == 12 ]] ||
  fail "the backfill through the upgrade did not load its 12 days"
[[ $("$helm" status "$release" -n "$ns" -o json | grep -o '"status":"[a-z-]*"' | head -1) == '"status":"deployed"' ]] ||
  fail "release is not deployed after the upgrades"

log "7. helm uninstall leaves only what is kept on purpose"
"$helm" uninstall "$release" -n "$ns" --wait --timeout 90s >/dev/null
# the finished backfill Job (resource-policy keep) and the last migrate hook Job (Helm never
# deletes hooks) stay until their TTL; Jobs cloned from the CronJobs go with them (owner references)
expected="job.batch/$running job.batch/$fullname-migrate "
left() { k get cronjobs,jobs,configmaps,serviceaccounts,secrets -l "app.kubernetes.io/instance=$release" -o name | sort | tr '\n' ' '; }
deadline=$((SECONDS + 90))
until [[ $(left) == "$expected" ]]; do
  ((SECONDS < deadline)) || fail "left after uninstall: '$(left)', expected '$expected'"
  sleep 1
done
log "OK"
