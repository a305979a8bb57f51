package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pgconf"
	"github.com/pgward/pgward/internal/secrets"
)

// TestSourceSettings: a designated primary follows the source by
// streaming over TLS it verifies, with the entry's client certificate
// files and a password (when the entry gives one) only through a 0600
// passfile; with the source's object store too, restore_command reads
// the source's stanza as the fallback (CloudNativePG's streaming with
// archive fallback); the store's credentials go to pgBackRest's 0600
// configuration, never into postgresql.conf.
func TestSourceSettings(t *testing.T) {
	dir := t.TempDir()
	store := secrets.DirStore{Root: filepath.Join(dir, "secrets")}
	const password = `pa:ss\word` // #nosec G101 -- a test value, with the characters pgpass escapes
	for name, data := range map[string]map[string][]byte{
		"src-pass":  {"password": []byte(password)},
		"src-tls":   {"tls.crt": []byte("c"), "tls.key": []byte("k"), "ca.crt": []byte("ca")},
		"src-store": {"ACCESS_KEY_ID": []byte("AKIDEXAMPLE"), "ACCESS_SECRET_KEY": []byte("store-secret-key"), "key": []byte("encryption-key")},
	} {
		if err := store.Put(name, data); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "conf")
	if err := os.Mkdir(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	sel := func(name, key string) *v1.SecretKeySelector { return &v1.SecretKeySelector{Name: name, Key: key} }
	c := &v1.Cluster{}
	c.Name = "rep"
	c.Spec.Replica = &v1.ReplicaClusterConfiguration{Source: "src"}
	ec := v1.ExternalCluster{
		Name:                 "src",
		ConnectionParameters: map[string]string{"host": "src.example.org", "port": "5432", "user": "streaming_replica", "sslmode": "verify-full"},
		SSLCert:              sel("src-tls", "tls.crt"), SSLKey: sel("src-tls", "tls.key"), SSLRootCert: sel("src-tls", "ca.crt"),
		Password: sel("src-pass", "password"),
	}
	c.Spec.ExternalClusters = []v1.ExternalCluster{ec}
	m := &Manager{cfg: &Config{Name: "rep-1", ConfDir: conf, SecretsRoot: store.Root, Port: 5432, SocketDir: dir}, store: store, cluster: c}

	var in pgconf.Instance
	storeConf, err := m.sourceSettings(&in, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(conf, replicaPassFile)
	for _, want := range []string{"host='src.example.org'", "sslmode='verify-full'", "user='streaming_replica'",
		"sslcert='" + filepath.Join(store.Root, "src-tls", "tls.crt") + "'", "sslkey='" + filepath.Join(store.Root, "src-tls", "tls.key") + "'",
		"sslrootcert='" + filepath.Join(store.Root, "src-tls", "ca.crt") + "'", "passfile='" + pass + "'", "application_name='rep-1'"} {
		if !strings.Contains(in.PrimaryConnInfo, want) {
			t.Errorf("primary_conninfo lacks %s: %s", want, in.PrimaryConnInfo)
		}
	}
	if strings.Contains(in.PrimaryConnInfo, "pa:ss") || strings.Contains(in.PrimaryConnInfo, "password=") {
		t.Errorf("primary_conninfo carries the password: %s", in.PrimaryConnInfo)
	}
	fi, err := os.Stat(pass)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("passfile: %v %v", err, fi)
	}
	if b, _ := os.ReadFile(pass); string(b) != `*:*:*:*:pa\:ss\\word`+"\n" {
		t.Errorf("passfile holds %q", b)
	}
	if in.RestoreCommand != "" || storeConf != nil {
		t.Errorf("restore_command %q without an object store", in.RestoreCommand)
	}

	// Streaming with the archive as fallback.
	c.Spec.ExternalClusters[0].BarmanObjectStore = &v1.BarmanObjectStoreConfiguration{
		DestinationPath: "s3://bucket/e2e", EndpointURL: "https://store.example.org:9000", ServerName: "src",
		S3Credentials: &v1.S3Credentials{AccessKeyID: sel("src-store", "ACCESS_KEY_ID"), SecretAccessKey: sel("src-store", "ACCESS_SECRET_KEY")},
		EncryptionKey: sel("src-store", "key"),
	}
	in = pgconf.Instance{}
	storeConf, err = m.sourceSettings(&in, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if in.PrimaryConnInfo == "" || !strings.Contains(in.RestoreCommand, "archive-get") || !strings.Contains(in.RestoreCommand, filepath.Join(conf, recoverySourceConf)) {
		t.Errorf("primary_conninfo %q, restore_command %q", in.PrimaryConnInfo, in.RestoreCommand)
	}
	if !strings.Contains(string(storeConf), "store-secret-key") || strings.Contains(in.RestoreCommand, "store-secret-key") {
		t.Errorf("the store's secret belongs in pgBackRest's configuration only")
	}

	// Promoted: the source's files go.
	if err := os.WriteFile(filepath.Join(conf, recoverySourceConf), storeConf, 0o600); err != nil {
		t.Fatal(err)
	}
	m.forgetSource()
	for _, f := range []string{replicaPassFile, recoverySourceConf} {
		if _, err := os.Stat(filepath.Join(conf, f)); err == nil {
			t.Errorf("%s left after promotion", f)
		}
	}
}
