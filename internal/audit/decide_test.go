package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/pki"
)

func TestDecideRefusal(t *testing.T) {
	cases := []struct {
		name string
		a    Attempt
		want []string
		st   Status
	}{
		{"accepted", Attempt{Accepted: true, Refusal: "logged in"}, []string{"certificate"}, Fail},
		{"refused for the reason", Attempt{Refusal: "connection requires a valid client certificate"}, []string{"certificate"}, Pass},
		{"refused for another reason", Attempt{Refusal: "password authentication failed"}, []string{"certificate"}, Fail},
		{"any refusal", Attempt{Refusal: "password authentication failed"}, nil, Pass},
		{"could not tell", Attempt{Unknown: "connection refused"}, []string{"certificate"}, Warn},
	}
	for _, c := range cases {
		if got := DecideRefusal("x", c.a, c.want...); got.Status != c.st {
			t.Errorf("%s: %v, want %v (%s)", c.name, got.Status, c.st, got.Evidence)
		}
	}
}

const renderedHBA = `# generated
local all all peer map=pgward
hostssl postgres,replication streaming_replica all cert
host all streaming_replica all reject
host replication all all reject
hostssl app app all scram-sha-256
hostssl all all all scram-sha-256
host    all all all reject
`

func TestDecideHBA(t *testing.T) {
	if p := DecideHBA("i", renderedHBA, renderedHBA); p.Status != Pass {
		t.Fatalf("as rendered: %v %s", p.Status, p.Evidence)
	}
	cases := map[string]string{
		"catch-all replaced by trust": strings.Replace(renderedHBA, "host    all all all reject", "host all all all trust", 1),
		"a rule before pgward's":      "host all all all trust\n" + renderedHBA,
		"catch-all removed":           strings.Replace(renderedHBA, "host    all all all reject\n", "", 1),
		"a rule changed in between":   strings.Replace(renderedHBA, "hostssl app app all scram-sha-256", "hostssl app app all md5", 1),
		"empty":                       "# nothing\n",
	}
	for name, text := range cases {
		p := DecideHBA("i", text, renderedHBA)
		if p.Status != Fail {
			t.Errorf("%s: %v %s", name, p.Status, p.Evidence)
		}
		if strings.Contains(p.Evidence, "md5") && !strings.Contains(p.Evidence, "... md5") {
			t.Errorf("%s: evidence shows more than the rule's type and method: %s", name, p.Evidence)
		}
	}
	// A manifest line's options (an LDAP bind password) never reach the output.
	secret := strings.Replace(renderedHBA, "hostssl app app all scram-sha-256", `hostssl app app all ldap ldapserver=l ldapbinddn=x ldapbindpasswd=s3cret ldapbasedn=y`, 1)
	if p := DecideHBA("i", secret, renderedHBA); p.Status != Fail || strings.Contains(p.Evidence, "s3cret") {
		t.Errorf("ldap line: %v %s", p.Status, p.Evidence)
	}
}

func TestDecidePostgresConf(t *testing.T) {
	want := map[string]string{"ssl": "on", "ssl_min_protocol_version": "TLSv1.3", "password_encryption": "scram-sha-256", "port": "5432"} // #nosec G101 -- setting names
	good := "# pgward defaults\nwal_level = 'logical'\n# spec\nwork_mem = '4MB'\n# Enforced by pgward\nport = '5432'\nssl = 'on'\nssl_min_protocol_version = 'TLSv1.3'\npassword_encryption = 'scram-sha-256'\n"
	if p := DecidePostgresConf("i", good, want); p.Status != Pass {
		t.Fatalf("as rendered: %s", p.Evidence)
	}
	bad := map[string]string{
		"ssl off at the end":          good + "ssl = off\n",
		"TLS 1.2 allowed":             strings.Replace(good, "'TLSv1.3'", "'TLSv1.2'", 1),
		"fixed parameter set earlier": strings.Replace(good, "work_mem = '4MB'", "archive_command = 'curl evil'", 1) + "archive_command = ''\n",
		"include":                     good + "include '/tmp/x.conf'\n",
		"md5":                         strings.Replace(good, "scram-sha-256", "md5", 1),
		"enforced setting missing":    strings.Replace(good, "port = '5432'\n", "", 1),
	}
	for name, text := range bad {
		if p := DecidePostgresConf("i", text, want); p.Status != Fail {
			t.Errorf("%s: %v %s", name, p.Status, p.Evidence)
		}
	}
}

