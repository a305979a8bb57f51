package kube_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// plantedLogs stands in for the kubelet's logs (none runs here): each
// container's log carries what it is given, as a misbehaving application
// or a debug log would.
type plantedLogs struct {
	text func(pod, container string) string
}

func (p plantedLogs) Logs(_ context.Context, _, pod, container string, _ int64) ([]byte, error) {
	return []byte(p.text(pod, container)), nil
}

// instanceServer answers the status and configuration requests of one
// instance over mutual TLS with the cluster's real certificates.
func instanceServer(t *testing.T, c *v1.Cluster, st *instanceapi.Status, files instanceapi.ConfigFiles) string {
	t.Helper()
	ctx := ctxFor(t)
	n := build.Secrets(c)
	var srv, ca corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: n.ServerTLS}, &srv); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: n.ClientCA}, &ca); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(srv.Data[build.KeyTLSCert], srv.Data[build.KeyTLSKey])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Data[build.KeyCACert])
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.VerifiedChains[0][0].Subject.CommonName != pki.ControllerCommonName {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case instanceapi.PathStatus:
			_ = json.NewEncoder(w).Encode(st)
		case instanceapi.PathConfig:
			_ = json.NewEncoder(w).Encode(files)
		default:
			http.NotFound(w, r)
		}
	}))
	s.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// TestPluginReport writes `kubectl pgward report`'s zip of a Cluster made
