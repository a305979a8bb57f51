# Sourced by hack/kube-up.sh when PGWARD_KUBE_CSI=1 (make e2e sets it):
# CSI storage with volume snapshots on the one-node cluster, for tests of
# CloudNativePG's volume-snapshot backups and recoveries. It uses kube-up's
# helpers (cert, kubeconfig, daemon, wait_for, kubectl, log) and runs, as
# host processes in the node's network namespace beside the kubelet:
#
#   csi-hostpath         pgward's test driver (test/csi): volumes are
#                        directories under $KDIR/csi/store, snapshots are
#                        copies; it registers itself with the kubelet
#   csi-provisioner      creates and deletes PVs for claims of its class,
#                        including claims restored from a VolumeSnapshot
#   csi-snapshotter      cuts and deletes snapshots through the driver
#   csi-resizer          grows volumes whose claim asks for more (the
#                        StorageClass allows expansion, online)
#   snapshot-controller  binds VolumeSnapshots to their contents
#
# and creates the snapshot CRDs (from the external-snapshotter client
# module), the CSIDriver (fsGroupPolicy File: the kubelet gives the pod's
# fsGroup to the volume's root, as it does for local volumes, so uid 26 can
# write), StorageClass csi-hostpath-sc and VolumeSnapshotClass
# csi-hostpath-snapclass (the names CloudNativePG's samples use). The
# default StorageClass stays `local`. hack/kube-down.sh stops the five
# daemons by PID; their state lives in $KDIR and goes with it.
# shellcheck shell=bash
# shellcheck disable=SC2154 # repo, bin, KDIR and the helpers are kube-up.sh's

csi_bin="$("$repo/hack/csi.sh")"
csi_driver="$("$repo/hack/csi.sh" --driver)"
CSI_DRIVER_NAME=hostpath.csi.pgward.io
csi_sock="$KDIR/kubelet/root/plugins/$CSI_DRIVER_NAME/csi.sock"
mkdir -p "$KDIR/csi/store"
chmod 0700 "$KDIR/csi"

# The CRDs ship in the client module the wrapper pins (go.sum checks them).
csi_crds="$(cd "$repo/hack/csi/snapshotter" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)/config/crd"
for f in "$csi_crds"/*.storage.k8s.io_*.yaml; do
  kubectl apply --server-side -f "$f" > /dev/null
done
kubectl wait --for condition=established --timeout 60s \
  crd/volumesnapshots.snapshot.storage.k8s.io crd/volumesnapshotcontents.snapshot.storage.k8s.io \
  crd/volumesnapshotclasses.snapshot.storage.k8s.io > /dev/null

# Two identities, each with what upstream's RBAC gives it: the snapshot
# controller, and the driver's three sidecars.
umask 077
cert snapshot-controller "/CN=pgward-kube:snapshot-controller"
cert csi-sidecars "/CN=pgward-kube:csi-sidecars"
umask 022
kubeconfig snapshot-controller
kubeconfig csi-sidecars
kubectl apply -f - > /dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "pgward-kube:snapshot-controller"}
rules:
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, update]
- apiGroups: [""]
  resources: [events]
  verbs: [list, watch, create, update, patch]
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshotclasses]
  verbs: [get, list, watch]
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshotcontents, volumesnapshots]
  verbs: [create, get, list, watch, update, delete, patch]
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshotcontents/status, volumesnapshots/status]
  verbs: [update, patch]
- apiGroups: [groupsnapshot.storage.k8s.io]
  resources: [volumegroupsnapshotclasses]
  verbs: [get, list, watch]
- apiGroups: [groupsnapshot.storage.k8s.io]
  resources: [volumegroupsnapshotcontents, volumegroupsnapshots]
  verbs: [create, get, list, watch, update, delete, patch]
- apiGroups: [groupsnapshot.storage.k8s.io]
  resources: [volumegroupsnapshotcontents/status, volumegroupsnapshots/status]
  verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "pgward-kube:snapshot-controller"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "pgward-kube:snapshot-controller"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "pgward-kube:snapshot-controller"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "pgward-kube:csi-sidecars"}
rules:
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, update]
- apiGroups: [""]
  resources: [persistentvolumeclaims/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [list, watch, create, update, patch]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses, csinodes, volumeattachments, volumeattributesclasses]
  verbs: [get, list, watch]
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshotclasses]
  verbs: [get, list, watch]
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshots]
  verbs: [get, list, watch, update]
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshotcontents]
  verbs: [get, list, watch, update, patch]
- apiGroups: [snapshot.storage.k8s.io]
  resources: [volumesnapshotcontents/status]
  verbs: [update, patch]
- apiGroups: [groupsnapshot.storage.k8s.io]
  resources: [volumegroupsnapshotclasses]
  verbs: [get, list, watch]
- apiGroups: [groupsnapshot.storage.k8s.io]
  resources: [volumegroupsnapshotcontents]
  verbs: [get, list, watch, update, patch]
- apiGroups: [groupsnapshot.storage.k8s.io]
  resources: [volumegroupsnapshotcontents/status]
  verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "pgward-kube:csi-sidecars"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "pgward-kube:csi-sidecars"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "pgward-kube:csi-sidecars"}]
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: $CSI_DRIVER_NAME}
spec:
  attachRequired: false
  podInfoOnMount: false
  fsGroupPolicy: File
  volumeLifecycleModes: [Persistent]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: csi-hostpath-sc}
provisioner: $CSI_DRIVER_NAME
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-hostpath-snapclass}
driver: $CSI_DRIVER_NAME
deletionPolicy: Delete
EOF

daemon csi-hostpath "$csi_driver" --name "$CSI_DRIVER_NAME" --endpoint "$csi_sock" \
  --root "$KDIR/csi/store" --node-id "$NODE_NAME" \
  --registration-dir "$KDIR/kubelet/root/plugins_registry"
wait_for "csi-hostpath's socket" 30 test -S "$csi_sock"
daemon csi-provisioner "$csi_bin/csi-provisioner" --csi-address "$csi_sock" \
  --kubeconfig csi-sidecars.kubeconfig --leader-election=false --extra-create-metadata \
  --timeout 5m --http-endpoint "" --metrics-address ""
daemon csi-snapshotter "$csi_bin/csi-snapshotter" --csi-address "$csi_sock" \
  --kubeconfig csi-sidecars.kubeconfig --leader-election=false --extra-create-metadata \
  --timeout 5m --http-endpoint "" --metrics-address ""
daemon csi-resizer "$csi_bin/csi-resizer" --csi-address "$csi_sock" \
  --kubeconfig csi-sidecars.kubeconfig --leader-election=false \
  --timeout 5m --http-endpoint "" --metrics-address ""
daemon snapshot-controller "$csi_bin/snapshot-controller" \
  --kubeconfig snapshot-controller.kubeconfig --leader-election=false --http-endpoint ""
# The kubelet has registered the driver once the node's CSINode lists it.
wait_for "the kubelet's registration of $CSI_DRIVER_NAME" 60 sh -c \
  "'$bin/kubectl' --kubeconfig '$KDIR/admin.kubeconfig' get csinode '$NODE_NAME' -o jsonpath='{.spec.drivers[*].name}' | grep -qw '$CSI_DRIVER_NAME'"
log "CSI storage: StorageClass csi-hostpath-sc, VolumeSnapshotClass csi-hostpath-snapclass (driver $CSI_DRIVER_NAME)"
