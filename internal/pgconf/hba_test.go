package pgconf

import (
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

// lines splits a rendered file into its lines.
func lines(b []byte) []string {
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// rules returns the lines of a rendered pg_hba or pg_ident file that are
// neither blank nor comments.
func rules(b []byte) []string {
	var out []string
	for _, l := range lines(b) {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func renderHBALines(t *testing.T, hba ...string) ([]byte, error) {
	t.Helper()
	c := sampleCluster()
	c.Spec.PostgresConfiguration.PgHBA = hba
	return RenderHBA(c, "postgres")
}

func TestRenderHBAOrder(t *testing.T) {
	out, err := renderHBALines(t, "hostssl app app 10.0.0.0/8 scram-sha-256", "local  app   all   scram-sha-256")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"local all all peer map=pgward",
		"hostssl replication streaming_replica all cert",
		"hostssl postgres streaming_replica all cert",
		"host all streaming_replica all reject",
		"host replication all all reject",
		"hostssl app app 10.0.0.0/8 scram-sha-256",
		"local app all scram-sha-256",
		"hostssl all all all scram-sha-256",
		"host all all all reject",
	}
	if got := rules(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRenderHBAManifestLineBeforeCatchAll checks the position of a
// manifest rule in the file itself: the line right before the catch-all,
// which is the last line.
func TestRenderHBAManifestLineBeforeCatchAll(t *testing.T) {
	out, err := renderHBALines(t, "hostssl   app  app  2001:DB8::/32   scram-sha-256")
	if err != nil {
		t.Fatal(err)
	}
	l := lines(out)
	if got, want := l[len(l)-1], "host all all all reject"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	// Re-rendered from the parsed fields: single spaces, canonical address.
	if got, want := l[len(l)-3], "hostssl app app 2001:db8::/32 scram-sha-256"; got != want {
		t.Errorf("line before the catch-all %q, want %q", got, want)
	}
}

// TestRenderHBACatchAllNetworks checks that catchAllNetworks narrows the
// catch-all and that the final reject still follows it.
func TestRenderHBACatchAllNetworks(t *testing.T) {
	c := sampleCluster()
	c.Spec.PostgresConfiguration.CatchAllNetworks = []string{"10.0.0.0/8", "fd00::/8"}
	out, err := RenderHBA(c, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	r := rules(out)
	want := []string{
		"hostssl all all 10.0.0.0/8 scram-sha-256",
		"hostssl all all fd00::/8 scram-sha-256",
		"host all all all reject",
	}
	if got := r[len(r)-3:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("catch-all:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range []string{"10.1.2.3/8", "samenet", "all", "10.0.0.0/8 trust"} {
		c.Spec.PostgresConfiguration.CatchAllNetworks = []string{bad}
		_, err := RenderHBA(c, "postgres")
		wantError(t, err, "pgconf: spec.postgresql.catchAllNetworks[0]: ")
	}
}

func TestRenderHBARefuses(t *testing.T) {
	for _, tt := range []struct {
		name, line string
		want       string
	}{
		{"newline", "host all all 0.0.0.0/0 scram-sha-256\nhost all all all trust", "U+000A"},
		{"carriage return", "host all all 0.0.0.0/0 scram-sha-256\r", "U+000D"},
		{"NUL", "host all all all scram-sha-256\x00", "U+0000"},
		{"@file database", "host @dbs all all scram-sha-256", "@file"},
		{"@file user in a list", "host all alice,@admins all scram-sha-256", "@file"},
		{"include directive", "include /etc/passwd", "include"},
		{"comment", "host all all all scram-sha-256 # note", "'#'"},
		{"line continuation", `host all all all scram-sha-256 \`, "backslash"},
		{"pgward map over cert", "hostssl all all all cert map=pgward", `"pgward" is reserved`},
		{"pgward map quoted", `hostssl all all all cert map="pgward"`, `"pgward" is reserved`},
		{"pgward map over gss", "hostgssenc all all 10.0.0.0/8 gss map=PGWARD", `"pgward" is reserved`},
		{"replication role", "hostssl all streaming_replica all scram-sha-256", "streaming_replica"},
		{"trust over TCP", "host all all all trust", "trust"},
		{"empty", "   ", "empty"},
		{"unresolved pod selector", "hostssl app app ${podselector:web} scram-sha-256", "only the operator resolves pod selectors"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderHBALines(t, "hostssl app app all scram-sha-256", tt.line)
			wantError(t, err, "pgconf: spec.postgresql.pg_hba[1]: ", tt.want)
		})
	}
	_, err := RenderHBA(sampleCluster(), "/.*")
	wantError(t, err, "not a portable user name")
	_, err = RenderHBA(nil, "postgres")
	wantError(t, err, "nil Cluster")
}

// TestCheckHBARule covers the checks pgconf makes on its own, in case a
// parsed rule reaches it that v1.ParseHBARule would not have produced.
func TestCheckHBARule(t *testing.T) {
	ok := v1.HBARule{Type: "hostssl", Database: "app", User: "app", Address: "all", Method: "cert"}
	if err := checkHBARule(ok); err != nil {
		t.Fatalf("checkHBARule(%v) = %v", ok, err)
	}
	for _, tt := range []struct {
		modify func(*v1.HBARule)
		want   string
	}{
		{func(r *v1.HBARule) { r.Type = "include" }, "connection type"},
		{func(r *v1.HBARule) { r.Database = "app,@dbs" }, "@file"},
		{func(r *v1.HBARule) { r.User = "a\nhost" }, "U+000A"},
		{func(r *v1.HBARule) { r.Method = `cert \` }, `'\'`},
		{func(r *v1.HBARule) { r.Options = []string{"map=pgward"} }, "reserved"},
	} {
		r := ok
		tt.modify(&r)
		wantError(t, checkHBARule(r), tt.want)
	}
}
