//go:build e2e_kube

package kube

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pgward/pgward/internal/kube/build"
)

// TestOperatorOutsideCluster follows docs/operator.md: the in-cluster
// operator scaled to zero, `pgward operator` run from a shell with the
// operator ServiceAccount's token (so with exactly the generated RBAC),
// the webhooks pointed at it; it admits and runs a Cluster. Then the
// in-cluster operator comes back.
func TestOperatorOutsideCluster(t *testing.T) {
	script := filepath.Join(repoRoot, "hack", "operator-dev.sh")
	var out syncBuffer
	// The script execs the operator: cancelling stops it with SIGTERM (a
	// clean shutdown), and SIGKILL only if it is still there 30 s later.
	ctx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, script, "run")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		stop()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		stop()
		t.Logf("operator-dev.sh run ended: %v", <-done)
		if t.Failed() {
			t.Logf("operator-dev.sh run:\n%s", tail(out.String(), 60))
		}
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if b, err := exec.CommandContext(dctx, script, "down").CombinedOutput(); err != nil {
			t.Errorf("operator-dev.sh down: %v\n%s", err, b)
		}
		eventually(t, 3*time.Minute, "the in-cluster operator back and serving", func() error {
			var d appsv1.Deployment
			if err := cl.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: "pgward-operator"}, &d); err != nil {
				return err
			}
			if d.Status.AvailableReplicas != 2 {
				return fmt.Errorf("%d replicas available", d.Status.AvailableReplicas)
			}
			return installOperator()
		})
	})

	ns := newNamespace(t, "e2e-operator-dev")
	c := loadSample(t, "cluster-example.yaml")
	c.Name = "dev"
	c.Spec.Instances = 2
	// Once the script has stopped the in-cluster operator and pointed the
	// webhooks at a URL, only the operator running here can admit a
	// Cluster: a server-side dry run succeeds when it serves.
	eventually(t, 2*time.Minute, "the outside operator alone, serving the webhooks", func() error {
		select {
		case err := <-done:
			return fmt.Errorf("operator-dev.sh exited: %w\n%s", err, tail(out.String(), 30))
		default:
		}
		var pods corev1.PodList
		if err := cl.List(context.Background(), &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/name": build.OperatorName}); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("the in-cluster operator still has %d pods", len(pods.Items))
		}
		var m admissionv1.MutatingWebhookConfiguration
		if err := cl.Get(context.Background(), client.ObjectKey{Name: "pgward-mutating-webhook"}, &m); err != nil {
			return err
		}
		if u := m.Webhooks[0].ClientConfig.URL; u == nil || m.Webhooks[0].ClientConfig.Service != nil {
			return fmt.Errorf("the mutating webhook still calls the Service")
		}
		probe := `{"apiVersion":"postgresql.pgward.io/v1","kind":"Cluster","metadata":{"name":"probe","namespace":"` + ns + `"},` +
			`"spec":{"instances":1,"storage":{"size":"1Gi"}}}`
		if o, err := kubectlIn(probe, "create", "--dry-run=server", "-f", "-"); err != nil {
			return fmt.Errorf("%s", o)
		}
		return nil
	})
	createCluster(t, ns, c)
	waitHealthy(t, ns, c.Name, 4*time.Minute)
	if !strings.Contains(out.String(), `"namespace":"`+ns+`"`) {
		t.Errorf("the outside operator's log does not mention %s:\n%s", ns, tail(out.String(), 20))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer that the command's output goroutine writes
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
