package pgconf

import (
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestRenderHBALDAP: postgresql.ldap turns the catch-all into ldap rules
// (one per catchAllNetworks entry), after pgward's own rules and the
// manifest's, never touching them; the final reject stays. The bind
// password is rendered quoted; one that would leave its quotes or line is
// refused without being echoed.
func TestRenderHBALDAP(t *testing.T) {
	c := sampleCluster()
	c.Spec.PostgresConfiguration.PgHBA = []string{"hostssl app app 10.0.0.0/8 scram-sha-256"}
	c.Spec.PostgresConfiguration.CatchAllNetworks = []string{"10.0.0.0/8", "192.168.0.0/16"}
	c.Spec.PostgresConfiguration.LDAP = &v1.LDAPConfig{Server: "ldap.example.org", Scheme: "ldaps",
		BindSearchAuth: &v1.LDAPBindSearchAuth{BaseDN: "ou=people,dc=example,dc=org", BindDN: "cn=search,dc=example,dc=org",
			BindPassword: &v1.SecretKeySelector{Name: "bind", Key: "password"}, SearchAttribute: "uid"}}
	out, err := RenderHBAWithSecrets(c, "postgres", HBASecrets{LDAPBindPassword: "p w,x"})
	if err != nil {
		t.Fatal(err)
	}
	opts := `ldapserver="ldap.example.org" ldapscheme=ldaps ldapbasedn="ou=people,dc=example,dc=org" ldapbinddn="cn=search,dc=example,dc=org" ldapbindpasswd="p w,x" ldapsearchattribute="uid"`
	want := []string{
		"local all all peer map=pgward",
		"hostssl replication streaming_replica all cert",
		"hostssl postgres streaming_replica all cert",
		"host all streaming_replica all reject",
		"host replication all all reject",
		"hostssl app app 10.0.0.0/8 scram-sha-256",
		"hostssl all all 10.0.0.0/8 ldap " + opts,
		"hostssl all all 192.168.0.0/16 ldap " + opts,
		"host all all all reject",
	}
	if got := rules(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, pw := range []string{"", `x" ldapscheme=ldap "`, "x\nhost all all all trust", `x\`, "x#", "x\x00"} {
		_, err := RenderHBAWithSecrets(c, "postgres", HBASecrets{LDAPBindPassword: pw})
		if err == nil {
			t.Errorf("password %q rendered", pw)
		} else if pw != "" && strings.Contains(err.Error(), pw) {
			t.Errorf("password %q echoed: %v", pw, err)
		}
	}
	// The audit's rendering compares equal once both sides are masked.
	audit, err := RenderHBA(c, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(audit), "p w,x") {
		t.Error("RenderHBA (the audit's) holds the real password")
	}
}

// TestLDAPForcesTerse: postgresql.conf gets log_error_verbosity = terse
// while pg_hba.conf holds a secret, and a user's terse is accepted.
func TestLDAPForcesTerse(t *testing.T) {
	c := sampleCluster()
	c.Spec.PostgresConfiguration.LDAP = &v1.LDAPConfig{Server: "l", Scheme: "ldaps",
		BindSearchAuth: &v1.LDAPBindSearchAuth{BaseDN: "dc=x", BindDN: "cn=s", BindPassword: &v1.SecretKeySelector{Name: "b", Key: "p"}}}
	for _, params := range []map[string]string{nil, {"log_error_verbosity": "terse"}} {
		c.Spec.PostgresConfiguration.Parameters = params
		out, err := RenderPostgresConf(c, primaryInstance())
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(out), "log_error_verbosity = 'terse'"); n != 1 {
			t.Errorf("params %v: log_error_verbosity = 'terse' %d times:\n%s", params, n, out)
		}
	}
	c.Spec.PostgresConfiguration.Parameters = map[string]string{"log_error_verbosity": "verbose"}
	if _, err := RenderPostgresConf(c, primaryInstance()); err == nil {
		t.Error("verbose rendered while pg_hba holds the bind password")
	}
}
