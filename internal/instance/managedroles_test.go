package instance

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/secrets"
)

func TestRolePlan(t *testing.T) {
	limit := int64(4)
	no := false
	until := metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	dante := v1.RoleConfiguration{Name: "dante", Comment: "D", Login: true, CreateDB: true, ConnectionLimit: &limit,
		ValidUntil: &until, InRoles: []string{"pg_monitor"}, PasswordSecret: &v1.LocalObjectReference{Name: "s"}}
	verifier, err := secrets.SCRAMSHA256Verifier("pw", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := until.UTC()
	asDeclared := roleState{exists: true, login: true, createdb: true, inherit: true, connLimit: 4, validUntil: &u,
		verifier: verifier, comment: "D", memberOf: []string{"pg_monitor"}}
	for _, c := range []struct {
		name string
		want v1.RoleConfiguration
		have roleState
		pw   string
		out  []string // statement prefixes, in order
	}{
		{"as declared: nothing", dante, asDeclared, "pw", nil},
		{"missing: created and set", dante, roleState{}, "pw", []string{
			"CREATE ROLE \"dante\"", "ALTER ROLE \"dante\" WITH LOGIN CREATEDB CONNECTION LIMIT 4 VALID UNTIL '2030-01-01T00:00:00Z' PASSWORD 'SCRAM-SHA-256$",
			"COMMENT ON ROLE \"dante\" IS 'D'", "GRANT \"pg_monitor\" TO \"dante\""}},
		{"drift: every attribute back", dante, roleState{exists: true, superuser: true, replication: true, createrole: true, inherit: false,
			connLimit: 1, verifier: "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA", comment: "x", memberOf: []string{"pg_read_all_data"}}, "pw", []string{
			"ALTER ROLE \"dante\" WITH LOGIN CREATEDB NOCREATEROLE INHERIT NOSUPERUSER NOREPLICATION CONNECTION LIMIT 4 VALID UNTIL '2030-01-01T00:00:00Z' PASSWORD 'SCRAM",
			"COMMENT ON ROLE \"dante\" IS 'D'", "GRANT \"pg_monitor\" TO \"dante\"", "REVOKE \"pg_read_all_data\" FROM \"dante\""}},
		{"a new password", dante, asDeclared, "pw2", []string{"ALTER ROLE \"dante\" WITH PASSWORD 'SCRAM-SHA-256$"}},
		{"no password wanted", v1.RoleConfiguration{Name: "p", DisablePassword: true, Inherit: &no},
			roleState{exists: true, inherit: true, connLimit: -1, verifier: verifier}, "", []string{"ALTER ROLE \"p\" WITH NOINHERIT PASSWORD NULL"}},
		{"absent and there", v1.RoleConfiguration{Name: "g", Ensure: "absent"}, roleState{exists: true}, "", []string{"DROP ROLE \"g\""}},
		{"absent and gone", v1.RoleConfiguration{Name: "g", Ensure: "absent"}, roleState{}, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := rolePlan(c.want, c.have, c.pw, c.pw != "", rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.out) {
				t.Fatalf("got %q\nwant %q", got, c.out)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.out[i]) {
					t.Errorf("statement %d: %q\nwant prefix %q", i, got[i], c.out[i])
				}
			}
		})
	}
}

// TestManagedPasswordsHoldsOnlyTheRolesConcerned: a role whose password
// secret is missing, for another user or holds no usable password is held
// (left as it is, the reason reported) while the other roles get theirs.
func TestManagedPasswordsHoldsOnlyTheRolesConcerned(t *testing.T) {
	root := t.TempDir()
	store := secrets.DirStore{Root: root}
	for name, data := range map[string]map[string][]byte{
		"ok":     {"username": []byte("a"), "password": []byte("pass-a")},
		"nouser": {"password": []byte("pass-b")},
		"other":  {"username": []byte("zz"), "password": []byte("pass-c")},
		"empty":  {"username": []byte("e")},
	} {
		if err := store.Put(name, data); err != nil {
			t.Fatal(err)
		}
	}
	ref := func(n string) *v1.LocalObjectReference { return &v1.LocalObjectReference{Name: n} }
	c := &v1.Cluster{Spec: v1.ClusterSpec{Managed: &v1.ManagedConfiguration{Roles: []v1.RoleConfiguration{
		{Name: "a", PasswordSecret: ref("ok")},
		{Name: "b", PasswordSecret: ref("nouser")},
		{Name: "c", PasswordSecret: ref("other")},
		{Name: "d", PasswordSecret: ref("missing")},
		{Name: "e", PasswordSecret: ref("empty")},
		{Name: "f", PasswordSecret: ref("missing"), Ensure: "absent"},
		{Name: "g"},
	}}}}
	m := &Manager{store: store}
	pw, held, err := m.managedPasswords(c)
	if fmt.Sprint(pw) != "map[a:pass-a b:pass-b]" {
		t.Errorf("passwords %v", pw)
	}
	if fmt.Sprint(held) != "map[c:true d:true e:true]" {
		t.Errorf("held %v", held)
	}
	for _, want := range []string{`role c: secret "other" is for user "zz"`, `role d: reading secret "missing"`, `role e: secret "empty"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "pass-") {
		t.Errorf("a password in the error: %v", err)
	}
}
