#!/usr/bin/env bash
# Builds a pinned developer tool into a cache outside the repository and
# prints the directory that holds it. A warm cache makes this a no-op.
#
# Each tool has a wrapper module, hack/tools/NAME, whose go.mod names the
# tool's version (a `tool` directive) and whose go.sum pins the checksum of
# the tool's module and of every dependency it builds with: a module that
# does not match fails the build (-mod=readonly). The cache is keyed by the
# hash of go.mod, go.sum and the Go version, so changing any rebuilds.
#
#   tools.sh [golangci-lint]  the linter (the default)
#   tools.sh controller-gen   CRD/RBAC/deep-copy generation
#   tools.sh dockle           the container image linter
#   tools.sh syft             the SBOM generator
#   tools.sh govulncheck      the Go vulnerability checker (make vulncheck)
#   tools.sh grype            the image CVE scanner (make scan; needs the Internet)
#   tools.sh versitygw        the S3 object store backup tests run against (make objectstore-up)
#   tools.sh all              every one CI uses (prints nothing)
#
# To move a tool to another version:
#   cd hack/tools/NAME && go get -tool PACKAGE@VERSION && go mod tidy
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${PGWARD_CACHE:-$HOME/.cache/pgward}/tools"

# package NAME prints the tool's main package, from its `tool` directive.
package() {
  awk '$1 == "tool" { print $2; exit }' "$here/tools/$1/go.mod"
}

# build NAME builds the tool from its wrapper module into $cache and sets
# $dir to the directory that holds it.
build() {
  local name=$1 mod="$here/tools/$1" pkg key
  [ -f "$mod/go.mod" ] || { echo "tools.sh: no wrapper module $mod" >&2; exit 2; }
  pkg="$(package "$name")"
  # The Go version is part of the key: analysers (golangci-lint,
  # govulncheck) built by an older Go cannot load newer code.
  key="$( (cat "$mod/go.mod" "$mod/go.sum"; go env GOVERSION) | sha256sum | cut -c1-12)"
  dir="$cache/$name-$key"
  if [ ! -x "$dir/$name" ]; then
    local version ldflags
    version="$(cd "$mod" && GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' "$(cd "$mod" && GOFLAGS=-mod=readonly go list -f '{{.Module.Path}}' "$pkg")")"
    ldflags="-s -w -X main.version=$version"
    # versitygw's --version reads main.Version (capitalised).
    [ "$name" != versitygw ] || ldflags="$ldflags -X main.Version=$version"
    echo "building $name $version into $dir (first run only)" >&2
    mkdir -p "$dir"
    (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath \
      -ldflags "$ldflags" -o "$dir/$name.tmp.$$" "$pkg") >&2
    # A name of its own: test packages run in parallel may build it at once.
    mv "$dir/$name.tmp.$$" "$dir/$name"
  fi
}

case "${1:-golangci-lint}" in
  all)
    for t in golangci-lint controller-gen dockle syft govulncheck versitygw; do build "$t"; done
    ;;
  golangci-lint | controller-gen | dockle | syft | govulncheck | grype | versitygw)
    build "${1:-golangci-lint}"
    echo "$dir"
    ;;
  *)
    echo "usage: $0 [golangci-lint|controller-gen|dockle|syft|govulncheck|grype|versitygw|all]" >&2
    exit 2
    ;;
esac
