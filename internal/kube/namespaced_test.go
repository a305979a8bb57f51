package kube_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// readInstall parses every document of dist/<file>.
func readInstall(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "dist", file))
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	for _, part := range strings.Split(string(data), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(part), &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(m) > 0 {
			docs = append(docs, m)
		}
	}
	return docs
}

// typed converts a parsed document into obj.
func typed(t *testing.T, doc map[string]any, obj any) {
	t.Helper()
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		t.Fatal(err)
	}
}

// namespacedRBAC is the RBAC of a manifest: its one ClusterRole, the Role
// of the operator's namespace, and the Role and RoleBinding of every other
// (watched) namespace.
type namespacedRBAC struct {
	clusterRole  rbacv1.ClusterRole
	operatorRole rbacv1.Role
	roles        map[string]rbacv1.Role
	bindings     map[string]rbacv1.RoleBinding
}

func rbacOf(t *testing.T, docs []map[string]any) namespacedRBAC {
	t.Helper()
	r := namespacedRBAC{roles: map[string]rbacv1.Role{}, bindings: map[string]rbacv1.RoleBinding{}}
	clusterRoles := 0
	for _, d := range docs {
		switch d["kind"] {
		case "ClusterRole":
			clusterRoles++
			typed(t, d, &r.clusterRole)
		case "Role":
			var role rbacv1.Role
			typed(t, d, &role)
			if role.Namespace == operatorNamespace {
				r.operatorRole = role
			} else {
				r.roles[role.Namespace] = role
			}
		case "RoleBinding":
			var b rbacv1.RoleBinding
			typed(t, d, &b)
			if b.Namespace != operatorNamespace {
				r.bindings[b.Namespace] = b
			}
		}
	}
	if clusterRoles != 1 {
		t.Fatalf("%d ClusterRoles, want 1", clusterRoles)
	}
	return r
}

// grant is one thing a rule allows.
type grant struct{ group, resource, name, verb string }

func (g grant) String() string {
	return fmt.Sprintf("%s %s/%s %s", g.verb, g.group, g.resource, g.name)
}

// grants flattens rules into what they allow, one grant per group,
// resource, resource name ("" for any) and verb.
func grants(t *testing.T, rules []rbacv1.PolicyRule) map[grant]bool {
	t.Helper()
	out := map[grant]bool{}
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("unexpected non-resource rule %+v", r)
		}
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, n := range names {
					for _, v := range r.Verbs {
						out[grant{g, res, n, v}] = true
					}
				}
			}
		}
	}
	return out
}

