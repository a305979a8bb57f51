package instance

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// tlsFiles serves the status port's TLS material from the secret files,
// re-reading them when they change: certificates are renewed while the
// instance runs, and neither the status port nor PostgreSQL may keep using
// the old ones.
type tlsFiles struct {
	certFile, keyFile, clientCAFile string

	mu      sync.Mutex
	stamp   string
	cert    *tls.Certificate
	clients *x509.CertPool
	// loaded describes what the last successful load read.
	loaded tlsState
}

// tlsState identifies loaded TLS material: gen counts successful loads of
// changed files, server is the server certificate's fingerprint and cas the
// client CA certificates'. The manager keeps the one PostgreSQL last read
// (at start or reload), so a load by the status port cannot hide a change
// from PostgreSQL, and reports it in its status (CA rotation waits on it).
type tlsState struct {
	gen    uint64
	server string
	cas    []string
}

// fingerprint is the hex SHA-256 of a certificate's DER.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// caFingerprints lists the fingerprints of every certificate in a PEM bundle.
func caFingerprints(bundle []byte) []string {
	var out []string
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, fingerprint(block.Bytes))
		}
	}
}

// state returns what the last successful load read.
func (f *tlsFiles) state() tlsState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loaded
}

// stampOf identifies the files' current contents by what stat says of
// them, through any symbolic links (the kubelet's "..data"): modification
// time, size and inode, so that a file replaced by a rename (the kubelet,
// cert-manager, an atomic writer) counts as changed even if a tool kept its
// modification time.
func (f *tlsFiles) stampOf() (string, error) {
	var stamp string
	for _, p := range []string{f.certFile, f.keyFile, f.clientCAFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("TLS material: %w", err)
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		stamp += fmt.Sprintf("%s/%d/%d|", fi.ModTime().Format(time.RFC3339Nano), fi.Size(), ino)
	}
	return stamp, nil
}

// load re-reads the files if they changed and reports whether they did.
func (f *tlsFiles) load() (bool, error) {
	stamp, err := f.stampOf()
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if stamp == f.stamp && f.cert != nil {
		return false, nil
	}
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return false, fmt.Errorf("server certificate: %w", err)
	}
	caPEM, err := os.ReadFile(f.clientCAFile)
	if err != nil {
		return false, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false, errors.New("client CA holds no PEM certificate")
	}
	changed := f.cert != nil
	f.stamp, f.cert, f.clients = stamp, &cert, pool
	f.loaded = tlsState{gen: f.loaded.gen + 1, server: fingerprint(cert.Certificate[0]), cas: caFingerprints(caPEM)}
	return changed, nil
}

// serverConfig is tls.Config.GetConfigForClient: TLS 1.3, the current
// server certificate, and client certificates verified against the current
// client CA when offered (the probes need none; /pg/ checks the identity).
// Files that do not load (a user's certificate replaced one key at a time
// and caught half-way, a key that does not match) leave the last good
// material in use: the status port stays up, and the next connection reads
// the files again.
func (f *tlsFiles) serverConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	_, err := f.load()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cert == nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*f.cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    f.clients,
	}, nil
}

// metricsConfig is the metrics exporter's GetConfigForClient: like
// serverConfig, but a client certificate verified against the current
// client CA is required in the handshake; which identity may scrape is
// checked per request (requireMetrics).
func (f *tlsFiles) metricsConfig(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	c, err := f.serverConfig(hello)
	if err != nil {
		return nil, err
	}
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c, nil
}
