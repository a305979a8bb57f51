#!/usr/bin/env bash
# `make image-check`: the gates every image of bin/images must pass, and the
# SBOMs written next to them. Any finding fails the build.
#   1. pgward's own rules (hack/image check): the configured user, no
#      setuid/setgid or world-writable file, no private key by content, no
#      package caches, manual pages or documentation;
#   2. Dockle at its strictest level (--exit-level info), ignoring only
#      CIS-DI-0005 (Docker Content Trust: there is no registry to sign for)
#      and CIS-DI-0006 (HEALTHCHECK: Kubernetes probes the pods instead);
#   3. both gates refuse a control image with known faults, so a gate that
#      silently passes everything is caught too;
#   4. an SBOM in SPDX and CycloneDX (syft) for each image.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=bin/images
dockle="$(hack/tools.sh dockle)/dockle"
syft="$(hack/tools.sh syft)/syft"
(cd hack/image && go build -trimpath -o ../../bin/image .)

declare -A users=([postgresql]=26:26 [pgward]=65532:65532 [pause]=65535:65535)
gate() { # NAME FILE USER
  bin/image check -user "$3" "$2" >&2 &&
    "$dockle" --exit-code 1 --exit-level info -i CIS-DI-0005 -i CIS-DI-0006 --input "$2" >&2
}

for name in postgresql pgward pause; do
  f="$dir/$name.tar"
  [ -f "$f" ] || { echo "$f is missing: run make images" >&2; exit 1; }
  gate "$name" "$f" "${users[$name]}"
  echo "$name: pgward's checks and Dockle pass" >&2
done

bin/image control -out "$dir/control.tar"
if bin/image check -user 0:0 "$dir/control.tar" 2>/dev/null; then
  echo "the image check passed the control image: the gate is broken" >&2
  exit 1
fi
if "$dockle" --exit-code 1 --exit-level info -i CIS-DI-0005 -i CIS-DI-0006 --input "$dir/control.tar" >/dev/null 2>&1; then
  echo "Dockle passed the control image: the gate is broken" >&2
  exit 1
fi
rm -f "$dir/control.tar"
echo "control image refused by both gates" >&2

for name in postgresql pgward; do
  SYFT_CHECK_FOR_APP_UPDATE=false "$syft" scan "docker-archive:$dir/$name.tar" -q \
    -o "spdx-json=$dir/$name.spdx.json" -o "cyclonedx-json=$dir/$name.cdx.json"
done
echo "SBOMs: $(cd "$dir" && ls ./*.spdx.json ./*.cdx.json | tr '\n' ' ')" >&2
