#!/usr/bin/env bash
# `make scan`: a CVE scan of the images' SBOMs (written by make image-check)
# with Grype, failing on any vulnerability of high severity or worse that
# Debian or the Go module has a fix for. Grype downloads its vulnerability
# database from the Internet (grype.anchore.io): run this where that is
# reachable; these build machines cannot, so it is not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(hack/tools.sh grype)" # pinned in hack/tools/grype
export GRYPE_CHECK_FOR_APP_UPDATE=false
if ! "$dir/grype" db update >/dev/null 2>&1 && ! "$dir/grype" db status >/dev/null 2>&1; then
  echo "grype has no vulnerability database and cannot download one (grype.anchore.io unreachable):" >&2
  echo "run make scan on a machine with Internet access; the SBOMs are in bin/images" >&2
  exit 1
fi
rc=0
for sbom in bin/images/postgresql.spdx.json bin/images/pgward.spdx.json; do
  echo "== $sbom" >&2
  "$dir/grype" "sbom:$sbom" --only-fixed --fail-on high || rc=1
done
exit $rc
