#!/usr/bin/env bash
# Builds the real Kubernetes that pgward's tests run against, from the Go
# module proxy, into a cache outside the repository keyed by version, and
# prints that directory (use it as KUBEBUILDER_ASSETS). Release downloads
# (setup-envtest, container registries) cannot work on these machines, so
# every binary comes from source: the wrapper modules under hack/kube/ pin
# every module version (their go.sum makes the build reproducible), the
# others are pinned `go install`s. A warm cache makes this a no-op.
#
#   kube-binaries.sh          the control plane of the operator's tests:
#                             kube-apiserver, kube-controller-manager (its
#                             garbage collector), kubectl, etcd
#   kube-binaries.sh --node   also what hack/kube-up.sh needs to run pods:
#                             kubelet, kube-scheduler, kube-proxy, CoreDNS,
#                             and kube-router (its NetworkPolicy firewall only)
#
# Cold, on 2 cores: ~10 minutes for the control plane, ~12 more for --node
# (CoreDNS and kube-router pull their own client-go). Builds run under `nice`
# so that they do not starve whatever else the machine is doing.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
COREDNS_VERSION=v1.15.0
KUBE_ROUTER_VERSION=v2.1.0

here="$(cd "$(dirname "$0")" && pwd)"
cache="${PGWARD_CACHE:-$HOME/.cache/pgward}/kube/$KUBE_VERSION"

kube_cmds=(kubectl kube-apiserver kube-controller-manager)
others=(etcd)
case "${1:-}" in
  "") ;;
  --node)
    kube_cmds+=(kubelet kube-scheduler kube-proxy)
    others+=(coredns kube-router)
    ;;
  *) echo "usage: $0 [--node]" >&2; exit 2 ;;
esac

have_all() {
  local b
  for b in "${kube_cmds[@]}" "${others[@]}"; do
    [ -x "$cache/$b" ] || return 1
  done
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

# The version variables the binaries report (kubectl version, the API
# server's /version, the kubelet's node status); without them they say
# v0.0.0-master.
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
for cmd in "${kube_cmds[@]}"; do
  if [ ! -x "$cache/$cmd" ]; then
    echo "building $cmd $KUBE_VERSION into $cache (first run only)" >&2
    (cd "$work/kubernetes" && "${nice_cmd[@]}" go build -trimpath -ldflags "$ldflags" \
      -o "$work/$cmd.bin" "k8s.io/kubernetes/cmd/$cmd") >&2
    mv "$work/$cmd.bin" "$cache/$cmd"
  fi
done

# install NAME PACKAGE@VERSION: a pinned `go install` (these modules build
# as published, with no replace directives to work around).
install() {
  local name=$1 pkg=$2
  if [ ! -x "$cache/$name" ]; then
    echo "building $name ($pkg) into $cache (first run only)" >&2
    mkdir -p "$work/bin-$name"
    (cd "$work" && GOFLAGS= GOBIN="$work/bin-$name" "${nice_cmd[@]}" go install -trimpath -ldflags "-s -w" "$pkg") >&2
    mv "$work/bin-$name/$(basename "${pkg%@*}")" "$cache/$name"
  fi
}
for b in "${others[@]}"; do
  case "$b" in
    coredns) install coredns "github.com/coredns/coredns@$COREDNS_VERSION" ;;
    kube-router) install kube-router "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" ;;
  esac
done

echo "$cache"
