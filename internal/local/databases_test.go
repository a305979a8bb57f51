package local

import (
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestDatabaseDeclarations(t *testing.T) {
	db := func(object, name, policy string) *v1.Database {
		d := &v1.Database{Spec: v1.DatabaseSpec{Name: name, Owner: "app", ReclaimPolicy: policy,
			Schemas: []v1.DatabaseSchema{{Name: "s"}}}}
		d.Name = object
		return d
	}
	decl := func(d *v1.Database) v1.DatabaseDeclaration {
		return v1.DatabaseDeclaration{Object: d.Name, Generation: 1, Spec: d.Spec}
	}
	kept, dropped, retained := db("kept", "k", ""), db("dropped", "d", "delete"), db("retained", "r", "retain")
	previous := []v1.DatabaseDeclaration{decl(kept), decl(dropped), decl(retained)}

	got, notes := databaseDeclarations([]*v1.Database{kept}, previous)
	if len(got) != 2 || got[0].Object != "kept" || got[1].Object != "dropped" || got[1].Spec.Ensure != "absent" || got[1].Spec.Schemas != nil {
		t.Fatalf("removed documents: %+v", got)
	}
	if n := strings.Join(notes, "\n"); !strings.Contains(n, `database "d" is dropped`) || !strings.Contains(n, `database "r" retained`) {
		t.Errorf("notes: %s", n)
	}
	// The next run keeps dropping it, quietly, until a document declares
	// that name again.
	again, notes := databaseDeclarations([]*v1.Database{kept}, got)
	if len(again) != 2 || again[1].Spec.Ensure != "absent" || len(notes) != 0 {
		t.Errorf("second run: %+v %q", again, notes)
	}
	back := db("new-object", "d", "")
	if got, _ := databaseDeclarations([]*v1.Database{kept, back}, again); len(got) != 2 || got[1].Object != "new-object" || got[1].Spec.Ensure != "" {
		t.Errorf("declared again: %+v", got)
	}
}

func TestCheckDatabases(t *testing.T) {
	c := &v1.Cluster{}
	c.Name = "dbs"
	v1.SetDefaults(c)
	db := func(object, cluster, name string) *v1.Database {
		d := &v1.Database{Spec: v1.DatabaseSpec{Name: name, Owner: "app"}}
		d.Name, d.Spec.Cluster.Name = object, cluster
		return d
	}
	if err := CheckDatabases(c, []*v1.Database{db("a", "dbs", "one"), db("b", "dbs", "two")}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		dbs  []*v1.Database
		want string
	}{
		"another cluster":  {[]*v1.Database{db("a", "other", "one")}, "spec.cluster.name"},
		"the app database": {[]*v1.Database{func() *v1.Database { d := db("a", "dbs", "app"); d.Spec.Owner = "bob"; return d }()}, "spec.owner"},
		"one name twice":   {[]*v1.Database{db("a", "dbs", "one"), db("b", "dbs", "one")}, `kind Database "b": spec.name: Database "a" already declares database "one"`},
		"one object twice": {[]*v1.Database{db("a", "dbs", "one"), db("a", "dbs", "two")}, "metadata.name: Duplicate"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := CheckDatabases(c, tc.dbs); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