// TestNamespacedInstallRBAC: dist/install-namespaced.yaml grants exactly
// what dist/install.yaml grants, generated from the same markers, only
// split by scope: its Role in the watched namespace holds every grant on a
// namespaced resource, its ClusterRole every grant on a cluster-scoped one
// (the real API server's discovery decides which is which), and nothing is
// granted twice or left out. Everything else in the two manifests is the
// same, but for the namespaces the operator is told to watch.
func TestNamespacedInstallRBAC(t *testing.T) {
	wideDocs := readInstall(t, "install.yaml")
	nsDocs := readInstall(t, "install-namespaced.yaml")
	wide, ns := rbacOf(t, wideDocs), rbacOf(t, nsDocs)
	if len(wide.roles) != 0 {
		t.Errorf("the cluster-wide install has Roles outside %s: %v", operatorNamespace, slices.Collect(maps.Keys(wide.roles)))
	}
	if !reflect.DeepEqual(wide.operatorRole, ns.operatorRole) {
		t.Errorf("the Role in %s differs:\n%+v\n%+v", operatorNamespace, wide.operatorRole, ns.operatorRole)
	}
	watched := slices.Sorted(maps.Keys(ns.roles))
	if len(watched) == 0 {
		t.Fatal("the namespaced install has no Role in a watched namespace")
	}

	scope := discoveredScopes(t)
	// The operator's RBAC names the Prometheus operator's PodMonitors,
	// whose CRD this API server has only once TestMonitoringOnTheAPIServer
	// installed it; they are namespaced (the Prometheus operator's CRD).
	if _, ok := scope["monitoring.coreos.com/podmonitors"]; !ok {
		scope["monitoring.coreos.com/podmonitors"] = true
	}
	namespaced := func(g grant) bool {
		t.Helper()
		if v, ok := scope[g.group+"/"+g.resource]; ok {
			return v
		}
		// clusters/finalizers is authorized but not served: it has the
		// scope of clusters.
		parent, _, _ := strings.Cut(g.resource, "/")
		v, ok := scope[g.group+"/"+parent]
		if !ok {
			t.Errorf("the API server does not know %s/%s", g.group, g.resource)
		}
		return v
	}
	all := grants(t, ns.clusterRole.Rules)
	for g := range all {
		if namespaced(g) {
			t.Errorf("the namespaced install's ClusterRole grants %s, a namespaced resource, in every namespace", g)
		}
	}
	first := ns.roles[watched[0]]
	for g := range grants(t, first.Rules) {
		if !namespaced(g) {
			t.Errorf("the Role in %s grants %s, which is cluster-scoped", first.Namespace, g)
		}
		if all[g] {
			t.Errorf("%s is granted twice", g)
		}
		all[g] = true
	}
	if want := grants(t, wide.clusterRole.Rules); !maps.Equal(all, want) {
		for g := range want {
			if !all[g] {
				t.Errorf("the namespaced install lacks %s", g)
			}
		}
		for g := range all {
			if !want[g] {
				t.Errorf("the namespaced install adds %s", g)
			}
		}
	}

	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "pgward-operator", Namespace: operatorNamespace}
	for _, n := range watched {
		role, b := ns.roles[n], ns.bindings[n]
		if !reflect.DeepEqual(role.Rules, first.Rules) {
			t.Errorf("the Roles of %s and %s differ", n, first.Namespace)
		}
		// Every object of a Cluster is named after it, in DNS label
		// characters: a name outside them is one no Cluster can hold.
		if len(validation.IsDNS1123Label(role.Name)) == 0 {
			t.Errorf("Role %s/%s could be the name of a Cluster's Role", n, role.Name)
		}
		if b.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}) ||
			!slices.Equal(b.Subjects, []rbacv1.Subject{sa}) {
			t.Errorf("RoleBinding in %s: %+v %+v", n, b.RoleRef, b.Subjects)
		}
	}

	// The rest is the same but for the operator's WATCH_NAMESPACES.
	strip := func(docs []map[string]any) ([]map[string]any, string) {
		var out []map[string]any
		env := ""
		for _, d := range docs {
			meta, _ := d["metadata"].(map[string]any)
			switch {
			case d["kind"] == "ClusterRole":
				continue
			case (d["kind"] == "Role" || d["kind"] == "RoleBinding") && meta["namespace"] != operatorNamespace:
				continue
			case d["kind"] == "Deployment":
				ctr := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
				var kept []any
				for _, e := range ctr["env"].([]any) {
					if e.(map[string]any)["name"] == kube.WatchNamespacesEnv {
						env = e.(map[string]any)["value"].(string)
						continue
					}
					kept = append(kept, e)
				}
				ctr["env"] = kept
			}
			out = append(out, d)
		}
		return out, env
	}
	wideRest, wideEnv := strip(wideDocs)
	nsRest, nsEnv := strip(nsDocs)
	if wideEnv != "" {
		t.Errorf("the cluster-wide install watches %q", wideEnv)
	}
	if got, err := kube.ParseNamespaces(nsEnv); err != nil || !slices.Equal(slices.Sorted(slices.Values(got)), watched) {
		t.Errorf("the namespaced install watches %q (%v), but has Roles in %v", nsEnv, err, watched)
	}
	if !reflect.DeepEqual(wideRest, nsRest) {
		t.Error("the two installs differ in more than RBAC and the watched namespaces")
	}
}

