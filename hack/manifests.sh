#!/usr/bin/env bash
# Generates the operator's manifests: the CRD, RBAC and webhook
# configurations from the kubebuilder markers in api/ and internal/kube/
# (controller-gen), then dist/install.yaml and dist/install-namespaced.yaml
# (hack/genmanifests). With an
# argument, writes the same tree under that directory instead of the
# repository, which is how the staleness test compares them.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
cg="$(hack/tools.sh controller-gen)/controller-gen"
mkdir -p "$out/config/crd/bases" "$out/config/rbac" "$out/config/webhook" "$out/config/manager" "$out/dist"
"$cg" crd rbac:roleName=pgward-operator webhook paths=./api/... paths=./internal/kube/... \
  output:crd:artifacts:config="$out/config/crd/bases" \
  output:rbac:artifacts:config="$out/config/rbac" \
  output:webhook:artifacts:config="$out/config/webhook"
if [ "$out" != "." ]; then
  cp config/manager/operator.yaml "$out/config/manager/operator.yaml"
fi
go run ./hack/genmanifests -config "$out/config" -out "$out/dist/install.yaml"
# The namespaced install, for the namespace the README's walkthrough uses;
# `make install-namespaced NAMESPACES=...` writes one for yours.
go run ./hack/genmanifests -config "$out/config" -namespaces db -out "$out/dist/install-namespaced.yaml"
