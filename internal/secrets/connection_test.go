package secrets

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func appCredentials(password string) Credentials {
	return Credentials{Username: "app", Password: password, DBName: "app"}
}

// serviceInfo is a Kubernetes cluster's: one Service for the primary, the
// replicas' Service before it for reads.
func serviceInfo() ConnectionInfo {
	rw, ro := Endpoint{"db-rw.default.svc", 5432}, Endpoint{"db-ro.default.svc", 5432}
	return ConnectionInfo{Endpoints: []Endpoint{rw}, ReadOnly: []Endpoint{ro, rw}, Query: url.Values{"sslmode": {"verify-full"}}}
}

func TestConnectionSecretData(t *testing.T) {
	// A local cluster: three instances on loopback, the primary (5433)
	// first for writes and last for reads.
	local := ConnectionInfo{
		Endpoints:     []Endpoint{{"localhost", 5433}, {"localhost", 5432}, {"localhost", 5434}},
		ReadOnly:      []Endpoint{{"localhost", 5432}, {"localhost", 5434}, {"localhost", 5433}},
		PgpassAnyPort: true,
		Query:         url.Values{"sslmode": {"verify-full"}, "sslrootcert": {"/s/ca/ca.crt"}},
	}
	withAppName := serviceInfo()
	withAppName.Query.Set("application_name", "my app")
	writesOnly := serviceInfo()
	writesOnly.ReadOnly = nil
	tests := []struct {
		name string
		info ConnectionInfo
		want map[string]string
	}{{
		name: "one service for writes, replicas then primary for reads",
		info: withAppName,
		want: map[string]string{ //nolint:gosec // G101: a made-up password in the expected output
			KeyHost:      "db-rw.default.svc",
			KeyPort:      "5432",
			KeyPgpass:    "db-rw.default.svc:5432:app:app:Secr3t\ndb-ro.default.svc:5432:app:app:Secr3t\n",
			KeyURI:       "postgresql://app:Secr3t@db-rw.default.svc:5432/app?application_name=my%20app&sslmode=verify-full&target_session_attrs=read-write",
			KeyJDBCURI:   "jdbc:postgresql://db-rw.default.svc:5432/app?user=app&password=Secr3t&application_name=my%20app&sslmode=verify-full&targetServerType=primary",
			KeyROURI:     "postgresql://app:Secr3t@db-ro.default.svc:5432,db-rw.default.svc:5432/app?application_name=my%20app&sslmode=verify-full&target_session_attrs=prefer-standby",
			KeyROJDBCURI: "jdbc:postgresql://db-ro.default.svc:5432,db-rw.default.svc:5432/app?user=app&password=Secr3t&application_name=my%20app&sslmode=verify-full&targetServerType=preferSecondary",
		},
	}, {
		name: "every instance of a local cluster, one pgpass line for any port",
		info: local,
		want: map[string]string{ //nolint:gosec // G101: a made-up password in the expected output
			KeyHost:      "localhost",
			KeyPort:      "5433",
			KeyPgpass:    "localhost:*:app:app:Secr3t\n",
			KeyURI:       "postgresql://app:Secr3t@localhost:5433,localhost:5432,localhost:5434/app?sslmode=verify-full&sslrootcert=%2Fs%2Fca%2Fca.crt&target_session_attrs=read-write",
			KeyJDBCURI:   "jdbc:postgresql://localhost:5433,localhost:5432,localhost:5434/app?user=app&password=Secr3t&sslmode=verify-full&sslrootcert=%2Fs%2Fca%2Fca.crt&targetServerType=primary",
			KeyROURI:     "postgresql://app:Secr3t@localhost:5432,localhost:5434,localhost:5433/app?sslmode=verify-full&sslrootcert=%2Fs%2Fca%2Fca.crt&target_session_attrs=prefer-standby",
			KeyROJDBCURI: "jdbc:postgresql://localhost:5432,localhost:5434,localhost:5433/app?user=app&password=Secr3t&sslmode=verify-full&sslrootcert=%2Fs%2Fca%2Fca.crt&targetServerType=preferSecondary",
		},
	}, {
		name: "no read-only endpoints: no read-only keys",
		info: writesOnly,
		want: map[string]string{ //nolint:gosec // G101: a made-up password in the expected output
			KeyHost:    "db-rw.default.svc",
			KeyPort:    "5432",
			KeyPgpass:  "db-rw.default.svc:5432:app:app:Secr3t\n",
			KeyURI:     "postgresql://app:Secr3t@db-rw.default.svc:5432/app?sslmode=verify-full&target_session_attrs=read-write",
			KeyJDBCURI: "jdbc:postgresql://db-rw.default.svc:5432/app?user=app&password=Secr3t&sslmode=verify-full&targetServerType=primary",
		},
	}, {
		name: "IPv6 literals are bracketed in the URIs, escaped in pgpass",
		info: ConnectionInfo{Endpoints: []Endpoint{{"fd00::1", 5432}, {"10.0.0.2", 5433}}},
		want: map[string]string{ //nolint:gosec // G101: a made-up password in the expected output
			KeyHost:    "fd00::1",
			KeyPort:    "5432",
			KeyPgpass:  `fd00\:\:1:5432:app:app:Secr3t` + "\n10.0.0.2:5433:app:app:Secr3t\n",
			KeyURI:     "postgresql://app:Secr3t@[fd00::1]:5432,10.0.0.2:5433/app?target_session_attrs=read-write",
			KeyJDBCURI: "jdbc:postgresql://[fd00::1]:5432,10.0.0.2:5433/app?user=app&password=Secr3t&targetServerType=primary",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := ConnectionSecretData(appCredentials("Secr3t"), tt.info)
			if err != nil {
				t.Fatal(err)
			}
			tt.want[KeyUsername], tt.want[KeyPassword], tt.want[KeyDBName] = "app", "Secr3t", "app"
			if len(data) != len(tt.want) {
				t.Errorf("got keys %v, want %d keys", keysOf(data), len(tt.want))
			}
			for k, w := range tt.want {
				if got := string(data[k]); got != w {
					t.Errorf("%s = %q, want %q", k, got, w)
				}
			}
		})
	}
}

