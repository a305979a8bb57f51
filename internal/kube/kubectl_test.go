package kube_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/cli"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// pluginCluster bootstraps a three-instance Cluster named name through the
// real reconciler (instances simulated, as everywhere in these tests) and
// returns a function that runs reconcile rounds until ok holds.
func pluginCluster(t *testing.T, ns, name string) (*v1.Cluster, *plantest.Sim, func(string, func(v1.Cluster) bool)) {
	t.Helper()
	c := sampleCluster(t, ns)
	c.Name = name
	h := newSimHarness(t, c, nil)
	h.until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == name+"-1" && c.Status.ReadyInstances == 3 })
	return c, h.sim, h.until
}

// pluginUser is a user holding only the RBAC that docs/operations.md lists
// for the plugin, in ns; it returns a kubeconfig file for that user.
func pluginUser(t *testing.T, ns string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	ctx := ctxFor(t)
	user := "plugin-" + ns
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pgward-plugin", Namespace: ns}, Rules: rules}
	if err := admin.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pgward-plugin", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	if err := admin.Create(ctx, rb); err != nil {
		t.Fatal(err)
	}
	au, err := env.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := au.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pluginRules is the RBAC docs/operations.md documents for
// `kubectl pgward status` and `promote`.
func pluginRules(cluster string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{v1.Group}, Resources: []string{"clusters"}, Verbs: []string{"get", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{cluster + "-controller"}},
	}
}

