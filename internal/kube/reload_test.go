package kube_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// reloadSim is simInstances with the reload requests of an instance
// manager: it records each request and answers it done in the status.
type reloadSim struct {
	*simInstances
	mu  sync.Mutex
	got map[string][]instanceapi.ReloadRequest
	// down instances report their PostgreSQL stopped.
	down map[string]bool
}

func (r *reloadSim) Reload(_ context.Context, in kube.Instance, req instanceapi.ReloadRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[in.Name] = append(r.got[in.Name], req)
	return nil
}

func (r *reloadSim) Status(ctx context.Context, in kube.Instance, ack uint64) (*instanceapi.Status, error) {
	st, err := r.simInstances.Status(ctx, in, ack)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down[in.Name] {
		st.PostmasterRunning, st.Ready = false, false
	}
	if reqs := r.got[in.Name]; len(reqs) > 0 {
		st.Reload = &instanceapi.ReloadResult{ID: reqs[len(reqs)-1].ID, Done: true}
	}
	return st, nil
}

// reconciledCluster creates c and returns its simulated instances and a
// function that runs reconcile rounds of the real reconciler (with the
// InstanceClient wrap makes of the simulation) until ok holds.
func reconciledCluster(t *testing.T, c *v1.Cluster, wrap func(*simInstances) kube.InstanceClient) (*plantest.Sim, func(string, func(v1.Cluster) bool)) {
	t.Helper()
	h := newSimHarness(t, c, wrap)
	return h.sim, h.until
}

func (r *reloadSim) requests(name string) []instanceapi.ReloadRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]instanceapi.ReloadRequest(nil), r.got[name]...)
}

// TestReloadAnnotation: `kubectl pgward reload`'s request, through the
// real reconciler on the real API server (instances simulated): after a
// spec change, the pgward.io/reloadedAt annotation makes the operator ask
// every running instance once, naming the digest of the manifest in its
// config Secret as the change left it, and annotate each pod with the
// request (so that the kubelet refreshes its Secret volumes at once); an
// instance whose PostgreSQL is down is not asked. The plugin's wait asks
// each instance over mutual TLS and reports a restart-only parameter and a
// refusal; the verb itself, as a user with only the documented RBAC, sets
// a new request and fails naming the instances it could not ask.
func TestReloadAnnotation(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "rl"
	var rs *reloadSim
	_, until := reconciledCluster(t, c, func(si *simInstances) kube.InstanceClient {
		rs = &reloadSim{simInstances: si, got: map[string][]instanceapi.ReloadRequest{}, down: map[string]bool{}}
		return rs
	})
	until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "rl-1" && c.Status.ReadyInstances == 3 })
	for _, n := range []string{"rl-1", "rl-2", "rl-3"} {
		if got := rs.requests(n); len(got) > 0 {
			t.Fatalf("%s asked to reload without a request: %+v", n, got)
		}
	}

	// A spec change and a reload request; rl-3's PostgreSQL is down.
	var cur v1.Cluster
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Spec.PostgresConfiguration.Parameters == nil {
		cur.Spec.PostgresConfiguration.Parameters = map[string]string{}
	}
	cur.Spec.PostgresConfiguration.Parameters["work_mem"] = "7MB"
	if err := admin.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	rs.mu.Lock()
	rs.down["rl-3"] = true
	rs.mu.Unlock()
	id, err := kube.RequestReload(ctx, admin, client.ObjectKeyFromObject(c), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	until("requests sent", func(v1.Cluster) bool { return len(rs.requests("rl-1")) > 0 && len(rs.requests("rl-2")) > 0 })
	until("a few more rounds", func() func(v1.Cluster) bool { n := 0; return func(v1.Cluster) bool { n++; return n > 3 } }())
	for _, n := range []string{"rl-1", "rl-2"} {
		var secret corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.InstanceConfigSecretName(n)}, &secret); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(secret.Data[build.ClusterKeyJSON]), "7MB") {
			t.Fatalf("%s: the config secret does not hold the change", n)
		}
		sum := sha256.Sum256(secret.Data[build.ClusterKeyJSON])
		got := rs.requests(n)
		if len(got) != 1 || got[0].ID != id || got[0].ManifestSHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: requests %+v, want one, %s, for the manifest with the change", n, got, id)
		}
		if a := getPod(t, ns, n).Annotations[v1.ReloadAnnotation]; a != id {
			t.Errorf("pod %s: %s=%q, want %q", n, v1.ReloadAnnotation, a, id)
		}
	}
	if got := rs.requests("rl-3"); len(got) != 0 {
		t.Errorf("rl-3, PostgreSQL down, was asked: %+v", got)
	}

	// The plugin's wait, over mutual TLS with the cluster's certificates.
	answer := func(name string, res *instanceapi.ReloadResult) func() *instanceapi.Status {
		return func() *instanceapi.Status {
			return &instanceapi.Status{Name: name, Role: instanceapi.RoleReplica, PostmasterRunning: res != nil, Ready: true, Phase: "running", Reload: res}
		}
	}
	fw := directForwarder{
		"rl-1": statusServer(t, c, answer("rl-1", &instanceapi.ReloadResult{ID: id, Done: true, PendingRestart: []string{"shared_buffers"}})),
		"rl-2": statusServer(t, c, answer("rl-2", &instanceapi.ReloadResult{ID: id, Done: true, Error: "spec.postgresql.parameters[work_mem]: refused"})),
		"rl-3": statusServer(t, c, answer("rl-3", nil)),
	}
	for _, p := range []string{"rl-1", "rl-2", "rl-3"} {
		pod := getPod(t, ns, p)
		pod.Status.Phase = corev1.PodRunning
		if err := admin.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	outcomes, err := kube.WaitReload(ctx, admin, fw, client.ObjectKeyFromObject(c), id, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := instanceapi.SummarizeReload(outcomes, "kubectl pgward restart rl")
	text := strings.Join(lines, "\n")
	for _, want := range []string{"rl-1: reloaded; waiting for a restart: shared_buffers", "rl-2: FAILED: spec.postgresql.parameters[work_mem]: refused", "rl-3: not reloaded: PostgreSQL is not running"} {
		if !strings.Contains(text, want) {
			t.Errorf("the wait does not say %q:\n%s", want, text)
		}
	}
	if err == nil || !strings.HasSuffix(err.Error(), "not in effect on rl-2") {
		t.Errorf("error %v, want one naming rl-2", err)
	}

	// The verb, as a user with the documented RBAC: no kubelet runs here,
	// so no port-forward reaches a pod, and it says so per instance.
	kubeconfig := pluginUser(t, ns, pluginRules(c.Name))
	out, err := runPlugin(ctx, t, "reload", "rl", "-n", ns, "--kubeconfig", kubeconfig, "--timeout", "3s")
	if err == nil || !strings.Contains(err.Error(), "not in effect on rl-1, rl-2, rl-3") || !strings.Contains(out, "rl-1: FAILED: ") {
		t.Errorf("reload without port-forwards: %v\n%s", err, out)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
		t.Fatal(err)
	}
	if next := cur.Annotations[v1.ReloadAnnotation]; next == id || !strings.Contains(out, "reload "+next+" requested") {
		t.Errorf("the verb did not set a new request: %q (was %q)\n%s", next, id, out)
	}
}
