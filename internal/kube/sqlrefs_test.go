package kube_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestSQLRefsReachTheInstanceConfig: on a real API server, the operator
// (with its generated RBAC: get on ConfigMaps) reads the Secrets and
// ConfigMaps bootstrap.initdb's SQL references name and hands their SQL
// to the instance managers through each instance's config Secret, in
// CloudNativePG's order; the pods project that key and no user Secret or
// ConfigMap. A missing ConfigMap stops the reconcile, naming the field,
// before any pod exists; the SQL is kept once handed over.
func TestSQLRefsReachTheInstanceConfig(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Spec.Bootstrap.InitDB.PostInitApplicationSQLRefs = &v1.SQLRefs{
		ConfigMapRefs: []v1.ConfigMapKeySelector{{Name: "sql", Key: "app.sql"}},
		SecretRefs:    []v1.SecretKeySelector{{Name: "sql-secret", Key: "app.sql"}},
	}
	c.Spec.Bootstrap.InitDB.PostInitTemplateSQLRefs = &v1.SQLRefs{
		ConfigMapRefs: []v1.ConfigMapKeySelector{{Name: "sql", Key: "template.sql"}},
	}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)

	_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
	if err == nil || !strings.Contains(err.Error(), "spec.bootstrap.initdb.postInitApplicationSQLRefs.secretRefs[0]") {
		t.Fatalf("without the Secret: got %v, want a refusal naming the reference", err)
	}
	var pods corev1.PodList
	if err := admin.List(ctx, &pods, client.InNamespace(ns)); err != nil || len(pods.Items) > 0 {
		t.Fatalf("pods before the references resolve: %d (%v)", len(pods.Items), err)
	}

	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sql-secret"}, StringData: map[string]string{"app.sql": "INSERT INTO t VALUES ('secret')"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sql"}, Data: map[string]string{"app.sql": "INSERT INTO t VALUES ('configmap')", "template.sql": "CREATE EXTENSION intarray"}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	reconcileOnce(t, r, c)
	want := v1.ResolvedSQL{
		PostInitApplicationSQL: []string{"INSERT INTO t VALUES ('secret')", "INSERT INTO t VALUES ('configmap')"},
		PostInitTemplateSQL:    []string{"CREATE EXTENSION intarray"},
	}
	check := func() {
		t.Helper()
		for _, name := range build.InstanceNames(c) {
			var s corev1.Secret
			if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.InstanceConfigSecretName(name)}, &s); err != nil {
				t.Fatal(err)
			}
			var got v1.ResolvedSQL
			if err := json.Unmarshal(s.Data[build.BootstrapSQLKey], &got); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if strings.Join(got.PostInitApplicationSQL, "|") != strings.Join(want.PostInitApplicationSQL, "|") ||
				strings.Join(got.PostInitTemplateSQL, "|") != strings.Join(want.PostInitTemplateSQL, "|") || len(got.PostInitSQL) != 0 {
				t.Errorf("%s: got %+v", name, got)
			}
			var cfg struct {
				BootstrapSQLFile string `json:"bootstrapSQLFile"`
			}
			if err := json.Unmarshal(s.Data["config.json"], &cfg); err != nil || cfg.BootstrapSQLFile != build.ConfigDir+"/"+build.BootstrapSQLKey {
				t.Errorf("%s: config.json bootstrapSQLFile %q (%v)", name, cfg.BootstrapSQLFile, err)
			}
		}
	}
	check()
	if err := admin.List(ctx, &pods, client.InNamespace(ns)); err != nil || len(pods.Items) == 0 {
		t.Fatalf("no pods (%v)", err)
	}
	for _, p := range pods.Items {
		for _, v := range p.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil && src.ConfigMap.Name == "sql" {
					t.Errorf("pod %s mounts ConfigMap %s", p.Name, src.ConfigMap.Name)
				}
				if src.Secret != nil && src.Secret.Name == "sql-secret" {
					t.Errorf("pod %s mounts the user's Secret", p.Name)
				}
				if src.Secret != nil && strings.HasSuffix(src.Secret.Name, "-config") &&
					!strings.Contains(func() string { b, _ := json.Marshal(src.Secret.Items); return string(b) }(), build.BootstrapSQLKey) {
					t.Errorf("pod %s does not project %s", p.Name, build.BootstrapSQLKey)
				}
			}
		}
	}
	// After the bootstrap the references may go: the SQL handed over stays.
	if err := admin.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sql"}}); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c)
	check()
}
