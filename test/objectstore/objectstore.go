// Package objectstore starts a real S3-compatible object store for tests:
// versitygw, pinned in hack/tools/versitygw, as a child process on loopback,
// over TLS with a private CA made for the test, with random credentials and
// one bucket. Its posix backend stores each object as a plain file, so a
// test can assert on what a backup tool really wrote (Root/Bucket/key).
//
// hack/objectstore-up.sh is the same store for people; this is the one
// tests own: every process it starts is killed when the test ends.
package objectstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BucketName is the bucket every Store has.
const BucketName = "pgward"

// Store is a running versitygw.
type Store struct {
	Endpoint        string // https://localhost:<port>: a DNS name, as pgBackRest 2.45 needs
	Bucket          string
	AccessKeyID     string
	SecretAccessKey string
	CACertPEM       []byte
	CAFile          string // readable by any user (pgBackRest runs as postgres)
	Root            string // the posix root: objects are files under Root/Bucket/

	t        testing.TB
	bin      string
	dir      string
	addr     string // 127.0.0.1:<port>
	certFile string
	keyFile  string
	// netns is the network namespace the store runs in ("": the test's);
	// serverName the name its certificate is checked for.
	netns      string
	serverName string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited and been reaped
}

// Options place a store elsewhere than on loopback.
type Options struct {
	// Netns runs the store in that network namespace (ip netns exec),
	// listening on IP: e.g. the one-node Kubernetes's node address, which
	// its pods reach.
	Netns, IP string
	// DNSName is the name clients use, which the certificate carries
	// beside localhost (pgBackRest 2.45 matches DNS names only); Endpoint
	// uses it.
	DNSName string
}

