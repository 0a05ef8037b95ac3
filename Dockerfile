# syntax=docker/dockerfile:1
# marketplace-etl container image: a static, trimmed Go binary on distroless static (nonroot).
# Build: make image-docker (docker build --build-arg VERSION=$(git describe --tags --always) -t IMAGE .).
# Without a container engine, `make image` builds an equivalent image with hack/image.
# The binary embeds time/tzdata, so Europe/Moscow works without /usr/share/zoneinfo.

ARG GO_VERSION=1.26
# Runtime base. Pin it by digest for releases (this build environment has no registry access to
# resolve one): --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:<digest>
# (`crane digest gcr.io/distroless/static-debian12:nonroot`).
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Module downloads are cached in their own layer: they change less often than the code.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} GOFLAGS=-buildvcs=false \
    go build -trimpath \
      -ldflags "-s -w -X github.com/marketplace-etl/marketplace-etl/internal/cli.version=${VERSION}" \
      -o /out/marketplace-etl ./cmd/marketplace-etl

# Distroless static Debian 12, nonroot variant (uid/gid 65532, CA certificates included).
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="marketplace-etl" \
      org.opencontainers.image.description="Loads marketplace purchase lines from an HTTP API into PostgreSQL, keeps analytics marts, provisions Metabase dashboards" \
      org.opencontainers.image.source="https://github.com/marketplace-etl/marketplace-etl" \
      org.opencontainers.image.url="https://github.com/marketplace-etl/marketplace-etl" \
      org.opencontainers.image.documentation="https://github.com/marketplace-etl/marketplace-etl#readme" \
      org.opencontainers.image.vendor="marketplace-etl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/marketplace-etl /usr/local/bin/marketplace-etl
# Numeric so that Kubernetes runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/marketplace-etl"]
CMD ["run"]
