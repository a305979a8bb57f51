#!/usr/bin/env bash
# Builds the real Kubernetes control plane that pgward's operator tests run
# against (kube-apiserver, kube-controller-manager, kubectl and etcd) from
# the Go module proxy, into a cache outside the repository keyed by version,
# and prints that directory (use it as KUBEBUILDER_ASSETS). Release downloads (setup-envtest) cannot
# work on these machines, so the binaries come from source: the wrapper
# modules under hack/kube/ pin every module version (their go.sum makes the
# build reproducible). A warm cache makes this a no-op.
#
# kube-controller-manager runs only its garbage collector in the tests, so
# that deleting a Cluster really deletes what it owns.
#
# A cold build takes ~10 minutes on 2 cores (kube-controller-manager adds
# ~1 minute once kube-apiserver is built); it runs under `nice` so that it
# does not starve whatever else the machine is doing.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3

here="$(cd "$(dirname "$0")" && pwd)"
cache="${PGWARD_CACHE:-$HOME/.cache/pgward}/kube/$KUBE_VERSION"

have_all() {
  [ -x "$cache/kube-apiserver" ] && [ -x "$cache/kube-controller-manager" ] &&
    [ -x "$cache/kubectl" ] && [ -x "$cache/etcd" ]
}

if have_all; then
  echo "$cache"
  exit 0
fi

mkdir -p "$cache"
# One builder at a time: a second caller (another test run) waits for the
# first instead of racing it into the same files.
exec 9>"$cache/.lock"
flock 9
if have_all; then
  echo "$cache"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

export CGO_ENABLED=0 GOFLAGS=-mod=readonly
nice_cmd=(nice -n 10)

# The version variables both binaries report (kubectl version, the API
# server's /version); without them they say v0.0.0-master.
major="${KUBE_VERSION#v}"; major="${major%%.*}"
minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

cp -r "$here/kube/kubernetes" "$work/kubernetes"
cp -r "$here/kube/etcd" "$work/etcd"

if [ ! -x "$cache/etcd" ]; then
  echo "building etcd $ETCD_VERSION into $cache (first run only)" >&2
  (cd "$work/etcd" && "${nice_cmd[@]}" go build -trimpath -ldflags "-s -w" \
    -o "$work/etcd.bin" go.etcd.io/etcd/server/v3) >&2
  mv "$work/etcd.bin" "$cache/etcd"
fi
for cmd in kubectl kube-apiserver kube-controller-manager; do
  if [ ! -x "$cache/$cmd" ]; then
    echo "building $cmd $KUBE_VERSION into $cache (first run only)" >&2
    (cd "$work/kubernetes" && "${nice_cmd[@]}" go build -trimpath -ldflags "$ldflags" \
      -o "$work/$cmd.bin" "k8s.io/kubernetes/cmd/$cmd") >&2
    mv "$work/$cmd.bin" "$cache/$cmd"
  fi
done

echo "$cache"
