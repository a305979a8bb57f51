package instance

import (
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/pki"
)

// TestTLSFilesKeepLastGoodMaterial: a user's certificate replaced in place
// one file at a time (cert-manager writing a Secret, a `cp`) is caught
// half-way by a handshake; the status port keeps serving the last good pair
// and serves the new one once both files are in place.
func TestTLSFilesKeepLastGoodMaterial(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "user CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func() *pki.KeyPair {
		kp, err := ca.IssueServer(rand.Reader, now, "db-rw", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	tick := now
	write := func(name string, b []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// Distinct modification times, whatever the file system's resolution.
		tick = tick.Add(time.Second)
		if err := os.Chtimes(p, tick, tick); err != nil {
			t.Fatal(err)
		}
	}
	first, second := issue(), issue()
	write("tls.crt", first.CertPEM)
	write("tls.key", first.KeyPEM)
	write("ca.crt", ca.CertPEM)
	f := &tlsFiles{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), clientCAFile: filepath.Join(dir, "ca.crt")}
	served := func() string {
		t.Helper()
		cfg, err := f.serverConfig(nil)
		if err != nil {
			t.Fatalf("serverConfig: %v", err)
		}
		return string(cfg.Certificates[0].Certificate[0])
	}
	if served() != string(first.Cert.Raw) {
		t.Fatal("not serving the first certificate")
	}
	write("tls.crt", second.CertPEM) // the key is still the first one's
	if served() != string(first.Cert.Raw) {
		t.Error("half-replaced files: want the last good certificate")
	}
	if _, err := f.load(); err == nil {
		t.Error("load accepted a certificate with another certificate's key")
	}
	write("tls.key", second.KeyPEM)
	if served() != string(second.Cert.Raw) {
		t.Error("both files replaced: want the new certificate")
	}
}

// TestTLSFilesNothingToServe: with no good material ever loaded, the
// handshake fails with the reason.
func TestTLSFilesNothingToServe(t *testing.T) {
	dir := t.TempDir()
	f := &tlsFiles{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), clientCAFile: filepath.Join(dir, "ca.crt")}
	if _, err := f.serverConfig(nil); err == nil {
		t.Error("serverConfig without any certificate succeeded")
	}
}

// TestTLSFilesFollowKubeletSwap: on Kubernetes a user's certificate
// replaced in its Secret arrives as a new payload behind "..data", with the
// file paths unchanged; the next load sees it, even with the old
// modification times kept.
func TestTLSFilesFollowKubeletSwap(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "user CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func() *pki.KeyPair {
		kp, err := ca.IssueServer(rand.Reader, now, "db-rw", []string{"localhost"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	v := &kubeletVolume{t: t, root: t.TempDir()}
	files := func(kp *pki.KeyPair) map[string]string {
		return map[string]string{"secrets/tls/tls.crt": string(kp.CertPEM), "secrets/tls/tls.key": string(kp.KeyPEM), "secrets/ca/ca.crt": string(ca.CertPEM)}
	}
	first, second := issue(), issue()
	f := &tlsFiles{
		certFile:     filepath.Join(v.root, "secrets/tls/tls.crt"),
		keyFile:      filepath.Join(v.root, "secrets/tls/tls.key"),
		clientCAFile: filepath.Join(v.root, "secrets/ca/ca.crt"),
	}
	sameTimes := func() {
		t.Helper()
		for _, p := range []string{f.certFile, f.keyFile, f.clientCAFile} {
			if err := os.Chtimes(p, now, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	v.write(files(first))
	sameTimes()
	if _, err := f.load(); err != nil {
		t.Fatal(err)
	}
	v.write(files(second))
	sameTimes()
	changed, err := f.load()
	if err != nil || !changed {
		t.Fatalf("after the swap: changed %v, %v", changed, err)
	}
	cfg, err := f.serverConfig(nil)
	if err != nil || string(cfg.Certificates[0].Certificate[0]) != string(second.Cert.Raw) {
		t.Errorf("after the swap: %v, serving the new certificate: %v", err, err == nil && string(cfg.Certificates[0].Certificate[0]) == string(second.Cert.Raw))
	}
}
