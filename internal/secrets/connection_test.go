package secrets

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func appCredentials(password string) Credentials {
	return Credentials{Username: "app", Password: password, DBName: "app", Host: "db-rw.default.svc", Port: "5432"}
}

func TestConnectionSecretData(t *testing.T) {
	query := url.Values{"sslmode": {"verify-full"}, "application_name": {"my app"}}
	data, err := ConnectionSecretData(appCredentials("Secr3t"), 0, query)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ //nolint:gosec // G101: a made-up password in the expected output
		KeyUsername: "app",
		KeyPassword: "Secr3t",
		KeyDBName:   "app",
		KeyHost:     "db-rw.default.svc",
		KeyPort:     "5432",
		KeyPgpass:   "db-rw.default.svc:5432:app:app:Secr3t\n",
		KeyURI:      "postgresql://app:Secr3t@db-rw.default.svc:5432/app?application_name=my%20app&sslmode=verify-full",
		KeyJDBCURI:  "jdbc:postgresql://db-rw.default.svc:5432/app?user=app&password=Secr3t&application_name=my%20app&sslmode=verify-full",
	}
	if len(data) != len(want) {
		t.Errorf("got keys %v, want %d keys", keysOf(data), len(want))
	}
	for k, w := range want {
		if got := string(data[k]); got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
}

func keysOf(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestConnectionSecretDataAnyPort(t *testing.T) {
	c := appCredentials("pw")
	c.Host = "127.0.0.1"
	c.Port = AnyPort
	data, err := ConnectionSecretData(c, 6543, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data[KeyPgpass]); got != "127.0.0.1:*:app:app:pw\n" {
		t.Errorf("pgpass = %q", got)
	}
	if got := string(data[KeyPort]); got != "6543" {
		t.Errorf("port = %q", got)
	}
	if got := string(data[KeyURI]); got != "postgresql://app:pw@127.0.0.1:6543/app" { //nolint:gosec // G101: made-up password
		t.Errorf("uri = %q", got)
	}
	if _, err := ConnectionSecretData(c, 0, nil); err == nil {
		t.Error("AnyPort without a concrete port accepted")
	}
	if _, err := ConnectionSecretData(appCredentials("pw"), 6543, nil); err == nil {
		t.Error("a port disagreeing with the credentials accepted")
	}
	if _, err := ConnectionSecretData(appCredentials("pw"), 5432, nil); err != nil {
		t.Errorf("a port agreeing with the credentials rejected: %v", err)
	}
}

func TestPgpassEscaping(t *testing.T) {
	tests := []struct {
		host, password, want string
	}{
		{"db", "plain", "db:5432:app:app:plain\n"},
		{"db", "a:b", `db:5432:app:app:a\:b` + "\n"},
		{"db", `back\slash`, `db:5432:app:app:back\\slash` + "\n"},
		{"db", `\:`, `db:5432:app:app:\\\:` + "\n"},
		{"db", `::\\`, `db:5432:app:app:\:\:\\\\` + "\n"},
		{"db", "*", "db:5432:app:app:*\n"},
		{"::1", "pw", `\:\:1:5432:app:app:pw` + "\n"},
	}
	for _, tt := range tests {
		c := appCredentials(tt.password)
		c.Host = tt.host
		data, err := ConnectionSecretData(c, 0, nil)
		if err != nil {
			t.Fatalf("%q: %v", tt.password, err)
		}
		got := string(data[KeyPgpass])
		if got != tt.want {
			t.Errorf("pgpass for %q = %q, want %q", tt.password, got, tt.want)
		}
		// Read the line back the way libpq does and expect the fields.
		fields := splitPgpass(strings.TrimSuffix(got, "\n"))
		wantFields := []string{tt.host, "5432", "app", "app", tt.password}
		if strings.Join(fields, "\x00") != strings.Join(wantFields, "\x00") {
			t.Errorf("pgpass %q reads back as %q", got, fields)
		}
	}
}

// splitPgpass splits a pgpass line on unescaped colons, dropping the
// escaping backslashes, as libpq's passwordFromFile does.
func splitPgpass(line string) []string {
	var fields []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == ':':
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(fields, cur.String())
}

// unreservedOrEscaped matches a URI component in which every byte outside
// RFC 3986's unreserved set is percent-encoded.
var unreservedOrEscaped = regexp.MustCompile(`^([A-Za-z0-9._~-]|%[0-9A-F]{2})*$`)

func TestURIEncodingOfOddPasswords(t *testing.T) {
	passwords := []string{
		"p@ss:w/rd?#frag",
		"with space",
		"plus+amp&eq=semi;comma,dollar$",
		"100%",
		"%41",
		`quotes'"` + "`",
		`back\slash`,
		"[brackets]{braces}<angle>|pipe^caret",
		"!*()'",
		"ünïcödé 密码",
		"\xff\xfe",
		"@",
		"~-._",
	}
	query := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {"/etc/pgward/ca.crt"}}
	for _, password := range passwords {
		t.Run(fmt.Sprintf("%x", password), func(t *testing.T) {
			data, err := ConnectionSecretData(appCredentials(password), 0, query)
			if err != nil {
				t.Fatal(err)
			}

			uri := string(data[KeyURI])
			if strings.Count(uri, "@") != 1 || strings.Count(uri, "?") != 1 || strings.Contains(uri, "#") {
				t.Errorf("uri %q has unescaped delimiters", uri)
			}
			userinfo := uri[len("postgresql://"):strings.Index(uri, "@")]
			user, pass, _ := strings.Cut(userinfo, ":")
			if !unreservedOrEscaped.MatchString(user) || !unreservedOrEscaped.MatchString(pass) {
				t.Errorf("userinfo %q is not fully escaped", userinfo)
			}
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatalf("url.Parse(%q): %v", uri, err)
			}
			got, _ := u.User.Password()
			if u.Scheme != "postgresql" || u.User.Username() != "app" || got != password ||
				u.Hostname() != "db-rw.default.svc" || u.Port() != "5432" || u.Path != "/app" ||
				u.Query().Get("sslmode") != "verify-full" || u.Query().Get("sslrootcert") != "/etc/pgward/ca.crt" {
				t.Errorf("uri %q parses back as %#v (password match %v)", uri, u, got == password)
			}

			jdbc := string(data[KeyJDBCURI])
			rest, ok := strings.CutPrefix(jdbc, "jdbc:")
			if !ok {
				t.Fatalf("jdbc-uri %q lacks the jdbc: prefix", jdbc)
			}
			j, err := url.Parse(rest)
			if err != nil {
				t.Fatalf("url.Parse(%q): %v", rest, err)
			}
			q := j.Query()
			if j.Scheme != "postgresql" || j.User != nil || j.Host != "db-rw.default.svc:5432" || j.Path != "/app" ||
				q.Get("user") != "app" || q.Get("password") != password || q.Get("sslmode") != "verify-full" {
				t.Errorf("jdbc-uri %q parses back wrongly", jdbc)
			}
			if strings.Contains(jdbc, "+") {
				t.Errorf("jdbc-uri %q has a '+', which Java decodes as a space", jdbc)
			}
		})
	}
}

