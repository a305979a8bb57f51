#!/usr/bin/env bash
# `make vulncheck` (part of make test): govulncheck over pgward's module and
# the image builder's, failing on any known vulnerability that pgward's code
# can reach, in a dependency or in the Go standard library of the toolchain
# that builds it.
#
# The vulnerability database comes from the Go module proxy, offline from
# vuln.go.dev: golang.org/x/vulndb is a module, and its data/osv directory
# holds every Go vulnerability report as OSV JSON, which govulncheck reads
# as a local database. The version below pins the database (its date is in
# the version) and the h1 hash pins its content, as go.sum would. To take
# newer reports: pick a newer pseudo-version of golang.org/x/vulndb, run
#   go mod download -json golang.org/x/vulndb@VERSION
# and copy its Version and Sum here.
set -euo pipefail
cd "$(dirname "$0")/.."
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
VULNDB_SUM=h1:mfngRv0Yoh0VApsXKEN82CjD99kl7mtparN3bs3JnqI=

govulncheck="$(hack/tools.sh govulncheck)/govulncheck"
# Outside any module, so that downloading adds nothing to a go.mod.
info="$(cd / && GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION")"
field() { printf '%s\n' "$info" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p"; }
if [ "$(field Sum)" != "$VULNDB_SUM" ]; then
  echo "vulncheck: golang.org/x/vulndb@$VULNDB_VERSION has hash $(field Sum), want $VULNDB_SUM" >&2
  exit 1
fi
db="$(field Dir)/data/osv"
echo "vulncheck: $(go env GOVERSION), database golang.org/x/vulndb@$VULNDB_VERSION ($(ls "$db" | wc -l) reports)" >&2
rc=0
for mod in . hack/image test/csi; do
  echo "== $mod" >&2
  (cd "$mod" && "$govulncheck" -db "file://$db" ./...) || rc=1
done
# Negative control: a module that calls a vulnerable function must be
# refused, or this check proves nothing.
echo "== hack/vulncheck-control (must be refused)" >&2
if out="$(cd hack/vulncheck-control && "$govulncheck" -db "file://$db" ./... 2>&1)"; then
  echo "vulncheck: the control module passed; the database or govulncheck is broken" >&2
  rc=1
elif ! grep -q GO-2021-0113 <<<"$out"; then
  printf 'vulncheck: the control module failed without naming GO-2021-0113:\n%s\n' "$out" >&2
  rc=1
else
  echo "refused, as it must be (GO-2021-0113)" >&2
fi
exit $rc
