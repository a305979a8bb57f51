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
set -euo pipefail
cd "$(dirname "$0")/.."

out=bin/images
version="$(cat VERSION)"
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || true)}"
revision="$(git rev-parse HEAD 2>/dev/null || true)"
if [ -z "$epoch" ]; then
  echo "no SOURCE_DATE_EPOCH and no git history to take it from" >&2
  exit 1
fi

start=$(date +%s)
rootfs="$(hack/rootfs.sh)"
export CGO_ENABLED=0
make --no-print-directory build >&2
(cd hack/image && go build -trimpath -ldflags "-s -w" -o ../../bin/pause ./pause)
mkdir -p "$out"
(cd hack/image && go run . build -out "../../$out" -rootfs "$rootfs" -pgward ../../bin/pgward \
  -pause ../../bin/pause -version "$version" -revision "$revision" -epoch "$epoch" ${PGWARD_OCI:+-oci})
echo "images built in $(( $(date +%s) - start )) s" >&2
