package secrets

import (
	"strings"
	"testing"
)

func TestPgpassLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Credentials
		host string
		port int
		want string // the line, or a part of the error after "error: "
	}{
		{"plain", Credentials{Username: "app", Password: "pw"}, "pg-rw", 40001, "pg-rw:40001:*:app:pw\n"},
		{"escaped", Credentials{Username: "app", Password: `a:b\c*`}, "pg-rw", 5432, `pg-rw:5432:*:app:a\:b\\c*` + "\n"},
		{"newline in password", Credentials{Username: "app", Password: "a\nb"}, "pg-rw", 5432, "error: control"},
		{"empty password", Credentials{Username: "app"}, "pg-rw", 5432, "error: "},
		{"bad user", Credentials{Username: "a:b", Password: "pw"}, "pg-rw", 5432, "error: not a valid PostgreSQL identifier"},
		{"bad host", Credentials{Username: "app", Password: "pw"}, "pg:rw", 5432, "error: "},
		{"port 0", Credentials{Username: "app", Password: "pw"}, "pg-rw", 0, "error: out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PgpassLine(tc.c, tc.host, tc.port)
			if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, want)
				}
				if tc.c.Password != "" && strings.Contains(err.Error(), tc.c.Password) {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
