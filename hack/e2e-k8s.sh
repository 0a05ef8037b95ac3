#!/usr/bin/env bash
# Installs the chart into the real API server at $KUBECONFIG and checks the whole life cycle:
#   helm install -> every object accepted -> a Job from the CronJob -> a kubectl-created backfill Job
#   whose indexed pods the Job controller creates -> helm upgrade (backfill through the release,
#   twice: re-rendering the same range is a no-op; generated passwords kept) -> helm uninstall ->
#   nothing left but what is kept on purpose (the database/Metabase Secrets and the PVC).
# Works without a kubelet (../shared/tools/kube-local: pods are created and stay Pending), so it
# never uses --wait, and it disables the metabase-setup hook (helm would wait for that Job to finish).
# The namespace enforces Pod Security "restricted": a pod that is not hardened is rejected.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?set KUBECONFIG (../shared/tools/kube-local up prints one)}"
export KUBECONFIG
helm=${HELM_BIN:-$PWD/bin/helm}
[[ -x $helm ]] || { echo "e2e: $helm not found: run make tools" >&2; exit 1; }
ns=${E2E_NAMESPACE:-marketplace-e2e}
release=${E2E_RELEASE:-mp}
chart=charts/marketplace
fullname=$release-marketplace
# images cannot be pulled here (no kubelet anyway): any tag will do
values=(--set image.tag=e2e --set metabase.setup.enabled=false --set mockApi.enabled=true
  --set pushgateway.enabled=true --set networkPolicy.enabled=true --set metabase.ingress.enabled=true)

