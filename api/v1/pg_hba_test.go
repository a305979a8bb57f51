package v1

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pgward/pgward/internal/safetext"
)

var validHBALines = []struct {
	line string
	want HBARule
	text string // canonical rendering
}{
	{
		line: "host app app 127.0.0.1/32 scram-sha-256",
		want: HBARule{Type: "host", Database: "app", User: "app", Address: "127.0.0.1/32", Method: "scram-sha-256"},
		text: "host app app 127.0.0.1/32 scram-sha-256",
	},
	{
		line: "local\tall \t all    peer",
		want: HBARule{Type: "local", Database: "all", User: "all", Method: "peer"},
		text: "local all all peer",
	},
	{
		line: "local all all trust",
		want: HBARule{Type: "local", Database: "all", User: "all", Method: "trust"},
		text: "local all all trust",
	},
	{
		line: "  local all all ident map=local  ",
		want: HBARule{Type: "local", Database: "all", User: "all", Method: "ident", Options: []string{"map=local"}},
		text: "local all all ident map=local",
	},
	{
		line: `hostssl app,"My DB" +admins,bob 10.0.0.0/8 cert clientname=DN`,
		want: HBARule{Type: "hostssl", Database: `app,"My DB"`, User: "+admins,bob", Address: "10.0.0.0/8",
			Method: "cert", Options: []string{"clientname=DN"}},
		text: `hostssl app,"My DB" +admins,bob 10.0.0.0/8 cert clientname=DN`,
	},
	{
		line: "host app, other alice,  bob 10.0.0.0/8 scram-sha-256",
		want: HBARule{Type: "host", Database: "app,other", User: "alice,bob", Address: "10.0.0.0/8", Method: "scram-sha-256"},
		text: "host app,other alice,bob 10.0.0.0/8 scram-sha-256",
	},
	{
		line: "host all all 192.168.1.0 255.255.255.0 md5",
		want: HBARule{Type: "host", Database: "all", User: "all", Address: "192.168.1.0", Mask: "255.255.255.0", Method: "md5"},
		text: "host all all 192.168.1.0 255.255.255.0 md5",
	},
	{
		line: "host all all 2001:DB8:0::1 FFFF:FFFF:: md5",
		want: HBARule{Type: "host", Database: "all", User: "all", Address: "2001:db8::1", Mask: "ffff:ffff::", Method: "md5"},
		text: "host all all 2001:db8::1 ffff:ffff:: md5",
	},
	{
		line: "host all all 2001:DB8::/32 scram-sha-256",
		want: HBARule{Type: "host", Database: "all", User: "all", Address: "2001:db8::/32", Method: "scram-sha-256"},
		text: "host all all 2001:db8::/32 scram-sha-256",
	},
	{
		line: "host all all ::1/128 scram-sha-256",
		want: HBARule{Type: "host", Database: "all", User: "all", Address: "::1/128", Method: "scram-sha-256"},
		text: "host all all ::1/128 scram-sha-256",
	},
	{
		line: "host all all .Example.COM scram-sha-256",
		want: HBARule{Type: "host", Database: "all", User: "all", Address: ".example.com", Method: "scram-sha-256"},
		text: "host all all .example.com scram-sha-256",
	},
	{
		line: "hostnossl all all db-1.example.com reject",
		want: HBARule{Type: "hostnossl", Database: "all", User: "all", Address: "db-1.example.com", Method: "reject"},
		text: "hostnossl all all db-1.example.com reject",
	},
	{
		line: "host sameuser all samenet scram-sha-256",
		want: HBARule{Type: "host", Database: "sameuser", User: "all", Address: "samenet", Method: "scram-sha-256"},
		text: "host sameuser all samenet scram-sha-256",
	},
	{
		line: `host "all" "sameuser" samehost md5`,
		want: HBARule{Type: "host", Database: `"all"`, User: `"sameuser"`, Address: "samehost", Method: "md5"},
		text: `host "all" "sameuser" samehost md5`,
	},
	{
		line: `hostssl all all all ldap ldapserver=ldap.example.com ldapbasedn="dc=example" ldapbinddn="cn=admin, dc=example" ldapbindpasswd="s e" ldaptls=1`,
		want: HBARule{Type: "hostssl", Database: "all", User: "all", Address: "all", Method: "ldap",
			Options: []string{"ldapserver=ldap.example.com", `ldapbasedn="dc=example"`, `ldapbinddn="cn=admin, dc=example"`, `ldapbindpasswd="s e"`, "ldaptls=1"}},
		text: `hostssl all all all ldap ldapserver=ldap.example.com ldapbasedn="dc=example" ldapbinddn="cn=admin, dc=example" ldapbindpasswd="s e" ldaptls=1`,
	},
	{
		line: `hostgssenc all all all gss include_realm=0 krb_realm=EXAMPLE.COM`,
		want: HBARule{Type: "hostgssenc", Database: "all", User: "all", Address: "all", Method: "gss",
			Options: []string{"include_realm=0", "krb_realm=EXAMPLE.COM"}},
		text: `hostgssenc all all all gss include_realm=0 krb_realm=EXAMPLE.COM`,
	},
	{
		line: "hostssl all all all password",
		want: HBARule{Type: "hostssl", Database: "all", User: "all", Address: "all", Method: "password"},
		text: "hostssl all all all password",
	},
	{
		line: `hostssl "ünïcode db" "Mixed Case" all pam pamservice=postgresql`,
		want: HBARule{Type: "hostssl", Database: `"ünïcode db"`, User: `"Mixed Case"`, Address: "all",
			Method: "pam", Options: []string{"pamservice=postgresql"}},
		text: `hostssl "ünïcode db" "Mixed Case" all pam pamservice=postgresql`,
	},
	{
		line: "hostssl all all all scram-sha-256 clientcert=verify-ca",
		want: HBARule{Type: "hostssl", Database: "all", User: "all", Address: "all", Method: "scram-sha-256", Options: []string{"clientcert=verify-ca"}},
		text: "hostssl all all all scram-sha-256 clientcert=verify-ca",
	},
	{
		line: `hostssl all all all ldap ldapserver=ldap ldapprefix=uid= ldapsuffix=",dc=example" ldapport=636 ldapscheme=ldaps`,
		want: HBARule{Type: "hostssl", Database: "all", User: "all", Address: "all", Method: "ldap",
			Options: []string{"ldapserver=ldap", "ldapprefix=uid=", `ldapsuffix=",dc=example"`, "ldapport=636", "ldapscheme=ldaps"}},
		text: `hostssl all all all ldap ldapserver=ldap ldapprefix=uid= ldapsuffix=",dc=example" ldapport=636 ldapscheme=ldaps`,
	},
	{
		line: `hostssl all all all radius radiusservers="a,b" radiussecrets=s radiusports="1812,1813"`,
		want: HBARule{Type: "hostssl", Database: "all", User: "all", Address: "all", Method: "radius",
			Options: []string{`radiusservers="a,b"`, "radiussecrets=s", `radiusports="1812,1813"`}},
		text: `hostssl all all all radius radiusservers="a,b" radiussecrets=s radiusports="1812,1813"`,
	},
}

