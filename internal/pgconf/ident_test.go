package pgconf

import (
	"testing"
)

func TestRenderIdent(t *testing.T) {
	c := sampleCluster()
	c.Spec.PostgresConfiguration.PgIdent = []string{"users\talice   app", `users "Bob Smith" app`}
	out, err := RenderIdent(c, "pgward-runner")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pgward pgward-runner postgres", "pgward pgward-runner pgward_monitor", "users alice app", `users "Bob Smith" app`}
	got := rules(out)
	if len(got) != len(want) {
		t.Fatalf("rules %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestRenderIdentRefuses(t *testing.T) {
	for _, tt := range []struct {
		name, line, want string
	}{
		{"two fields", "users alice", "3"},
		{"four fields", "users alice app extra", "3"},
		{"newline", "users alice app\npgward root postgres", "U+000A"},
		{"carriage return", "users alice app\r", "U+000D"},
		{"reserved map", "pgward alice app", `"pgward" is reserved`},
		{"reserved map quoted", `"PGWard" alice app`, `"pgward" is reserved`},
		{"map onto the superuser", "users alice postgres", "mapping to the superuser"},
		{"@file", "users @names app", "@file"},
		{"include directive", "include /etc/passwd x", "include"},
		{"comment", "users alice app#x", "'#'"},
		{"line continuation", `users /^(.*)$ \`, "backslash"},
		{"comma list", "users alice,bob app", "comma"},
		{"replication role", "users alice streaming_replica", "streaming_replica"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := sampleCluster()
			c.Spec.PostgresConfiguration.PgIdent = []string{"users alice app", tt.line}
			_, err := RenderIdent(c, "postgres")
			wantError(t, err, "pgconf: spec.postgresql.pg_ident[1]: ", tt.want)
		})
	}
	for _, user := range []string{"", "/.*", "-x", "a b", "a\nb", `"x"`, "@file"} {
		_, err := RenderIdent(sampleCluster(), user)
		wantError(t, err, "OS user")
	}
	_, err := RenderIdent(nil, "postgres")
	wantError(t, err, "nil Cluster")
}

func TestCheckIdentField(t *testing.T) {
	for field, ok := range map[string]bool{
		"alice":          true,
		`"Bob Smith"`:    true,
		`"a,b"`:          true,
		`/^(.*)@corp\.x`: true,
		`\1`:             true,
		`"@x"`:           true,
		"@x":             false,
		"a,b":            false,
		`a"b"`:           false,
		`""`:             false,
		`"#x"`:           false,
		"a\x00":          false,
	} {
		if err := checkIdentField(field); (err == nil) != ok {
			t.Errorf("checkIdentField(%q) = %v, want ok=%v", field, err, ok)
		}
	}
}
