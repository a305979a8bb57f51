#!/usr/bin/env bash
# `make images`: builds pgward's container images without a daemon into
# bin/images/ (docker-archive tarballs and images.json, with their digests):
#   pgward/postgresql:15        the operand: Debian + PostgreSQL 15 + pgward
#   pgward/pgward:<VERSION>     the operator: the static binary only
#   pgward.local/pause:1        the sandbox image of the test cluster
# The root filesystem comes from hack/rootfs.sh (cached, checked for pending
# security updates on every run); pgward and pause are built here, static;
# hack/image assembles the images with every timestamp at the last commit's
# time, so the same sources give the same digests. Needs root (mmdebstrap).
#
# Rebuilding daily picks up Debian's security updates: it is all the daily
# job has to run (see README, "Images").
#
#   images.sh                  build into bin/images
#   images.sh --reproduce      build as usual, then everything again from
#                              nothing (a fresh root filesystem, an empty Go
#                              build cache) in a temporary directory, and fail
#                              unless the three digests are the same
set -euo pipefail
# Shipped binaries are built with the pinned toolchain (see the Makefile).
export GOTOOLCHAIN=go1.27.3
cd "$(dirname "$0")/.."
repo="$(pwd)"

version="$(cat VERSION)"
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || true)}"
revision="$(git rev-parse HEAD 2>/dev/null || true)"
if [ -z "$epoch" ]; then
  echo "no SOURCE_DATE_EPOCH and no git history to take it from" >&2
  exit 1
fi

# build OUT BINDIR: the three images into OUT, the binaries into BINDIR.
build() {
  local out=$1 bindir=$2 rootfs
  rootfs="$(hack/rootfs.sh)"
  mkdir -p "$out" "$bindir"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/pgward/pgward/internal/cli.Version=$version" \
    -o "$bindir/pgward" ./cmd/pgward
  (cd hack/image && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bindir/pause" ./pause &&
    CGO_ENABLED=0 go build -trimpath -o "$bindir/image" .)
  "$bindir/image" build -out "$out" -rootfs "$rootfs" -pgward "$bindir/pgward" -pause "$bindir/pause" \
    -version "$version" -revision "$revision" -epoch "$epoch" ${PGWARD_OCI:+-oci}
}

digests() { grep -o '"digest": "[^"]*"' "$1/images.json"; }

start=$(date +%s)
case "${1:-}" in
  "")
    build "$repo/bin/images" "$repo/bin"
    echo "images built in $(( $(date +%s) - start )) s" >&2
    ;;
  --reproduce)
    # The reference: the usual build from the usual caches, of this very
    # tree (the images carry the commit's time and revision).
    build "$repo/bin/images" "$repo/bin"
    tmp="$(mktemp -d /var/tmp/pgward-repro.XXXXXX)"
    trap 'rm -rf "$tmp"' EXIT
    echo "rebuilding from nothing in $tmp (fresh root filesystem, empty Go build cache)" >&2
    PGWARD_CACHE="$tmp/cache" GOCACHE="$tmp/gocache" build "$tmp/images" "$tmp/bin"
    if ! diff <(digests bin/images) <(digests "$tmp/images"); then
      echo "NOT reproducible: the digests above differ (bin/images vs the rebuild)" >&2
      exit 1
    fi
    echo "reproducible: the rebuild from nothing gave the same three digests ($(( $(date +%s) - start )) s)" >&2
    ;;
  *) echo "usage: $0 [--reproduce]" >&2; exit 2 ;;
esac
