package kube_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// dbSim plays the primary's instance manager as far as declared databases
// go (no kubelet runs here): it reads the declarations its pod receives,
// the config secret's databases.json, and reports each applied for its
// generation, but one owned by nosuchrole, which fails as the server
// would. The real reconciliation is test/e2e's TestDeclaredDatabases.
type dbSim struct {
	*simInstances
	ns string
}

func (d *dbSim) Status(ctx context.Context, in kube.Instance, ack uint64) (*instanceapi.Status, error) {
	st, err := d.simInstances.Status(ctx, in, ack)
	if err != nil || st.Role != instanceapi.RolePrimary {
		return st, err
	}
	var sec corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: d.ns, Name: build.InstanceConfigSecretName(in.Name)}, &sec); err != nil {
		return nil, err
	}
	var decls []v1.DatabaseDeclaration
	if err := json.Unmarshal(sec.Data[build.DatabasesKey], &decls); err != nil {
		return nil, err
	}
	for _, decl := range decls {
		res := instanceapi.DatabaseResult{Object: decl.Object, Generation: decl.Generation, Applied: decl.Spec.Owner != "nosuchrole"}
		if !res.Applied {
			res.Message = `CREATE DATABASE: ERROR: role "nosuchrole" does not exist (SQLSTATE 42704)`
		}
		st.Databases = append(st.Databases, res)
	}
	return st, nil
}