func TestDecideLiveSettings(t *testing.T) {
	want := map[string]string{"ssl": "on"}
	rows := []LiveSetting{{"ssl", "on", "configuration file", "/c/postgresql.conf"}, {"work_mem", "8MB", "configuration file", "/d/postgresql.auto.conf"}}
	if p := DecideLiveSettings("i", rows, nil, want, "/c/postgresql.conf"); p.Status != Pass {
		t.Errorf("healthy: %s", p.Evidence)
	}
	rows = append(rows, LiveSetting{"ssl_ciphers", "NULL", "configuration file", "/d/postgresql.auto.conf"})
	if p := DecideLiveSettings("i", rows, nil, want, "/c/postgresql.conf"); p.Status != Fail || !strings.Contains(p.Evidence, "ssl_ciphers") {
		t.Errorf("fixed parameter from auto.conf: %v %s", p.Status, p.Evidence)
	}
	if p := DecideLiveSettings("i", []LiveSetting{{"ssl", "off", "configuration file", "/c/postgresql.conf"}}, nil, want, "/c/postgresql.conf"); p.Status != Fail {
		t.Errorf("ssl off: %s", p.Evidence)
	}
}

func TestDecideLiveSettingsPerRole(t *testing.T) {
	want := map[string]string{"ssl": "on"}
	rows := []LiveSetting{{"ssl", "on", "configuration file", "/c/postgresql.conf"}}
	if p := DecideLiveSettings("i", rows, []RoleSetting{{"", "app", "work_mem"}}, want, "/c/postgresql.conf"); p.Status != Pass {
		t.Errorf("work_mem for a role: %s", p.Evidence)
	}
	p := DecideLiveSettings("i", rows, []RoleSetting{{"", "app", "password_encryption"}}, want, "/c/postgresql.conf")
	if p.Status != Fail || !strings.Contains(p.Evidence, "password_encryption set for role app in database (all)") {
		t.Errorf("password_encryption for a role: %v %s", p.Status, p.Evidence)
	}
	rows = append(rows, LiveSetting{"password_encryption", "md5", "database", ""})
	if p := DecideLiveSettings("i", rows, nil, want, "/c/postgresql.conf"); p.Status != Fail || !strings.Contains(p.Evidence, "set by database") {
		t.Errorf("password_encryption for the database: %v %s", p.Status, p.Evidence)
	}
}

func TestDecideAutoConf(t *testing.T) {
	if p := DecideAutoConf("i", "# Managed by pgward: ALTER SYSTEM settings are reset at every start.\n"); p.Status != Pass {
		t.Errorf("header only: %s", p.Evidence)
	}
	p := DecideAutoConf("i", "# Do not edit\nwork_mem = '64MB'\n")
	if p.Status != Fail || !strings.Contains(p.Evidence, "work_mem") || strings.Contains(p.Evidence, "64MB") {
		t.Errorf("ALTER SYSTEM: %v %s", p.Status, p.Evidence)
	}
}

