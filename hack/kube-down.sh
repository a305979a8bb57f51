#!/usr/bin/env bash
# Stops the one-node cluster of hack/kube-up.sh and leaves the host as it
# found it: every daemon stopped by its recorded PID, every container
# process killed, every mount under the state directory unmounted, the pod
# and node network namespaces deleted, the kubelet's cgroups removed, the
# host sysctls it changed restored, the host paths it wrote removed. Safe to
# run twice, with nothing running, or after a crash half-way through kube-up.
#
#   kube-down.sh [--quiet] [--keep]   --keep leaves the state directory (logs)
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/kube-env.sh
. "$repo/hack/kube-env.sh"

quiet= keep=
for a in "$@"; do
  case "$a" in
    --quiet) quiet=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--quiet] [--keep]" >&2; exit 2 ;;
  esac
done
say() { [ -n "$quiet" ] || echo "kube-down: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "kube-down needs root" >&2
  exit 1
fi
if [ ! -d "$KDIR" ] && ! ip netns list | grep -qw "$NETNS"; then
  say "nothing to stop"
  exit 0
fi

# pidof NAME: the recorded PID of a daemon, if that PID still runs what we
# started (a reused PID is never signalled).
pidof_daemon() {
  local name=$1 pid exe
  pid="$(awk -v n="$name" '$1 == n {print $2}' "$KDIR/pids" 2>/dev/null | tail -1)"
  [ -n "$pid" ] || return 0
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 0
  case "$exe" in
    "$KDIR"/* | */"$name") echo "$pid" ;;
    */sh | */dash | */bash) # the volume recycler: a shell running our script
      tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$KDIR/recycle.sh" && echo "$pid" ;;
  esac
}

# running PID: alive and not a zombie waiting for its reaper.
running() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# stop NAME...: TERM the daemons together, KILL whatever still runs 5 s later.
stop() {
  local name pid pids=()
  for name in "$@"; do
    pid="$(pidof_daemon "$name")"
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null
    pids+=("$pid")
  done
  for _ in $(seq 50); do
    local left=()
    for pid in "${pids[@]}"; do running "$pid" && left+=("$pid"); done
    [ "${#left[@]}" -gt 0 ] || return 0
    pids=("${left[@]}")
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null
}

# Node daemons first, so nothing restarts what is torn down next; the CSI
# ones (PGWARD_KUBE_CSI=1) before the kubelet, which would call the driver.
stop csi-provisioner csi-snapshotter csi-resizer snapshot-controller csi-hostpath
stop recycle kube-router coredns kubelet kube-proxy

# Every container process lives in the kubelet's cgroups.
for _ in 1 2 3; do
  pids="$(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs $(find /sys/fs/cgroup/pids/kubepods -mindepth 1 -name cgroup.procs 2>/dev/null) 2>/dev/null | sort -u)"
  [ -n "$pids" ] || break
  kill -KILL $pids 2>/dev/null
  sleep 0.3
done
stop containerd kube-scheduler kube-controller-manager
# The API server after its clients, etcd last.
stop kube-apiserver
stop etcd
# Shims outlive containerd; only ours name our socket.
for p in $(pgrep -f containerd-shim-runc-v2 2>/dev/null); do
  if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "$CONTAINERD_SOCK"; then
    kill -KILL "$p" 2>/dev/null
  fi
done
# Anything else still in the node's namespace.
if ip netns list | grep -qw "$NETNS"; then
  for p in $(ip netns pids "$NETNS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
fi
sleep 0.2

# The pods' network namespaces (CNI made them in /run/netns) go before
# their mounts are undone; only those that appeared during our run.
before="$KDIR/host-netns-before"
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-'); do
  if [ -f "$before" ] && grep -qx "$ns" "$before"; then continue; fi
  ip netns del "$ns" 2>/dev/null
done

# Mounts under the state directory (overlay root filesystems, emptyDirs,
# projected volumes, sandbox /dev/shm), deepest first.
for _ in 1 2 3; do
  mounts="$(awk -v d="$KDIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)"
  [ -n "$mounts" ] || break
  for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

ip netns del "$NETNS" 2>/dev/null
ip link del "$HOST_VETH" 2>/dev/null

# The kubelet's cgroups, in every hierarchy, where kube-up saw none.
if [ -f "$KDIR/host-cgroups-created" ]; then
  while read -r c; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done < "$KDIR/host-cgroups-created"
fi

# Host sysctls back to what kube-up found.
if [ -f "$KDIR/host-sysctls" ]; then
  while IFS== read -r k v; do
    [ -n "$k" ] && sysctl -qw "$k=$v"
  done < "$KDIR/host-sysctls"
  rm -f "$KDIR/host-sysctls"
fi

# Host paths the components wrote although told otherwise; deepest first.
if [ -f "$KDIR/host-paths-created" ]; then
  sort -r "$KDIR/host-paths-created" | while read -r p; do rm -rf "$p"; done
  rm -f "$KDIR/host-paths-created"
fi

left="$(awk -v d="$KDIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts)"
if [ -n "$left" ]; then
  # Never delete through a mount that would not go away.
  echo "kube-down: still mounted, $KDIR kept:" $left >&2
  exit 1
fi
if [ -n "$keep" ]; then
  rm -f "$KDIR/pids"
  say "stopped; state and logs kept in $KDIR"
else
  rm -rf "$KDIR"
  say "stopped and removed $KDIR"
fi
exit 0