func TestParseHBARuleValid(t *testing.T) {
	for _, tt := range validHBALines {
		got, err := ParseHBARule(tt.line)
		if err != nil {
			t.Errorf("ParseHBARule(%q): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseHBARule(%q) = %#v, want %#v", tt.line, got, tt.want)
		}
		if s := got.String(); s != tt.text {
			t.Errorf("ParseHBARule(%q).String() = %q, want %q", tt.line, s, tt.text)
		}
	}
}

func TestParseHBARuleInvalid(t *testing.T) {
	tests := []struct {
		line, wantErr string
	}{
		{"", "the line is empty"},
		{" \t ", "the line is empty"},
		{"host app app 127.0.0.1/32 scram", `unknown method "scram"`},
		{"host all all all MD5", `unknown method "MD5"`},
		{"hots all all all md5", `unknown connection type "hots"`},
		{"HOST all all all md5", `unknown connection type "HOST"`},
		{"include /etc/passwd", "include directives are not allowed"},
		{"include_if_exists x", "include_if_exists directives are not allowed"},
		{"host all all all scram-sha-256 # admins", "'#' at byte 31 is not allowed"},
		{`host "a#b" all all md5`, "'#'"},
		{"host all all all md5 \\", "backslash"},
		{`host all all all ldap ldapsearchfilter="(uid=\2a)"`, "backslash"},
		{"host all all all md5\n", "U+000A"},
		{"host all all all md5\nhost all all all trust", "U+000A"},
		{"host all all all md5\r", "U+000D"},
		{"host \"a\x00\" all all md5", "U+0000"},
		{"host \"a\tb\" all all md5", "U+0009"},
		{"host all all all md5 map=a\u202eb", "U+202E"},
		{"host all all all md5 map=\xff", "not valid UTF-8"},
		{`host "app all all md5`, "not terminated"},
		{`host a"b" all all md5`, `"a\"b\"": double quotes must enclose a whole name`},
		{`host "" all all md5`, "empty quoted name"},
		{"host app,,b all all md5", "empty item"},
		{"host app, all all md5", "too few fields"},
		{"host all all all md5 map=x,", "ends with a comma"},
		{"local all all", "too few fields: a local rule needs database, user and method"},
		{"host all all md5", "too few fields: a host rule needs database, user, address and method"},
		{"host all all 10.0.0.0/8", "too few fields"},
		{"host all all 127.0.0.1/33 md5", `address "127.0.0.1/33" is not a valid CIDR address`},
		{"host all all 10.0.0.0/x md5", "not a valid CIDR address"},
		{"host all all 010.0.0.1/8 md5", "not a valid CIDR address"},
		{"host all all fe80::1%eth0/64 md5", "not a valid CIDR address"},
		{"host all all fe80::1%eth0 ffff:: md5", "IPv6 zones are not supported"},
		{"host all all 127.0.0.1", "too few fields"},
		{"host all all 127.0.0.1 md5", `address "127.0.0.1" needs a /prefix length (127.0.0.1/32) or a mask field, and "md5" is not a mask`},
		{"host all all 10.0.0.1 255.0.255.0 md5", "is not contiguous"},
		{"host all all 10.0.0.1 ffff:: md5", "not of the same IP family"},
		{"host all all 10.0.0.300 md5", `address "10.0.0.300" is not a valid IP address`},
		{"host all all -bad-.example.com md5", "neither an IP address, a CIDR address nor a host name"},
		{"host all all under_score.com md5", "neither"},
		{`host all all "10.0.0.0/8" md5`, "must be a single unquoted value"},
		{"host all all 10.0.0.0/8,10.1.0.0/16 md5", "must be a single unquoted value"},
		{"host @dbs all all md5", `"@dbs": @file inclusions are not allowed`},
		{"host all @admins all md5", "@file inclusions are not allowed"},
		{`host all "@admins" all md5`, "@file inclusions are not allowed"},
		{"host /^db all all md5", "regular expressions are not supported"},
		{"host all + all md5", `"+" must be followed by a role name`},
		{"host all " + strings.Repeat("u", 64) + " all md5", "is longer than 63 bytes"},
		{"host all all all md5 extra", `unexpected field "extra" after the method`},
		{"host all all all md5 map=x unknown=1", `unknown option "unknown"`},
		{"host all all all md5 =1", `unknown option ""`},
		{"host all all all md5 map=", `option "map" has no value`},
		{`host all all all md5 map="a"b`, "double quotes must enclose the whole value"},
		{"hostssl all streaming_replica all cert", `user "streaming_replica" is not allowed`},
		{`hostssl all "streaming_replica" all cert`, `user "streaming_replica" is not allowed`},
		{"hostssl all alice,+streaming_replica all cert", `user "streaming_replica" is not allowed`},
		{"hostssl all STREAMING_REPLICA all cert", `user "streaming_replica" is not allowed`},
		{"hostssl replication all all cert", `database "replication" is not allowed`},
		{`hostssl app,"replication" all all cert`, `database "replication" is not allowed`},
		{"host all all 0.0.0.0/0 trust", `method "trust" is not allowed on host rules`},
		{"hostssl all all all trust", `method "trust" is not allowed on hostssl rules`},
		{"host all all all password", `method "password" is not allowed on host rules`},
		{"hostnossl all all all password", "clear text"},
		{"hostssl all all all sspi", "only available on Windows"},
		{"host all all all peer", `method "peer" is only supported on local rules`},
		{"local all all gss", `method "gss" is not supported on local rules`},
		{"host all all all cert", `method "cert" is only supported on hostssl rules`},
		{"local all all cert", "only supported on hostssl rules"},
		// Methods where the client vouches for itself, or sends its password.
		{"host all postgres samenet ident map=m", `method "ident" is not allowed on host rules`},
		{"hostssl all all all ident", `method "ident" is not allowed on hostssl rules`},
		{"host all all all pam", `method "pam" is not allowed on host rules: the client sends its password in clear text`},
		{"hostnogssenc all all all pam", "clear text"},
		{"host all all all ldap ldapserver=l ldapbasedn=dc=x", `method "ldap" is not allowed on host rules`},
		{"hostnossl all all all radius radiusservers=r radiussecrets=s", `method "radius" is not allowed`},
		{"hostssl all all all bsd", `unknown method "bsd"`},
		// Options PostgreSQL refuses: the whole file would fail to load.
		{"hostssl all all all scram-sha-256 map=m", `option "map" only applies to method ident or peer or gss or cert, not "scram-sha-256"`},
		{"hostssl all all all md5 pamservice=x", `option "pamservice" only applies to method pam`},
		{"hostssl all all all cert krb_realm=X", `option "krb_realm" only applies to method gss`},
		{"host all all all scram-sha-256 clientcert=verify-full", `option "clientcert" only applies to hostssl rules`},
		{"hostssl all all all scram-sha-256 clientcert=1", `option "clientcert" takes verify-ca or verify-full, not "1"`},
		{"hostssl all all all cert clientcert=verify-ca", `clientcert may only be verify-full`},
		{"hostssl all all all cert clientname=UID", `option "clientname" takes CN or DN`},
		{"hostssl all all all ldap", `method "ldap" needs option "ldapserver"`},
		{"hostssl all all all ldap ldapserver=l", `needs "ldapbasedn" (search+bind) or "ldapprefix"/"ldapsuffix" (simple bind)`},
		{"hostssl all all all ldap ldapserver=l ldapprefix=uid= ldapbasedn=dc=x", "cannot be combined"},
		{"hostssl all all all ldap ldapserver=l ldapbasedn=dc=x ldapsearchattribute=uid ldapsearchfilter=(uid=$username)", "not both"},
		{"hostssl all all all ldap ldapserver=l ldapbasedn=dc=x ldapport=0", `option "ldapport" must be a port number`},
		{"hostssl all all all ldap ldapserver=l ldapbasedn=dc=x ldapport=ldaps", `option "ldapport" must be a port number`},
		{"hostssl all all all ldap ldapserver=l ldapbasedn=dc=x ldapscheme=http", `option "ldapscheme" takes ldap or ldaps`},
		{"hostssl all all all ldap ldapurl=ldap://l/dc=x ldapserver=l", `option "ldapurl" holds the server`},
		{"hostssl all all all radius radiussecrets=s", `method "radius" needs option "radiusservers"`},
		{"hostssl all all all radius radiusservers=r", `method "radius" needs option "radiussecrets"`},
		{`hostssl all all all radius radiusservers="a,b,c" radiussecrets="s,t"`, `lists 2 values for 3 servers`},
		{"hostssl all all all radius radiusservers=r radiussecrets=s radiusports=99999", `option "radiusports" must list port numbers`},
		{"hostgssenc all all all gss include_realm=yes", `option "include_realm" takes 0 or 1`},
		{"hostssl all all all cert map=a map=b", `option "map" is given twice`},
		{"hostssl all all all ldap ldapserver=ldap ldapprefix=uid= ldapsuffix=,dc=example", `a value with a comma must be in double quotes`},
		{"hostssl all all all radius radiusservers=a,b radiussecrets=s", `a value with a comma must be in double quotes`},
	}
	for _, tt := range tests {
		_, err := ParseHBARule(tt.line)
		if err == nil {
			t.Errorf("ParseHBARule(%q) = nil error, want %q", tt.line, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseHBARule(%q) = %q, want it to contain %q", tt.line, err, tt.wantErr)
		}
	}
}

func TestParseHBARules(t *testing.T) {
	rules, err := ParseHBARules([]string{"local all all peer", "host app app 10.0.0.0/8 scram-sha-256"})
	if err != nil || len(rules) != 2 || rules[1].Address != "10.0.0.0/8" {
		t.Fatalf("ParseHBARules(valid) = %v, %v", rules, err)
	}
	_, err = ParseHBARules([]string{"local all all peer", "host app app 127.0.0.1/32 scram", "local all all"})
	want := "pg_hba line 2: unknown method \"scram\"" +
		" (want one of trust, reject, scram-sha-256, md5, password, gss, sspi, ident, peer, pam, ldap, radius, cert)\n" +
		"pg_hba line 3: too few fields: a local rule needs database, user and method"
	if err == nil || err.Error() != want {
		t.Fatalf("ParseHBARules(invalid) = %v, want %q", err, want)
	}
}

// FuzzParseHBARule checks that every accepted rule renders as exactly one
// line free of control characters, which parses back to the same rule.
func FuzzParseHBARule(f *testing.F) {
	for _, tt := range validHBALines {
		f.Add(tt.line)
	}
	f.Add("host all all all md5\nhost all all all trust")
	f.Add(`host "a,b" "c d",+e 10.0.0.1 255.0.0.0 md5 map="x, y"`)
	f.Fuzz(func(t *testing.T, line string) {
		rule, err := ParseHBARule(line)
		if err != nil {
			return
		}
		text := rule.String()
		for i, r := range text {
			if safetext.Forbidden(r) || r == '\t' {
				t.Fatalf("rendering %q of %q has control character %U at %d", text, line, r, i)
			}
		}
		if strings.ContainsAny(text, "#\\") {
			t.Fatalf("rendering %q of %q has a comment or continuation", text, line)
		}
		again, err := ParseHBARule(text)
		if err != nil {
			t.Fatalf("rendering %q of %q does not parse: %v", text, line, err)
		}
		if !reflect.DeepEqual(again, rule) {
			t.Fatalf("rendering %q of %q parses to %#v, want %#v", text, line, again, rule)
		}
	})
}
