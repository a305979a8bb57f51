package instance

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
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
}

// stampOf identifies the files' current contents by their modification times.
func (f *tlsFiles) stampOf() (string, error) {
	var stamp string
	for _, p := range []string{f.certFile, f.keyFile, f.clientCAFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("TLS material: %w", err)
		}
		stamp += fi.ModTime().Format(time.RFC3339Nano) + "|"
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
	pem, err := os.ReadFile(f.clientCAFile)
	if err != nil {
		return false, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return false, errors.New("client CA holds no PEM certificate")
	}
	changed := f.cert != nil
	f.stamp, f.cert, f.clients = stamp, &cert, pool
	return changed, nil
}

// serverConfig is tls.Config.GetConfigForClient: TLS 1.3, the current
// server certificate, and client certificates verified against the current
// client CA when offered (the probes need none; /pg/ checks the identity).
func (f *tlsFiles) serverConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	if _, err := f.load(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
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