func keysOf(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
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
		info := ConnectionInfo{Endpoints: []Endpoint{{tt.host, 5432}}}
		data, err := ConnectionSecretData(appCredentials(tt.password), info)
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
		"\xff\xfe",
		"@",
		"~-._",
	}
	// Several hosts, as a local cluster's URIs list them.
	info := ConnectionInfo{
		Endpoints: []Endpoint{{"db-1", 5432}, {"db-2", 5433}},
		ReadOnly:  []Endpoint{{"db-2", 5433}, {"db-1", 5432}},
		Query:     url.Values{"sslmode": {"verify-full"}, "sslrootcert": {"/etc/pgward/ca.crt"}},
	}
	for _, password := range passwords {
		t.Run(fmt.Sprintf("%x", password), func(t *testing.T) {
			data, err := ConnectionSecretData(appCredentials(password), info)
			if err != nil {
				t.Fatal(err)
			}
			checkURI(t, string(data[KeyURI]), password, "db-1:5432,db-2:5433", "target_session_attrs", "read-write")
			checkURI(t, string(data[KeyROURI]), password, "db-2:5433,db-1:5432", "target_session_attrs", "prefer-standby")
			checkJDBCURI(t, string(data[KeyJDBCURI]), password, "db-1:5432,db-2:5433", "primary")
			checkJDBCURI(t, string(data[KeyROJDBCURI]), password, "db-2:5433,db-1:5432", "preferSecondary")
		})
	}
}

// checkURI parses a libpq URI back and expects every part, the password
// fully percent-encoded.
func checkURI(t *testing.T, uri, password, hosts, attrKey, attr string) {
	t.Helper()
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
		u.Host != hosts || u.Path != "/app" || u.Query().Get(attrKey) != attr ||
		u.Query().Get("sslmode") != "verify-full" || u.Query().Get("sslrootcert") != "/etc/pgward/ca.crt" {
		t.Errorf("uri %q parses back as %#v (password match %v)", uri, u, got == password)
	}
}

// checkJDBCURI parses a PgJDBC URL back: the password is a query
// parameter, and a '+' would turn into a space in Java's URLDecoder.
func checkJDBCURI(t *testing.T, jdbc, password, hosts, serverType string) {
	t.Helper()
	rest, ok := strings.CutPrefix(jdbc, "jdbc:")
	if !ok {
		t.Fatalf("jdbc-uri %q lacks the jdbc: prefix", jdbc)
	}
	j, err := url.Parse(rest)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", rest, err)
	}
	q := j.Query()
	if j.Scheme != "postgresql" || j.User != nil || j.Host != hosts || j.Path != "/app" ||
		q.Get("user") != "app" || q.Get("password") != password || q.Get("sslmode") != "verify-full" ||
		q.Get("targetServerType") != serverType {
		t.Errorf("jdbc-uri %q parses back wrongly", jdbc)
	}
	if strings.Contains(jdbc, "+") {
		t.Errorf("jdbc-uri %q has a '+', which Java decodes as a space", jdbc)
	}
}

// leakCanary is a distinctive password, so tests can check that it never
// shows up where it must not.
const leakCanary = "Zq7-unlikely-password-Xw9"

