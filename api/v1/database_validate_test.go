package v1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidateDatabase(t *testing.T) {
	f, tr, neg := false, true, int64(-2)
	base := func() DatabaseSpec {
		d := DatabaseSpec{Name: "one", Owner: "app"}
		d.Cluster.Name = "cluster-example"
		return d
	}
	cases := []struct {
		name   string
		mutate func(*DatabaseSpec)
		want   string // "" valid; else a substring of the error
	}{
		{"minimal", func(*DatabaseSpec) {}, ""},
		{"CloudNativePG's hyphenated name", func(d *DatabaseSpec) { d.Name = "declarative-icu" }, ""},
		{"everything PostgreSQL 15 has", func(d *DatabaseSpec) {
			d.Template, d.Encoding, d.LocaleProvider, d.ICULocale = "template0", "utf-8", "icu", "en-US"
			d.IsTemplate, d.AllowConnections, d.Tablespace, d.ReclaimPolicy = &f, &tr, "fast", "delete"
			d.Schemas = []DatabaseSchema{{Name: "s1", Owner: "app"}, {Name: "old", Ensure: "absent"}}
			d.Extensions = []DatabaseExtension{{Name: "uuid-ossp", Version: "1.1", Schema: "s1"}, {Name: "hstore", Ensure: "absent"}}
		}, ""},
		{"no cluster", func(d *DatabaseSpec) { d.Cluster.Name = "" }, "spec.cluster.name: Required"},
		{"cluster not a name", func(d *DatabaseSpec) { d.Cluster.Name = "A/b" }, "spec.cluster.name"},
		{"postgres", func(d *DatabaseSpec) { d.Name = "postgres" }, "spec.name: Invalid value: \"postgres\""},
		{"template0", func(d *DatabaseSpec) { d.Name = "template0" }, "spec.name"},
		{"template1", func(d *DatabaseSpec) { d.Name = "template1" }, "spec.name"},
		{"quote in name", func(d *DatabaseSpec) { d.Name = `a"; DROP DATABASE app; --` }, "spec.name"},
		{"space in name", func(d *DatabaseSpec) { d.Name = "a b" }, "spec.name"},
		{"newline in name", func(d *DatabaseSpec) { d.Name = "a\nb" }, "spec.name"},
		{"name too long", func(d *DatabaseSpec) { d.Name = strings.Repeat("a", 64) }, "spec.name"},
		{"no owner", func(d *DatabaseSpec) { d.Owner = "" }, "spec.owner: Required"},
		{"owner postgres", func(d *DatabaseSpec) { d.Owner = "postgres" }, "spec.owner"},
		{"owner streaming_replica", func(d *DatabaseSpec) { d.Owner = "streaming_replica" }, "spec.owner"},
		{"owner pgward_monitor", func(d *DatabaseSpec) { d.Owner = "pgward_monitor" }, "spec.owner"},
		{"owner pg_*", func(d *DatabaseSpec) { d.Owner = "pg_read_server_files" }, "spec.owner"},
		{"owner public", func(d *DatabaseSpec) { d.Owner = "public" }, "spec.owner"},
		{"owner quoted", func(d *DatabaseSpec) { d.Owner = `x" SUPERUSER` }, "spec.owner"},
		{"template postgres", func(d *DatabaseSpec) { d.Template = "postgres" }, "spec.template"},
		{"template itself", func(d *DatabaseSpec) { d.Template = "one" }, "spec.template"},
		{"template injection", func(d *DatabaseSpec) { d.Template = "t'x" }, "spec.template"},
		{"encoding unknown", func(d *DatabaseSpec) { d.Encoding = "klingon" }, "spec.encoding"},
		{"locale injection", func(d *DatabaseSpec) { d.Locale = "C' OWNER postgres" }, "spec.locale"},
		{"lc_collate injection", func(d *DatabaseSpec) { d.LocaleCollate = "C'" }, "spec.localeCollate"},
		{"lc_ctype injection", func(d *DatabaseSpec) { d.LocaleCType = "C'" }, "spec.localeCType"},
		{"icu without provider", func(d *DatabaseSpec) { d.ICULocale = "en" }, "spec.icuLocale"},
		{"icu provider without locale", func(d *DatabaseSpec) { d.LocaleProvider = "icu" }, "spec.icuLocale: Required"},
		{"icu with LATIN1", func(d *DatabaseSpec) { d.LocaleProvider, d.ICULocale, d.Encoding = "icu", "en", "LATIN1" }, "spec.encoding"},
		{"builtin provider", func(d *DatabaseSpec) { d.LocaleProvider = "builtin" }, "PostgreSQL 17"},
		{"icuRules", func(d *DatabaseSpec) { d.LocaleProvider, d.ICULocale, d.ICURules = "icu", "en", "&a < b" }, "spec.icuRules"},
		{"builtinLocale", func(d *DatabaseSpec) { d.BuiltinLocale = "C.UTF-8" }, "spec.builtinLocale"},
		{"collationVersion", func(d *DatabaseSpec) { d.CollationVersion = "153.1" }, "spec.collationVersion"},
		{"connection limit", func(d *DatabaseSpec) { d.ConnectionLimit = &neg }, "spec.connectionLimit"},
		{"tablespace pg_global", func(d *DatabaseSpec) { d.Tablespace = "pg_global" }, "spec.tablespace"},
		{"tablespace injection", func(d *DatabaseSpec) { d.Tablespace = "x;y" }, "spec.tablespace"},
		{"reclaim policy", func(d *DatabaseSpec) { d.ReclaimPolicy = "Delete" }, "spec.databaseReclaimPolicy"},
		{"ensure", func(d *DatabaseSpec) { d.Ensure = "gone" }, "spec.ensure"},
		{"fdws", func(d *DatabaseSpec) { d.FDWs = []RefusedObject{{Name: "postgres_fdw"}} }, "spec.fdws: Forbidden: foreign data wrappers: a CloudNativePG field pgward does not support yet"},
		{"servers", func(d *DatabaseSpec) { d.Servers = []RefusedObject{{Name: "remote"}} }, "spec.servers"},
		{"schema pg_", func(d *DatabaseSpec) { d.Schemas = []DatabaseSchema{{Name: "pg_temp"}} }, "spec.schemas[0].name"},
		{"schema information_schema", func(d *DatabaseSpec) { d.Schemas = []DatabaseSchema{{Name: "information_schema"}} }, "spec.schemas[0].name"},
		{"schema duplicate", func(d *DatabaseSpec) { d.Schemas = []DatabaseSchema{{Name: "a"}, {Name: "a"}} }, "spec.schemas[1].name: Duplicate"},
		{"schema owner postgres", func(d *DatabaseSpec) { d.Schemas = []DatabaseSchema{{Name: "a", Owner: "postgres"}} }, "spec.schemas[0].owner"},
		{"schema ensure", func(d *DatabaseSpec) { d.Schemas = []DatabaseSchema{{Name: "a", Ensure: "x"}} }, "spec.schemas[0].ensure"},
		{"extension injection", func(d *DatabaseSpec) { d.Extensions = []DatabaseExtension{{Name: "x; DROP"}} }, "spec.extensions[0].name"},
		{"extension version injection", func(d *DatabaseSpec) { d.Extensions = []DatabaseExtension{{Name: "hstore", Version: "1.8'"}} }, "spec.extensions[0].version"},
		{"extension schema injection", func(d *DatabaseSpec) { d.Extensions = []DatabaseExtension{{Name: "hstore", Schema: `"x"`}} }, "spec.extensions[0].schema"},
		{"extension duplicate", func(d *DatabaseSpec) { d.Extensions = []DatabaseExtension{{Name: "hstore"}, {Name: "hstore"}} }, "spec.extensions[1].name: Duplicate"},
		{"objects without connections", func(d *DatabaseSpec) {
			d.AllowConnections = &f
			d.Schemas = []DatabaseSchema{{Name: "a"}}
		}, "spec.allowConnections"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			tc.mutate(&d)
			errs := d.Validate(field.NewPath("spec"))
			got := errs.ToAggregate()
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("refused: %v", got)
			case tc.want != "" && got == nil:
				t.Fatalf("accepted, want %q", tc.want)
			case tc.want != "" && !strings.Contains(got.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestCheckDatabaseAgainstCluster(t *testing.T) {
	c := &Cluster{}
	c.Name = "cluster-example"
	SetDefaults(c)
	f := false
	cases := []struct {
		name   string
		mutate func(*DatabaseSpec)
		want   string
	}{
		{"another database", func(d *DatabaseSpec) { d.Name, d.Owner, d.ReclaimPolicy = "other", "someone", "delete" }, ""},
		{"the app database, its owner, extensions", func(d *DatabaseSpec) { d.Extensions = []DatabaseExtension{{Name: "hstore"}} }, ""},
		{"the app database absent", func(d *DatabaseSpec) { d.Ensure = "absent" }, "spec.ensure"},
		{"the app database deleted with its declaration", func(d *DatabaseSpec) { d.ReclaimPolicy = "delete" }, "spec.databaseReclaimPolicy"},
		{"the app database given away", func(d *DatabaseSpec) { d.Owner = "someone" }, "spec.owner"},
		{"the app database closed", func(d *DatabaseSpec) { d.AllowConnections = &f }, "spec.allowConnections"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := DatabaseSpec{Name: DefaultDatabase, Owner: DefaultDatabase}
			tc.mutate(&d)
			got := c.CheckDatabase(&d, field.NewPath("spec")).ToAggregate()
			if (tc.want == "") != (got == nil) || (got != nil && !strings.Contains(got.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", got, tc.want)
			}
		})
	}
}

func TestLoadDatabase(t *testing.T) {
	ok := `apiVersion: postgresql.cnpg.io/v1
kind: Database
metadata:
  name: cluster-example-one
spec:
  name: one
  owner: app
  cluster:
    name: cluster-example
  extensions:
  - name: bloom
    ensure: present
`
	d, err := LoadDatabase([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if d.APIVersion != APIVersion || d.Spec.Name != "one" || d.Spec.Extensions[0].Name != "bloom" {
		t.Fatalf("loaded %+v", d)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"fdws":          {strings.Replace(ok, "  extensions:", "  fdws:\n  - name: postgres_fdw\n    handler: h\n  extensions:", 1), `"spec.fdws" is a Cloud Native PostgreSQL field that pgward does not support yet`},
		"servers":       {strings.Replace(ok, "  extensions:", "  servers:\n  - name: s\n    fdw: f\n  extensions:", 1), `"spec.servers"`},
		"unknown field": {strings.Replace(ok, "  owner: app", "  owner: app\n  ownr: x", 1), "unknown field"},
		"status":        {ok + "status:\n  applied: true\n", `"status" is written by pgward`},
		"apiVersion":    {strings.Replace(ok, "postgresql.cnpg.io/v1", "example.com/v1", 1), "apiVersion"},
		"bad name":      {strings.Replace(ok, "name: cluster-example-one", "name: Bad_Name", 1), "metadata.name"},
		"bad spec":      {strings.Replace(ok, "owner: app", "owner: postgres", 1), "spec.owner"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadDatabase([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDatabaseConflicts(t *testing.T) {
	got := DatabaseConflicts([]string{"a", "b", "c"}, []string{"x", "y", "x"})
	if got[0] != "" || got[1] != "" || !strings.Contains(got[2], `Database "a" already declares database "x"`) {
		t.Fatalf("%q", got)
	}
}
