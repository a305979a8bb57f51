#!/usr/bin/env bash
# Runs `pgward operator` outside the cluster, for development, against the
# one-node cluster of hack/kube-up.sh (docs/operator.md explains each step,
# and how to do the same against any cluster from a laptop).
#
#   operator-dev.sh up     install dist/install.yaml, scale the in-cluster
#                          operator to zero, write a kubeconfig whose token
#                          is the operator's ServiceAccount (exactly the
#                          generated RBAC), point both webhook configurations
#                          at https://<node IP>:9443, and print the command
#   operator-dev.sh run    `up`, then run bin/pgward operator with it (in the
#                          node's network namespace, which reaches the pods'
#                          status ports and where the API server reaches the
#                          webhook server) until interrupted
#   operator-dev.sh down   give the cluster its in-cluster operator back
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/kube-env.sh
. "$repo/hack/kube-env.sh"
bin="$("$repo/hack/kube-binaries.sh" --node)"
admin=(--kubeconfig "$KDIR/kubeconfig")
kubectl() { "$bin/kubectl" "${admin[@]}" "$@"; }
devdir="$KDIR/operator-dev"
ns=pgward-system

if [ ! -f "$KDIR/kubeconfig" ]; then
  echo "no cluster: run make kube-up first" >&2
  exit 1
fi

up() {
  kubectl apply --server-side --force-conflicts -f "$repo/dist/install.yaml" > /dev/null
  kubectl -n "$ns" scale deployment pgward-operator --replicas 0 > /dev/null
  kubectl -n "$ns" wait --for=delete pod -l app.kubernetes.io/name=pgward-operator --timeout 60s > /dev/null 2>&1 || true

  mkdir -p "$devdir"
  chmod 0700 "$devdir"
  # The operator's own identity: a short-lived token of its ServiceAccount,
  # so what runs here can do exactly what the generated RBAC allows.
  token="$(kubectl -n "$ns" create token pgward-operator --duration 12h)"
  umask 077
  cat > "$devdir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: pgward-kube
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$KDIR/pki/ca.crt"}
users:
- name: pgward-operator
  user: {token: "$token"}
contexts:
- name: pgward-operator
  context: {cluster: pgward-kube, user: pgward-operator, namespace: $ns}
current-context: pgward-operator
EOF
  umask 022

  # The API server calls the webhooks at a URL instead of the Service; the
  # operator adds the node IP to its serving certificate (--webhook-extra-hosts)
  # and keeps the configurations' CA bundle current itself.
  # Every webhook of both configurations (Clusters, Backups, ScheduledBackups).
  for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
    name=pgward-${kind%%webhookconfiguration}-webhook
    n="$(kubectl get "$kind" "$name" -o jsonpath='{range .webhooks[*]}x{end}')"
    for ((i = 0; i < ${#n}; i++)); do
      path="$(kubectl get "$kind" "$name" -o jsonpath="{.webhooks[$i].clientConfig.service.path}")"
      if [ -n "$path" ]; then
        kubectl get "$kind" "$name" -o jsonpath="{.webhooks[$i].clientConfig.service}" > "$devdir/$kind.$i.service.json"
        kubectl patch "$kind" "$name" --type json -p "[{\"op\":\"replace\",\"path\":\"/webhooks/$i/clientConfig\",\"value\":{\"url\":\"https://$NODE_IP:9443$path\"}}]" > /dev/null
      fi
    done
  done
  cmd="ip netns exec $NETNS env KUBECONFIG=$devdir/kubeconfig POD_NAMESPACE=$ns $repo/bin/pgward operator --leader-elect=false --webhook-host $NODE_IP --webhook-extra-hosts $NODE_IP --webhook-cert-dir $devdir/webhook-certs --metrics-bind-address 0 --health-probe-bind-address 127.0.0.1:8081"
  echo "$cmd" > "$devdir/command"
  echo "$cmd"
}

case "${1:-}" in
  up) up ;;
  run)
    [ -x "$repo/bin/pgward" ] || make -C "$repo" --no-print-directory build >&2
    cmd="$(up)"
    echo "running: $cmd" >&2
    exec $cmd
    ;;
  down)
    # Back to the Service the install manifest names (apply alone would
    # leave the url this script set beside it).
    for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
      name=pgward-${kind%%webhookconfiguration}-webhook
      for f in "$devdir/$kind".*.service.json; do
        [ -f "$f" ] || continue
        i="${f#"$devdir/$kind."}"; i="${i%.service.json}"
        kubectl patch "$kind" "$name" --type json \
          -p "[{\"op\":\"replace\",\"path\":\"/webhooks/$i/clientConfig\",\"value\":{\"service\":$(cat "$f")}}]" > /dev/null
      done
    done
    kubectl apply --server-side --force-conflicts -f "$repo/dist/install.yaml" > /dev/null
    kubectl -n "$ns" scale deployment pgward-operator --replicas 2 > /dev/null
    rm -rf "$devdir"
    echo "the in-cluster operator is back" >&2
    ;;
  *) echo "usage: $0 up|run|down" >&2; exit 2 ;;
esac
