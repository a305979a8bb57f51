package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
)

// TestOperatorInstanceClient runs the operator's status client
// (kube.MTLSInstances) against a real instance manager: a one-instance
// local cluster, whose PKI has the same shape as on Kubernetes (cluster CA,
// a controller certificate with CN pgward-controller). The operator's
// identity reads the status; the replication identity, from the same CA,
// is refused.
func TestOperatorInstanceClient(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "opclient.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: opclient
spec:
  instances: 1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "opclient")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	cs := status(t, dir)
	if len(cs.Instances) != 1 {
		t.Fatalf("status: %+v", cs)
	}
	in := cs.Instances[0]
	read := func(secret, key string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", secret, key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca := read("opclient-ca", "ca.crt")
	target := kube.Instance{
		Cluster: "local/opclient", Name: in.Name,
		Addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(in.StatusPort)),
		ServerName: "localhost", // the local runtime's server certificate name
		TLS: &kube.ClientTLS{
			ServerCA: ca, ClientCert: read("opclient-controller", "tls.crt"), ClientKey: read("opclient-controller", "tls.key"),
		},
	}
	client := &kube.MTLSInstances{Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := client.Status(ctx, target, 0)
	if err != nil {
		t.Fatalf("status with the controller identity: %v", err)
	}
	if st.Name != "opclient-1" || st.Role != instanceapi.RolePrimary || !st.Ready || st.Epoch == 0 {
		t.Errorf("status %+v", st)
	}
	// The same CA's replication certificate is not the controller.
	repl := target
	repl.Cluster = "local/opclient-as-replica"
	repl.TLS = &kube.ClientTLS{ServerCA: ca, ClientCert: read("opclient-replication", "tls.crt"), ClientKey: read("opclient-replication", "tls.key")}
	if _, err := client.Status(ctx, repl, 0); !instanceapi.IsForbidden(err) {
		t.Errorf("status with the replication identity: got %v, want forbidden", err)
	}
	// A certificate for another name is not trusted.
	wrong := target
	wrong.Cluster, wrong.ServerName = "local/opclient-wrong-name", "opclient-rw"
	if _, err := client.Status(ctx, wrong, 0); err == nil {
		t.Error("the instance's certificate was accepted for a name it does not carry")
	}
}
