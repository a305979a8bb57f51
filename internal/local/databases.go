package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instance"
)

// DatabasesFile holds the declarations the primary's instance manager
// reconciles (a JSON list of v1.DatabaseDeclaration, 0600).
func (l Layout) DatabasesFile() string { return filepath.Join(l.Dir, "databases.json") }

// DatabaseDocs reads the Database documents of a manifest file (the local
// counterpart of the Database objects of a namespace), each strictly and
// validated on its own.
func DatabaseDocs(data []byte) ([]*v1.Database, error) {
	var out []*v1.Database
	for i, doc := range v1.SplitDocuments(data) {
		var tm struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if tm.Kind != v1.DatabaseKind {
			continue
		}
		d, err := v1.LoadDatabase(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// CheckDatabases checks the file's Databases against its Cluster: each
// names it, none touches its application database in a way that would
// break it, no two have one metadata.name or declare one database.
func CheckDatabases(c *v1.Cluster, dbs []*v1.Database) error {
	var errs []error
	var objects, names []string
	for _, d := range dbs {
		p := field.NewPath("spec")
		var fe field.ErrorList
		if d.Spec.Cluster.Name != c.Name {
			fe = append(fe, field.Invalid(p.Child("cluster", "name"), d.Spec.Cluster.Name,
				fmt.Sprintf("the file's Cluster is %q: locally a Database belongs to the Cluster of its file", c.Name)))
		}
		fe = append(fe, c.CheckDatabase(&d.Spec, p)...)
		if slices.Contains(objects, d.Name) {
			fe = append(fe, field.Duplicate(field.NewPath("metadata", "name"), d.Name))
		}
		if agg := fe.ToAggregate(); agg != nil {
			errs = append(errs, fmt.Errorf("kind Database %q: %w", d.Name, agg))
		}
		objects, names = append(objects, d.Name), append(names, d.Spec.Name)
	}
	for i, msg := range v1.DatabaseConflicts(objects, names) {
		if msg != "" {
			errs = append(errs, fmt.Errorf("kind Database %q: spec.name: %s", objects[i], msg))
		}
	}
	return errors.Join(errs...)
}

// databaseDeclarations is what the file declares, plus what earlier runs
// declared and the file no longer does: a removed Database whose
// databaseReclaimPolicy is delete stays as a declaration to be absent (the
// primary drops the database, and keeps dropping one of that name) until
// a Database declares that name again; a removed one that retains is
// forgotten, its database left as it is.
func databaseDeclarations(dbs []*v1.Database, previous []v1.DatabaseDeclaration) (decls []v1.DatabaseDeclaration, notes []string) {
	declared := map[string]bool{}
	for _, d := range dbs {
		decls = append(decls, v1.DatabaseDeclaration{Object: d.Name, Generation: 1, Spec: d.Spec})
		declared[d.Spec.Name] = true
	}
	for _, p := range previous {
		if declared[p.Spec.Name] || slices.ContainsFunc(dbs, func(d *v1.Database) bool { return d.Name == p.Object }) {
			continue
		}
		if p.Spec.ReclaimPolicy != v1.DatabaseReclaimDelete {
			notes = append(notes, fmt.Sprintf("databases: %q no longer declared; database %q retained (databaseReclaimPolicy retain)", p.Object, p.Spec.Name))
			continue
		}
		gone := p
		gone.Spec.Ensure, gone.Spec.Schemas, gone.Spec.Extensions = "absent", nil, nil
		decls = append(decls, gone)
		declared[p.Spec.Name] = true
		if p.Spec.Ensure != "absent" {
			notes = append(notes, fmt.Sprintf("databases: %q no longer declared; database %q is dropped (databaseReclaimPolicy delete)", p.Object, p.Spec.Name))
		}
	}
	return decls, notes
}

// writeDatabases writes the declarations the primary reconciles.
func writeDatabases(l Layout, dbs []*v1.Database, progress func(string)) error {
	var previous []v1.DatabaseDeclaration
	b, err := os.ReadFile(l.DatabasesFile())
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &previous); err != nil {
			return fmt.Errorf("reading %s: %w", l.DatabasesFile(), err)
		}
	}
	decls, notes := databaseDeclarations(dbs, previous)
	for _, n := range notes {
		progress(n)
	}
	if decls == nil {
		decls = []v1.DatabaseDeclaration{}
	}
	out, err := json.Marshal(decls)
	if err != nil {
		return err
	}
	if err := instance.WriteFileAtomic(l.DatabasesFile(), out, 0o600); err != nil {
		return fmt.Errorf("writing the declared databases: %w", err)
	}
	if len(dbs) > 0 {
		progress(fmt.Sprintf("databases: %d declared, reconciled by the primary's instance manager (`pgward local status` reports each)", len(dbs)))
	}
	return nil
}
