package local

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// TestAuditStatusPort runs the status port's audit checks against two
// stand-ins for an instance's status server: one that behaves as pgward's
// (TLS 1.3 only; 401 without a certificate, 403 for one that is not the
// controller's) passes; one that accepts TLS 1.2 and anonymous clients
// fails both lines. (The real server is checked by the e2e TestAudit.)
func TestAuditStatusPort(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "demo")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(rand.Reader, now, "demo-rw", []string{localhost}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	repl, err := ca.IssueClient(rand.Reader, now, pki.ReplicationCommonName)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l := Layout{Dir: dir}
	store := secrets.DirStore{Root: l.SecretsDir()}
	if err := store.Put("demo-ca", map[string][]byte{keyCACert: ca.CertPEM}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put("demo-replication", map[string][]byte{keyTLSCert: repl.CertPEM, keyTLSKey: repl.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.Cert)

	start := func(t *testing.T, minVersion uint16, auth tls.ClientAuthType, h http.HandlerFunc) int {
		s := httptest.NewUnstartedServer(h)
		s.TLS = &tls.Config{MinVersion: minVersion, Certificates: []tls.Certificate{srv.TLSCertificate()}, ClientAuth: auth, ClientCAs: clientCAs} // #nosec G402 -- the broken stand-in
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.Listener.Addr().(*net.TCPAddr).Port
	}
	auditorFor := func(port int) *auditor {
		return &auditor{
			l:     l,
			st:    &State{Instances: []InstanceState{{Name: "demo-1", StatusPort: port}}},
			cfgs:  []*instance.Config{{Name: "demo-1", Secrets: instance.Secrets{ServerCA: "demo-ca", ClientCA: "demo-ca", Replication: "demo-replication"}}},
			store: store,
			now:   now,
		}
	}
	ctx := context.Background()

	t.Run("pgward's behaviour passes", func(t *testing.T) {
		port := start(t, tls.VersionTLS13, tls.VerifyClientCertIfGiven, func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/healthz":
				w.WriteHeader(http.StatusOK)
			case len(r.TLS.PeerCertificates) == 0:
				http.Error(w, "client certificate required", http.StatusUnauthorized)
			case r.TLS.PeerCertificates[0].Subject.CommonName != pki.ControllerCommonName:
				http.Error(w, "forbidden", http.StatusForbidden)
			default:
				w.WriteHeader(http.StatusOK)
			}
		})
		a := auditorFor(port)
		if r := a.statusAnonymous(ctx); r.Status != audit.Pass || !strings.Contains(r.Evidence, "HTTP 403") {
			t.Errorf("anonymous: %+v", r)
		}
		if r := a.statusTLS12(ctx); r.Status != audit.Pass {
			t.Errorf("TLS 1.2: %+v", r)
		}
	})

	t.Run("TLS 1.2 and anonymous clients accepted fail", func(t *testing.T) {
		port := start(t, tls.VersionTLS12, tls.NoClientCert, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
		})
		a := auditorFor(port)
		if r := a.statusAnonymous(ctx); r.Status != audit.Fail || !strings.Contains(r.Evidence, "GET /pg/status without a certificate: accepted (HTTP 200)") {
			t.Errorf("anonymous: %+v", r)
		}
		if r := a.statusTLS12(ctx); r.Status != audit.Fail {
			t.Errorf("TLS 1.2: %+v", r)
		}
	})

	t.Run("a streaming_replica certificate let in fails", func(t *testing.T) {
		port := start(t, tls.VersionTLS13, tls.VerifyClientCertIfGiven, func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, "client certificate required", http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		if r := auditorFor(port).statusAnonymous(ctx); r.Status != audit.Fail || !strings.Contains(r.Evidence, "streaming_replica's certificate: accepted") {
			t.Errorf("%+v", r)
		}
	})

	t.Run("nothing listening is a WARN, not a PASS", func(t *testing.T) {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if r := auditorFor(port).statusTLS12(ctx); r.Status != audit.Warn {
			t.Errorf("%+v", r)
		}
	})
}