// by the real reconciler on the real API server, after planting the
// namespace's real secret values where a report would carry them
// unredacted: the application's log (a failed statement with the app
// password, the server's private key), an event's message, a pod's
// annotation, the Cluster's env (a token, and a variable whose name says
// nothing), the operator's Deployment and logs (a token), an instance's
// configuration (an LDAP bind password). It reads every member and fails
// if any value of any Secret of the namespace, a PEM private key or a
// planted token is in it, and checks that what a maintainer needs is
// there, Secrets by name, type and keys only.
func TestPluginReport(t *testing.T) {
	ns := newNamespace(t, false)
	opNS := ns + "-operator"
	if err := admin.Create(context.Background(), namespaceObj(opNS)); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXBsYW50ZWQ" // #nosec G101 -- a fabricated token the test plants
	const note = "plain-looking-but-secret-value-1234"
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, StringData: map[string]string{"token": token, "note": note}},
		{ObjectMeta: metav1.ObjectMeta{Name: "op-creds", Namespace: opNS}, StringData: map[string]string{"apiKey": "operator-side-key-987654"}},
	} {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	c := sampleCluster(t, ns)
	c.Name = "rp"
	c.Spec.Env = []corev1.EnvVar{{Name: "APP_API_TOKEN", Value: token}, {Name: "APP_NOTE", Value: note}}
	_, until := reconciledCluster(t, c, func(si *simInstances) kube.InstanceClient { return si })
	until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "rp-1" && c.Status.ReadyInstances == 3 })

	var app, server corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.Secrets(c).App}, &app); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.Secrets(c).ServerTLS}, &server); err != nil {
		t.Fatal(err)
	}
	password := string(app.Data["password"])
	if len(password) < 16 {
		t.Fatalf("app password of %d bytes", len(password))
	}
	// Planted: a pod annotation, an event, logs, configuration.
	pod := getPod(t, ns, "rp-1")
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations["example.com/debug"] = "last login with " + password
	if err := admin.Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"rp-1", "rp-2", "rp-3"} {
		pod := getPod(t, ns, p)
		pod.Status.Phase = corev1.PodRunning
		if err := admin.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "rp-1.planted", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "rp-1", Namespace: ns},
		Reason:         "Planted", Message: "connection string postgresql://app:" + password + "@rp-rw/app",
		Type: corev1.EventTypeWarning, LastTimestamp: metav1.Now(),
	}
	if err := admin.Create(ctx, ev); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app.kubernetes.io/name": "pgward-operator"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: kube.OperatorDeployment, Namespace: opNS},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "operator", Image: "pgward/pgward:test",
					Env: []corev1.EnvVar{{Name: "GITHUB_TOKEN", Value: "ghp_plantedOperatorToken123"}}}}},
			},
		},
	}
	if err := admin.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	opPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pgward-operator-abc", Namespace: opNS, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "operator", Image: "pgward/pgward:test"}}}}
	if err := admin.Create(ctx, opPod); err != nil {
		t.Fatal(err)
	}
	logs := plantedLogs{text: func(pod, container string) string {
		return fmt.Sprintf("%s/%s started\nERROR: relation \"%s\" does not exist\nSTATEMENT: SELECT * FROM \"%s\"\nkey:\n%s\nAuthorization: Bearer %s\nloaded operator-side-key-987654\n",
			pod, container, password, password, server.Data[build.KeyTLSKey], token)
	}}
	st := func(name, role string) *instanceapi.Status {
		return &instanceapi.Status{Name: name, Role: role, PostmasterRunning: true, Ready: true, Phase: "running", Timeline: 1}
	}
	files := instanceapi.ConfigFiles{Files: map[string]string{
		"postgresql.conf": "work_mem = '4MB'\n# " + password + "\n",
		"pg_hba.conf":     "hostssl all ldapusers all ldap ldapserver=ldap.example.com ldapbindpasswd=TopSecretBind99\n",
	}}
	fw := directForwarder{
		"rp-1": instanceServer(t, c, st("rp-1", instanceapi.RolePrimary), files),
		"rp-2": instanceServer(t, c, st("rp-2", instanceapi.RoleReplica), files),
		"rp-3": instanceServer(t, c, st("rp-3", instanceapi.RoleReplica), files),
	}
	var zipped bytes.Buffer
	start := time.Now()
	names, err := kube.WriteBugReport(ctx, admin, fw, logs, kube.BugReportOptions{
		Cluster: client.ObjectKeyFromObject(c), OperatorNamespace: opNS, TailLines: 100, Timeout: 5 * time.Second, Now: time.Now(),
	}, &zipped)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d members in %s", len(names), time.Since(start).Round(time.Millisecond))

	// Every value of every Secret of both namespaces, as the API server
	// has them (certificates and the names CloudNativePG's secrets carry
	// aside), and each line of a multi-line one.
	var values []string
	for _, n := range []string{ns, opNS} {
		var l corev1.SecretList
		if err := admin.List(ctx, &l, client.InNamespace(n)); err != nil {
			t.Fatal(err)
		}
		for _, s := range l.Items {
			for k, v := range s.Data {
				if strings.HasSuffix(k, ".crt") || k == "username" || k == "host" || k == "port" || k == "dbname" {
					continue
				}
				// The instances' config Secrets: the manifest and settings,
				// no credential (those have their own Secrets).
				if strings.HasSuffix(s.Name, "-config") && (k == "cluster.json" || k == "config.json" || k == "custom-queries.json") {
					continue
				}
				values = append(values, string(v))
				for line := range strings.SplitSeq(string(v), "\n") {
					if len(strings.TrimSpace(line)) >= 8 && !strings.HasPrefix(line, "-----") {
						values = append(values, strings.TrimSpace(line))
					}
				}
			}
		}
	}
	if len(values) < 10 {
		t.Fatalf("only %d secret values: the check would prove little", len(values))
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped.Bytes()), int64(zipped.Len()))
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		_ = rc.Close()
		members[f.Name] = string(b)
		for _, v := range values {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds a secret value (%d bytes)", f.Name, len(v))
			}
		}
		for _, shape := range []string{"PRIVATE KEY", token, "ghp_plantedOperatorToken123", "TopSecretBind99", password} {
			if strings.Contains(string(b), shape) {
				t.Errorf("%s holds %.24q...", f.Name, shape)
			}
		}
	}
	for member, wants := range map[string][]string{
		"cluster.yaml":                {"name: rp", "kind: Cluster"},
		"pods.yaml":                   {"name: rp-1", "name: rp-3", "example.com/debug"},
		"pvcs.yaml":                   {"name: rp-1"},
		"services.yaml":               {"name: rp-rw"},
		"events.yaml":                 {"Planted", "postgresql://app:"},
		"secrets.txt":                 {"rp-app\tkubernetes.io/basic-auth\t", "password"},
		"status.json":                 {`"name": "rp-1"`, `"role": "primary"`},
		"config/rp-1/pg_hba.conf":     {"ldapbindpasswd=<redacted>"},
		"config/rp-2/postgresql.conf": {"work_mem = '4MB'"},
		"logs/rp-1/postgres.log":      {"does not exist", "key:\n<redacted>"},
		"operator/deployment.yaml":    {"GITHUB_TOKEN", "<redacted>"},
		"operator/logs/pgward-operator-abc/operator.log": {"started"},
	} {
		got, ok := members[member]
		if !ok {
			t.Errorf("no %s in the report (members: %v)", member, names)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%.2000s", member, w, got)
			}
		}
	}
}