// TestDatabasesOnTheAPIServer: the Database kind through the real
// reconciler, RBAC and API server (instances simulated). The operator
// hands the accepted declarations to every pod (the config secret's
// databases.json, the pods annotated so the kubelet refreshes it) and
// writes each Database's status from the primary's report: applied, the
// primary's error, a refusal (the application database dropped, a second
// declaration of one database), a missing Cluster. A changed Database is
// handed on with its new generation; one with databaseReclaimPolicy
// delete keeps a finalizer until the primary reports it dropped. The
// webhook refuses by field what pgward would refuse.
func TestDatabasesOnTheAPIServer(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "dbc"
	mk := func(name string, spec v1.DatabaseSpec) *v1.Database {
		t.Helper()
		if spec.Cluster.Name == "" {
			spec.Cluster.Name = c.Name
		}
		d := &v1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		if _, err := (kube.DatabaseWebhook{}).ValidateCreate(ctx, d); err != nil {
			t.Fatalf("webhook refuses %s: %v", name, err)
		}
		if err := admin.Create(ctx, d); err != nil {
			t.Fatalf("creating Database %s: %v", name, err)
		}
		return d
	}
	get := func(name string) (*v1.Database, error) {
		var d v1.Database
		err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d)
		return &d, err
	}
	mk("one", v1.DatabaseSpec{Name: "one", Owner: "app", ReclaimPolicy: "delete", Extensions: []v1.DatabaseExtension{{Name: "hstore"}}})
	mk("orphaned-owner", v1.DatabaseSpec{Name: "two", Owner: "nosuchrole"})
	mk("app-dropped", v1.DatabaseSpec{Name: "app", Owner: "app", Ensure: "absent"})
	mk("one-again", v1.DatabaseSpec{Name: "one", Owner: "app"})
	mk("one-again-delete", v1.DatabaseSpec{Name: "one", Owner: "app", ReclaimPolicy: "delete"})
	mk("no-cluster", v1.DatabaseSpec{Name: "x", Owner: "app", Cluster: corev1.LocalObjectReference{Name: "nosuch"}})

	_, until := reconciledCluster(t, c, func(si *simInstances) kube.InstanceClient { return &dbSim{simInstances: si, ns: ns} })
	status := func(name string) v1.DatabaseStatus {
		d, err := get(name)
		if err != nil {
			t.Fatal(err)
		}
		return d.Status
	}
	applied := func(name string, gen int64) func(v1.Cluster) bool {
		return func(v1.Cluster) bool {
			s := status(name)
			return s.Applied != nil && *s.Applied && s.ObservedGeneration == gen
		}
	}
	until("healthy and one applied", func(cl v1.Cluster) bool { return cl.Status.ReadyInstances == 3 && applied("one", 1)(cl) })
	for name, want := range map[string]string{
		"orphaned-owner": `role "nosuchrole" does not exist`,
		"app-dropped":    "refused: spec.ensure: Forbidden: cannot be absent for the Cluster's application database",
		"one-again":      `refused: spec.name: Database "one" already declares database "one" in this Cluster`,
	} {
		if s := status(name); s.Applied == nil || *s.Applied || !strings.Contains(s.Message, want) || s.ObservedGeneration != 1 {
			t.Errorf("Database %s: status %+v, want not applied with %q", name, s, want)
		}
	}
	// What the pods receive: the accepted declarations only.
	for _, name := range build.InstanceNames(c) {
		var sec corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.InstanceConfigSecretName(name)}, &sec); err != nil {
			t.Fatal(err)
		}
		var decls []v1.DatabaseDeclaration
		if err := json.Unmarshal(sec.Data[build.DatabasesKey], &decls); err != nil {
			t.Fatal(err)
		}
		var objects []string
		for _, d := range decls {
			objects = append(objects, d.Object)
		}
		if strings.Join(objects, ",") != "one,orphaned-owner" || decls[0].Spec.Extensions[0].Name != "hstore" {
			t.Errorf("%s receives %s", name, sec.Data[build.DatabasesKey])
		}
		var cfg instanceapi.Config
		if err := json.Unmarshal(sec.Data[build.ConfigKeyJSON], &cfg); err != nil || cfg.DatabasesFile != build.DatabasesFile {
			t.Errorf("%s: config.json databasesFile %q (%v)", name, cfg.DatabasesFile, err)
		}
		var pod corev1.Pod
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
			t.Fatal(err)
		}
		if pod.Annotations[kube.DatabasesAnnotation] == "" {
			t.Errorf("pod %s not annotated with its declarations' digest", name)
		}
		projected := false
		for _, v := range pod.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, s := range v.Projected.Sources {
				if s.Secret != nil && s.Secret.Name == build.InstanceConfigSecretName(name) {
					for _, it := range s.Secret.Items {
						projected = projected || (it.Key == build.DatabasesKey && it.Path == build.DatabasesKey)
					}
				}
			}
		}
		if !projected {
			t.Errorf("pod %s does not project %s", name, build.DatabasesKey)
		}
	}
	d, _ := get("one")
	if !slices.Contains(d.Finalizers, kube.DatabaseFinalizer) {
		t.Errorf("Database one (databaseReclaimPolicy delete) has finalizers %v", d.Finalizers)
	}
	// A refused declaration with delete never drops what it does not own.
	if dd, _ := get("one-again-delete"); len(dd.Finalizers) != 0 {
		t.Errorf("the refused Database one-again-delete has finalizers %v", dd.Finalizers)
	}

	// A Database whose Cluster does not exist says so.
	dr := &kube.DatabaseReconciler{Client: operator}
	if _, err := dr.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "no-cluster"}}); err != nil {
		t.Fatal(err)
	}
	if s := status("no-cluster"); s.Applied == nil || *s.Applied || !strings.Contains(s.Message, `spec.cluster.name: no Cluster "nosuch"`) {
		t.Errorf("no-cluster: %+v", s)
	}

	// Deleted while its Cluster does not exist: nothing to drop it from,
	// the finalizer is released.
	nc, _ := get("no-cluster")
	nc.Finalizers = append(nc.Finalizers, kube.DatabaseFinalizer)
	if err := admin.Update(ctx, nc); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(ctx, nc); err != nil {
		t.Fatal(err)
	}
	if _, err := dr.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "no-cluster"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("no-cluster"); !apierrors.IsNotFound(err) {
		t.Errorf("a Database of no Cluster kept by its finalizer: %v", err)
	}

	// A change is handed on with its generation, and reported for it.
	d.Spec.ConnectionLimit = new(int64(5))
	if err := admin.Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	until("one applied at generation 2", applied("one", 2))

	// Deleted with databaseReclaimPolicy delete: handed on as absent, and
	// released once the primary reports it done.
	if err := admin.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d, err := get("one"); err != nil || d.DeletionTimestamp == nil {
		t.Fatalf("Database one went without waiting for the primary: %v", err)
	}
	until("one dropped and released", func(v1.Cluster) bool {
		_, err := get("one")
		return apierrors.IsNotFound(err)
	})
	// Released, the declaration to drop it goes, and the newer Database
	// of that name, which waited, is handed on.
	until("one-again applied", applied("one-again", 1))
	if err := admin.Delete(ctx, &v1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "one-again-delete"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("one-again-delete"); !apierrors.IsNotFound(err) {
		t.Errorf("the refused Database one-again-delete waits on deletion: %v", err)
	}
	var sec corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.InstanceConfigSecretName("dbc-1")}, &sec); err != nil {
		t.Fatal(err)
	}
	if s := string(sec.Data[build.DatabasesKey]); strings.Contains(s, `"object":"one",`) || strings.Contains(s, "absent") {
		t.Errorf("the pods still receive the deleted Database: %s", s)
	}

	// The webhook refuses by field.
	bad := &v1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
		Spec: v1.DatabaseSpec{Cluster: corev1.LocalObjectReference{Name: c.Name}, Name: "x", Owner: "postgres", FDWs: []v1.RefusedObject{{Name: "f"}}}}
	_, err := (kube.DatabaseWebhook{}).ValidateCreate(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "spec.owner") || !strings.Contains(err.Error(), "spec.fdws") {
		t.Errorf("webhook: %v", err)
	}
	renamed := bad.DeepCopy()
	bad.Spec.Owner, bad.Spec.FDWs = "app", nil
	renamed.Spec.Owner, renamed.Spec.FDWs, renamed.Spec.Name = "app", nil, "y"
	if _, err := (kube.DatabaseWebhook{}).ValidateUpdate(ctx, bad, renamed); err == nil || !strings.Contains(err.Error(), "spec.name") {
		t.Errorf("webhook allows renaming: %v", err)
	}
}
