#!/usr/bin/env bash
# Starts a real one-node Kubernetes on this machine, for pgward's end-to-end
# tests and for anyone who wants to try the operator: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, kubelet,
# kube-proxy, CoreDNS and kube-router (its NetworkPolicy firewall only), all
# built from source or taken from Debian, every one in a network namespace of
# its own ("pgward-kube") with the node at 10.250.0.1. Only that address is
# reachable from the host (a veth pair, host end 10.250.0.2); pods, Service
# IPs and DNS exist inside the namespace only, which has no default route.
#
# It installs the Debian packages it needs (containerd, runc, the CNI
# plugins, iptables, ipset, conntrack), builds or reuses the pinned binaries
# (hack/kube-binaries.sh --node), imports the images `make images` built
# (bin/images), provides a default
# StorageClass backed by static `local` PersistentVolumes (which the kubelet
# gives the pods' fsGroup, unlike hostPath), and prints
# `export KUBECONFIG=<path>` as its last line.
#
# PGWARD_KUBE_CSI=1 adds CSI storage with volume snapshots (hack/kube-csi.sh:
# pgward's test driver, the snapshot controller and the CSI sidecars as host
# processes; StorageClass csi-hostpath-sc, VolumeSnapshotClass
# csi-hostpath-snapclass); `make e2e` sets it, the smoke run does not.
#
# Needs root. Everything it starts is recorded in $PGWARD_KUBE_DIR (default
# /var/lib/pgward-kube) and stopped by hack/kube-down.sh, which also undoes
# what the kubelet changes on the host; kube-up runs it first, so a second
# run, or a run after a crash, starts clean.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/kube-env.sh
. "$repo/hack/kube-env.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "kube-up needs root (network namespace, containerd, kubelet)" >&2
  exit 1
fi
for img in postgresql pgward pause; do
  if [ ! -f "$repo/bin/images/$img.tar" ]; then
    echo "bin/images/$img.tar is missing: run make images first" >&2
    exit 1
  fi
done
"$repo/hack/install-deps.sh" --kube
for cmd in containerd runc ctr iptables ipset conntrack openssl nsenter; do
  command -v "$cmd" >/dev/null || { echo "$cmd is missing after hack/install-deps.sh --kube" >&2; exit 1; }
done