// discoveredScopes maps "group/resource" to whether the API server serves
// it in namespaces.
func discoveredScopes(t *testing.T) map[string]bool {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			out[gv.Group+"/"+r.Name] = r.Namespaced
		}
	}
	return out
}

// namespacedOperator makes a user that holds exactly the RBAC of
// dist/install-namespaced.yaml for the namespaces watched, and returns its
// configuration. The objects are copies under names of their own, bound
// to that user, so they do not disturb the cluster-wide RBAC the other
// tests act with.
func namespacedOperator(t *testing.T, watched ...string) *rest.Config {
	t.Helper()
	ctx := ctxFor(t)
	const user = "system:serviceaccount:pgward-system:pgward-operator-namespaced"
	const name = "pgward-operator-namespaced"
	rb := rbacOf(t, readInstall(t, "install-namespaced.yaml"))
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	roleRef := func(kind, name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: name}
	}
	objs := []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rb.clusterRole.Rules},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: roleRef("ClusterRole", name), Subjects: subject},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: operatorNamespace}, Rules: rb.operatorRole.Rules},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: operatorNamespace}, RoleRef: roleRef("Role", name), Subjects: subject},
	}
	var role rbacv1.Role
	for _, r := range rb.roles {
		role = r
	}
	for _, ns := range watched {
		objs = append(objs,
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns}, Rules: role.Rules},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns}, RoleRef: roleRef("Role", role.Name), Subjects: subject})
	}
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := admin.Delete(context.Background(), o); err != nil && !apierrors.IsNotFound(err) {
				t.Error(err)
			}
		})
	}
	u, err := env.AddUser(envtest.User{Name: user}, adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	return u.Config()
}

