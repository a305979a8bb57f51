#!/usr/bin/env bash
# Builds a pinned developer tool from the Go module proxy into a cache outside
# the repository, keyed by version, and prints the directory that holds it.
# A warm cache makes this a no-op.
#
#   tools.sh [golangci-lint]  the linter (the default)
#   tools.sh controller-gen   CRD/RBAC/deep-copy generation
#   tools.sh dockle           the container image linter (built from the
#                             wrapper module hack/dockle)
#   tools.sh syft             the SBOM generator
#   tools.sh all              every one of them (prints nothing)
set -euo pipefail

GOLANGCI_LINT_VERSION=v2.15.0
CONTROLLER_GEN_VERSION=v0.23.0
DOCKLE_VERSION=v0.4.15 # keep in step with hack/dockle/go.mod
SYFT_VERSION=v1.57.1

here="$(cd "$(dirname "$0")" && pwd)"
cache="${PGWARD_CACHE:-$HOME/.cache/pgward}/tools"

# build NAME VERSION PACKAGE [LDFLAGS] installs PACKAGE@VERSION into
# $cache/NAME-VERSION unless the binary NAME is already there, and sets $dir
# to that directory.
build() {
  local name=$1 version=$2 pkg=$3 ldflags=${4:-}
  dir="$cache/$name-$version"
  if [ ! -x "$dir/$name" ]; then
    echo "building $name $version into $dir (first run only)" >&2
    mkdir -p "$dir"
    GOBIN="$dir" CGO_ENABLED=0 go install -trimpath ${ldflags:+-ldflags "$ldflags"} "$pkg@$version" >&2
  fi
}

# Dockle: built from the wrapper module, whose go.sum pins every dependency.
build_dockle() {
  dir="$cache/dockle-$DOCKLE_VERSION"
  if [ ! -x "$dir/dockle" ]; then
    echo "building dockle $DOCKLE_VERSION into $dir (first run only)" >&2
    mkdir -p "$dir"
    (cd "$here/dockle" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" \
      -o "$dir/dockle.tmp" github.com/goodwithtech/dockle/cmd/dockle) >&2
    mv "$dir/dockle.tmp" "$dir/dockle"
  fi
}

one() {
  case "$1" in
    golangci-lint) build golangci-lint "$GOLANGCI_LINT_VERSION" github.com/golangci/golangci-lint/v2/cmd/golangci-lint ;;
    controller-gen) build controller-gen "$CONTROLLER_GEN_VERSION" sigs.k8s.io/controller-tools/cmd/controller-gen ;;
    dockle) build_dockle ;;
    syft) build syft "$SYFT_VERSION" github.com/anchore/syft/cmd/syft "-s -w -X main.version=$SYFT_VERSION" ;;
    *) echo "usage: $0 [golangci-lint|controller-gen|dockle|syft|all]" >&2; exit 2 ;;
  esac
}

case "${1:-golangci-lint}" in
  all)
    for t in golangci-lint controller-gen dockle syft; do one "$t"; done
    ;;
  *)
    one "${1:-golangci-lint}"
    echo "$dir"
    ;;
esac
