package kube_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// certificateRules is the RBAC docs/operations.md documents for
// `kubectl pgward certificate` (with --secret) and `psql`.
func certificateRules(cluster string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{v1.Group}, Resources: []string{"clusters"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{cluster + "-ca", cluster + "-app"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update"}, ResourceNames: []string{"app-cert", "foreign"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
	}
}

// TestPluginCertificate runs `kubectl pgward certificate` as the plugin
// against the real API server, as a user holding only the documented
// RBAC, on a Cluster whose CA the real reconciler generated: the
// certificate written to --out (0600 files in a new 0700 directory) and to
// --secret chains to the Cluster's client CA with the user as CN and the
// default validity; a renewal replaces pgward's Secret, a foreign Secret is
// refused; the refused users are refused before anything is read.
func TestPluginCertificate(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c, _, _ := pluginCluster(t, ns, "pc")
	kubeconfig := pluginUser(t, ns, certificateRules(c.Name))
	var caSecret corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "pc-ca"}, &caSecret); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCertificatePEM(caSecret.Data[build.KeyCACert])
	if err != nil {
		t.Fatal(err)
	}
	checkCert := func(t *testing.T, certPEM []byte, validity time.Duration) {
		t.Helper()
		cert, err := pki.ParseCertificatePEM(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.Verify(ca, cert, x509.ExtKeyUsageClientAuth, time.Now()); err != nil {
			t.Errorf("the certificate does not chain to the cluster's client CA: %v", err)
		}
		if cert.Subject.CommonName != "app" {
			t.Errorf("CN %q, want app", cert.Subject.CommonName)
		}
		if left := time.Until(cert.NotAfter); left > validity || left < validity-time.Hour {
			t.Errorf("valid for %s more, want %s", left, validity)
		}
	}

	// --out: files on the user's machine.
	out := filepath.Join(t.TempDir(), "app-cert")
	conninfo, err := runPlugin(ctx, t, "certificate", "pc", "--user", "app", "--out", out, "-n", ns, "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("certificate --out: %v\n%s", err, conninfo)
	}
	if !strings.Contains(conninfo, "sslmode=verify-full") || !strings.Contains(conninfo, "sslkey="+filepath.Join(out, "tls.key")) {
		t.Errorf("connection string %q", conninfo)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v %v, want 0700", out, err, fi)
	}
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", f, err, fi)
		}
	}
	crt, _ := os.ReadFile(filepath.Join(out, "tls.crt"))
	key, _ := os.ReadFile(filepath.Join(out, "tls.key"))
	checkCert(t, crt, v1.DefaultUserCertificateValidity)
	if _, err := pki.ParseKeyPair(crt, key); err != nil {
		t.Errorf("tls.key does not match tls.crt: %v", err)
	}
	if o, err := runPlugin(ctx, t, "certificate", "pc", "--user", "app", "--out", out, "-n", ns, "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("--out into an existing directory: %v %s", err, o)
	}

	// --secret: a kubernetes.io/tls Secret owned by the Cluster.
	if o, err := runPlugin(ctx, t, "certificate", "pc", "--user", "app", "--secret", "app-cert", "--valid-for", "24h", "-n", ns, "--kubeconfig", kubeconfig); err != nil || !strings.Contains(o, "created") {
		t.Fatalf("certificate --secret: %v %s", err, o)
	}
	var s corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app-cert"}, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != corev1.SecretTypeTLS || s.Labels[build.ClusterLabel] != "pc" || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Name != "pc" || s.Annotations[build.UserCertificateUserAnnotation] != "app" {
		t.Errorf("secret: type %s labels %v owners %v annotations %v", s.Type, s.Labels, s.OwnerReferences, s.Annotations)
	}
	checkCert(t, s.Data[build.KeyTLSCert], 24*time.Hour)
	if string(s.Data[build.KeyCACert]) != string(caSecret.Data[build.KeyCACert]) {
		t.Error("the secret's ca.crt is not the cluster's server CA")
	}
	first := string(s.Data[build.KeyTLSCert])
	if o, err := runPlugin(ctx, t, "certificate", "pc", "--user", "app", "--secret", "app-cert", "-n", ns, "--kubeconfig", kubeconfig); err != nil || !strings.Contains(o, "renewed") {
		t.Fatalf("renewal: %v %s", err, o)
	}
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app-cert"}, &s); err != nil || string(s.Data[build.KeyTLSCert]) == first {
		t.Errorf("the renewal did not replace the certificate: %v", err)
	}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: ns, Labels: map[string]string{build.ClusterLabel: "pc"}},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("mine"), "tls.key": []byte("mine")}}
	if err := admin.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	if o, err := runPlugin(ctx, t, "certificate", "pc", "--user", "app", "--secret", "foreign", "-n", ns, "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("over a foreign secret: %v %s", err, o)
	}
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "foreign"}, &s); err != nil || string(s.Data["tls.crt"]) != "mine" {
		t.Errorf("the foreign secret changed: %v", err)
	}

	for _, tc := range []struct{ args, want string }{
		{"--user streaming_replica --out " + filepath.Join(t.TempDir(), "r"), "one of pgward's own identities"},
		{"--user STREAMING_REPLICA --secret r", "one of pgward's own identities"},
		{"--user pgward-controller --secret r", "one of pgward's own identities"},
		{"--user pgward_monitor --secret r", "one of pgward's own identities"},
		{"--user postgres --secret r", "needs enableSuperuserAccess: true"},
		{"--user pg_read_all_data --secret r", "pg_ prefix"},
		{"--user app;drop --secret r", "not a valid PostgreSQL identifier"},
		{"--user app --secret r --valid-for 2400h", "validity"},
		{"--user app --secret pc-ca", "one of the cluster's own secrets"},
		{"--user app --secret Bad_Name", "--secret"},
		{"--user app", "exactly one of --secret"},
		{"--user app --secret r --out " + t.TempDir(), "exactly one of --secret"},
	} {
		args := append([]string{"certificate", "pc"}, strings.Fields(tc.args)...)
		args = append(args, "-n", ns, "--kubeconfig", kubeconfig)
		if o, err := runPlugin(ctx, t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("certificate %s: %v %s, want an error with %q", tc.args, err, o, tc.want)
		}
	}
	// A user without get on the CA secret cannot sign.
	ns2 := ns + "-noca"
	if err := admin.Create(ctx, namespaceObj(ns2)); err != nil {
		t.Fatal(err)
	}
	pluginCluster(t, ns2, "pc")
	kc2 := pluginUser(t, ns2, certificateRules("pc")[:1])
	if o, err := runPlugin(ctx, t, "certificate", "pc", "--user", "app", "--secret", "x", "-n", ns2, "--kubeconfig", kc2); err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "pc-ca") {
		t.Errorf("without the CA secret: %v %s", err, o)
	}
}

