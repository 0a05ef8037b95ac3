#!/usr/bin/env bash
# Installs the pinned test tools into ./bin from the Go module proxy, so that `make test` needs only
# Go and the PostgreSQL server binaries:
#   bin/helm            helm.sh/helm/v3/cmd/helm@$HELM_VERSION (go install)
#   bin/helm-unittest   github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION
#   bin/promtool        github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION
#   bin/pushgateway     github.com/prometheus/pushgateway@$PUSHGATEWAY_VERSION
# All but helm are downloaded with `go mod download -json` and built inside the module's directory:
# helm-unittest's go.mod carries a replace directive, which `go install mod@ver` refuses, and
# `go install` also asks the proxy for the module's version list, which a proxy may refuse.
# The pins live in the Makefile. Idempotent: a stamp file per tool and version skips work done.
# The first run builds them all (several minutes on two cores); later runs take a second.
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { sed -n "s/^$1 ?= *//p" Makefile; }
HELM_VERSION=${HELM_VERSION:-$(pin HELM_VERSION)}
HELM_UNITTEST_VERSION=${HELM_UNITTEST_VERSION:-$(pin HELM_UNITTEST_VERSION)}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-$(pin PROMETHEUS_VERSION)}
PUSHGATEWAY_VERSION=${PUSHGATEWAY_VERSION:-$(pin PUSHGATEWAY_VERSION)}
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

# build_module NAME MODULE VERSION PACKAGE LDFLAGS [TAGS]: bin/NAME from PACKAGE (relative to the
# module's root) of MODULE@VERSION, unless its stamp says it is there already.
build_module() {
  local name=$1 module=$2 version=$3 pkg=$4 ldflags=$5 tags=${6:-} stamp
  stamp=$stamps/$name-$version
  [[ $name == helm-unittest ]] && stamp+=-k8s$kube_major.$kube_minor
  if [[ -x $bin/$name && -f $stamp ]]; then
    return
  fi
  echo "tools: building $name $version into $bin" >&2
  rm -f "$stamps/$name"-v*
  local dir
  dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [[ -n $dir && -d $dir ]] || { echo "tools: could not download $module@$version" >&2; exit 1; }
  # the module cache is read-only; go build only writes its output, so build in place (GOWORK=off:
  # a module may ship a go.work naming directories its zip leaves out, as Prometheus does)
  (cd "$dir" && GOWORK=off CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$bin/$name" "$pkg")
  touch "$stamp"
}

build_module helm-unittest github.com/helm-unittest/helm-unittest "$HELM_UNITTEST_VERSION" ./cmd/helm-unittest "$kube_ldflags"
# Both report their version through prometheus/common's version package. promtool is built
# without Prometheus's service-discovery plugins (cloud SDKs; checking and testing rules needs
# none of them), which would take most of its build time.
build_module promtool github.com/prometheus/prometheus "$PROMETHEUS_VERSION" ./cmd/promtool \
  "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" remove_all_sd
build_module pushgateway github.com/prometheus/pushgateway "$PUSHGATEWAY_VERSION" . \
  "-X github.com/prometheus/common/version.Version=${PUSHGATEWAY_VERSION#v}"
