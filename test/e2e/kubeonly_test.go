package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubernetesOnlyFieldsLocally: a manifest with an operand image
// (CloudNativePG's, of major 15) and managed Services runs locally on the
// machine's PostgreSQL, and `up` says that those fields apply on
// Kubernetes; an image of another major is refused before anything is
// created, in this runtime too.
func TestKubernetesOnlyFieldsLocally(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "kubeonly.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: kubeonly
spec:
  instances: 1
  imageName: ghcr.io/cloudnative-pg/postgresql:15
  imagePullPolicy: IfNotPresent
  managed:
    services:
      disabledDefaultServices: [ro, r]
      additional:
        - selectorType: rw
          serviceTemplate:
            metadata: {name: kubeonly-public}
            spec: {type: LoadBalancer}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "kubeonly")
	out := mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	for _, want := range []string{
		`note: spec.imageName "ghcr.io/cloudnative-pg/postgresql:15" applies on Kubernetes; locally PostgreSQL runs from /usr/lib/postgresql/15/bin`,
		"note: spec.imagePullPolicy and spec.imagePullSecrets apply on Kubernetes",
		"note: spec.managed.services applies on Kubernetes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("up did not say %q:\n%s", want, out)
		}
	}
	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	if got, err := psql(context.Background(), "", uri, "SHOW server_version_num"); err != nil || !strings.HasPrefix(got, "15") {
		t.Errorf("server version %q, %v", got, err)
	}

	bad := filepath.Join(workRoot, "kubeonly18.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: kubeonly18
spec:
  imageName: IMAGE
`, "IMAGE", "ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	dir18 := filepath.Join(workRoot, "kubeonly18-state")
	out, err := pgward(context.Background(), "local", "up", "-f", bad, "--dir", dir18)
	if err == nil || !strings.Contains(out, "spec.imageName") || !strings.Contains(out, "pgward supports PostgreSQL 15") {
		t.Errorf("an image of PostgreSQL 18: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir18); !os.IsNotExist(err) {
		t.Errorf("the refused up created %s: %v", dir18, err)
	}
}