func TestDecideFileModes(t *testing.T) {
	good := []FileEntry{
		{".", fs.ModeDir | 0o700}, {"secrets", fs.ModeDir | 0o700}, {"secrets/c-ca", fs.ModeDir | 0o700},
		{"secrets/c-ca/ca.key", 0o600}, {"secrets/c-ca/ca.crt", 0o600}, {"secrets/c-app/pgpass", 0o600},
		{"instances/c-1", fs.ModeDir | 0o755}, {"instances/c-1/data", fs.ModeDir | 0o700}, {"instances/c-1/instance.log", 0o600},
		{"instances/c-1/run", fs.ModeDir | 0o700}, {"instances/c-1/run/.s.PGSQL.5432", fs.ModeSocket | 0o700},
	}
	if p := DecideFileModes(good); p.Status != Pass {
		t.Fatalf("healthy: %s", p.Evidence)
	}
	for _, e := range []FileEntry{
		{"secrets/c-ca/ca.key", 0o644}, {"secrets/c-app/pgpass", 0o640}, {"instances/c-1/instance.log", 0o644},
		{"instances/c-1/data", fs.ModeDir | 0o750}, {".", fs.ModeDir | 0o711}, {"instances/c-1", fs.ModeDir | 0o777},
		{"secrets/c-ca/ca.crt", fs.ModeSymlink | 0o777},
		{"instances/c-1/run", fs.ModeDir | 0o711}, {"instances/c-1/run/.s.PGSQL.5432", fs.ModeSocket | 0o777},
	} {
		entries := append(append([]FileEntry(nil), good...), e)
		if p := DecideFileModes(entries); p.Status != Fail || !strings.Contains(p.Evidence, e.Rel) {
			t.Errorf("%s %v: %v %s", e.Rel, e.Mode, p.Status, p.Evidence)
		}
	}
}

func TestDecideCertificates(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "c")
	if err != nil {
		t.Fatal(err)
	}
	life := ca.Cert.NotAfter.Sub(ca.Cert.NotBefore)
	// A leaf never outlives its CA: old leaves come from CAs as old.
	leaf := func(issued time.Time) (*x509.Certificate, *x509.Certificate) {
		ca, err := pki.NewCA(rand.Reader, issued, "c")
		if err != nil {
			t.Fatal(err)
		}
		kp, err := ca.IssueClient(rand.Reader, issued, pki.ReplicationCommonName)
		if err != nil {
			t.Fatal(err)
		}
		return kp.Cert, ca.Cert
	}
	cases := []struct {
		name  string
		issue time.Time
		want  Status
	}{
		{"fresh", now, Pass},
		{"within the renewal window", now.Add(-life + pki.RenewBefore/2), Warn},
		{"expired", now.Add(-life - time.Hour), Fail},
	}
	for _, c := range cases {
		cert, caCert := leaf(c.issue)
		if p := DecideExpiry(Cert{Name: "r", Cert: cert, CA: caCert}, now); p.Status != c.want {
			t.Errorf("%s: %v, want %v (%s)", c.name, p.Status, c.want, p.Evidence)
		}
		if p := DecideChain(Cert{Name: "r", Cert: cert, CA: caCert, Usage: x509.ExtKeyUsageClientAuth}); p.Status != Pass {
			t.Errorf("%s: does not chain: %s", c.name, p.Evidence)
		}
	}
	fresh, freshCA := leaf(now)
	other, _ := pki.NewCA(rand.Reader, now, "other")
	if p := DecideChain(Cert{Name: "r", Cert: fresh, CA: other.Cert, Usage: x509.ExtKeyUsageClientAuth}); p.Status != Fail {
		t.Errorf("another CA: %s", p.Evidence)
	}
	if p := DecideChain(Cert{Name: "r", Cert: fresh, CA: freshCA, Usage: x509.ExtKeyUsageServerAuth}); p.Status != Fail {
		t.Errorf("client certificate as a server's: %s", p.Evidence)
	}
}

func TestDecideProcesses(t *testing.T) {
	if p := DecideProcesses([]Proc{{1, 101, "pgward"}, {2, 101, "postgres"}}); p.Status != Pass {
		t.Error(p.Evidence)
	}
	if p := DecideProcesses([]Proc{{1, 101, "pgward"}, {2, 0, "postgres"}}); p.Status != Fail || !strings.Contains(p.Evidence, "pid 2") {
		t.Error(p.Evidence)
	}
	if p := DecideProcesses(nil); p.Status != Warn {
		t.Error(p.Evidence)
	}
}

