package kube_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/pki"
)

// TestPasswordChangeInSecret: a password changed in the app Secret, the
// generated one or the user's own (bootstrap.initdb.secret), reaches the
// pods through their projected volume (the kubelet updates it in place),
// where the primary's instance manager applies it (TestRotatePassword in
// test/e2e runs that code against real PostgreSQL). The operator must
// therefore only keep the derived keys in step and leave the pods alone:
// nothing that would restart one (pod, instance config) is written.
func TestPasswordChangeInSecret(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)

	t.Run("generated secrets", func(t *testing.T) {
		c := sampleCluster(t, ns)
		c.Spec.EnableSuperuserAccess = new(true)
		createCluster(t, c)
		reconcileOnce(t, r, c)
		for _, name := range []string{c.Name + "-app", c.Name + "-superuser"} {
			before := snapshot(t, ns)
			fresh := "rotated-By-The-User-" + name
			setPassword(ctx, t, ns, name, fresh)
			reconcileOnce(t, r, c)
			got := getSecret(ctx, t, ns, name)
			if string(got.Data["password"]) != fresh {
				t.Fatalf("%s: the operator replaced the password the user set", name)
			}
			for _, k := range []string{"pgpass", "uri", "jdbc-uri"} {
				if !strings.Contains(string(got.Data[k]), fresh) {
					t.Errorf("%s: key %s was not brought in step with the new password", name, k)
				}
			}
			assertNoRestart(t, before, snapshot(t, ns), name)
		}
	})

	t.Run("user-provided secret", func(t *testing.T) {
		user := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my-app-creds"},
			Type:       corev1.SecretTypeBasicAuth,
			Data:       map[string][]byte{"username": []byte("app"), "password": []byte("first-Password-1")},
		}
		if err := admin.Create(ctx, user); err != nil {
			t.Fatal(err)
		}
		c := sampleCluster(t, ns)
		c.Name = "mine"
		c.Spec.Bootstrap = &v1.BootstrapConfiguration{InitDB: &v1.BootstrapInitDB{
			Database: "app", Owner: "app", Secret: &v1.LocalObjectReference{Name: user.Name},
		}}
		createCluster(t, c)
		reconcileOnce(t, r, c)
		before := snapshot(t, ns)
		setPassword(ctx, t, ns, user.Name, "second-Password-2")
		reconcileOnce(t, r, c)
		after := snapshot(t, ns)
		assertNoRestart(t, before, after, user.Name)
		if got := getSecret(ctx, t, ns, user.Name); string(got.Data["password"]) != "second-Password-2" {
			t.Error("the operator wrote the user's secret")
		}
		// A password the manager could not set is refused by name, never
		// echoed, and still restarts nothing.
		setPassword(ctx, t, ns, user.Name, "bad\npassword")
		_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
		if err == nil || !strings.Contains(err.Error(), "my-app-creds") || strings.Contains(err.Error(), "bad\npassword") {
			t.Errorf("an invalid password: %v", err)
		}
		assertNoRestart(t, after, snapshot(t, ns), user.Name)
	})
}

func setPassword(ctx context.Context, t *testing.T, ns, name, password string) {
	t.Helper()
	var s corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["password"] = []byte(password)
	if err := admin.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
}

func getSecret(ctx context.Context, t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// assertNoRestart fails if a pod or an instance's config secret changed
// between two snapshots (the changed credentials secret may).
func assertNoRestart(t *testing.T, before, after map[string]string, credentials string) {
	t.Helper()
	for k, v := range after {
		if strings.HasSuffix(k, "/"+credentials) || before[k] == v {
			continue
		}
		if strings.HasPrefix(k, "*v1.PodList/") || strings.HasSuffix(k, "-config") {
			t.Errorf("%s was rewritten: a password change must not restart an instance", k)
		}
	}
}

// TestUserCertificateChangeInSecret: a user-provided server certificate
// replaced in its Secret (cert-manager's renewal) reaches the pods through
// their projected volume; the instance managers re-read it (see
// TestUserCertificateReplacedInPlace in test/e2e for the local runtime,
// the same code). The operator accepts the new certificate, writes
// nothing of the user's, and restarts nothing.
func TestUserCertificateChangeInSecret(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	ca, err := pki.NewCA(rand.Reader, time.Now(), "user CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf := func() map[string][]byte {
		kp, err := ca.IssueServer(rand.Reader, time.Now(), "cluster-example-rw", []string{"cluster-example-rw"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{"tls.crt": kp.CertPEM, "tls.key": kp.KeyPEM}
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user-ca"}, Data: map[string][]byte{"ca.crt": ca.CertPEM}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user-tls"}, Type: corev1.SecretTypeTLS, Data: leaf()},
	} {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	c := sampleCluster(t, ns)
	c.Spec.Certificates = &v1.CertificatesConfiguration{ServerCASecret: "user-ca", ServerTLSSecret: "user-tls"}
	createCluster(t, c)
	reconcileOnce(t, r, c)
	var pod corev1.Pod
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: c.Name + "-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	if !projectsKey(&pod, "user-tls", "tls.crt") || !projectsKey(&pod, "user-tls", "tls.key") {
		t.Fatal("the pod does not project the user's certificate and key (the kubelet could not update them in place)")
	}
	before := snapshot(t, ns)

	renewed := getSecret(ctx, t, ns, "user-tls")
	renewed.Data = leaf()
	if err := admin.Update(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c)
	assertNoRestart(t, before, snapshot(t, ns), "user-tls")
	if got := getSecret(ctx, t, ns, "user-tls"); got.ResourceVersion != renewed.ResourceVersion {
		t.Error("the operator wrote the user's certificate secret")
	}
}

// projectsKey reports whether pod projects key of secret as a file.
func projectsKey(pod *corev1.Pod, secret, key string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.Secret == nil || src.Secret.Name != secret {
				continue
			}
			for _, item := range src.Secret.Items {
				if item.Key == key {
					return true
				}
			}
		}
	}
	return false
}
