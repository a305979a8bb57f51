package kube_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/cli"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// auditRules is the RBAC docs/operations.md documents for
// `kubectl pgward audit`.
func auditRules(cluster string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{v1.Group}, Resources: []string{"clusters"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{
			cluster + "-controller", cluster + "-server", cluster + "-replication", cluster + "-superuser",
		}},
	}
}

// runAudit runs `kubectl pgward audit -o json` as the plugin and returns
// the results by control and whether the exit status was 1.
func runAudit(ctx context.Context, t *testing.T, args ...string) (map[string]audit.Result, bool) {
	t.Helper()
	out, err := runPlugin(ctx, t, append([]string{"audit"}, append(args, "-o", "json")...)...)
	var exit *cli.ExitCodeError
	failed := errors.As(err, &exit) && exit.Code == 1
	if err != nil && !failed {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	var rs []audit.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("audit -o json is not JSON: %v\n%s", err, out)
	}
	by := map[string]audit.Result{}
	for _, r := range rs {
		by[r.Control] = r
	}
	if failed != audit.Failed(rs) {
		t.Errorf("exit status 1 is %v, but a FAIL line is %v", failed, audit.Failed(rs))
	}
	return by, failed
}

func wantLine(t *testing.T, by map[string]audit.Result, control string, st audit.Status, evidence string) {
	t.Helper()
	r, ok := by[control]
	if !ok {
		t.Errorf("no %s line", control)
		return
	}
	if r.Status != st || !strings.Contains(r.Evidence, evidence) {
		t.Errorf("%s: %s %q, want %s with %q", control, r.Status, r.Evidence, st, evidence)
	}
	if st != audit.Pass && r.Fix == "" {
		t.Errorf("%s: %s without a fix", control, r.Status)
	}
}

// apiControls are the audit's lines that read only the API.
var apiControls = []string{"pod-security-context", "secret-projection-modes", "network-policies", "certificate-expiry", "certificate-chain"}

