#!/usr/bin/env bash
# Builds what the opt-in CSI storage of hack/kube-up.sh (PGWARD_KUBE_CSI=1)
# runs beside the kubelet, into a cache outside the repository keyed by
# version, like hack/kube-binaries.sh:
#
#   csi.sh            the upstream parts, from the Go module proxy through the
#                     wrapper modules under hack/csi/ (their go.sum pins every
#                     module): snapshot-controller and csi-snapshotter
#                     (external-snapshotter), csi-provisioner
#                     (external-provisioner), csi-resizer (external-resizer);
#                     prints their directory
#   csi.sh --driver   pgward's own test driver (test/csi, a module of its own:
#                     the upstream hostpath driver is not on the proxy), keyed
#                     by a hash of its source; prints the binary's path
#
# Cold, on 2 cores: see docs/benchmarks.md (CSI storage). Builds run under
# `nice` so that they do not starve whatever else the machine is doing.
set -euo pipefail

SNAPSHOTTER_VERSION=v8.7.0
PROVISIONER_VERSION=v6.4.0
RESIZER_VERSION=v2.3.0

here="$(cd "$(dirname "$0")" && pwd)"
root="${PGWARD_CACHE:-$HOME/.cache/pgward}/csi"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
nice_cmd=(nice -n 10)

if [ "${1:-}" = --driver ]; then
  src="$here/../test/csi"
  key="$(cd "$src" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) ! -name '*_test.go' -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  out="$root/driver/$key/csi-hostpath"
  if [ ! -x "$out" ]; then
    mkdir -p "$(dirname "$out")"
    (cd "$src" && "${nice_cmd[@]}" go build -trimpath -ldflags "-s -w" -o "$out.tmp" ./hostpath) >&2
    mv "$out.tmp" "$out"
  fi
  echo "$out"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [--driver]" >&2; exit 2; }

# The resizer came later: it is built into the same directory when missing
# (so a warm cache keeps its three other binaries), and a stamp records its
# version so that a new RESIZER_VERSION rebuilds it.
cache="$root/snapshotter-$SNAPSHOTTER_VERSION-provisioner-$PROVISIONER_VERSION"
bins=(snapshot-controller csi-snapshotter csi-provisioner csi-resizer)
have_all() {
  local b
  for b in "${bins[@]}"; do [ -x "$cache/$b" ] || return 1; done
  [ "$(cat "$cache/csi-resizer.version" 2>/dev/null)" = "$RESIZER_VERSION" ]
}
if have_all; then
  echo "$cache"
  exit 0
fi
mkdir -p "$cache"
# One builder at a time: a second caller waits for the first.
exec 9>"$cache/.lock"
flock 9
if have_all; then
  echo "$cache"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$here/csi/snapshotter" "$here/csi/provisioner" "$here/csi/resizer" "$work/"

build() { # NAME MODULEDIR PACKAGE
  local name=$1 dir=$2 pkg=$3
  [ ! -x "$cache/$name" ] || return 0
  echo "building $name into $cache (first run only)" >&2
  (cd "$work/$dir" && "${nice_cmd[@]}" go build -trimpath -ldflags "-s -w" -o "$work/$name.bin" "$pkg") >&2
  mv "$work/$name.bin" "$cache/$name"
}
build snapshot-controller snapshotter github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller
build csi-snapshotter snapshotter github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter
build csi-provisioner provisioner github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner
[ "$(cat "$cache/csi-resizer.version" 2>/dev/null)" = "$RESIZER_VERSION" ] || rm -f "$cache/csi-resizer"
build csi-resizer resizer github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer
echo "$RESIZER_VERSION" > "$cache/csi-resizer.version"
echo "$cache"
