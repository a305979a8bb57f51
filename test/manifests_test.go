package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/kube"
)

// TestManifestsUpToDate regenerates the CRD, RBAC and webhook
// configurations from the kubebuilder markers, and both installs, into a
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
		"dist/install-namespaced.yaml",
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

// TestImagesMatchManifests: dist/install.yaml runs the operator image that
// `make images` tags with the VERSION file, and the operator's default
// instance image is the operand image hack/image builds.
func TestImagesMatchManifests(t *testing.T) {
	version, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	install, err := os.ReadFile("../dist/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := "image: pgward/pgward:" + strings.TrimSpace(string(version)) + "\n"
	if !bytes.Contains(install, []byte(want)) {
		t.Errorf("dist/install.yaml does not run %q (the tag make images gives the operator image)", strings.TrimSpace(want))
	}
	builder, err := os.ReadFile("../hack/image/build.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`OperandTag\s*=\s*"([^"]+)"`).FindSubmatch(builder)
	if m == nil {
		t.Fatal("hack/image/build.go: no OperandTag")
	}
	if got := kube.DefaultConfig().Build.Image; got != string(m[1]) {
		t.Errorf("the operator's default --instance-image is %q, but make images builds %q", got, m[1])
	}
}