// runPlugin runs the binary's command tree as `kubectl-pgward args...`
// (argv[0] is what selects the plugin tree).
func runPlugin(ctx context.Context, t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := cli.NewRootCmdFor("/usr/local/bin/" + cli.PluginName)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// TestPluginStatusAndPromote runs the binary as the kubectl plugin
// (argv[0] kubectl-pgward) against the real API server, as a user holding
// only the documented RBAC: status reads the Cluster the real reconciler
// wrote and the controller certificate, and reports why each instance
// was not asked (no kubelet runs here, so no pod runs); -n and
// --kubeconfig select as kubectl's do; promote switches over. A user
// without the secret still gets the Cluster's status, with the reason.
func TestPluginStatusAndPromote(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c, sim, until := pluginCluster(t, ns, "pl")
	kubeconfig := pluginUser(t, ns, pluginRules(c.Name))

	out, err := runPlugin(ctx, t, "status", "pl", "-n", ns, "--kubeconfig", kubeconfig, "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var r kube.ClusterReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if r.Cluster != "pl" || r.Namespace != ns || r.CurrentPrimary != "pl-1" || r.Phase != kube.PhaseHealthy || len(r.Instance) != 3 || r.Error != "" {
		t.Fatalf("report: %+v", r)
	}
	if len(r.Certificates) < 2 || r.Certificates[0].NotAfter.Before(time.Now()) {
		t.Errorf("certificates: %+v", r.Certificates)
	}
	for _, i := range r.Instance {
		if !strings.Contains(i.Error, "not asked: the pod is") {
			t.Errorf("%s: %q, want the reason it was not asked", i.Name, i.Error)
		}
	}
	table, err := runPlugin(ctx, t, "status", "pl", "--namespace", ns, "--kubeconfig", kubeconfig)
	if err != nil || !strings.Contains(table, "primary: pl-1") || !strings.Contains(table, "controller client certificate") {
		t.Fatalf("status table: %v\n%s", err, table)
	}
	if _, err := runPlugin(ctx, t, "status", "pl", "-n", ns, "--kubeconfig", kubeconfig, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Errorf("-o yaml: %v, want a refusal naming --output", err)
	}
	// The namespace comes from -n: without it the kubeconfig's (default)
	// has no such Cluster.
	if _, err := runPlugin(ctx, t, "status", "pl", "--kubeconfig", kubeconfig); err == nil {
		t.Error("status without -n found the Cluster in the default namespace")
	}

	// Without get on the secret: the Cluster's status, and why no instance
	// was asked.
	ns2 := ns + "-nosecret"
	if err := admin.Create(ctx, namespaceObj(ns2)); err != nil {
		t.Fatal(err)
	}
	c2, _, _ := pluginCluster(t, ns2, "pl")
	noSecret := pluginRules(c2.Name)[:3]
	kc2 := pluginUser(t, ns2, noSecret)
	out, err = runPlugin(ctx, t, "status", "pl", "-n", ns2, "--kubeconfig", kc2, "-o", "json")
	if err != nil {
		t.Fatalf("status without the secret: %v\n%s", err, out)
	}
	r = kube.ClusterReport{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.CurrentPrimary != "pl-1" || !strings.Contains(r.Error, "pl-controller") || !strings.Contains(r.Error, "forbidden") {
		t.Errorf("without the secret: %+v", r)
	}

	// promote, as the plugin, while the reconciler runs.
	done := make(chan error, 1)
	go func() {
		out, err := runPlugin(ctx, t, "promote", "pl", "pl-3", "-n", ns, "--kubeconfig", kubeconfig, "--timeout", "1m")
		if err == nil && !strings.Contains(out, "pl-3 is the primary") {
			t.Errorf("promote said %q", out)
		}
		done <- err
	}()
	until("switched over", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "pl-3" && c.Status.ReadyInstances == 3 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lost := sim.Lost("pl-3"); len(lost) > 0 {
		t.Errorf("writes lost in the switchover: %v", lost)
	}
}

// statusServer is an instance's status port with the certificates the real
// reconciler generated for the cluster: it presents the server certificate,
// verifies client certificates against the cluster's CA and admits only the
// controller's, as the instance manager does.
func statusServer(t *testing.T, c *v1.Cluster, answer func() *instanceapi.Status) string {
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
		if r.URL.Path != instanceapi.PathStatus || len(r.TLS.VerifiedChains) == 0 ||
			r.TLS.VerifiedChains[0][0].Subject.CommonName != pki.ControllerCommonName {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.URL.Query().Get(instanceapi.AckParam) != "" {
			http.Error(w, "the plugin must not acknowledge answers", http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(answer())
	}))
	s.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// directForwarder stands in for the kubelet's port-forward (none runs
// here): it maps each pod to a status server.
type directForwarder map[string]string

func (d directForwarder) Forward(_ context.Context, _, pod string, port int) (string, func(), error) {
	if port != build.StatusPort {
		return "", nil, net.UnknownNetworkError("wrong port")
	}
	addr, ok := d[pod]
	if !ok {
		return "", nil, net.UnknownNetworkError("no pod " + pod)
	}
	return addr, func() {}, nil
}

// TestPluginStatusLive checks the live half of status: each running pod's
// instance is asked over mutual TLS with the cluster's real certificates
// (the controller certificate read from its secret, the instance's
// verified against the cluster CA for the rw Service's name), roles, LSNs,
// the replicas' lag and replication TLS come from the instances' answers,
// and an instance presenting a certificate of another CA is refused.
func TestPluginStatusLive(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c, _, _ := pluginCluster(t, ns, "lv")
	primary := func() *instanceapi.Status {
		return &instanceapi.Status{Name: "lv-1", Role: instanceapi.RolePrimary, PostmasterRunning: true, Ready: true, Phase: "running",
			Timeline: 1, CurrentLSN: "0/3000060", Replication: []instanceapi.Peer{
				{ApplicationName: "lv-2", State: "streaming", LagBytes: 0, SSL: true, TLSVersion: "TLSv1.3", ClientDN: "/CN=streaming_replica"},
				{ApplicationName: "lv-3", State: "streaming", LagBytes: 4096, SSL: true, TLSVersion: "TLSv1.3", ClientDN: "/CN=streaming_replica"},
			}}
	}
	replica := func(name string) func() *instanceapi.Status {
		return func() *instanceapi.Status {
			return &instanceapi.Status{Name: name, Role: instanceapi.RoleReplica, PostmasterRunning: true, Ready: true, Phase: "running",
				Timeline: 1, ReceivedLSN: "0/3000060", ReplayedLSN: "0/3000000", StreamingFrom: "lv-1",
				WALReceiver: &instanceapi.WALReceiver{Status: "streaming"}}
		}
	}
	fw := directForwarder{"lv-1": statusServer(t, c, primary), "lv-2": statusServer(t, c, replica("lv-2"))}
	// lv-3 answers with a certificate of another CA: refused.
	other, err := pki.NewCA(rand.Reader, time.Now(), "other")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := other.IssueServer(rand.Reader, time.Now(), build.ServerName(c), []string{build.ServerName(c)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rogue := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(replica("lv-3")())
	}))
	rogue.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	rogue.StartTLS()
	t.Cleanup(rogue.Close)
	fw["lv-3"] = rogue.Listener.Addr().String()
	// The pods run (no kubelet here sets that).
	for _, p := range []string{"lv-1", "lv-2", "lv-3"} {
		var pod corev1.Pod
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: p}, &pod); err != nil {
			t.Fatal(err)
		}
		pod.Status.Phase = corev1.PodRunning
		if err := admin.Status().Update(ctx, &pod); err != nil {
			t.Fatal(err)
		}
	}
	r, err := kube.Report(ctx, admin, fw, client.ObjectKeyFromObject(c), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]kube.InstanceReport{}
	for _, i := range r.Instance {
		byName[i.Name] = i
	}
	p, r2, r3 := byName["lv-1"], byName["lv-2"], byName["lv-3"]
	if p.Role != "primary" || p.State != "running" || p.CurrentLSN != "0/3000060" || p.Timeline != 1 || p.ServerCertNotAfter == nil || p.Error != "" {
		t.Errorf("primary: %+v", p)
	}
	if r2.Role != "replica" || r2.State != "streaming" || r2.ReplayedLSN != "0/3000000" || r2.LagBytes == nil || *r2.LagBytes != 0 || r2.TLS != "TLSv1.3" {
		t.Errorf("replica: %+v", r2)
	}
	if r3.Role != instanceapi.RoleUnknown || !strings.Contains(r3.Error, "certificate") {
		t.Errorf("an instance with another CA's certificate: %+v", r3)
	}
}

// TestFencingAndHibernationAnnotations drives CloudNativePG's annotations
// through the plugin's verbs and the real reconciler on the real API
// server (instances simulated): a fenced replica is shut down and the
// primary goes on; a fenced primary is not failed over however long it is
// down; unfenced, the same primary comes back; hibernation shuts every
// instance down, then deletes the pods and keeps the PVCs; off makes the
// pods again and the same primary has every write.
func TestFencingAndHibernationAnnotations(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c, sim, until := pluginCluster(t, ns, "fh")
	kubeconfig := pluginUser(t, ns, pluginRules(c.Name))
	plugin := func(args ...string) {
		t.Helper()
		out, err := runPlugin(ctx, t, append(args, "-n", ns, "--kubeconfig", kubeconfig)...)
		if err != nil {
			t.Fatalf("kubectl pgward %v: %v\n%s", args, err, out)
		}
	}
	down := func(n string) bool { nd := sim.Node(n); return nd.Fenced && !nd.Running }
	podCount := func() int {
		var pods corev1.PodList
		if err := admin.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return len(pods.Items)
	}

	plugin("fence", "on", "fh", "fh-2")
	until("fh-2 fenced", func(v1.Cluster) bool { return down("fh-2") })
	if w := sim.Writable(); len(w) != 1 || w[0] != "fh-1" {
		t.Fatalf("writable with a replica fenced: %v", w)
	}

	plugin("fence", "on", "fh", "fh-1")
	until("fh-1 fenced", func(v1.Cluster) bool { return down("fh-1") })
	rounds := 0
	until("30 s with the primary fenced", func(cl v1.Cluster) bool {
		if cl.Status.CurrentPrimary != "fh-1" || cl.Status.TargetPrimary != "fh-1" || len(sim.Writable()) != 0 {
			t.Fatalf("the fenced primary was replaced: %+v, writable %v", cl.Status, sim.Writable())
		}
		rounds++
		return rounds >= 30
	})
	var cur v1.Cluster
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
		t.Fatal(err)
	}
	if cond := findCondition(cur.Status.Conditions, kube.ConditionReady); cond == nil || cond.Reason != "PrimaryFenced" {
		t.Errorf("Ready condition with the primary fenced: %+v", cond)
	}

	plugin("fence", "off", "fh", "*")
	until("unfenced, fh-1 primary again", func(cl v1.Cluster) bool {
		w := sim.Writable()
		return cl.Status.ReadyInstances == 3 && cl.Status.CurrentPrimary == "fh-1" && len(w) == 1 && w[0] == "fh-1" && !down("fh-2")
	})
	if _, ok := cur.Annotations[v1.FencedInstancesAnnotation]; !ok {
		t.Error("the fencing annotation was not there while fenced")
	}

	plugin("hibernate", "on", "fh")
	until("hibernated: pods deleted", func(cl v1.Cluster) bool { return cl.Status.Phase == kube.PhaseHibernated && podCount() == 0 })
	var pvcs corev1.PersistentVolumeClaimList
	if err := admin.List(ctx, &pvcs, client.InNamespace(ns)); err != nil || len(pvcs.Items) != 3 {
		t.Fatalf("PVCs while hibernated: %d (%v), want 3", len(pvcs.Items), err)
	}
	for _, n := range []string{"fh-1", "fh-2", "fh-3"} {
		if !down(n) {
			t.Fatalf("%s was not shut down before its pod went", n)
		}
	}
	rounds = 0
	until("staying hibernated", func(v1.Cluster) bool {
		if podCount() != 0 {
			t.Fatal("a pod was made again while hibernated")
		}
		rounds++
		return rounds >= 5
	})

	plugin("hibernate", "off", "fh")
	until("back from hibernation", func(cl v1.Cluster) bool {
		w := sim.Writable()
		return podCount() == 3 && cl.Status.ReadyInstances == 3 && cl.Status.CurrentPrimary == "fh-1" && len(w) == 1 && w[0] == "fh-1"
	})
	if lost := sim.Lost("fh-1"); len(lost) > 0 {
		t.Errorf("writes lost: %v", lost)
	}
	if out, err := runPlugin(ctx, t, "fence", "on", "fh", "fh-7", "-n", ns, "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), "not an instance") {
		t.Errorf("fencing fh-7: %v %s", err, out)
	}
}

