package instance

import (
	"slices"
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestDBPlan(t *testing.T) {
	limit, f, tr := int64(5), false, true
	steady := dbState{exists: true, owner: "app", encoding: "UTF8", collate: "C", ctype: "C", provider: "c", allowConn: true, connLimit: -1, tablespace: "pg_default"}
	cases := []struct {
		name      string
		want      v1.DatabaseSpec
		have      dbState
		stmts     []string
		fixedPart string
	}{
		{"create with every option", v1.DatabaseSpec{Name: "one", Owner: "app", Template: "template0", Encoding: "UTF8", Locale: "C",
			Tablespace: "fast", ConnectionLimit: &limit, IsTemplate: &tr}, dbState{},
			[]string{`CREATE DATABASE "one" WITH OWNER "app" TEMPLATE "template0" ENCODING 'UTF8' LOCALE 'C' TABLESPACE "fast" ALLOW_CONNECTIONS true CONNECTION LIMIT 5 IS_TEMPLATE true`}, ""},
		{"create quotes names", v1.DatabaseSpec{Name: `we"ird-name`, Owner: "o"}, dbState{},
			[]string{`CREATE DATABASE "we""ird-name" WITH OWNER "o" ALLOW_CONNECTIONS true CONNECTION LIMIT -1 IS_TEMPLATE false`}, ""},
		{"steady writes nothing", v1.DatabaseSpec{Name: "one", Owner: "app", Encoding: "utf-8", Locale: "C"}, steady, nil, ""},
		{"drift repaired", v1.DatabaseSpec{Name: "one", Owner: "app", ConnectionLimit: &limit, AllowConnections: &f, Tablespace: "fast"},
			dbState{exists: true, owner: "bob", allowConn: true, connLimit: -1, isTemplate: true, tablespace: "pg_default"},
			[]string{`ALTER DATABASE "one" OWNER TO "app"`, `ALTER DATABASE "one" WITH ALLOW_CONNECTIONS false CONNECTION LIMIT 5 IS_TEMPLATE false`, `ALTER DATABASE "one" SET TABLESPACE "fast"`}, ""},
		{"fixed at creation reported", v1.DatabaseSpec{Name: "one", Owner: "app", Encoding: "LATIN1", LocaleCollate: "en_US"}, steady, nil, `spec.encoding: the database has "UTF8"`},
		{"absent drops", v1.DatabaseSpec{Name: "one", Ensure: "absent"}, steady, []string{`DROP DATABASE "one" WITH (FORCE)`}, ""},
		{"absent template drops", v1.DatabaseSpec{Name: "one", Ensure: "absent"}, dbState{exists: true, isTemplate: true},
			[]string{`ALTER DATABASE "one" IS_TEMPLATE false`, `DROP DATABASE "one" WITH (FORCE)`}, ""},
		{"absent and gone", v1.DatabaseSpec{Name: "one", Ensure: "absent"}, dbState{}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stmts, fixed := dbPlan(tc.want, tc.have)
			if !slices.Equal(stmts, tc.stmts) {
				t.Errorf("statements\n got %q\nwant %q", stmts, tc.stmts)
			}
			if got := strings.Join(fixed, "; "); (tc.fixedPart == "") != (got == "") || !strings.Contains(got, tc.fixedPart) {
				t.Errorf("fixed %q, want %q", got, tc.fixedPart)
			}
		})
	}
}

func TestSchemaAndExtensionPlans(t *testing.T) {
	if got := schemaPlan(v1.DatabaseSchema{Name: "s"}, "app", nil); !slices.Equal(got, []string{`CREATE SCHEMA IF NOT EXISTS "s" AUTHORIZATION "app"`}) {
		t.Errorf("create: %q", got)
	}
	if got := schemaPlan(v1.DatabaseSchema{Name: "s", Owner: "o"}, "app", &schemaState{owner: "app"}); !slices.Equal(got, []string{`ALTER SCHEMA "s" OWNER TO "o"`}) {
		t.Errorf("owner drift: %q", got)
	}
	if got := schemaPlan(v1.DatabaseSchema{Name: "s"}, "app", &schemaState{owner: "app"}); got != nil {
		t.Errorf("steady: %q", got)
	}
	if got := schemaPlan(v1.DatabaseSchema{Name: "s", Ensure: "absent"}, "app", &schemaState{}); !slices.Equal(got, []string{`DROP SCHEMA IF EXISTS "s" RESTRICT`}) {
		t.Errorf("absent: %q", got)
	}
	if got := extensionPlan(v1.DatabaseExtension{Name: "pg_trgm", Schema: "s", Version: "1.6"}, nil); !slices.Equal(got, []string{`CREATE EXTENSION IF NOT EXISTS "pg_trgm" SCHEMA "s" VERSION '1.6'`}) {
		t.Errorf("create: %q", got)
	}
	if got := extensionPlan(v1.DatabaseExtension{Name: "hstore", Version: "1.8", Schema: "s"}, &extensionState{version: "1.7", schema: "public"}); !slices.Equal(got, []string{`ALTER EXTENSION "hstore" UPDATE TO '1.8'`, `ALTER EXTENSION "hstore" SET SCHEMA "s"`}) {
		t.Errorf("update: %q", got)
	}
	if got := extensionPlan(v1.DatabaseExtension{Name: "hstore"}, &extensionState{version: "1.7", schema: "public"}); got != nil {
		t.Errorf("no version keeps the installed one: %q", got)
	}
	if got := extensionPlan(v1.DatabaseExtension{Name: "hstore", Ensure: "absent"}, &extensionState{}); !slices.Equal(got, []string{`DROP EXTENSION IF EXISTS "hstore" RESTRICT`}) {
		t.Errorf("absent: %q", got)
	}
}