// TestResolvePsql: as a user holding only the documented RBAC, psql's
// target is the primary (or the named instance) as the app owner, with the
// app secret's password and server CA; --superuser is refused when the
// Cluster does not enable it, and so is an instance of another cluster.
func TestResolvePsql(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c, _, _ := pluginCluster(t, ns, "pp")
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{v1.Group}, Resources: []string{"clusters"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{c.Name + "-app"}},
	}
	kubeconfig := pluginUser(t, ns, rules)
	cl := clientFor(t, kubeconfig)
	key := types.NamespacedName{Namespace: ns, Name: "pp"}
	tgt, err := kube.ResolvePsql(ctx, cl, key, "", false)
	if err != nil {
		t.Fatal(err)
	}
	var app corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "pp-app"}, &app); err != nil {
		t.Fatal(err)
	}
	want := secrets.Credentials{Username: "app", Password: string(app.Data["password"]), DBName: "app"}
	if tgt.Pod != "pp-1" || tgt.ServerName != "pp-rw" || tgt.Login != want || len(tgt.ServerCA) == 0 {
		t.Errorf("target %+v", tgt)
	}
	if strings.Contains(tgt.Login.String(), want.Password) {
		t.Error("the login's String shows the password")
	}
	if tgt, err := kube.ResolvePsql(ctx, cl, key, "pp-3", false); err != nil || tgt.Pod != "pp-3" {
		t.Errorf("instance pp-3: %v %+v", err, tgt)
	}
	if _, err := kube.ResolvePsql(ctx, cl, key, "other-1", false); err == nil || !strings.Contains(err.Error(), "not an instance") {
		t.Errorf("another cluster's instance: %v", err)
	}
	if _, err := kube.ResolvePsql(ctx, cl, key, "", true); err == nil || !strings.Contains(err.Error(), "enableSuperuserAccess") {
		t.Errorf("--superuser without superuser access: %v", err)
	}
	// The plugin refuses the same before it forwards anything.
	if o, err := runPlugin(ctx, t, "psql", "pp", "--superuser", "-n", ns, "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), "enableSuperuserAccess") {
		t.Errorf("plugin psql --superuser: %v %s", err, o)
	}
}

func TestChoosePsql(t *testing.T) {
	base := func() *v1.Cluster {
		c := &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "pg", Namespace: "db"}, Spec: v1.ClusterSpec{Instances: 2}}
		c.Status.CurrentPrimary = "pg-2"
		return c
	}
	super := base()
	super.Spec.EnableSuperuserAccess = new(true)
	noPrimary := base()
	noPrimary.Status.CurrentPrimary = ""
	for _, tc := range []struct {
		name      string
		c         *v1.Cluster
		instance  string
		superuser bool
		want      kube.PsqlChoice
		err       string
	}{
		{"primary as app", base(), "", false, kube.PsqlChoice{Pod: "pg-2", User: "app", DBName: "app", Secret: "pg-app"}, ""},
		{"instance", base(), "pg-1", false, kube.PsqlChoice{Pod: "pg-1", User: "app", DBName: "app", Secret: "pg-app"}, ""},
		{"superuser", super, "", true, kube.PsqlChoice{Pod: "pg-2", User: "postgres", DBName: "postgres", Secret: "pg-superuser"}, ""},
		{"superuser off", base(), "", true, kube.PsqlChoice{}, "spec.enableSuperuserAccess is not true"},
		{"no such instance", base(), "pg-3", false, kube.PsqlChoice{}, "not an instance"},
		{"a path", base(), "../pg-1", false, kube.PsqlChoice{}, "not an instance"},
		{"no primary", noPrimary, "", false, kube.PsqlChoice{}, "no primary yet"},
		{"no primary, instance named", noPrimary, "pg-1", false, kube.PsqlChoice{Pod: "pg-1", User: "app", DBName: "app", Secret: "pg-app"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kube.ChoosePsql(tc.c, tc.instance, tc.superuser)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v %v, want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

// clientFor is a client acting as the user of kubeconfig.
func clientFor(t *testing.T, kubeconfig string) client.Client {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := kube.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
