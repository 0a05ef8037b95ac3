#!/usr/bin/env bash
# Builds the container image without a container engine (hack/image, go-containerregistry):
# bin/image/oci (an OCI image layout) and bin/image/marketplace-etl.tar (`docker load -i` it),
# from bin/marketplace-etl, the host's time zone database and CA roots. Then checks it: user
# 65532, entrypoint the binary, the files present, and the entrypoint taken out of the image runs
# `version`. With PUSH=1 it also pushes the image to $IMAGE (credentials: ~/.docker/config.json,
# e.g. written by `docker login` or `crane auth login`).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
image=${IMAGE:-ghcr.io/marketplace-etl/marketplace-etl:$version}
out=${IMAGE_DIR:-$PWD/bin/image}
VERSION=$version hack/build.sh
mkdir -p "$out"
tool() { (cd hack/image && go run . "$@"); }
tool build --binary "$PWD/bin/marketplace-etl" --version "$version" \
  --revision "$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --oci-layout "$out/oci" --tarball "$out/marketplace-etl.tar" --tag "$image"
tool inspect --oci-layout "$out/oci" --extract-entrypoint "$out/entrypoint"
got=$("$out/entrypoint" version)
rm -f "$out/entrypoint"
[[ $got == *"$version"* ]] || { echo "image: the entrypoint printed '$got', expected version $version" >&2; exit 1; }
echo "image: $image ok ($got)"
if [[ ${PUSH:-} == 1 ]]; then
  tool push --oci-layout "$out/oci" --tag "$image"
fi
