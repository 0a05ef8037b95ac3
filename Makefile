# marketplace-etl: every target is a thin wrapper around a script in hack/.
SHELL := /usr/bin/env bash

BIN_DIR := $(CURDIR)/bin
export PATH := $(BIN_DIR):$(PATH)
export GOBIN := $(BIN_DIR)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE ?= ghcr.io/marketplace-etl/marketplace-etl:$(VERSION)

# Pinned tool versions (installed into ./bin by `make tools`).
HELM_VERSION ?= v3.19.0
HELM_UNITTEST_VERSION ?= v1.0.3
# promtool is in the module of Prometheus, whose Go module versions are v0.<major><minor>.<patch>.
PROMETHEUS_VERSION ?= v0.316.0
PUSHGATEWAY_VERSION ?= v1.11.1
export HELM_VERSION HELM_UNITTEST_VERSION PROMETHEUS_VERSION PUSHGATEWAY_VERSION VERSION IMAGE BIN_DIR

.PHONY: all build test test-unit test-go test-chart test-rules bench demo e2e-k8s image image-push image-docker tools lint fuzz clean help

all: build ## Build the binary (default)

help: ## List targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## Build bin/marketplace-etl with the version stamped in
	@hack/build.sh

test: tools ## Everything CI runs: lint, all Go tests (real PostgreSQL, binary, tools), alert rules, chart, image
	@hack/test.sh

test-unit: ## Fast: go test -short (in-process tests only: no PostgreSQL, binary or tools)
	@go test -short -count=1 ./...

test-go: tools ## All Go tests: unit, PostgreSQL, the binary end to end, promtool and Pushgateway
	@hack/test-go.sh

test-chart: tools ## helm lint, helm-unittest, strict manifest decoding
	@hack/test-chart.sh

test-rules: tools ## promtool check + test of the alert rules
	@hack/test-rules.sh

lint: ## gofmt and go vet
	@hack/lint.sh

fuzz: ## Run every fuzz target for FUZZTIME (default 30s each)
	@hack/fuzz.sh

bench: build ## Throughput benchmark against psql \copy and the naive loader
	@hack/bench.sh

demo: build ## Throw-away PostgreSQL + simulator, 30-day backfill, daily run, summary
	@hack/demo.sh

e2e-k8s: tools build ## Run the chart's pods on kube-local (KUBE_LOCAL_RUN_IMAGES) at $$KUBECONFIG
	@hack/e2e-k8s.sh

image: ## Build and check the image without a container engine: bin/image/oci, bin/image/marketplace-etl.tar
	@hack/image.sh

image-push: ## Build, check and push the image to $$(IMAGE) (credentials from ~/.docker/config.json)
	@PUSH=1 hack/image.sh

image-docker: ## Build the image from the Dockerfile (needs a container engine)
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

tools: ## Install pinned helm, helm-unittest, promtool and pushgateway into ./bin
	@hack/tools.sh

clean: ## Remove build outputs
	rm -rf $(BIN_DIR)/marketplace-etl
