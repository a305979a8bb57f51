//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestDatabasesOnPods: the Database kind on real pods. A Database naming
// a Cluster is created by the primary's instance manager with its schema
// and extension, its status says applied, a change of its owner is applied
// live, and with databaseReclaimPolicy delete, deleting the object drops
// the database before the object goes (the finalizer).
func TestDatabasesOnPods(t *testing.T) {
	ns := newNamespace(t, "dbpods")
	ctx := context.Background()
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "dbc"
		c.Spec.Instances = 2
	})
	primary := c.Status.CurrentPrimary
	psqlLocal(t, ns, primary, "postgres", "CREATE ROLE reporting NOLOGIN")
	db := &v1.Database{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: "Database"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dbc-reports"},
		Spec: v1.DatabaseSpec{
			Cluster: corev1.LocalObjectReference{Name: "dbc"}, Name: "reports", Owner: "app",
			ReclaimPolicy: "delete",
			Schemas:       []v1.DatabaseSchema{{Name: "metrics", Owner: "app"}},
			Extensions:    []v1.DatabaseExtension{{Name: "pg_trgm", Schema: "metrics"}},
		},
	}
	if err := cl.Create(ctx, db); err != nil {
		t.Fatal(err)
	}
	applied := func(what string, q, want string) {
		t.Helper()
		eventually(t, 2*time.Minute, what, func() error {
			var cur v1.Database
			if err := cl.Get(ctx, client.ObjectKeyFromObject(db), &cur); err != nil {
				return err
			}
			if cur.Status.Applied == nil || !*cur.Status.Applied || cur.Status.ObservedGeneration != cur.Generation {
				return fmt.Errorf("status %+v at generation %d", cur.Status, cur.Generation)
			}
			if got := psqlLocal(t, ns, primary, "postgres", q); got != want {
				return fmt.Errorf("%s: got %q, want %q", q, got, want)
			}
			return nil
		})
	}
	start := time.Now()
	applied("the database created", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'reports'", "app")
	t.Logf("database created and its status applied %.1fs after the Database object", time.Since(start).Seconds())
	if got := psqlLocal(t, ns, primary, "reports", "SELECT n.nspname || ' ' || pg_get_userbyid(n.nspowner) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"); got != "metrics app" {
		t.Errorf("pg_trgm: got %q, want it in schema metrics owned by app", got)
	}
	// The owner changes live.
	mustKubectl(t, "-n", ns, "patch", "database", db.Name, "--type=merge", "-p", `{"spec":{"owner":"reporting"}}`)
	applied("the new owner", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'reports'", "reporting")
	// Deleting the object drops the database (databaseReclaimPolicy: delete).
	if err := cl.Delete(ctx, db); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the Database object gone with its database", func() error {
		var cur v1.Database
		if err := cl.Get(ctx, client.ObjectKeyFromObject(db), &cur); err == nil {
			return fmt.Errorf("still there: %+v", cur.Status)
		}
		if got := psqlLocal(t, ns, primary, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'reports'"); got != "0" {
			return fmt.Errorf("the database is still there")
		}
		return nil
	})
}
