//go:build e2e_kube

package kube

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// containerProc is one process of a running container, read from the
// node's /proc: what the kernel enforces, whatever the pod spec says.
type containerProc struct {
	pid          int
	status       map[string]string // /proc/<pid>/status; Uid and Gid reduced to one id when all four agree
	readOnlyRoot bool              // "/" is mounted read-only in its mount namespace
}

// containerProcs lists the processes of a pod's container. The tests run
// on the node of hack/kube-up.sh, so they ask its containerd (socket under
// PGWARD_KUBE_DIR) for the container's processes and read their /proc
// entries directly: images need no shell or cat for this.
func containerProcs(t testing.TB, pod *corev1.Pod, container string) []containerProc {
	t.Helper()
	var id string
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container {
			id = strings.TrimPrefix(cs.ContainerID, "containerd://")
		}
	}
	if id == "" {
		t.Fatalf("%s: no running container %s", pod.Name, container)
	}
	dir := os.Getenv("PGWARD_KUBE_DIR")
	if dir == "" {
		dir = "/var/lib/pgward-kube"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sock := filepath.Join(filepath.Clean(dir), "containerd", "containerd.sock")
	out, err := exec.CommandContext(ctx, "ctr", "--address", sock, // #nosec G702 -- the test's own cluster directory
		"-n", "k8s.io", "tasks", "ps", id).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ps %s: %v\n%s", id, err, out)
	}
	var procs []containerProc
	for _, line := range strings.Split(string(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		p, ok := readProc(pid)
		if ok {
			procs = append(procs, p)
		}
	}
	if len(procs) == 0 {
		t.Fatalf("%s/%s: no processes (ctr said %q)", pod.Name, container, out)
	}
	return procs
}

func readProc(pid int) (containerProc, bool) {
	p := containerProc{pid: pid, status: map[string]string{}}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return p, false // exited meanwhile
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if k == "Uid" || k == "Gid" { // real, effective, saved, filesystem
			if f := strings.Fields(v); len(f) == 4 && f[0] == f[1] && f[1] == f[2] && f[2] == f[3] {
				v = f[0]
			}
		}
		p.status[k] = v
	}
	mounts, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return p, false
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		// mount ID, parent ID, major:minor, root, mount point, options, ...
		if len(f) > 5 && f[4] == "/" {
			p.readOnlyRoot = strings.Split(f[5], ",")[0] == "ro"
		}
	}
	return p, true
}

// rootProc is the container's first process (the instance manager): the one
// whose parent is outside the container. procs[0] is whatever ctr listed
// first, which can be a backend that exits a moment later (a readiness
// probe's connection), and its network namespace with it.
func rootProc(t testing.TB, procs []containerProc) containerProc {
	t.Helper()
	in := map[string]bool{}
	for _, p := range procs {
		in[strconv.Itoa(p.pid)] = true
	}
	for _, p := range procs {
		if !in[p.status["PPid"]] {
			return p
		}
	}
	t.Fatalf("no process of the container has its parent outside it: %v", procs)
	return containerProc{}
}
