package pgconf

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// sampleCluster is a Cluster with a bit of everything a manifest may
// configure, including values that need quoting and lines that need
// normalising.
func sampleCluster() *v1.Cluster {
	c := &v1.Cluster{Spec: v1.ClusterSpec{
		Instances: 3,
		PostgresConfiguration: v1.PostgresConfiguration{
			Parameters: map[string]string{
				"shared_buffers":               "256MB",
				"max_connections":              "200",
				"log_min_duration_statement":   "250ms",
				"search_path":                  `"$user", public`,
				"pg_trgm.similarity_threshold": "0.4",
				"application_name":             `it's a \ test`,
			},
			PgHBA: []string{
				"hostssl app app 10.0.0.0/8 scram-sha-256",
				"hostssl\tall  +readers   192.168.1.0 255.255.255.0  cert map=readers",
			},
			PgIdent: []string{
				"readers alice app_reader",
				`readers   /^(.*)@example\.com$   \1`,
			},
		},
	}}
	c.Name = "demo"
	return c
}

// primaryInstance and replicaInstance are demo-1 and demo-2 on Kubernetes.
func primaryInstance() Instance {
	return Instance{
		Name:                    "demo-1",
		ClusterName:             "demo",
		Port:                    5432,
		ListenAddresses:         "*",
		SocketDir:               "/run/pgward",
		HBAFile:                 "/etc/pgward/pg_hba.conf",
		IdentFile:               "/etc/pgward/pg_ident.conf",
		ServerCertFile:          "/etc/pgward/tls/server.crt",
		ServerKeyFile:           "/etc/pgward/tls/server.key",
		ClientCAFile:            "/etc/pgward/tls/client-ca.crt",
		SynchronousStandbyNames: `ANY 1 ("demo-2","demo-3")`,
		OSUser:                  "postgres",
	}
}

func replicaInstance() Instance {
	in := primaryInstance()
	in.Name = "demo-2"
	in.PrimaryConnInfo = "host=demo-rw port=5432 user=streaming_replica sslmode=verify-full " +
		"sslrootcert=/etc/pgward/tls/ca.crt sslcert=/etc/pgward/tls/replication.crt " +
		"sslkey=/etc/pgward/tls/replication.key application_name=demo-2"
	in.SynchronousStandbyNames = ""
	return in
}

func TestGolden(t *testing.T) {
	c := sampleCluster()
	tests := []struct {
		file   string
		render func() ([]byte, error)
	}{
		{"primary-postgresql.conf", func() ([]byte, error) { return RenderPostgresConf(c, primaryInstance()) }},
		{"replica-postgresql.conf", func() ([]byte, error) { return RenderPostgresConf(c, replicaInstance()) }},
		{"pg_hba.conf", func() ([]byte, error) { return RenderHBA(c, "postgres") }},
		{"pg_ident.conf", func() ([]byte, error) { return RenderIdent(c, "postgres") }},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := tt.render()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.file, got)
			// Map iteration order must not leak into the output.
			again, err := tt.render()
			if err != nil || !bytes.Equal(got, again) {
				t.Errorf("a second rendering differs (err %v)", err)
			}
		})
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/pgconf -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s; if the change is intended, run "+
			"go test ./internal/pgconf -update and review the diff\n--- got:\n%s", path, got)
	}
}

// TestPostgresConfPrecedence reads the sample file the way PostgreSQL does
// and checks the values that take effect.
func TestPostgresConfPrecedence(t *testing.T) {
	out, err := RenderPostgresConf(sampleCluster(), primaryInstance())
	if err != nil {
		t.Fatal(err)
	}
	settings, err := parseConf(string(out))
	if err != nil {
		t.Fatal(err)
	}
	got := effective(settings)
	for _, want := range []setting{
		{"shared_buffers", "256MB"}, // the user's value beats the default
		{"wal_level", "logical"},
		{"application_name", `it's a \ test`},
		{"search_path", `"$user", public`},
		{"port", "5432"},
		{"unix_socket_permissions", "0700"},
		{"cluster_name", "demo-1"},
		{"password_encryption", "scram-sha-256"},
		{"ssl_min_protocol_version", "TLSv1.3"},
		{"restart_after_crash", "off"},
		{"synchronous_standby_names", `ANY 1 ("demo-2","demo-3")`},
	} {
		if got[want.name] != want.value {
			t.Errorf("%s = %q, want %q", want.name, got[want.name], want.value)
		}
	}
	if _, ok := got["primary_conninfo"]; ok {
		t.Error("primary_conninfo is set on a primary")
	}
}

func TestClusterName(t *testing.T) {
	for _, tt := range []struct{ cluster, instance, want string }{
		{"demo", "demo-1", "demo-1"},
		{"demo", "1", "demo-1"},
		{"demo", "demolition-1", "demo-demolition-1"},
	} {
		in := Instance{ClusterName: tt.cluster, Name: tt.instance}
		if got := in.clusterName(); got != tt.want {
			t.Errorf("clusterName(%q, %q) = %q, want %q", tt.cluster, tt.instance, got, tt.want)
		}
	}
}

func TestHash(t *testing.T) {
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := Hash(nil); got != emptySHA256 {
		t.Errorf("Hash(nil) = %s, want %s", got, emptySHA256)
	}
	a, err := RenderPostgresConf(sampleCluster(), primaryInstance())
	if err != nil {
		t.Fatal(err)
	}
	b, err := RenderPostgresConf(sampleCluster(), replicaInstance())
	if err != nil {
		t.Fatal(err)
	}
	if Hash(a) == Hash(b) {
		t.Error("primary and replica files hash the same")
	}
	if Hash(a) != Hash(bytes.Clone(a)) {
		t.Error("equal files hash differently")
	}
}

// wantError fails the test unless err is non-nil and contains every one of
// the substrings.
func wantError(t *testing.T, err error, substrings ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", substrings)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// TestMinApplyDelay: a replica cluster's standbys get
// recovery_min_apply_delay in milliseconds; without a delay the setting is
// left out (a reload then goes back to none), and it is pgward's to set.
func TestMinApplyDelay(t *testing.T) {
	c := sampleCluster()
	in := replicaInstance()
	in.MinApplyDelay = 90 * time.Second
	out, err := RenderPostgresConf(c, in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "\nrecovery_min_apply_delay = '90000ms'\n") {
		t.Errorf("no delay rendered:\n%s", out)
	}
	out, err = RenderPostgresConf(c, replicaInstance())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "recovery_min_apply_delay") {
		t.Errorf("a delay rendered without one asked for:\n%s", out)
	}
}