// collectWarnings records the warnings the API server sends a client.
type collectWarnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *collectWarnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// TestNamespacedOperator runs the operator as the namespaced install does
// (kube.Run watching one namespace, acting with exactly that install's
// RBAC, its webhooks serving the whole API server) beside a Cluster in a
// namespace it does not watch. It reconciles the Cluster of its namespace;
// it refuses to admit a new Cluster elsewhere and says why; it leaves the
// other Cluster alone (no status, no object, no event), even when that
// Cluster changes; and its identity cannot read a Secret there.
func TestNamespacedOperator(t *testing.T) {
	ctx := ctxFor(t)
	watched, other := "namespaced-watched", "namespaced-other"
	for _, n := range []string{watched, other} {
		ns := namespaceObj(n)
		ns.Labels = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}
		if err := admin.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	// Made before the operator (and its webhooks) start, as a Cluster of a
	// namespace dropped from the list would be.
	stranger := sampleCluster(t, other)
	stranger.Name = "stranger"
	createCluster(t, stranger)
	private := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-yours", Namespace: other}, StringData: map[string]string{"k": "v"}}
	if err := admin.Create(ctx, private); err != nil {
		t.Fatal(err)
	}
	opCfgNS := namespacedOperator(t, watched)

	t.Run("it will not start without its Role in a namespace it is told to watch", func(t *testing.T) {
		cfg := kube.DefaultConfig()
		cfg.WatchNamespaces = []string{watched, other}
		cfg.Webhooks, cfg.LeaderElect, cfg.MetricsAddr, cfg.ProbeAddr = false, false, "0", "0"
		err := kube.Run(ctx, opCfgNS, cfg)
		if err == nil || !strings.Contains(err.Error(), "may not list Clusters in namespace "+other) || strings.Contains(err.Error(), watched) {
			t.Fatalf("got %v, want a refusal naming %s alone", err, other)
		}
	})

	startOperatorAs(t, opCfgNS, watched, func(c *kube.Config) { c.WatchNamespaces = []string{watched} })

	t.Run("a Cluster outside its namespaces is refused at admission", func(t *testing.T) {
		c := sampleCluster(t, other)
		c.Name = "refused"
		err := admin.Create(ctx, c)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.namespace") ||
			!strings.Contains(err.Error(), "namespace "+other+" is not watched by the pgward operator") {
			t.Fatalf("got %v, want a refusal naming metadata.namespace", err)
		}
		t.Log(err)
	})

	t.Run("an existing one there can change, with a warning", func(t *testing.T) {
		w := &collectWarnings{}
		cfg := rest.CopyConfig(adminCfg)
		cfg.WarningHandlerWithContext = w
		wc, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		var cur v1.Cluster
		if err := wc.Get(ctx, client.ObjectKeyFromObject(stranger), &cur); err != nil {
			t.Fatal(err)
		}
		before := cur.DeepCopy()
		cur.Labels = map[string]string{"touched": "yes"}
		cur.Spec.Instances = 2
		if err := wc.Patch(ctx, &cur, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.msgs) != 1 || !strings.Contains(w.msgs[0], "is not watched") {
			t.Errorf("warnings %q", w.msgs)
		}
	})

	c := sampleCluster(t, watched)
	if err := admin.Create(ctx, c); err != nil {
		t.Fatalf("a Cluster in the watched namespace: %v", err)
	}
	eventually(t, time.Minute, "the watched Cluster reconciled", func() error {
		var cur v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
			return err
		}
		var pods corev1.PodList
		if err := admin.List(ctx, &pods, client.InNamespace(watched), client.MatchingLabels{build.ClusterLabel: c.Name}); err != nil {
			return err
		}
		if cur.Status.Phase == "" || len(pods.Items) != 3 {
			return fmt.Errorf("phase %q, %d pods", cur.Status.Phase, len(pods.Items))
		}
		return nil
	})
	// The operator polls its Clusters every CheckInterval; give it a few
	// rounds in which it could have strayed.
	time.Sleep(2 * kube.DefaultTiming().CheckInterval)

	t.Run("the Cluster outside is left alone", func(t *testing.T) {
		var cur v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(stranger), &cur); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cur.Status, v1.ClusterStatus{}) {
			t.Errorf("status written: %+v", cur.Status)
		}
		for obj := range snapshot(t, other) {
			if obj != "*v1.SecretList/not-yours" && obj != "*v1.ClusterList/stranger" && obj != "*v1.ServiceAccountList/default" {
				t.Errorf("%s was made in %s", obj, other)
			}
		}
		var events eventsv1.EventList
		if err := admin.List(ctx, &events, client.InNamespace(other)); err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			t.Errorf("event in %s: %s %s", other, e.Reason, e.Note)
		}
	})

	t.Run("its identity cannot read Secrets outside its namespaces", func(t *testing.T) {
		user, err := client.New(opCfgNS, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		if err := user.Get(ctx, client.ObjectKeyFromObject(private), &corev1.Secret{}); !apierrors.IsForbidden(err) {
			t.Errorf("GET secret %s/%s as the operator: %v, want forbidden", other, private.Name, err)
		}
		if err := user.List(ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing every Secret as the operator: %v, want forbidden", err)
		}
		for ns, want := range map[string]bool{watched: true, other: false, "default": false, "": false} {
			for _, verb := range []string{"get", "list", "watch"} {
				review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   "system:serviceaccount:pgward-system:pgward-operator-namespaced",
					Groups: []string{"system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: ns, Verb: verb, Resource: "secrets",
					},
				}}
				if err := admin.Create(ctx, review); err != nil {
					t.Fatal(err)
				}
				if review.Status.Allowed != want {
					t.Errorf("%s secrets in namespace %q: allowed %v, want %v", verb, ns, review.Status.Allowed, want)
				}
			}
		}
	})
}

// eventually calls f until it returns nil, failing the test with f's last
// error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