func TestReport(t *testing.T) {
	checks := []Check{
		Func{Name: "b", Fix: "do b", Fn: func(context.Context) Result { return Result{Status: Fail, Evidence: "bad"} }},
		Func{Name: "a", Fix: "do a", Fn: func(context.Context) Result { return Result{Status: Pass, Evidence: "good"} }},
	}
	rs := Run(context.Background(), checks)
	if !Failed(rs) || rs[0].Control != "b" || rs[1].Fix != "" {
		t.Fatalf("%+v", rs)
	}
	var text, js bytes.Buffer
	if err := Print(&text, rs, "text"); err != nil {
		t.Fatal(err)
	}
	if got := text.String(); got != "FAIL  b  bad  fix: do b\nPASS  a  good\n" {
		t.Errorf("text:\n%s", got)
	}
	if err := Print(&js, rs, "json"); err != nil {
		t.Fatal(err)
	}
	var back []Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != 2 || back[0] != rs[0] {
		t.Errorf("json: %v %+v", err, back)
	}
	c := Combine([]Part{{"x", Pass, "ok"}, {"y", Warn, "hmm"}, {"z", Fail, "no"}})
	if c.Status != Fail || c.Evidence != "z: no; y: hmm" {
		t.Errorf("combine: %+v", c)
	}
}

func TestDecideIdent(t *testing.T) {
	rendered := "# generated\npgward postgres postgres\n"
	if p := DecideIdent("i", rendered, rendered); p.Status != Pass {
		t.Errorf("as rendered: %s", p.Evidence)
	}
	p := DecideIdent("i", rendered+"certs streaming_replica postgres\n", rendered)
	if p.Status != Fail || !strings.Contains(p.Evidence, "maps onto postgres in map certs") {
		t.Errorf("added map: %v %s", p.Status, p.Evidence)
	}
	if p := DecideIdent("i", "# emptied\n", rendered); p.Status != Fail {
		t.Errorf("emptied: %s", p.Evidence)
	}
}

func TestDecideEnvironment(t *testing.T) {
	if p := DecideEnvironment([]ProcEnv{{1, "pgward", []string{"LC_ALL", "PATH"}}, {2, "postgres", []string{"LC_ALL", "LANG", "PATH", "TZ"}}}); p.Status != Pass {
		t.Error(p.Evidence)
	}
	p := DecideEnvironment([]ProcEnv{{1, "pgward", []string{"PATH"}}, {7, "postgres", []string{"PGSSLMODE", "PATH", "PGPASSWORD"}}})
	if p.Status != Fail || p.Evidence != "pid 7 (postgres) has PGPASSWORD, PGSSLMODE" {
		t.Errorf("%v %s", p.Status, p.Evidence)
	}
	if p := DecideEnvironment(nil); p.Status != Warn {
		t.Error(p.Evidence)
	}
}

func TestDecideStreams(t *testing.T) {
	good := Stream{"c-2", true, "TLSv1.3", "/CN=streaming_replica"}
	if p := DecideStreams("c-1", []Stream{good}); p.Status != Pass {
		t.Error(p.Evidence)
	}
	if p := DecideStreams("c-2", nil); p.Status != Pass {
		t.Error(p.Evidence)
	}
	for _, s := range []Stream{
		{"c-3", false, "", ""},
		{"c-3", true, "TLSv1.2", "/CN=streaming_replica"},
		{"c-3", true, "TLSv1.3", "/CN=app"},
	} {
		if p := DecideStreams("c-1", []Stream{good, s}); p.Status != Fail || !strings.Contains(p.Evidence, "c-3") {
			t.Errorf("%+v: %v %s", s, p.Status, p.Evidence)
		}
	}
}

func TestPrintKeepsOneLinePerControl(t *testing.T) {
	rs := []Result{{Status: Fail, Control: "file-modes", Evidence: "x\nPASS  file-modes  all good\x1b[2K is 0644", Fix: "chmod\r"}}
	var b bytes.Buffer
	if err := Print(&b, rs, "text"); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if strings.Count(got, "\n") != 1 || strings.ContainsAny(strings.TrimSuffix(got, "\n"), "\n\r\x1b") {
		t.Errorf("control characters reached the output: %q", got)
	}
	if !strings.Contains(got, `x\nPASS`) {
		t.Errorf("not escaped: %q", got)
	}
	b.Reset()
	if err := Print(&b, []Result{{Status: Pass, Control: "c", Evidence: "a\u202eb\u2028c\xffd \u00e9"}}, "text"); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "PASS  c  a\\u202eb\\u2028c\\xffd \u00e9\n" {
		t.Errorf("bidi, separators, invalid UTF-8: %q", got)
	}
}
