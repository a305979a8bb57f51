//go:build e2e_kube

package kube

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestBootstrapSQLRefsAndICUOnPods: on real pods, bootstrap.initdb's SQL
// references (a Secret and a ConfigMap the pods never mount: the operator
// hands their SQL over in the instance config Secret) run after the
// inline statements, in CloudNativePG's order, and the application
// database has the ICU locale and the cluster the WAL segment size asked.
func TestBootstrapSQLRefsAndICUOnPods(t *testing.T) {
	ns := newNamespace(t, "bootstrapsql")
	ctx := context.Background()
	if err := cl.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sql-secret"},
		StringData: map[string]string{"app.sql": "INSERT INTO steps (what) VALUES ('secret');"}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sql"},
		Data: map[string]string{"app.sql": "INSERT INTO steps (what) VALUES ('configmap');"}}); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "bsql"
		c.Spec.Instances = 1
		in := c.Spec.Bootstrap.InitDB
		in.Encoding, in.Locale = "UTF8", "C.UTF-8"
		in.LocaleProvider, in.ICULocale, in.WalSegmentSize = "icu", "de-DE", 32
		in.PostInitApplicationSQL = []string{"CREATE TABLE steps (n serial, what text)", "INSERT INTO steps (what) VALUES ('inline')"}
		in.PostInitApplicationSQLRefs = &v1.SQLRefs{
			ConfigMapRefs: []v1.ConfigMapKeySelector{{Name: "sql", Key: "app.sql"}},
			SecretRefs:    []v1.SecretKeySelector{{Name: "sql-secret", Key: "app.sql"}},
		}
	})
	primary := c.Status.CurrentPrimary
	for q, want := range map[string]string{
		"SELECT string_agg(what, ',' ORDER BY n) FROM steps":                                        "inline,secret,configmap",
		"SELECT datlocprovider::text || ' ' || daticulocale FROM pg_database WHERE datname = 'app'": "i de-DE",
		"SELECT string_agg(x, '' ORDER BY x) FROM (VALUES ('b'), ('ä'), ('a')) v(x)":                "aäb",
		"SHOW wal_segment_size": "32MB",
	} {
		if got := psqlLocal(t, ns, primary, "app", q); got != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
}
