package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// renewServerCert does what the controller does when the server certificate
// nears expiry: a new one from the cluster CA in the same secret. It returns
// the new serial number.
func renewServerCert(t *testing.T, dir string) string {
	t.Helper()
	store := secrets.DirStore{Root: filepath.Join(dir, "secrets")}
	caData, err := store.Get("cluster-example-ca")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseKeyPair(caData["ca.crt"], caData["ca.key"])
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueServer(rand.Reader, time.Now(), "cluster-example-rw", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put("cluster-example-server", map[string][]byte{"tls.crt": kp.CertPEM, "tls.key": kp.KeyPEM, "ca.crt": ca.CertPEM}); err != nil {
		t.Fatal(err)
	}
	// Written as the test's user: hand the files to the cluster's owner, as
	// the controller (running as that owner) would have written them.
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	secretDir := filepath.Join(dir, "secrets", "cluster-example-server")
	entries, _ := os.ReadDir(secretDir)
	for _, e := range append(entries, nil) {
		p := secretDir
		if e != nil {
			p = filepath.Join(secretDir, e.Name())
		}
		if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
			t.Fatal(err)
		}
	}
	return kp.Cert.SerialNumber.String()
}

// postgresCertSerial connects to PostgreSQL over TLS and returns the serial
// of the certificate it presents.
func postgresCertSerial(t *testing.T, port int) string {
	t.Helper()
	cfg, err := pgx.ParseConfig("host=localhost port=" + strconv.Itoa(port) + " user=nobody dbname=x sslmode=require connect_timeout=3")
	if err != nil {
		t.Fatal(err)
	}
	var serial string
	cfg.TLSConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		serial = cs.PeerCertificates[0].SerialNumber.String()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil { // authentication fails; the handshake is what we need
		_ = conn.Close(ctx)
	}
	return serial
}

// statusCertSerial returns the serial of the status port's certificate.
func statusCertSerial(t *testing.T, dir string, port int) string {
	t.Helper()
	return statusSerialWithCA(t, filepath.Join(dir, "secrets", "cluster-example-ca", "ca.crt"), port)
}
