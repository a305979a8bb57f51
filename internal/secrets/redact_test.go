package secrets

import (
	"strings"
	"testing"
)

// TestRedactor: each registered value goes wherever it is, and so does
// every secret shape, in the forms a report meets (logs, JSON, YAML,
// conninfo, headers); text that only looks near a secret stays.
func TestRedactor(t *testing.T) {
	var r Redactor
	r.Add([]byte("Xy7-generated-password-42"))
	r.Add([]byte("host:5432:app:app:pgpass-line-secret99\n"))
	r.Add([]byte("short")) // under MinRedactedLen: ignored
	for _, tc := range []struct{ name, in, gone, kept string }{
		{"a value in a log", `FATAL: relation "Xy7-generated-password-42" does not exist`, "Xy7-generated-password-42", "does not exist"},
		{"a line of a multi-line value", "pgpass: host:5432:app:app:pgpass-line-secret99", "pgpass-line-secret99", "pgpass: "},
		{"a PEM key", "x\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\ny", "MHcCAQEE", "x\n"},
		{"a truncated PEM key", "tail of a log: -----BEGIN PRIVATE KEY-----\nMIIEvQ", "MIIEvQ", "tail of a log"},
		{"a SCRAM verifier", "ALTER ROLE app PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy'", "c3RvcmVk", "ALTER ROLE app"},
		{"an LDAP bind password", "ldap ldapbindpasswd=TopSecret1 ldapbasedn=dc=x", "TopSecret1", "ldapbasedn=dc=x"},
		{"a conninfo password", "host=a password=hunter2hunter2 dbname=app", "hunter2hunter2", "dbname=app"},
		{"a JSON password", `{"password": "p4ssw0rd-json", "user": "app"}`, "p4ssw0rd-json", `"user": "app"`},
		{"a YAML token", "token: abcdef123456\nname: x", "abcdef123456", "name: x"},
		{"an env var form", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY="},
		{"a query string", "https://s3/x?api_key=qwerty12345&y=1", "qwerty12345", "&y=1"},
		{"a JWT", "token eyJhbGciOiJSUzI1NiIsImtpZCI6.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJl end", "eyJpc3MiOiJrdWJlcm5ldGVzIn0", " end"},
		{"a bearer header", "Authorization: Bearer abc.def.ghi-jkl", "abc.def.ghi-jkl", "Authorization: "},
		{"names stay", "secretName: app-creds\npassword_encryption = 'scram-sha-256'\nautomountServiceAccountToken: false", "", "secretName: app-creds\npassword_encryption = 'scram-sha-256'\nautomountServiceAccountToken: false"},
		{"a YAML key with a nested value stays", "secret:\n  name: app-creds", "", "secret:\n  name: app-creds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := string(r.Redact([]byte(tc.in)))
			if tc.gone != "" && strings.Contains(out, tc.gone) {
				t.Errorf("%q still in %q", tc.gone, out)
			}
			if !strings.Contains(out, tc.kept) {
				t.Errorf("%q lost from %q", tc.kept, out)
			}
		})
	}
}

func TestSecretLookingName(t *testing.T) {
	for name, want := range map[string]bool{
		"PGPASSWORD": true, "AWS_SECRET_ACCESS_KEY": true, "GITHUB_TOKEN": true, "example.com/api-key": true,
		"HOME": false, "PGDATA": false, "pgward.io/reloadedAt": false, "kubectl.kubernetes.io/restartedAt": false,
	} {
		if got := SecretLookingName(name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}