// TestRestartAnnotation: `kubectl pgward restart` sets pgward.io/restart;
// the real reconciler takes it into the planner's memory, removes it, and
// restarts every replica once, one at a time, then switches over (the old
// primary restarted as it rejoins); with an instance, that one only.
func TestRestartAnnotation(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c, sim, until := pluginCluster(t, ns, "rs")
	kubeconfig := pluginUser(t, ns, pluginRules(c.Name))
	// The verb waits until the restart is over: it runs beside the
	// reconciles that carry the restart out.
	type result struct {
		out string
		err error
	}
	waited := make(chan result, 1)
	go func() {
		out, err := runPlugin(ctx, t, "restart", "rs", "-n", ns, "--kubeconfig", kubeconfig, "--timeout", "2m")
		waited <- result{out, err}
	}()
	until("rolled", func(cl v1.Cluster) bool {
		_, pending := cl.Annotations[v1.RestartAnnotation]
		return !pending && sim.Node("rs-2").Restarts == 1 && sim.Node("rs-3").Restarts == 1 &&
			cl.Status.CurrentPrimary != "rs-1" && cl.Status.ReadyInstances == 3
	})
	select {
	case r := <-waited:
		if r.err != nil || !strings.Contains(r.out, "done in") {
			t.Errorf("restart returned %v:\n%s", r.err, r.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl pgward restart still waits 30 s after the restart ended")
	}
	if lost := sim.Lost(sim.Writable()[0]); len(lost) > 0 {
		t.Errorf("writes lost: %v", lost)
	}
	var cur v1.Cluster
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
		t.Fatal(err)
	}
	replica := "rs-2"
	if cur.Status.CurrentPrimary == replica {
		replica = "rs-3"
	}
	counts := map[string]int{}
	for _, n := range []string{"rs-1", "rs-2", "rs-3"} {
		counts[n] = sim.Node(n).Restarts
	}
	before := counts[replica]
	if out, err := runPlugin(ctx, t, "restart", "rs", replica, "-n", ns, "--kubeconfig", kubeconfig, "--wait=false"); err != nil {
		t.Fatalf("restart %s: %v\n%s", replica, err, out)
	}
	rounds := 0
	until("one restarted", func(v1.Cluster) bool {
		rounds++
		return sim.Node(replica).Restarts == before+1 && rounds > 5
	})
	for n, was := range counts {
		want := was
		if n == replica {
			want++
		}
		if got := sim.Node(n).Restarts; got != want {
			t.Errorf("%s: %d restarts, want %d", n, got, want)
		}
	}
	if _, err := runPlugin(ctx, t, "restart", "rs", "rs-5", "-n", ns, "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), "instance") {
		t.Errorf("restart rs-5: %v", err)
	}
}
