package v1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func searchAuth() *LDAPConfig {
	return &LDAPConfig{Server: "ldap.example.org", Scheme: "ldaps", BindSearchAuth: &LDAPBindSearchAuth{
		BaseDN: "ou=people,dc=example,dc=org", BindDN: "cn=search,dc=example,dc=org",
		BindPassword: &SecretKeySelector{Name: "bind", Key: "password"}, SearchAttribute: "uid"}}
}

// TestValidateLDAP: every refusal names its field; a configuration that
// would send passwords in clear is refused; no value reaches the message.
func TestValidateLDAP(t *testing.T) {
	const secret = "s3cret-dn-value"
	tests := []struct {
		name   string
		mutate func(*LDAPConfig)
		field  string // "" when valid
	}{
		{"search+bind over ldaps", func(*LDAPConfig) {}, ""},
		{"StartTLS", func(l *LDAPConfig) { l.Scheme, l.TLS = "ldap", true }, ""},
		{"no scheme but StartTLS", func(l *LDAPConfig) { l.Scheme, l.TLS = "", true }, ""},
		{"simple bind", func(l *LDAPConfig) {
			l.BindSearchAuth, l.BindAsAuth = nil, &LDAPBindAsAuth{Prefix: "uid=", Suffix: ",ou=people,dc=example,dc=org"}
		}, ""},
		{"IP server", func(l *LDAPConfig) { l.Server = "10.0.0.1" }, ""},
		{"clear text ldap", func(l *LDAPConfig) { l.Scheme = "ldap" }, "spec.postgresql.ldap.scheme"},
		{"clear text, no scheme", func(l *LDAPConfig) { l.Scheme = "" }, "spec.postgresql.ldap.scheme"},
		{"StartTLS over ldaps", func(l *LDAPConfig) { l.TLS = true }, "spec.postgresql.ldap.tls"},
		{"unknown scheme", func(l *LDAPConfig) { l.Scheme = "http" }, "spec.postgresql.ldap.scheme"},
		{"no server", func(l *LDAPConfig) { l.Server = "" }, "spec.postgresql.ldap.server"},
		{"server with a space", func(l *LDAPConfig) { l.Server = "a b" }, "spec.postgresql.ldap.server"},
		{"server list smuggled", func(l *LDAPConfig) { l.Server = `x" ldapscheme=ldap "` }, "spec.postgresql.ldap.server"},
		{"port out of range", func(l *LDAPConfig) { l.Port = 70000 }, "spec.postgresql.ldap.port"},
		{"both modes", func(l *LDAPConfig) { l.BindAsAuth = &LDAPBindAsAuth{Prefix: "uid="} }, "spec.postgresql.ldap"},
		{"no mode", func(l *LDAPConfig) { l.BindSearchAuth = nil }, "spec.postgresql.ldap.bindAsAuth"},
		{"empty simple bind", func(l *LDAPConfig) { l.BindSearchAuth, l.BindAsAuth = nil, &LDAPBindAsAuth{} }, "spec.postgresql.ldap.bindAsAuth.prefix"},
		{"no base DN", func(l *LDAPConfig) { l.BindSearchAuth.BaseDN = "" }, "spec.postgresql.ldap.bindSearchAuth.baseDN"},
		{"password without bind DN", func(l *LDAPConfig) { l.BindSearchAuth.BindDN = "" }, "spec.postgresql.ldap.bindSearchAuth.bindDN"},
		{"attribute and filter", func(l *LDAPConfig) { l.BindSearchAuth.SearchFilter = "(uid=$username)" }, "spec.postgresql.ldap.bindSearchAuth.searchFilter"},
		{"password secret without key", func(l *LDAPConfig) { l.BindSearchAuth.BindPassword.Key = "" }, "spec.postgresql.ldap.bindSearchAuth.bindPassword.key"},
		{"CA secret without key", func(l *LDAPConfig) { l.CASecret = &SecretKeySelector{Name: "ca"} }, "spec.postgresql.ldap.caSecret.key"},
		// The class: a value leaving its quotes or its line.
		{"quote in base DN", func(l *LDAPConfig) { l.BindSearchAuth.BaseDN = secret + `" ldapscheme=ldap x="` }, "spec.postgresql.ldap.bindSearchAuth.baseDN"},
		{"newline in bind DN", func(l *LDAPConfig) { l.BindSearchAuth.BindDN = secret + "\nhost all all all trust" }, "spec.postgresql.ldap.bindSearchAuth.bindDN"},
		{"CR in filter", func(l *LDAPConfig) { l.BindSearchAuth.SearchAttribute, l.BindSearchAuth.SearchFilter = "", secret+"\r" }, "spec.postgresql.ldap.bindSearchAuth.searchFilter"},
		{"NUL in attribute", func(l *LDAPConfig) { l.BindSearchAuth.SearchAttribute = secret + "\x00" }, "spec.postgresql.ldap.bindSearchAuth.searchAttribute"},
		{"backslash in prefix", func(l *LDAPConfig) {
			l.BindSearchAuth, l.BindAsAuth = nil, &LDAPBindAsAuth{Prefix: secret + `\`}
		}, "spec.postgresql.ldap.bindAsAuth.prefix"},
		{"hash in suffix", func(l *LDAPConfig) {
			l.BindSearchAuth, l.BindAsAuth = nil, &LDAPBindAsAuth{Suffix: secret + "#"}
		}, "spec.postgresql.ldap.bindAsAuth.suffix"},
		{"zero-width char", func(l *LDAPConfig) { l.BindSearchAuth.BaseDN = secret + "\u200b" }, "spec.postgresql.ldap.bindSearchAuth.baseDN"},
		{"too long", func(l *LDAPConfig) { l.BindSearchAuth.BaseDN = strings.Repeat("a", 1025) }, "spec.postgresql.ldap.bindSearchAuth.baseDN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := searchAuth()
			tt.mutate(l)
			errs := validateLDAP(l, field.NewPath("spec", "postgresql", "ldap"))
			if tt.field == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("want an error on %s, got none", tt.field)
			}
			found := false
			for _, e := range errs {
				found = found || e.Field == tt.field
				if strings.Contains(e.Error(), secret) {
					t.Errorf("the error echoes the value: %v", e)
				}
			}
			if !found {
				t.Errorf("want an error on %s, got %v", tt.field, errs)
			}
		})
	}
}

// TestLDAPHBAOptions: the options as rendered, and the bind password
// checked like every other value (the class of escapes), never echoed.
func TestLDAPHBAOptions(t *testing.T) {
	got, err := searchAuth().LDAPHBAOptions("pw with spaces, commas=and;'")
	if err != nil {
		t.Fatal(err)
	}
	want := `ldapserver="ldap.example.org" ldapscheme=ldaps ldapbasedn="ou=people,dc=example,dc=org" ldapbinddn="cn=search,dc=example,dc=org" ldapbindpasswd="pw with spaces, commas=and;'" ldapsearchattribute="uid"`
	if s := strings.Join(got, " "); s != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
	l := &LDAPConfig{Server: "10.0.0.1", Port: 389, Scheme: "ldap", TLS: true, BindAsAuth: &LDAPBindAsAuth{Prefix: "uid=", Suffix: ",dc=x"}}
	got, err = l.LDAPHBAOptions("")
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(got, " "); s != `ldapserver="10.0.0.1" ldapport=389 ldapscheme=ldap ldaptls=1 ldapprefix="uid=" ldapsuffix=",dc=x"` {
		t.Errorf("simple bind: %s", s)
	}
	for _, pw := range []string{"", `a"b`, "a\nhost all all all trust", "a\\", "a#b", "a\x00", "a\u2028b"} {
		_, err := searchAuth().LDAPHBAOptions(pw)
		if err == nil {
			t.Errorf("password %q: want refused", pw)
			continue
		}
		if pw != "" && strings.Contains(err.Error(), pw) {
			t.Errorf("password %q echoed: %v", pw, err)
		}
		if !strings.Contains(err.Error(), "bindPassword") {
			t.Errorf("password %q: the error does not name the field: %v", pw, err)
		}
	}
	bad := searchAuth()
	bad.Scheme = "ldap"
	if _, err := bad.LDAPHBAOptions("pw"); err == nil {
		t.Error("clear text rendered: want refused")
	}
}

// TestHBALDAPNeedsTLS: a pg_hba line of the manifest with method ldap is
// refused when it would send passwords to the directory in clear text.
func TestHBALDAPNeedsTLS(t *testing.T) {
	for line, ok := range map[string]bool{
		`hostssl all all all ldap ldapserver=x ldapprefix="uid=" ldapscheme=ldaps`:                               true,
		`hostssl all all all ldap ldapserver=x ldapprefix="uid=" ldaptls=1`:                                      true,
		`hostssl all all all ldap ldapurl="ldaps://x/dc=x?uid?sub"`:                                              true,
		`hostssl all all all ldap ldapserver=x ldapprefix="uid="`:                                                false,
		`hostssl all all all ldap ldapserver=x ldapprefix="uid=" ldapscheme=ldap`:                                false,
		`hostssl all all all ldap ldapurl="ldap://x/dc=x?uid?sub"`:                                               false,
		`hostssl all all all ldap ldapserver=x ldapprefix="uid=" ldapscheme=ldaps ldaptls=1`:                     false,
		`hostssl all all all ldap ldapserver=x ldapbasedn="dc=x" ldapbinddn="cn=a" ldapbindpasswd="p" ldaptls=0`: false,
	} {
		_, err := ParseHBARule(line)
		if (err == nil) != ok {
			t.Errorf("%s: ok=%v, got %v", line, ok, err)
		}
	}
}

// TestHBAHoldsSecretForcesTerse: log_error_verbosity other than terse is
// refused while pg_hba.conf holds a secret (PostgreSQL logs the matched
// line in the DETAIL of a failed authentication).
func TestHBAHoldsSecretForcesTerse(t *testing.T) {
	p := PostgresConfiguration{LDAP: searchAuth(), Parameters: map[string]string{"log_error_verbosity": "verbose"}}
	if errs := p.validateSecretLogging(field.NewPath("spec", "postgresql")); len(errs) != 1 || errs[0].Field != `spec.postgresql.parameters[log_error_verbosity]` {
		t.Errorf("ldap bind password + verbose: %v", errs)
	}
	p = PostgresConfiguration{PgHBA: []string{`hostssl all all all radius radiusservers=x radiussecrets=s`}, Parameters: map[string]string{"log_error_verbosity": "default"}}
	if errs := p.validateSecretLogging(field.NewPath("spec", "postgresql")); len(errs) != 1 {
		t.Errorf("radius secret + default: %v", errs)
	}
	for _, p := range []PostgresConfiguration{
		{LDAP: searchAuth(), Parameters: map[string]string{"log_error_verbosity": "terse"}},
		{LDAP: &LDAPConfig{Server: "x", Scheme: "ldaps", BindAsAuth: &LDAPBindAsAuth{Prefix: "uid="}}, Parameters: map[string]string{"log_error_verbosity": "verbose"}},
	} {
		if errs := p.validateSecretLogging(field.NewPath("spec", "postgresql")); len(errs) != 0 {
			t.Errorf("%+v: %v", p, errs)
		}
	}
}
