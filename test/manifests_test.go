package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestManifestsUpToDate regenerates the CRD, RBAC and webhook
// configurations from the kubebuilder markers, and dist/install.yaml, into a
// temporary directory, and fails if the committed files differ: a marker or
// type changed without `make manifests`.
func TestManifestsUpToDate(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../hack/manifests.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/manifests.sh: %v\n%s", err, b)
	}
	for _, f := range []string{
		"config/crd/bases/postgresql.pgward.io_clusters.yaml",
		"config/rbac/role.yaml",
		"config/webhook/manifests.yaml",
		"dist/install.yaml",
	} {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make manifests` and commit the result", f)
		}
	}
}
