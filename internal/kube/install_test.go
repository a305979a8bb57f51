package kube_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestInstallManifest applies dist/install.yaml with the kubectl built from
// source to a fresh API server, as a user would, and checks that it
// installs cleanly (no Pod Security warnings for the operator's own
// Deployment in its restricted namespace), that a second apply changes
// nothing, and that the operator's pod is admitted there.
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
	versions := func() string {
		return kubectl("get", "-f", manifest, "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}")
	}
	before := versions()
	kubectl("apply", "-f", manifest)
	if after := versions(); after != before {
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
}
