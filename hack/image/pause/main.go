// Command pause is the sandbox ("pause") container of the one-node test
// cluster (hack/kube-up.sh): containerd needs an image to hold each pod's
// namespaces, and there is no registry to pull registry.k8s.io/pause from.
// It waits for SIGINT or SIGTERM and, as PID 1 of the pod's PID namespace
// when the namespace is shared, reaps orphans.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