// TestPluginAuditAPI runs `kubectl pgward audit` as the plugin, as a user
// holding exactly the documented RBAC, against the real API server and a
// Cluster the real reconciler made (instances simulated, so the pods never
// run: the checks made through a port-forward say WARN, and nothing
// FAILs). Every control read from the API passes, then is broken on
// purpose, one at a time, and must FAIL with its own line and exit status
// 1: a superuser secret while superuser access is off, a missing and a
// widened NetworkPolicy, a pod with a weakened security context, a secret
// key projected 0644 and the controller secret mounted, a replication
// certificate of another CA, and the clock past the certificates' expiry.
func TestPluginAuditAPI(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c, _, until := pluginCluster(t, ns, "au")
	var cur v1.Cluster
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.NetworkPolicy = &v1.NetworkPolicyConfiguration{Enabled: true}
	if err := admin.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	policy := func(name string) (*networkingv1.NetworkPolicy, error) {
		var p networkingv1.NetworkPolicy
		err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p)
		return &p, err
	}
	until("NetworkPolicies made", func(v1.Cluster) bool {
		_, err := policy("au-status")
		return err == nil
	})
	kc := pluginUser(t, ns, auditRules(c.Name))
	args := []string{"au", "-n", ns, "--kubeconfig", kc}

	by, failed := runAudit(ctx, t, args...)
	if failed {
		t.Fatalf("a healthy cluster fails: %+v", by)
	}
	for _, ctl := range apiControls {
		wantLine(t, by, ctl, audit.Pass, "")
	}
	wantLine(t, by, "pod-security-context", audit.Pass, "in 3 pods")
	wantLine(t, by, "network-policies", audit.Pass, "au-postgresql, au-status, au-metrics")
	wantLine(t, by, "superuser-no-password", audit.Warn, "not tried: the pod is Pending")
	wantLine(t, by, "replication-needs-certificate", audit.Warn, "not tried: the pod is Pending")
	wantLine(t, by, "alter-system-drift", audit.Warn, "the pod is Pending")

	t.Run("a superuser secret while superuser access is off", func(t *testing.T) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "au-superuser"}, Data: map[string][]byte{"password": []byte("x")}}
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = admin.Delete(ctx, s) }()
		by, failed := runAudit(ctx, t, args...)
		wantLine(t, by, "superuser-no-password", audit.Fail, "secret au-superuser exists although superuser access is off")
		if !failed {
			t.Error("exit status 0")
		}
	})

	t.Run("a NetworkPolicy deleted and another widened", func(t *testing.T) {
		st, err := policy("au-status")
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.Delete(ctx, st); err != nil {
			t.Fatal(err)
		}
		m, err := policy("au-metrics")
		if err != nil {
			t.Fatal(err)
		}
		m.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}} // everyone, every port
		if err := admin.Update(ctx, m); err != nil {
			t.Fatal(err)
		}
		by, failed := runAudit(ctx, t, args...)
		wantLine(t, by, "network-policies", audit.Fail, "au-status is missing")
		wantLine(t, by, "network-policies", audit.Fail, "au-metrics differs from pgward's: ingress rules")
		if !failed {
			t.Error("exit status 0")
		}
		// The operator puts them back; the line passes again.
		until("NetworkPolicies restored", func(v1.Cluster) bool {
			_, err := policy("au-status")
			m, merr := policy("au-metrics")
			return err == nil && merr == nil && len(m.Spec.Ingress) == 0
		})
		by, _ = runAudit(ctx, t, args...)
		wantLine(t, by, "network-policies", audit.Pass, "present as pgward builds them")
	})

	t.Run("a pod with a weakened security context and secrets", func(t *testing.T) {
		var pod corev1.Pod
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "au-3"}, &pod); err != nil {
			t.Fatal(err)
		}
		if err := admin.Delete(ctx, &pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		waitGone(t, &pod)
		bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "au-3", Labels: pod.Labels}, Spec: *pod.Spec.DeepCopy()}
		bad.Spec.NodeName = ""
		sc := bad.Spec.Containers[0].SecurityContext
		sc.AllowPrivilegeEscalation = new(true)
		sc.RunAsUser = new(int64(1000))
		sc.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		for i := range bad.Spec.Volumes {
			if p := bad.Spec.Volumes[i].Projected; p != nil && p.DefaultMode != nil && *p.DefaultMode == 0o400 {
				p.DefaultMode = new(int32(0o644))
			}
		}
		bad.Spec.Volumes = append(bad.Spec.Volumes, corev1.Volume{Name: "stolen", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: "au-controller"},
		}})
		if err := admin.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		by, failed := runAudit(ctx, t, args...)
		wantLine(t, by, "pod-security-context", audit.Fail, "pod au-3 container postgres: runAsUser 1000 (want 26), allowPrivilegeEscalation not false, capabilities add NET_ADMIN")
		wantLine(t, by, "secret-projection-modes", audit.Fail, "pod au-3 volume stolen secret au-controller (whole) is never to be in a pod")
		wantLine(t, by, "secret-projection-modes", audit.Fail, "key tls.key is 0644")
		if r := by["pod-security-context"]; strings.Contains(r.Evidence, "au-1") || strings.Contains(r.Evidence, "au-2") {
			t.Errorf("healthy pods named: %s", r.Evidence)
		}
		if !failed {
			t.Error("exit status 0")
		}
	})

	t.Run("a replication certificate of another CA", func(t *testing.T) {
		var s corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "au-replication"}, &s); err != nil {
			t.Fatal(err)
		}
		orig := s.DeepCopy()
		other, err := pki.NewCA(rand.Reader, time.Now(), "other")
		if err != nil {
			t.Fatal(err)
		}
		kp, err := other.IssueClient(rand.Reader, time.Now(), pki.ReplicationCommonName)
		if err != nil {
			t.Fatal(err)
		}
		s.Data[build.KeyTLSCert], s.Data[build.KeyTLSKey] = kp.CertPEM, kp.KeyPEM
		if err := admin.Update(ctx, &s); err != nil {
			t.Fatal(err)
		}
		defer func() {
			var now corev1.Secret
			if err := admin.Get(ctx, client.ObjectKeyFromObject(orig), &now); err == nil {
				now.Data = orig.Data
				_ = admin.Update(ctx, &now)
			}
		}()
		by, failed := runAudit(ctx, t, args...)
		wantLine(t, by, "certificate-chain", audit.Fail, "au-replication/tls.crt: not signed by its CA")
		if !failed {
			t.Error("exit status 0")
		}
	})

	t.Run("certificates expired or within the renewal window", func(t *testing.T) {
		var srv corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "au-server"}, &srv); err != nil {
			t.Fatal(err)
		}
		cert, err := pki.ParseCertificatePEM(srv.Data[build.KeyTLSCert])
		if err != nil {
			t.Fatal(err)
		}
		rs, err := kube.Audit(ctx, admin, directForwarder{}, client.ObjectKeyFromObject(c), kube.AuditOptions{Now: cert.NotAfter.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		by := map[string]audit.Result{}
		for _, r := range rs {
			by[r.Control] = r
		}
		wantLine(t, by, "certificate-expiry", audit.Warn, "au-server/tls.crt: expires in 1h0m0s")
		rs, err = kube.Audit(ctx, admin, directForwarder{}, client.ObjectKeyFromObject(c), kube.AuditOptions{Now: cert.NotAfter.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		by = map[string]audit.Result{}
		for _, r := range rs {
			by[r.Control] = r
		}
		wantLine(t, by, "certificate-expiry", audit.Fail, "au-server/tls.crt: expired")
		if !audit.Failed(rs) {
			t.Error("an expired certificate does not fail the audit")
		}
	})
}

// waitGone waits until obj is no longer in the API.
func waitGone(t *testing.T, obj client.Object) {
	t.Helper()
	ctx := ctxFor(t)
	for i := 0; i < 100; i++ {
		err := admin.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s still there", obj.GetName())
}