// Start starts a store on loopback that lives until the end of t.
func Start(t testing.TB) *Store {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a store placed by o that lives until the end of t.
func StartWith(t testing.TB, o Options) *Store {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("objectstore: %v", err)
	}
	// Not t.TempDir: its parent is 0700, and the postgres user must reach
	// CAFile. 0711 lets others open files by name but list nothing.
	dir, err := os.MkdirTemp("", "pgward-objectstore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil { //nolint:gosec // G302: traversable on purpose, see above
		t.Fatal(err)
	}
	s := &Store{
		Bucket:          BucketName,
		AccessKeyID:     rand.Text()[:20],
		SecretAccessKey: rand.Text() + rand.Text(),
		CAFile:          filepath.Join(dir, "ca.crt"),
		Root:            filepath.Join(dir, "root"),
		t:               t,
		bin:             bin,
		dir:             dir,
		certFile:        filepath.Join(dir, "server.crt"),
		keyFile:         filepath.Join(dir, "server.key"),
		netns:           o.Netns,
		serverName:      "localhost",
	}
	if o.DNSName != "" {
		s.serverName = o.DNSName
	}
	if err := s.writeTLS(); err != nil {
		t.Fatalf("objectstore: %v", err)
	}
	// 0700: objects are read through S3, or by their owner (the tests).
	if err := os.MkdirAll(filepath.Join(s.Root, s.Bucket), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := checkXattrs(s.Root); err != nil {
		t.Fatalf("objectstore: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ip := "127.0.0.1"
	if o.IP != "" {
		ip = o.IP
	}
	s.addr = net.JoinHostPort(ip, strconv.Itoa(port))
	s.Endpoint = fmt.Sprintf("https://%s:%d", s.serverName, port)
	t.Cleanup(s.Stop)
	s.start()
	return s
}

// Stop stops the store; its data stays for Restart. Stopping a stopped
// store does nothing.
func (s *Store) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	// SIGTERM first, as an operator would stop it; SIGKILL if it hangs.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart stops the store if it runs and starts it again on the same
// port, with the same data and credentials.
func (s *Store) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// SecretManifest returns a Kubernetes Secret named name holding the
// credentials and the CA, for s3Credentials and endpointCA of
// spec.backup.barmanObjectStore; append it to a manifest after "---".
func (s *Store) SecretManifest(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\nstringData:\n", name)
	// Quoted: an unquoted value that looks like a number would be read as one.
	fmt.Fprintf(&b, "  ACCESS_KEY_ID: %q\n  ACCESS_SECRET_KEY: %q\n  ca.crt: |\n", s.AccessKeyID, s.SecretAccessKey)
	for _, line := range strings.Split(strings.TrimRight(string(s.CACertPEM), "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

// start runs versitygw and waits until it answers TLS as localhost.
func (s *Store) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(s.dir, "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = logf.Close() }()
	// Not tied to a context: the store outlives this call, until Stop.
	args := []string{s.bin, "--port", s.addr, "--cert", s.certFile, "--key", s.keyFile, "--quiet", "posix", s.Root}
	if s.netns != "" {
		// ip execs the store in the namespace: the PID stays the store's.
		args = append([]string{"ip", "netns", "exec", s.netns}, args...)
	}
	cmd := exec.CommandContext(context.Background(), args[0], args[1:]...) //nolint:gosec // G204: the test's own binary and paths
	// The credentials go through the environment only (a command line is
	// public in /proc), and nothing else does: inherited VGW_* variables
	// would change the store's flags behind the test's back.
	cmd.Env = []string{"ROOT_ACCESS_KEY_ID=" + s.AccessKeyID, "ROOT_SECRET_ACCESS_KEY=" + s.SecretAccessKey}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the test binary dies (a timeout panic, a kill), the
	// store dies with it instead of holding the port for the next run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("objectstore: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: s.serverName, MinVersion: tls.VersionTLS12}}
		c, err := d.DialContext(ctx, "tcp", s.addr)
		cancel()
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-done:
			s.cmd = nil
			s.t.Fatalf("objectstore: versitygw exited: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			s.cmd = nil
			s.t.Fatalf("objectstore: versitygw did not answer on %s within 15 s (%v): %s", s.addr, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Store) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "versitygw.log"))
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// writeTLS makes a CA and a server certificate for localhost, 127.0.0.1
// and the store's DNS name. The CA's key stays in memory: nothing else is ever signed.
func (s *Store) writeTLS() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pgward test object store CA"},
		NotBefore:             now.Add(-100 * 24 * time.Hour), // retention tests back-date backups
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-100 * 24 * time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		// pgBackRest 2.45 matches only DNS names; the IP is for other clients.
		DNSNames:    dnsNames(s.serverName),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	s.CACertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{s.CAFile, s.CACertPEM, 0o644},
		{s.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{s.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
		// WriteFile's mode is cut by the umask; these must be exact.
		if err := os.Chmod(f.path, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func dnsNames(name string) []string {
	if name == "localhost" {
		return []string{name}
	}
	return []string{"localhost", name}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

// checkXattrs fails clearly where versitygw's posix backend cannot work:
// it keeps object metadata (ETag, content type, ...) in user xattrs.
func checkXattrs(dir string) error {
	err := unix.Setxattr(dir, "user.pgward.check", []byte("1"), 0)
	if err == nil {
		return unix.Removexattr(dir, "user.pgward.check")
	}
	if errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("the file system under %s has no user xattrs, which versitygw's posix backend needs "+
			"(tmpfs before Linux 6.6, ext4 with nouser_xattr, some overlay and network file systems): "+
			"set TMPDIR to a directory on ext4, xfs or btrfs", dir)
	}
	return fmt.Errorf("setting a user xattr on %s: %w", dir, err)
}

func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	binMu   sync.Mutex
	binPath string
)

// binary returns $PGWARD_VERSITYGW, or the pinned versitygw that
// hack/tools.sh builds (once, then cached under ~/.cache/pgward).
func binary() (string, error) {
	if p := os.Getenv("PGWARD_VERSITYGW"); p != "" {
		return p, nil
	}
	binMu.Lock()
	defer binMu.Unlock()
	if binPath != "" {
		return binPath, nil
	}
	out, err := exec.CommandContext(context.Background(), filepath.Join(repoRoot(), "hack", "tools.sh"), "versitygw").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("hack/tools.sh versitygw: %w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("hack/tools.sh versitygw: %w", err)
	}
	binPath = filepath.Join(strings.TrimSpace(string(out)), "versitygw")
	return binPath, nil
}

// repoRoot is the repository this package is in.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