func TestConnectionSecretDataRejects(t *testing.T) {
	host := func(h string) func(*Credentials, *ConnectionInfo) {
		return func(_ *Credentials, i *ConnectionInfo) { i.Endpoints = append(i.Endpoints, Endpoint{h, 5432}) }
	}
	port := func(p int) func(*Credentials, *ConnectionInfo) {
		return func(_ *Credentials, i *ConnectionInfo) { i.ReadOnly = append(i.ReadOnly, Endpoint{"db", p}) }
	}
	query := func(q url.Values) func(*Credentials, *ConnectionInfo) {
		return func(_ *Credentials, i *ConnectionInfo) { i.Query = q }
	}
	creds := func(f func(*Credentials)) func(*Credentials, *ConnectionInfo) {
		return func(c *Credentials, _ *ConnectionInfo) { f(c) }
	}
	tests := []struct {
		name   string
		modify func(*Credentials, *ConnectionInfo)
	}{
		{"empty username", creds(func(c *Credentials) { c.Username = "" })},
		{"upper-case username", creds(func(c *Credentials) { c.Username = "App" })},
		{"username with a colon", creds(func(c *Credentials) { c.Username = "a:b" })},
		{"reserved username", creds(func(c *Credentials) { c.Username = "pg_app" })},
		{"long dbname", creds(func(c *Credentials) { c.DBName = strings.Repeat("d", 64) })},
		{"dbname with a slash", creds(func(c *Credentials) { c.DBName = "a/b" })},
		{"empty password", creds(func(c *Credentials) { c.Password = "" })},
		{"newline in password", creds(func(c *Credentials) { c.Password = leakCanary + "\n" + leakCanary })},
		{"NUL in password", creds(func(c *Credentials) { c.Password = leakCanary + "\x00" })},
		{"no endpoint", func(_ *Credentials, i *ConnectionInfo) { i.Endpoints = nil }},
		{"empty host", host("")},
		{"socket directory as host", host("/var/run/postgresql")},
		{"host with a port", host("db:5432")},
		{"host with a comma", host("db1,db2")},
		{"host with a space", host("db host")},
		{"host with newline", host("db\nx")},
		{"port zero", port(0)},
		{"port too large", port(65536)},
		{"negative port", port(-1)},
		{"query sets password", query(url.Values{"password": {"other"}})},
		{"query sets user", query(url.Values{"User": {"other"}})},
		{"query sets host", query(url.Values{"host": {"other"}})},
		{"query sets the libpq session attribute", query(url.Values{"target_session_attrs": {"any"}})},
		{"query sets the PgJDBC server type", query(url.Values{"targetServerType": {"any"}})},
		{"query with control character", query(url.Values{"options": {"-c\nx"}})},
		{"query with empty name", query(url.Values{"": {"x"}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, info := appCredentials(leakCanary), serviceInfo()
			tt.modify(&c, &info)
			_, err := ConnectionSecretData(c, info)
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

// TestURIsReadByPgx has a real client library parse the multi-host URIs:
// every host in order, the password decoded, a session check set.
func TestURIsReadByPgx(t *testing.T) {
	const password = `p@ss:w/rd?#&=+%41 ;,'"\x[]` //nolint:gosec // G101: a made-up password with every reserved character
	info := ConnectionInfo{
		Endpoints: []Endpoint{{"localhost", 5433}, {"localhost", 5432}, {"127.0.0.1", 5434}},
		ReadOnly:  []Endpoint{{"localhost", 5432}, {"127.0.0.1", 5434}, {"localhost", 5433}},
	}
	data, err := ConnectionSecretData(appCredentials(password), info)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]Endpoint{KeyURI: info.Endpoints, KeyROURI: info.ReadOnly} {
		cfg, err := pgconn.ParseConfig(string(data[key]))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got := []Endpoint{{cfg.Host, int(cfg.Port)}}
		for _, f := range cfg.Fallbacks {
			got = append(got, Endpoint{f.Host, int(f.Port)})
		}
		// pgx tries each host once per TLS mode (sslmode prefer: TLS,
		// then plain), so compare the hosts in their first appearance.
		got = slices.CompactFunc(got, func(a, b Endpoint) bool { return a == b })
		if !slices.Equal(got, want) || cfg.User != "app" || cfg.Password != password || cfg.Database != "app" ||
			cfg.ValidateConnect == nil {
			t.Errorf("%s parses as hosts %v, user %q, database %q, password match %v, session check %v",
				key, got, cfg.User, cfg.Database, cfg.Password == password, cfg.ValidateConnect != nil)
		}
	}
}
