package v1

import (
	"strings"
	"testing"
	"time"
)

func TestCheckUserCertificate(t *testing.T) {
	off := &Cluster{}
	on := &Cluster{Spec: ClusterSpec{EnableSuperuserAccess: new(true)}}
	week := DefaultUserCertificateValidity
	for _, tc := range []struct {
		name     string
		c        *Cluster
		user     string
		validity time.Duration
		want     string // "" accepted, else a part of the error
	}{
		{"app owner", off, "app", week, ""},
		{"underscore start", off, "_reporting", week, ""},
		{"63 characters", off, strings.Repeat("a", 63), week, ""},
		{"64 characters", off, strings.Repeat("a", 64), week, "not a valid PostgreSQL identifier"},
		{"replication", on, "streaming_replica", week, "pgward's own identities"},
		{"replication upper case", on, "Streaming_Replica", week, "pgward's own identities"},
		{"controller", on, "pgward-controller", week, "pgward's own identities"},
		{"metrics", on, "pgward-metrics", week, "pgward's own identities"},
		{"monitor", on, "pgward_monitor", week, "pgward's own identities"},
		{"root", on, "root", week, "pgward's own identities"},
		{"superuser off", off, "postgres", week, "needs enableSuperuserAccess: true"},
		{"superuser on", on, "postgres", week, ""},
		{"superuser other case", on, "Postgres", week, "the superuser is"},
		{"predefined role", on, "pg_monitor", week, "pg_ prefix"},
		{"upper case", off, "App", week, "not a valid PostgreSQL identifier"},
		{"quote", off, `a"b`, week, "not a valid PostgreSQL identifier"},
		{"newline", off, "app\nhost all all all trust", week, "not a valid PostgreSQL identifier"},
		{"slash", off, "../app", week, "not a valid PostgreSQL identifier"},
		{"empty", off, "", week, "not a valid PostgreSQL identifier"},
		{"one hour", off, "app", time.Hour, ""},
		{"90 days", off, "app", MaxUserCertificateValidity, ""},
		{"91 days", off, "app", MaxUserCertificateValidity + 24*time.Hour, "validity"},
		{"one second", off, "app", time.Second, "validity"},
		{"negative", off, "app", -time.Hour, "validity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.CheckUserCertificate(tc.user, tc.validity)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
