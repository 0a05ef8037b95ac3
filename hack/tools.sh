#!/usr/bin/env bash
# Installs the pinned chart tools into ./bin from the Go module proxy:
#   bin/helm            helm.sh/helm/v3/cmd/helm@$HELM_VERSION (go install)
#   bin/helm-unittest   github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION
# helm-unittest's go.mod carries a replace directive, so `go install mod@ver` refuses it: the module
# is downloaded with `go mod download -json` and built inside that directory instead.
# Idempotent: a stamp file per tool and version skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${HELM_VERSION:?HELM_VERSION is not set (run through make, or export it)}"
: "${HELM_UNITTEST_VERSION:?HELM_UNITTEST_VERSION is not set (run through make, or export it)}"
bin=${BIN_DIR:-$PWD/bin}
stamps=$bin/.stamps
mkdir -p "$bin" "$stamps"
# Kubernetes version that `helm template`/`lint` and helm-unittest assume (.Capabilities.KubeVersion):
# helm's own release build stamps it from its client-go; `go install`/`go build` would leave 1.20.
kube_major=1 kube_minor=34
kube_ldflags="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$kube_major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor"
kube_ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$kube_major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor"

if [[ -x $bin/helm && -f $stamps/helm-$HELM_VERSION-k8s$kube_major.$kube_minor ]]; then
  :
else
  echo "tools: installing helm $HELM_VERSION into $bin" >&2
  rm -f "$stamps"/helm-v*
  GOBIN=$bin CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION $kube_ldflags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  touch "$stamps/helm-$HELM_VERSION-k8s$kube_major.$kube_minor"
fi

if [[ -x $bin/helm-unittest && -f $stamps/helm-unittest-$HELM_UNITTEST_VERSION-k8s$kube_major.$kube_minor ]]; then
  :
else
  echo "tools: building helm-unittest $HELM_UNITTEST_VERSION into $bin" >&2
  rm -f "$stamps"/helm-unittest-*
  dir=$(go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [[ -n $dir && -d $dir ]] || { echo "tools: could not download helm-unittest $HELM_UNITTEST_VERSION" >&2; exit 1; }
  # the module cache is read-only; go build only writes its output, so build in place
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $kube_ldflags" \
    -o "$bin/helm-unittest" ./cmd/helm-unittest)
  touch "$stamps/helm-unittest-$HELM_UNITTEST_VERSION-k8s$kube_major.$kube_minor"
fi