start_ms=$(($(date +%s%N) / 1000000))
elapsed() { local ms=$(($(date +%s%N) / 1000000 - start_ms)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
log() { echo "[kube-up $(elapsed)s] $*" >&2; }

"$repo/hack/kube-down.sh" --quiet
bin="$("$repo/hack/kube-binaries.sh" --node)"
if [ "${PGWARD_KUBE_CSI:-}" = 1 ]; then
  # Built (or found in the cache) before anything starts.
  "$repo/hack/csi.sh" > /dev/null
  "$repo/hack/csi.sh" --driver > /dev/null
fi
mkdir -p "$KDIR"
chmod 0700 "$KDIR"
cd "$KDIR"
mkdir -p pki logs etcd containerd cni/net.d cni/results kubelet/root kubelet/pki static pod-logs volumes runc
: > pids

# --- what this run may change on the host, recorded before anything starts
for s in $HOST_SYSCTLS; do
  echo "$s=$(sysctl -n "$s")"
done > host-sysctls
for p in $HOST_PATHS; do
  [ -e "$p" ] || echo "$p"
done > host-paths-created
for c in /sys/fs/cgroup/*/; do
  [ -d "$c/kubepods" ] || echo "$c/kubepods"
done > host-cgroups-created
ip netns list | awk '{print $1}' | grep '^cni-' > host-netns-before || true

# --- network: the node's namespace, and a veth whose host end reaches only
# the node address
ip netns add "$NETNS"
N=(nsenter "--net=/run/netns/$NETNS")
"${N[@]}" ip link set lo up
ip link add "$HOST_VETH" type veth peer name "$NODE_VETH"
ip link set "$NODE_VETH" netns "$NETNS"
ip addr add "$HOST_IP/30" dev "$HOST_VETH"
ip link set "$HOST_VETH" up
"${N[@]}" ip addr add "$NODE_IP/30" dev "$NODE_VETH"
"${N[@]}" ip link set "$NODE_VETH" up
# ClusterIPs need a route before kube-proxy's DNAT picks them up.
"${N[@]}" ip route add "$SERVICE_CIDR" dev "$NODE_VETH"
# The host end is for the host to reach the API server; pods must not reach
# the host through it.
"${N[@]}" ip rule add from "$POD_CIDR" to "$HOST_IP" blackhole
"${N[@]}" sysctl -qw net.ipv4.ip_forward=1
log "network namespace $NETNS: node $NODE_IP, host end $HOST_IP"

# --- PKI: one EC P-256 CA; a certificate per component identity
cert() { # NAME SUBJECT [SANS] : signs pki/NAME.crt with the CA
  local name=$1 subj=$2 sans=${3:-}
  openssl ecparam -name prime256v1 -genkey -noout -out "pki/$name.key" 2>/dev/null
  openssl req -new -key "pki/$name.key" -subj "$subj" -out "pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } > "pki/$name.ext"
  openssl x509 -req -in "pki/$name.csr" -CA pki/ca.crt -CAkey pki/ca.key -CAcreateserial \
    -days 30 -sha256 -extfile "pki/$name.ext" -out "pki/$name.crt" 2>/dev/null
  rm -f "pki/$name.csr" "pki/$name.ext"
}
umask 077
openssl ecparam -name prime256v1 -genkey -noout -out pki/ca.key 2>/dev/null
openssl req -x509 -new -key pki/ca.key -subj "/CN=pgward-kube-ca" -days 30 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out pki/ca.crt 2>/dev/null
cert apiserver "/CN=kube-apiserver" \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,IP:$SERVICE_API_IP,IP:$NODE_IP,IP:127.0.0.1"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=pgward-kube-admin"
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,IP:$NODE_IP"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kube-proxy "/CN=system:kube-proxy"
cert coredns "/CN=pgward-kube:coredns"
cert kube-router "/CN=pgward-kube:kube-router"
openssl ecparam -name prime256v1 -genkey -noout -out pki/sa.key 2>/dev/null
openssl ec -in pki/sa.key -pubout -out pki/sa.pub 2>/dev/null
umask 022

kubeconfig() { # NAME: a kubeconfig for pki/NAME.{crt,key}
  local name=$1
  cat > "$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: pgward-kube
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority: $KDIR/pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $KDIR/pki/$name.crt
    client-key: $KDIR/pki/$name.key
contexts:
- name: pgward-kube
  context: {cluster: pgward-kube, user: $name}
current-context: pgward-kube
EOF
  chmod 0600 "$name.kubeconfig"
}
for n in admin kubelet controller-manager scheduler kube-proxy coredns kube-router; do
  kubeconfig "$n"
done
log "PKI and kubeconfigs"

# --- daemons: each started in the namespace, its PID recorded by name
# (nsenter execs the binary, so $! is the daemon itself).
daemon() { # NAME CMD...
  local name=$1
  shift
  setsid "${N[@]}" "$@" > "logs/$name.log" 2>&1 < /dev/null &
  echo "$name $!" >> pids
}
wait_for() { # WHAT SECONDS CMD...
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" > /dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "kube-up: $what not ready after ${secs}s; logs in $KDIR/logs" >&2
  return 1
}
kubectl() { "$bin/kubectl" --kubeconfig "$KDIR/admin.kubeconfig" "$@"; }

# etcd: a throw-away store on the namespace's loopback; no fsync (this
# cluster lives for one test run).
daemon etcd "$bin/etcd" --name pgward-kube --data-dir "$KDIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster pgward-kube=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn

daemon kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers http://127.0.0.1:2379 \
  --advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port 6443 \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --tls-cert-file pki/apiserver.crt --tls-private-key-file pki/apiserver.key \
  --client-ca-file pki/ca.crt \
  --kubelet-client-certificate pki/apiserver-kubelet-client.crt \
  --kubelet-client-key pki/apiserver-kubelet-client.key \
  --kubelet-certificate-authority pki/ca.crt \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file pki/sa.pub --service-account-signing-key-file pki/sa.key \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=false --profiling=false --anonymous-auth=false
wait_for "kube-apiserver" 60 kubectl get --raw /readyz
log "etcd and kube-apiserver"

daemon kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig controller-manager.kubeconfig \
  --authentication-kubeconfig controller-manager.kubeconfig \
  --authorization-kubeconfig controller-manager.kubeconfig \
  --bind-address 127.0.0.1 --leader-elect=false \
  --root-ca-file pki/ca.crt --service-account-private-key-file pki/sa.key \
  --cluster-signing-cert-file pki/ca.crt --cluster-signing-key-file pki/ca.key \
  --use-service-account-credentials --profiling=false
daemon kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig scheduler.kubeconfig \
  --authentication-kubeconfig scheduler.kubeconfig \
  --authorization-kubeconfig scheduler.kubeconfig \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false

# containerd with every path of its own; restrict_oom_score_adj because
# root here lacks CAP_SYS_RESOURCE; the sandbox image is the one imported
# below (no registry to pull from).
cat > containerd/config.toml <<EOF
version = 2
root = "$KDIR/containerd/root"
state = "$KDIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$KDIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$KDIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$KDIR/cni/net.d"
EOF
cat > cni/net.d/10-pgward.conflist <<EOF
{
  "cniVersion": "0.4.0",
  "name": "pgward-kube",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "subnet": "$POD_CIDR", "dataDir": "$KDIR/cni/ipam",
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
daemon containerd containerd --config containerd/config.toml
wait_for "containerd" 30 ctr --address "$CONTAINERD_SOCK" version
log "kube-controller-manager, kube-scheduler, containerd"

# Images, imported in parallel (decompression is the cost).
import_pids=()
for img in postgresql pgward pause; do
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$repo/bin/images/$img.tar" > "logs/import-$img.log" 2>&1 &
  import_pids+=($!)
done
for p in "${import_pids[@]}"; do
  wait "$p" || { echo "kube-up: image import failed; see $KDIR/logs/import-*.log" >&2; exit 1; }
done
log "images imported: $(ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

cat > kubelet/config.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $KDIR/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $KDIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $KDIR/pki/kubelet-serving.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$NODE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: ""
staticPodPath: $KDIR/static
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: $KDIR/pod-logs
serializeImagePulls: false
EOF
daemon kubelet "$bin/kubelet" --config kubelet/config.yaml --kubeconfig kubelet.kubeconfig \
  --root-dir "$KDIR/kubelet/root" --cert-dir "$KDIR/kubelet/pki" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"

cat > kube-proxy.yaml <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
clientConnection: {kubeconfig: $KDIR/kube-proxy.kubeconfig}
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
daemon kube-proxy "$bin/kube-proxy" --config kube-proxy.yaml

# Identities for CoreDNS and kube-router, each with only what it reads.
wait_for "the default namespace" 60 kubectl get namespace default
kubectl apply -f - > /dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "pgward-kube:coredns"}
rules:
- apiGroups: [""]
  resources: [services, endpoints, namespaces, pods]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "pgward-kube:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "pgward-kube:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "pgward-kube:coredns"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "pgward-kube:kube-router"}
rules:
- apiGroups: [""]
  resources: [pods, namespaces, nodes, services, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "pgward-kube:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "pgward-kube:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "pgward-kube:kube-router"}]
EOF

# CoreDNS as a process on the node address (the pods' clusterDNS); no
# forwarding: nothing outside the namespace is reachable anyway.
cat > Corefile <<EOF
.:53 {
    bind $NODE_IP
    errors
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $KDIR/coredns.kubeconfig pgward-kube
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
daemon coredns "$bin/coredns" -conf Corefile

wait_for "node $NODE_NAME" 90 sh -c "'$bin/kubectl' --kubeconfig '$KDIR/admin.kubeconfig' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
# kube-router finds its node by name at start: only once it is registered.
daemon kube-router "$bin/kube-router" --run-firewall=true --run-router=false \
  --run-service-proxy=false --enable-cni=false --kubeconfig kube-router.kubeconfig \
  --hostname-override "$NODE_NAME" --health-port 0 --metrics-port 0
log "kubelet, kube-proxy, CoreDNS: node $NODE_NAME Ready; kube-router"

# Storage: a default StorageClass of static local volumes. Claims bind when
# their pod is scheduled; the kubelet applies the pod's fsGroup to local
# volumes, so PostgreSQL (uid 26) can write its data directory.
{
  cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  for i in $(seq -w 1 "$VOLUMES"); do
    mkdir -p "volumes/pv$i"
    cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pgward-kube-pv$i
  labels: {pgward.io/kube-up: volume}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: $KDIR/volumes/pv$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
EOF
  done
} | kubectl apply -f - > /dev/null

# Released volumes are wiped and offered again (what the retired Recycle
# policy did), so clusters can come and go on a fixed set of volumes.
cat > recycle.sh <<EOF
#!/bin/sh
while sleep 2; do
  "$bin/kubectl" --kubeconfig "$KDIR/admin.kubeconfig" get pv -l pgward.io/kube-up=volume \
    -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{" "}{.spec.local.path}{"\n"}{end}' 2>/dev/null |
  while read -r pv path; do
    case "\$path" in "$KDIR/volumes/"*) ;; *) continue ;; esac
    find "\$path" -mindepth 1 -delete
    "$bin/kubectl" --kubeconfig "$KDIR/admin.kubeconfig" patch pv "\$pv" --type json \
      -p '[{"op":"remove","path":"/spec/claimRef"}]' > /dev/null
  done
done
EOF
chmod 0755 recycle.sh
setsid "$KDIR/recycle.sh" > logs/recycle.log 2>&1 < /dev/null &
echo "recycle $!" >> pids
log "StorageClass local with $VOLUMES volumes"

if [ "${PGWARD_KUBE_CSI:-}" = 1 ]; then
  # shellcheck source=hack/kube-csi.sh
  . "$repo/hack/kube-csi.sh"
fi

# Pods must be able to reach the API server before anything is installed:
# kube-proxy has programmed the kubernetes Service when its endpoint answers.
wait_for "the kubernetes Service" 60 "${N[@]}" sh -c \
  "iptables-save -t nat 2>/dev/null | grep -q 'default/kubernetes:https'"

# Every daemon must still be running: one that died at start (a bad flag,
# a port taken) would otherwise show up later as a confusing test failure.
while read -r name pid; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "kube-up: $name exited; its log ($KDIR/logs/$name.log) ends with:" >&2
    tail -5 "logs/$name.log" >&2
    exit 1
  fi
done < pids
# kube-router's firewall is up once it has created its chains.
wait_for "kube-router's firewall" 60 "${N[@]}" sh -c "iptables-save -t filter 2>/dev/null | grep -q KUBE-ROUTER"

cp admin.kubeconfig kubeconfig
log "ready in $(elapsed) s; kubectl: $bin/kubectl; pods and Services are reachable from the node's namespace only (ip netns exec $NETNS ...)"
echo "export KUBECONFIG=$KDIR/kubeconfig"
