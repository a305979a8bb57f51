#!/usr/bin/env bash
# Builds the pinned developer tools from the Go module proxy into a cache outside
# the repository, keyed by version, and prints the directory that holds the
# golangci-lint binary (callers rely on that first line). controller-gen is
# built alongside it; `tools.sh controller-gen` prints its directory instead.
# A warm cache makes this a no-op.
set -euo pipefail

GOLANGCI_LINT_VERSION=v2.15.0
CONTROLLER_GEN_VERSION=v0.23.0

cache="${PGWARD_CACHE:-$HOME/.cache/pgward}/tools"

# build NAME VERSION PACKAGE installs PACKAGE@VERSION into $cache/NAME-VERSION
# unless the binary NAME is already there, and sets $dir to that directory.
build() {
  local name=$1 version=$2 pkg=$3
  dir="$cache/$name-$version"
  if [ ! -x "$dir/$name" ]; then
    echo "building $name $version into $dir (first run only)" >&2
    mkdir -p "$dir"
    GOBIN="$dir" CGO_ENABLED=0 go install "$pkg@$version" >&2
  fi
}

build controller-gen "$CONTROLLER_GEN_VERSION" sigs.k8s.io/controller-tools/cmd/controller-gen
controller_gen_dir=$dir
build golangci-lint "$GOLANGCI_LINT_VERSION" github.com/golangci/golangci-lint/v2/cmd/golangci-lint
golangci_lint_dir=$dir

case "${1:-golangci-lint}" in
  controller-gen) echo "$controller_gen_dir" ;;
  golangci-lint) echo "$golangci_lint_dir" ;;
  *) echo "usage: $0 [golangci-lint|controller-gen]" >&2; exit 2 ;;
esac