log() { printf 'e2e: %s\n' "$*" >&2; }
fail() { printf 'e2e: FAIL: %s\n' "$*" >&2; exit 1; }
k() { kubectl -n "$ns" "$@"; }
# wait_for <seconds> <description> <command...>: retry until the command succeeds
wait_for() {
  local timeout=$1 what=$2; shift 2
  for ((i = 0; i < timeout; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "e2e: timed out after ${timeout}s waiting for $what" >&2
  return 1
}
count() { k get "$@" -o name 2>/dev/null | grep -c . || true; }

cleanup() {
  "$helm" uninstall "$release" -n "$ns" --no-hooks >/dev/null 2>&1 || true
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}
[[ ${E2E_KEEP:-} == 1 ]] || trap cleanup EXIT

kubectl get --raw /readyz >/dev/null || fail "no API server at $KUBECONFIG"
if kubectl get namespace "$ns" >/dev/null 2>&1; then
  log "deleting leftover namespace $ns"
  kubectl delete namespace "$ns" --timeout=120s >/dev/null
fi
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/warn=restricted >/dev/null
# no ServiceAccount token controller in kube-local: pods only need the ServiceAccount to exist

log "helm install"
"$helm" install "$release" "$chart" -n "$ns" "${values[@]}" --timeout 2m >/dev/null

log "every object of the release exists"
manifest=$("$helm" get manifest "$release" -n "$ns")
kinds=$(grep -E '^kind: ' <<<"$manifest" | sort | uniq -c)
log "installed: $(tr -s ' \n' ' ' <<<"$kinds")"
k get -f - -o name <<<"$manifest" >/dev/null || fail "objects of the release are missing"
for want in CronJob StatefulSet Deployment Service Secret ConfigMap NetworkPolicy Ingress ServiceAccount; do
  grep -q "kind: $want\$" <<<"$manifest" || fail "no $want in the release"
done

log "hook objects (metabase-setup Job, helm test pod) pass server-side validation"
"$helm" template "$release" "$chart" -n "$ns" "${values[@]}" --set metabase.setup.enabled=true \
  --show-only templates/metabase-setup-job.yaml --show-only templates/tests/test-check.yaml |
  k create --dry-run=server -f - >/dev/null || fail "hook objects rejected by the API server"

log "controllers create the pods (accepted by Pod Security restricted)"
for component in postgresql metabase pushgateway mockapi; do
  wait_for 60 "a $component pod" \
    bash -c "[[ \$(kubectl -n $ns get pods -l app.kubernetes.io/instance=$release,app.kubernetes.io/component=$component -o name | wc -l) -ge 1 ]]"
done
wait_for 30 "the PostgreSQL PVC" k get pvc "data-$fullname-postgresql-0"

log "a Job from the CronJob"
k create job --from="cronjob/$fullname-daily" e2e-manual >/dev/null
wait_for 60 "the pod of the manual daily Job" \
  bash -c "[[ \$(kubectl -n $ns get pods -l batch.kubernetes.io/job-name=e2e-manual -o name | wc -l) -ge 1 ]]"
[[ $(k get job e2e-manual -o jsonpath='{.spec.podFailurePolicy.rules[0].action}') == FailJob ]] ||
  fail "the manual Job lost its podFailurePolicy"

log "a backfill Job created with kubectl, 3 indexed shards"
"$helm" template "$release" "$chart" -n "$ns" "${values[@]}" \
  --set backfill.enabled=true,backfill.from=2024-01-01,backfill.to=2024-01-31,backfill.shards=3,backfill.parallelism=3 \
  --show-only templates/backfill-job.yaml | k create -f - -o name > /tmp/e2e-backfill.$$
backfill=$(sed 's|.*/||' /tmp/e2e-backfill.$$); rm -f /tmp/e2e-backfill.$$
[[ $backfill == "$fullname-backfill-20240101-20240131-"* ]] || fail "unexpected backfill Job name $backfill"
indexes() {
  k get pods -l "batch.kubernetes.io/job-name=$backfill" \
    -o jsonpath='{range .items[*]}{.metadata.labels.batch\.kubernetes\.io/job-completion-index}{"\n"}{end}' | sort -u | tr '\n' ' '
}
wait_for 60 "3 indexed backfill pods" bash -c "[[ \"\$(kubectl -n $ns get pods -l batch.kubernetes.io/job-name=$backfill -o jsonpath='{range .items[*]}{.metadata.labels.batch\.kubernetes\.io/job-completion-index}{\"\\n\"}{end}' | sort -u | tr '\\n' ' ')\" == '0 1 2 ' ]]"
log "backfill pods have completion indexes: $(indexes)"
env_names=$(k get pods -l "batch.kubernetes.io/job-name=$backfill" -o jsonpath='{.items[0].spec.containers[0].env[*].name}')
[[ " $env_names " == *" JOB_COMPLETION_INDEX "* && " $env_names " == *" BACKFILL_SHARD_COUNT "* ]] ||
  fail "backfill pod env lacks JOB_COMPLETION_INDEX/BACKFILL_SHARD_COUNT: $env_names"

password() { k get secret "$fullname-postgresql" -o jsonpath='{.data.password}'; }
before=$(password)

log "helm upgrade: backfill through the release"
backfill_values=(--set backfill.enabled=true,backfill.from=2024-02-01,backfill.to=2024-02-29)
"$helm" upgrade "$release" "$chart" -n "$ns" "${values[@]}" "${backfill_values[@]}" --timeout 2m >/dev/null
[[ $(count jobs -l app.kubernetes.io/component=backfill) -eq 2 ]] || fail "the release's backfill Job is missing"
log "helm upgrade again with the same range (must not hit an immutable field)"
"$helm" upgrade "$release" "$chart" -n "$ns" "${values[@]}" "${backfill_values[@]}" --timeout 2m >/dev/null
[[ $(count jobs -l app.kubernetes.io/component=backfill) -eq 2 ]] || fail "the backfill Job was duplicated"
[[ $(password) == "$before" ]] || fail "the generated PostgreSQL password changed on upgrade"
[[ $("$helm" status "$release" -n "$ns" -o json | grep -o '"status":"[a-z-]*"' | head -1) == '"status":"deployed"' ]] ||
  fail "release is not deployed after upgrade"

log "helm uninstall"
k delete job e2e-manual "$backfill" >/dev/null
"$helm" uninstall "$release" -n "$ns" >/dev/null
left() {
  k get all,configmaps,secrets,serviceaccounts,networkpolicies,ingresses,pvc \
    -l "app.kubernetes.io/instance=$release" -o name 2>/dev/null | sort
}
expected=$(printf '%s\n' "persistentvolumeclaim/data-$fullname-postgresql-0" \
  "secret/$fullname-metabase" "secret/$fullname-postgresql" | sort)
wait_for 90 "only the kept Secrets and the PVC to remain" bash -c "[[ \"\$(kubectl -n $ns get all,configmaps,secrets,serviceaccounts,networkpolicies,ingresses,pvc -l app.kubernetes.io/instance=$release -o name | sort)\" == '$expected' ]]" ||
  true # reported below
if [[ $(left) != "$expected" ]]; then
  fail "left after uninstall: $(left | tr '\n' ' ') (expected: $(tr '\n' ' ' <<<"$expected"))"
fi
log "left on purpose: $(tr '\n' ' ' <<<"$expected")"
k delete secret "$fullname-metabase" "$fullname-postgresql" >/dev/null
k delete pvc "data-$fullname-postgresql-0" --wait=false >/dev/null
log "OK"
