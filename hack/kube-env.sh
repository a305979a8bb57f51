# Shared by hack/kube-up.sh and hack/kube-down.sh (sourced): where the
# one-node cluster keeps its state, its addresses, and what on the host it
# may change.
KDIR="${PGWARD_KUBE_DIR:-/var/lib/pgward-kube}"
NETNS=pgward-kube
NODE_NAME=pgward-node
HOST_VETH=pgward-kube0
NODE_VETH=pgward-kube1
HOST_IP=10.250.0.2
NODE_IP=10.250.0.1
SERVICE_CIDR=10.96.0.0/24
SERVICE_API_IP=10.96.0.1
POD_CIDR=10.244.0.0/24
CLUSTER_DOMAIN=cluster.local
CONTAINERD_SOCK="$KDIR/containerd/containerd.sock"
PAUSE_IMAGE=pgward.local/pause:1
VOLUMES=${PGWARD_KUBE_VOLUMES:-12}
# The kubelet sets these host sysctls (and nothing else global); kube-up
# records them and kube-down puts them back.
HOST_SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory"
# Host paths the kubelet, containerd and CNI write whatever their
# configuration says; removed by kube-down unless they existed before.
HOST_PATHS="/var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/containers /run/containerd /run/containerd/s /var/lib/cni /var/lib/cni/results"
