package pgconf

import (
	"slices"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/safetext"
)

// injectionSeeds are values that try to end a line early, break out of the
// quotes or confuse the escaping.
var injectionSeeds = []string{
	"x\nlisten_addresses='*'",
	"a'b",
	"a\\",
	"\r",
	"\x00",
	`'; ssl = 'off`,
	`\'`,
	"\u2028port = 1",
	"\xff",
}

// FuzzRenderPostgresConf checks, for any one user parameter, that the
// renderer either refuses it or adds exactly one line that PostgreSQL's
// quoting rules read back as the same name and value, and that every
// enforced setting still wins.
func FuzzRenderPostgresConf(f *testing.F) {
	for _, s := range injectionSeeds {
		f.Add("application_name", s)
		f.Add(s, "1")
	}
	f.Add("work_mem", "64MB")
	f.Add("port", "5433")
	f.Add("include", "/etc/passwd")
	f.Add("pg_stat_statements.max", "1000")
	f.Add("search_path", `"$user", public`)

	c := sampleCluster()
	c.Spec.PostgresConfiguration.Parameters = nil
	in := replicaInstance()
	base, err := RenderPostgresConf(c, in)
	if err != nil {
		f.Fatal(err)
	}
	baseSettings, err := parseConf(string(base))
	if err != nil {
		f.Fatal(err)
	}
	nDefaults := len(defaultSettings)

	f.Fuzz(func(t *testing.T, name, value string) {
		c := sampleCluster()
		c.Spec.PostgresConfiguration.Parameters = map[string]string{name: value}
		out, err := RenderPostgresConf(c, in)
		if err != nil {
			return
		}
		if got, want := len(lines(out)), len(lines(base))+1; got != want {
			t.Fatalf("%d lines, want %d:\n%s", got, want, out)
		}
		settings, err := parseConf(string(out))
		if err != nil {
			t.Fatalf("rendered file does not parse: %v\n%s", err, out)
		}
		// Defaults, then the one user setting, then the enforced settings.
		want := slices.Concat(baseSettings[:nDefaults], []setting{{name, value}}, baseSettings[nDefaults:])
		if !slices.Equal(settings, want) {
			t.Fatalf("settings %q, want %q", settings, want)
		}
		got, wantEffective := effective(settings), effective(baseSettings[nDefaults:])
		for k, v := range wantEffective {
			if got[k] != v {
				t.Fatalf("enforced %s = %q, want %q", k, got[k], v)
			}
		}
	})
}

// FuzzRenderHBA checks, for any one manifest pg_hba line, that the renderer
// either refuses it or adds exactly one line, the same rule, placed just
// before the catch-all, which stays the last line.
func FuzzRenderHBA(f *testing.F) {
	for _, s := range injectionSeeds {
		f.Add(s)
		f.Add("host all all all scram-sha-256 " + s)
	}
	f.Add("host all all 0.0.0.0/0 scram-sha-256\nhost all all all trust")
	f.Add("hostssl app app 10.0.0.0/8 scram-sha-256")
	f.Add(`hostssl "my db",app +readers 192.168.0.1 255.255.0.0 cert map=readers clientname=DN`)
	f.Add("hostssl all all all cert map=pgward")
	f.Add("host @admins all all scram-sha-256")
	f.Add("include /etc/passwd")
	f.Add("local all all trust")

	c := sampleCluster()
	c.Spec.PostgresConfiguration.PgHBA = nil
	base, err := RenderHBA(c, "postgres")
	if err != nil {
		f.Fatal(err)
	}
	baseLines := lines(base)
	tail, err := catchAllRules(nil)
	if err != nil {
		f.Fatal(err)
	}
	// pgward's rules, then (here) the manifest's line, then the catch-all.
	head, catchAll := baseLines[:len(baseLines)-len(tail)], baseLines[len(baseLines)-len(tail):]

	f.Fuzz(func(t *testing.T, line string) {
		c := sampleCluster()
		c.Spec.PostgresConfiguration.PgHBA = []string{line}
		out, err := RenderHBA(c, "postgres")
		if err != nil {
			return
		}
		got := lines(out)
		if len(got) != len(baseLines)+1 {
			t.Fatalf("%d lines, want %d:\n%s", len(got), len(baseLines)+1, out)
		}
		manifestLine := got[len(head)]
		if !slices.Equal(got[:len(head)], head) || !slices.Equal(got[len(head)+1:], catchAll) {
			t.Fatalf("pgward's rules changed:\n%s", out)
		}
		want, err := v1.ParseHBARule(line)
		if err != nil {
			t.Fatalf("accepted a line v1.ParseHBARule refuses: %v", err)
		}
		rendered, err := v1.ParseHBARule(manifestLine)
		if err != nil || !sameRule(rendered, want) {
			t.Fatalf("rendered %q reads back as %+v (%v), want %+v", manifestLine, rendered, err, want)
		}
	})
}

// FuzzRenderIdent checks that a manifest pg_ident line is refused or adds
// exactly one three-field line after pgward's own.
func FuzzRenderIdent(f *testing.F) {
	for _, s := range injectionSeeds {
		f.Add(s)
		f.Add("users alice " + s)
	}
	f.Add("users alice app")
	f.Add(`users /^(.*)@corp\.example$ \1`)
	f.Add(`users "Bob Smith" app`)
	f.Add("pgward alice postgres")
	f.Add("include /etc/passwd x")

	c := sampleCluster()
	c.Spec.PostgresConfiguration.PgIdent = nil
	base, err := RenderIdent(c, "postgres")
	if err != nil {
		f.Fatal(err)
	}
	baseLines := lines(base)

	f.Fuzz(func(t *testing.T, line string) {
		c := sampleCluster()
		c.Spec.PostgresConfiguration.PgIdent = []string{line}
		out, err := RenderIdent(c, "postgres")
		if err != nil {
			return
		}
		got := lines(out)
		if len(got) != len(baseLines)+1 || !slices.Equal(got[:len(baseLines)], baseLines) {
			t.Fatalf("want pgward's lines and one more:\n%s", out)
		}
		last := got[len(got)-1]
		fields := splitAuthFields(last)
		if len(fields) != 3 || fields[0] == pgwardMap || safetext.Check(last) != nil {
			t.Fatalf("added line %q", last)
		}
	})
}
