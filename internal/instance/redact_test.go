package instance

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	verifier := "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
	for _, stmt := range []string{
		"ALTER ROLE app WITH LOGIN NOSUPERUSER NOREPLICATION PASSWORD " + literal(verifier),
		"ALTER ROLE postgres WITH PASSWORD " + literal(verifier),
		"alter role app with password '" + verifier + "'",
		"ALTER ROLE app PASSWORD\n\t'" + verifier + "'",
		"ALTER ROLE app PASSWORD E'" + verifier + "'",
		"CREATE ROLE x LOGIN PASSWORD '" + verifier + "' VALID UNTIL 'infinity'",
	} {
		got := redact(stmt)
		if strings.Contains(got, "SCRAM") || strings.Contains(got, "c2Vy") || !strings.Contains(got, "<redacted>") {
			t.Errorf("redact(%q) = %q", stmt, got)
		}
	}
	for _, stmt := range []string{"ALTER ROLE postgres WITH PASSWORD NULL", "GRANT pg_checkpoint TO streaming_replica"} {
		if got := redact(stmt); got != stmt {
			t.Errorf("redact(%q) = %q, want it unchanged", stmt, got)
		}
	}
}
