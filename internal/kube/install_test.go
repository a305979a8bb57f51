package kube_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pgward/pgward/internal/kube"
)

// TestInstallManifest applies dist/install.yaml with the kubectl built from
// source to a fresh API server, as a user would, and checks that it
// installs cleanly (no Pod Security warnings for the operator's own
// Deployment in its restricted namespace), that a second apply changes
// nothing, and that the operator's pod is admitted there; then the same
// for dist/install-namespaced.yaml applied over it, and back.
func TestInstallManifest(t *testing.T) {
	assets, err := kubeAssets()
	if err != nil {
		t.Fatal(err)
	}
	fresh := &envtest.Environment{BinaryAssetsDirectory: assets, Scheme: scheme}
	cfg, err := fresh.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fresh.Stop(); err != nil {
			t.Error(err)
		}
	})
	user, err := fresh.AddUser(envtest.User{Name: "installer", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcFile := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcFile, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join("..", "..", "dist", "install.yaml")
	kubectl := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kcFile}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := kubectl("apply", "-f", manifest)
	t.Logf("kubectl apply:\n%s", out)
	if strings.Contains(out, "Warning") {
		t.Errorf("kubectl apply warned:\n%s", out)
	}
	for _, want := range []string{
		"namespace/pgward-system created",
		"customresourcedefinition.apiextensions.k8s.io/clusters.postgresql.pgward.io created",
		"clusterrole.rbac.authorization.k8s.io/pgward-operator created",
		"deployment.apps/pgward-operator created",
		"service/pgward-webhook created",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/pgward-mutating-webhook created",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/pgward-validating-webhook created",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply did not report %q", want)
		}
	}
	// kubectl reports the webhook configurations as "configured" on every
	// apply (it sends an empty patch for them); what counts is that no
	// object is written again.
	versions := func(manifest string) string {
		return kubectl("get", "-f", manifest, "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}")
	}
	before := versions(manifest)
	kubectl("apply", "-f", manifest)
	if after := versions(manifest); after != before {
		t.Errorf("a second apply rewrote objects:\nbefore %s\nafter  %s", before, after)
	}
	if got := kubectl("get", "crd", "clusters.postgresql.pgward.io", "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}"); got != "True" {
		t.Errorf("CRD established = %q", got)
	}

	// The operator's own pod, from the Deployment's template, in its
	// restricted namespace: PodSecurity admission decides.
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	var d appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: "pgward-system", Name: "pgward-operator"}, &d); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pgward-operator-test", Namespace: "pgward-system", Labels: d.Spec.Template.Labels},
		Spec:       d.Spec.Template.Spec,
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Errorf("the operator's pod is refused in its namespace: %v", err)
	}
	sc := d.Spec.Template.Spec.Containers[0].SecurityContext
	if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !*sc.RunAsNonRoot {
		t.Errorf("operator security context %+v", sc)
	}

	// Switching to the namespaced install and back is a kubectl apply of
	// the other manifest (docs/operator.md): the ClusterRole's rules and
	// the operator's WATCH_NAMESPACES follow the manifest applied last.
	namespaced := filepath.Join("..", "..", "dist", "install-namespaced.yaml")
	mode := func(want string) {
		t.Helper()
		var cr rbacv1.ClusterRole
		if err := c.Get(ctx, types.NamespacedName{Name: "pgward-operator"}, &cr); err != nil {
			t.Fatal(err)
		}
		secrets := false
		for _, r := range cr.Rules {
			secrets = secrets || slices.Contains(r.Resources, "secrets")
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "pgward-system", Name: "pgward-operator"}, &d); err != nil {
			t.Fatal(err)
		}
		watch := "every namespace"
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == kube.WatchNamespacesEnv {
				watch = e.Value
			}
		}
		if watch != want || secrets != (want == "every namespace") {
			t.Errorf("after applying, the operator watches %s and its ClusterRole grants secrets: %v; want %s", watch, secrets, want)
		}
	}
	if err := c.Create(ctx, namespaceObj("db")); err != nil {
		t.Fatal(err)
	}
	out = kubectl("apply", "-f", namespaced)
	t.Logf("kubectl apply (namespaced):\n%s", out)
	if strings.Contains(out, "Warning") {
		t.Errorf("kubectl apply warned:\n%s", out)
	}
	for _, want := range []string{
		"clusterrole.rbac.authorization.k8s.io/pgward-operator configured",
		"role.rbac.authorization.k8s.io/pgward:operator created",
		"rolebinding.rbac.authorization.k8s.io/pgward:operator created",
		"deployment.apps/pgward-operator configured",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply did not report %q", want)
		}
	}
	before = versions(namespaced)
	kubectl("apply", "-f", namespaced)
	if after := versions(namespaced); after != before {
		t.Errorf("a second apply rewrote objects:\nbefore %s\nafter  %s", before, after)
	}
	mode("db")
	kubectl("apply", "-f", manifest)
	mode("every namespace")
}
