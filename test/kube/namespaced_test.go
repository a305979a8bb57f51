//go:build e2e_kube

package kube

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestNamespacedInstall switches the running operator to the namespaced
// install, generated for one namespace as `make install-namespaced` does,
// and applied over the cluster-wide one as docs/operator.md says. A
// Cluster there becomes healthy with real pods; a Cluster in another
// namespace is refused at admission; and the operator's ServiceAccount can
// no longer read Secrets outside that namespace, as the API server's
// authorizer says and an actual GET shows. The cluster-wide install is
// applied again at the end, for the tests that follow.
func TestNamespacedInstall(t *testing.T) {
	watched := newNamespace(t, "e2e-ns-watched")
	other := newNamespace(t, "e2e-ns-other")
	manifest := filepath.Join(t.TempDir(), "install-namespaced.yaml")
	gen := exec.CommandContext(context.Background(), "go", "run", "./hack/genmanifests", "-namespaces", watched, "-out", manifest) // #nosec G204 -- our own generator
	gen.Dir = repoRoot
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("hack/genmanifests: %v\n%s", err, out)
	}
	// Registered after the namespaces, so it runs before they are deleted.
	t.Cleanup(func() {
		if err := installOperator(); err != nil {
			t.Errorf("restoring the cluster-wide install: %v", err)
		}
	})
	if err := installOperatorFrom(manifest, watched); err != nil {
		t.Fatal(err)
	}

	t.Run("a Cluster in the watched namespace becomes healthy", func(t *testing.T) {
		newCluster(t, watched, "cluster-example.yaml", func(c *v1.Cluster) {
			c.Name = "scoped"
			c.Spec.Instances = 2
		})
	})

	t.Run("a Cluster elsewhere is refused", func(t *testing.T) {
		c := loadSample(t, "cluster-example.yaml")
		c.Name, c.Namespace, c.APIVersion, c.Kind = "elsewhere", other, v1.APIVersion, v1.Kind
		b, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		out, err := kubectlIn(string(b), "create", "-f", "-")
		if err == nil || !strings.Contains(out, "metadata.namespace") || !strings.Contains(out, "is not watched by the pgward operator") {
			t.Fatalf("kubectl create in %s: %v\n%s", other, err, out)
		}
		t.Logf("kubectl create in %s: %s", other, out)
	})

	t.Run("the operator cannot read Secrets outside its namespace", func(t *testing.T) {
		s := &corev1.Secret{ObjectMeta: objectMeta(other, "not-yours"), StringData: map[string]string{"k": "v"}}
		if err := cl.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		as := "--as=system:serviceaccount:" + operatorNamespace + ":pgward-operator"
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"-n", watched, "get", "secrets"}, "yes"},
			{[]string{"-n", other, "get", "secrets"}, "no"},
			{[]string{"-n", other, "list", "secrets"}, "no"},
			{[]string{"-n", "default", "get", "secrets"}, "no"},
			{[]string{"--all-namespaces", "list", "secrets"}, "no"},
			{[]string{"-n", other, "list", "pods"}, "no"},
		} {
			// can-i exits 1 when the answer is no.
			out, _ := kubectl(append([]string{"auth", "can-i", as}, tc.args...)...)
			if got := strings.TrimSpace(out); got != tc.want {
				t.Errorf("kubectl auth can-i %s: %q, want %q", strings.Join(tc.args, " "), got, tc.want)
			}
		}
		out, err := kubectl("-n", other, "get", "secret", "not-yours", as)
		if err == nil || !strings.Contains(out, "Forbidden") {
			t.Errorf("GET secret %s/not-yours as the operator: %v\n%s", other, err, out)
		}
	})
}
