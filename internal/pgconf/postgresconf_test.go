package pgconf

import (
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestQuoteConfigString(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", `''`},
		{"128MB", `'128MB'`},
		{"a'b", `'a''b'`},
		{`a\`, `'a\\'`},
		{`\n`, `'\\n'`},
		{`'; port = 1 #`, `'''; port = 1 #'`},
		{"ünïcödé", `'ünïcödé'`},
	} {
		got, err := quoteConfigString(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("quoteConfigString(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
			continue
		}
		back, rest, err := parseQuoted(got)
		if err != nil || back != tt.in || rest != "" {
			t.Errorf("%s reads back as %q, rest %q, err %v", got, back, rest, err)
		}
	}
	for _, in := range []string{"a\nb", "a\rb", "\x00", "\t", "\x7f", "\u202e", "\u2028", "\xff"} {
		if got, err := quoteConfigString(in); err == nil {
			t.Errorf("quoteConfigString(%q) = %s, want an error", in, got)
		}
	}
}

func TestIsParameterName(t *testing.T) {
	for name, want := range map[string]bool{
		"work_mem":                     true,
		"pg_trgm.similarity_threshold": true,
		"_x9":                          true,
		"":                             false,
		"9lives":                       false,
		"Work_Mem":                     false,
		"a.b.c":                        false,
		"a.":                           false,
		"a b":                          false,
		"a=b":                          false,
		"work_mem\n":                   false,
	} {
		if got := isParameterName(name); got != want {
			t.Errorf("isParameterName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRenderPostgresConfRefusesParameters(t *testing.T) {
	for _, tt := range []struct {
		name, param, value string
		want               []string
	}{
		{"fixed port", "port", "5433", []string{`spec.postgresql.parameters["port"]`, "managed by pgward"}},
		{"fixed via prefix", "unix_socket_permissions", "0777", []string{`parameters["unix_socket_permissions"]`, "managed by pgward"}},
		{"weaker TLS", "ssl_min_protocol_version", "TLSv1.2", []string{`parameters["ssl_min_protocol_version"]`}},
		{"weaker passwords", "password_encryption", "md5", []string{`parameters["password_encryption"]`}},
		{"include directive", "include", "/etc/passwd", []string{`parameters["include"]`}},
		{"upper case", "Port", "5433", []string{`parameters["Port"]`}},
		{"name with newline", "work_mem\nport", "1", []string{`parameters["work_mem\nport"]`}},
		{"name with equals", "a=b", "1", []string{`parameters["a=b"]`}},
		{"value with newline", "application_name", "x\nlisten_addresses = '*'", []string{`parameters["application_name"]`, "U+000A"}},
		{"value with CR", "application_name", "x\r", []string{"U+000D"}},
		{"value with NUL", "application_name", "x\x00", []string{"U+0000"}},
		{"value with bidi override", "application_name", "x\u202e", []string{"U+202E"}},
		{"invalid UTF-8", "application_name", "\xff", []string{"UTF-8"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := sampleCluster()
			c.Spec.PostgresConfiguration.Parameters = map[string]string{tt.param: tt.value}
			out, err := RenderPostgresConf(c, primaryInstance())
			wantError(t, err, append([]string{"pgconf: "}, tt.want...)...)
			if out != nil {
				t.Error("output returned with an error")
			}
		})
	}
}

func TestRenderPostgresConfRefusesInstance(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*Instance)
		want   string
	}{
		{"no name", func(in *Instance) { in.Name = "" }, "Name and ClusterName are required"},
		{"port 0", func(in *Instance) { in.Port = 0 }, "port 0 is out of range"},
		{"port too big", func(in *Instance) { in.Port = 65536 }, "out of range"},
		{"relative hba_file", func(in *Instance) { in.HBAFile = "pg_hba.conf" }, `HBAFile "pg_hba.conf" is not an absolute path`},
		{"no key file", func(in *Instance) { in.ServerKeyFile = "" }, "ServerKeyFile"},
		{"socket dir list", func(in *Instance) { in.SocketDir = "/run/a,/tmp" }, "comma"},
		{"socket dir too long", func(in *Instance) { in.SocketDir = "/" + strings.Repeat("d", 100) }, "longer than 107 bytes"},
		{"conninfo with newline", func(in *Instance) { in.PrimaryConnInfo = "host=a\nport = 1" }, "primary_conninfo: value contains the control or invisible character U+000A"},
		{"listen with quote and newline", func(in *Instance) { in.ListenAddresses = "*'\nssl = 'off" }, "listen_addresses: value contains"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := primaryInstance()
			tt.modify(&in)
			_, err := RenderPostgresConf(sampleCluster(), in)
			wantError(t, err, `pgconf: instance "`, tt.want)
		})
	}
	_, err := RenderPostgresConf(nil, primaryInstance())
	wantError(t, err, "nil Cluster")
}

// TestEnforcedSettingsAreFixed checks that every setting pgward enforces is
// also one the API refuses, so admission and rendering agree on what a
// manifest may set.
func TestEnforcedSettingsAreFixed(t *testing.T) {
	enforced, err := replicaInstance().enforcedSettings()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range enforced {
		if !v1.IsFixedParameter(s.name) {
			t.Errorf("%s is enforced by pgconf but not a fixed parameter of api/v1", s.name)
		}
	}
	for _, s := range defaultSettings {
		if v1.IsFixedParameter(s.name) {
			t.Errorf("default %s is a fixed parameter: users could never override it", s.name)
		}
	}
}
