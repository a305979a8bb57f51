package kube

import (
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestClustersOfCatalog: a catalog's change re-reconciles exactly the
// Clusters naming it: an ImageCatalog those of its namespace, a
// ClusterImageCatalog those of every namespace, never a Cluster naming the
// other kind or another catalog. (The watch itself is controller-runtime's;
// a fake client stands for the cache here.)
func TestClustersOfCatalog(t *testing.T) {
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	cluster := func(ns, name, kind, catalog string) client.Object {
		c := &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if kind != "" {
			c.Spec.ImageCatalogRef = &v1.ImageCatalogRef{Kind: kind, Name: catalog, Major: 15}
		}
		return c
	}
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		cluster("a", "uses-ic", v1.ImageCatalogKind, "pg"),
		cluster("a", "uses-other", v1.ImageCatalogKind, "other"),
		cluster("a", "uses-cic", v1.ClusterImageCatalogKind, "pg"),
		cluster("b", "uses-ic-b", v1.ImageCatalogKind, "pg"),
		cluster("b", "uses-cic-b", v1.ClusterImageCatalogKind, "pg"),
		cluster("b", "plain", "", ""),
	).Build()
	r := &ClusterReconciler{Client: cl}
	names := func(kind string, obj client.Object) []string {
		var out []string
		for _, req := range r.clustersOfCatalog(kind)(context.Background(), obj) {
			out = append(out, req.String())
		}
		slices.Sort(out)
		return out
	}
	ic := &v1.ImageCatalog{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "pg"}}
	if got := names(v1.ImageCatalogKind, ic); !slices.Equal(got, []string{"a/uses-ic"}) {
		t.Errorf("ImageCatalog a/pg: %v", got)
	}
	cic := &v1.ClusterImageCatalog{ObjectMeta: metav1.ObjectMeta{Name: "pg"}}
	if got := names(v1.ClusterImageCatalogKind, cic); !slices.Equal(got, []string{"a/uses-cic", "b/uses-cic-b"}) {
		t.Errorf("ClusterImageCatalog pg: %v", got)
	}
}