func TestConnectionSecretDataIPv6(t *testing.T) {
	c := appCredentials("pw")
	c.Host = "fd00::1"
	data, err := ConnectionSecretData(c, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data[KeyURI]); got != "postgresql://app:pw@[fd00::1]:5432/app" {
		t.Errorf("uri = %q", got)
	}
	if got := string(data[KeyJDBCURI]); got != "jdbc:postgresql://[fd00::1]:5432/app?user=app&password=pw" {
		t.Errorf("jdbc-uri = %q", got)
	}
}

// leakCanary is a distinctive password, so tests can check that it never
// shows up where it must not.
const leakCanary = "Zq7-unlikely-password-Xw9"

func TestConnectionSecretDataRejects(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Credentials)
		port   int
		query  url.Values
	}{
		{name: "empty username", modify: func(c *Credentials) { c.Username = "" }},
		{name: "upper-case username", modify: func(c *Credentials) { c.Username = "App" }},
		{name: "username with a colon", modify: func(c *Credentials) { c.Username = "a:b" }},
		{name: "reserved username", modify: func(c *Credentials) { c.Username = "pg_app" }},
		{name: "long dbname", modify: func(c *Credentials) { c.DBName = strings.Repeat("d", 64) }},
		{name: "dbname with a slash", modify: func(c *Credentials) { c.DBName = "a/b" }},
		{name: "empty password", modify: func(c *Credentials) { c.Password = "" }},
		{name: "newline in password", modify: func(c *Credentials) { c.Password = leakCanary + "\n" + leakCanary }},
		{name: "NUL in password", modify: func(c *Credentials) { c.Password = leakCanary + "\x00" }},
		{name: "empty host", modify: func(c *Credentials) { c.Host = "" }},
		{name: "socket directory as host", modify: func(c *Credentials) { c.Host = "/var/run/postgresql" }},
		{name: "host with a port", modify: func(c *Credentials) { c.Host = "db:5432" }},
		{name: "host with a space", modify: func(c *Credentials) { c.Host = "db host" }},
		{name: "host with newline", modify: func(c *Credentials) { c.Host = "db\nx" }},
		{name: "port zero", modify: func(c *Credentials) { c.Port = "0" }},
		{name: "port too large", modify: func(c *Credentials) { c.Port = "65536" }},
		{name: "port with sign", modify: func(c *Credentials) { c.Port = "+5432" }},
		{name: "port with leading zero", modify: func(c *Credentials) { c.Port = "05432" }},
		{name: "port not a number", modify: func(c *Credentials) { c.Port = "pg" }},
		{name: "empty port", modify: func(c *Credentials) { c.Port = "" }},
		{name: "any port, concrete port out of range", modify: func(c *Credentials) { c.Port = AnyPort }, port: 70000},
		{name: "query sets password", query: url.Values{"password": {"other"}}},
		{name: "query sets user", query: url.Values{"User": {"other"}}},
		{name: "query sets host", query: url.Values{"host": {"other"}}},
		{name: "query with control character", query: url.Values{"options": {"-c\nx"}}},
		{name: "query with empty name", query: url.Values{"": {"x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := appCredentials(leakCanary)
			if tt.modify != nil {
				tt.modify(&c)
			}
			_, err := ConnectionSecretData(c, tt.port, tt.query)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), leakCanary) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestCredentialsNeverPrintPassword(t *testing.T) {
	c := appCredentials(leakCanary)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("credentials", "creds", c)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", c),
		"%#v":  fmt.Sprintf("%#v", c),
		"%q":   fmt.Sprintf("%q", c),
		"ptr":  fmt.Sprintf("%v", &c),
		"slog": logged.String(),
	}
	for verb, out := range outputs {
		if strings.Contains(out, leakCanary) {
			t.Errorf("%s prints the password: %s", verb, out)
		}
		if !strings.Contains(out, "app") {
			t.Errorf("%s hides the username too: %s", verb, out)
		}
	}
}
