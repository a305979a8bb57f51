package v1

import (
	"strings"
	"testing"
)

func TestValidateIdentLine(t *testing.T) {
	tests := []struct {
		line, wantErr string
	}{
		{"mymap alice app", ""},
		{"mymap\talice\tapp", ""},
		{`mymap /^(.*)@example\.com$ \1`, ""},
		{`mymap "/^(a{1,3})$" app`, ""},
		{`mymap "Bob Smith" "Mixed Role"`, ""},
		{"mymap alice +admins", ""},

		{"", "the line is empty"},
		{"mymap alice", "has 2"},
		{"mymap alice app extra", "has 4"},
		{"include /etc/passwd x", "include directives are not allowed"},
		{"include_dir conf.d", "include_dir directives are not allowed"},
		{"mymap alice app # comment", "'#'"},
		{"mymap alice app\n", "U+000A"},
		{"mymap alice\x00 app", "U+0000"},
		{"mymap alice \\", "ends with a backslash"},
		{"mymap alice app \\ ", "ends with a backslash"},
		{"mymap @users app", "system user: @file inclusions are not allowed"},
		{"mymap alice @roles", "@file inclusions are not allowed"},
		{"mymap a,b app", "put a value containing a comma in double quotes"},
		{`mymap "alice app`, "not terminated"},
		{"mymap alice streaming_replica", `mapping to "streaming_replica" is not allowed`},
		{`mymap alice "streaming_replica"`, "is not allowed"},
		{"mymap alice +streaming_replica", "is not allowed"},
		// Maps may not turn pgward's own identities into logins, nor make
		// anyone the superuser.
		{"certs streaming_replica postgres", "mapping to the superuser"},
		{"certs alice postgres", "mapping to the superuser"},
		{`certs alice "Postgres"`, "mapping to the superuser"},
		{"certs streaming_replica app", `system user "streaming_replica" is not allowed`},
		{"certs pgward-controller app", `system user "pgward-controller" is not allowed`},
		{"certs pgward-metrics app", `system user "pgward-metrics" is not allowed`},
		{"certs PGWARD-CONTROLLER app", "not allowed"},
		{"local postgres app", `system user "postgres" is not allowed`},
		{"local root app", `system user "root" is not allowed`},
		{`certs /^(.*)$ \1`, `the regular expression matches "streaming_replica"`},
		{`certs /replica app`, `the regular expression matches "streaming_replica"`},
		{`certs "/^pgward-.*" app`, `matches "pgward-controller"`},
		{`certs /^(?<x>a app`, "a named group"},
		{`certs /^(a app`, "a regular expression pgward cannot check"},
		{`certs /^[a-z]+@example\.com$ app`, ""},
	}
	for _, tt := range tests {
		err := ValidateIdentLine(tt.line)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateIdentLine(%q) = %v, want nil", tt.line, err)
		case tt.wantErr != "" && err == nil:
			t.Errorf("ValidateIdentLine(%q) = nil, want %q", tt.line, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("ValidateIdentLine(%q) = %q, want it to contain %q", tt.line, err, tt.wantErr)
		}
	}
}
