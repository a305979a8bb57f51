package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// TestUserCertificateReplacedInPlace: a user-provided server certificate
// (certificates.serverTLSSecret) replaced in its secret, as cert-manager
// would, one key at a time, is served by PostgreSQL and by the status port
// without a restart, and replication keeps streaming.
func TestUserCertificateReplacedInPlace(t *testing.T) {
	osUser := runAsUser(t)
	dir := newStateDir(t, "usercerts")
	store := secrets.DirStore{Root: filepath.Join(dir, "secrets")}
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "user CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func() *pki.KeyPair {
		t.Helper()
		kp, err := ca.IssueServer(rand.Reader, time.Now(), "usercerts-rw", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	first := issue()
	// The user's secrets are in the store before the first `up`.
	if err := store.Put("my-server-ca", map[string][]byte{"ca.crt": ca.CertPEM}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put("my-server-tls", map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	giveToOwner(t, dir, osUser)
	manifest := filepath.Join(workRoot, "usercerts.yaml")
	err = os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: usercerts
spec:
  instances: 2
  certificates:
    serverCASecret: my-server-ca
    serverTLSSecret: my-server-tls
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })

	cs := status(t, dir)
	primary := cs.Instances[0]
	caFile := filepath.Join(dir, "secrets", "my-server-ca", "ca.crt")
	if got := postgresCertSerial(t, primary.Port); got != first.Cert.SerialNumber.String() {
		t.Fatalf("PostgreSQL serves serial %s, want the user's %s", got, first.Cert.SerialNumber)
	}
	if got := statusSerialWithCA(t, caFile, primary.StatusPort); got != first.Cert.SerialNumber.String() {
		t.Fatalf("the status port serves %s, want the user's %s", got, first.Cert.SerialNumber)
	}
	pids := postmasterPids(t, dir, "usercerts-1", "usercerts-2")

	// cert-manager's update, seen through a directory: the certificate
	// first, the key a moment later (the worst order for a reader).
	second := issue()
	writeKey(t, dir, "my-server-tls", "tls.crt", second.CertPEM)
	time.Sleep(200 * time.Millisecond)
	writeKey(t, dir, "my-server-tls", "tls.key", second.KeyPEM)
	want := second.Cert.SerialNumber.String()
	// A handshake on each status port right away makes it load the new
	// files before the manager's own check: that must not hide the change
	// from PostgreSQL (it once did).
	for _, is := range cs.Instances {
		statusSerialWithCA(t, caFile, is.StatusPort)
	}
	eventually(t, 30*time.Second, "the replaced certificate served by PostgreSQL and the status port", func() error {
		for _, is := range cs.Instances {
			if got := postgresCertSerial(t, is.Port); got != want {
				return &mismatch{is.Name + " PostgreSQL", got, want}
			}
			if got := statusSerialWithCA(t, caFile, is.StatusPort); got != want {
				return &mismatch{is.Name + " status port", got, want}
			}
		}
		return nil
	})
	if got := postmasterPids(t, dir, "usercerts-1", "usercerts-2"); got != pids {
		t.Errorf("postmaster pids changed from %q to %q", pids, got)
	}
	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	if out, err := psql(context.Background(), "", uri, "SELECT 1"); err != nil {
		t.Errorf("a verify-full client with the user's CA: %v: %s", err, out)
	}
	if st := status(t, dir); st.Instances[1].State != "streaming" {
		t.Errorf("replica after the replacement: %+v", st.Instances[1])
	}
}

type mismatch struct{ what, got, want string }

func (m *mismatch) Error() string { return m.what + " serves " + m.got + ", want " + m.want }

// writeKey replaces one key of a secret in place, owned by the cluster's
// owner, as a user's tool would.
func writeKey(t *testing.T, dir, secret, key string, value []byte) {
	t.Helper()
	p := filepath.Join(dir, "secrets", secret, key)
	tmp := p + ".new"
	if err := os.WriteFile(tmp, value, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(tmp, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// giveToOwner hands dir and everything in it to osUser, 0700 as `up`
// wants an existing state directory.
func giveToOwner(t *testing.T, dir, osUser string) {
	t.Helper()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// statusSerialWithCA returns the serial of the status port's certificate,
// verified against the CA in caFile.
func statusSerialWithCA(t *testing.T, caFile string, port int) string {
	t.Helper()
	roots := x509.NewCertPool()
	b, err := os.ReadFile(caFile) // #nosec G304 -- the test's own state directory
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(b)
	d := tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost"}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err.Error()
	}
	defer func() { _ = conn.Close() }()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
}
