package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// now is a fixed instant so expiry arithmetic in the tests is exact.
var now = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	ca, server, client *KeyPair
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ca, err := NewCA(rand.Reader, now, "pgward-test-ca")
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	server, err := ca.IssueServer(rand.Reader, now, "pgward-test-rw",
		[]string{"localhost", "pgward-test-rw.default.svc"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	client, err := ca.IssueClient(rand.Reader, now, ReplicationCommonName)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	return fixture{ca: ca, server: server, client: client}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// handshake runs a TLS 1.3 handshake over loopback TCP, the way PostgreSQL
// is configured (ssl_min_protocol_version = TLSv1.3, client certificates
// required), and returns both sides' errors and the server's view of the
// connection.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (state tls.ConnectionState, serverErr, clientErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()

	type result struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer func() { _ = raw.Close() }()
		srv := tls.Server(raw, serverCfg)
		if err := srv.HandshakeContext(ctx); err != nil {
			done <- result{err: err}
			return
		}
		// In TLS 1.3 a server may learn that the client rejected it only
		// on its first read, so wait for the byte the client sends.
		if _, err := io.ReadFull(srv, make([]byte, 1)); err != nil {
			done <- result{err: err}
			return
		}
		done <- result{state: srv.ConnectionState()}
	}()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cli := tls.Client(raw, clientCfg)
	clientErr = cli.HandshakeContext(ctx)
	if clientErr == nil {
		_, clientErr = cli.Write([]byte{1})
	}
	res := <-done
	_ = raw.Close()
	return res.state, res.err, clientErr
}

func serverConfig(server *KeyPair, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{server.TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		Time:         func() time.Time { return now },
	}
}

func clientConfig(serverName string, roots *x509.CertPool, client *KeyPair) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		ServerName: serverName,
		RootCAs:    roots,
		Time:       func() time.Time { return now },
	}
	if client != nil {
		cfg.Certificates = []tls.Certificate{client.TLSCertificate()}
	}
	return cfg
}

func TestTLSHandshake(t *testing.T) {
	f := newFixture(t)
	for _, serverName := range []string{"localhost", "127.0.0.1", "pgward-test-rw.default.svc"} {
		t.Run(serverName, func(t *testing.T) {
			state, serverErr, clientErr := handshake(t,
				serverConfig(f.server, pool(f.ca.Cert)),
				clientConfig(serverName, pool(f.ca.Cert), f.client))
			if serverErr != nil || clientErr != nil {
				t.Fatalf("handshake failed: server: %v, client: %v", serverErr, clientErr)
			}
			if state.Version != tls.VersionTLS13 {
				t.Errorf("version = %x, want TLS 1.3", state.Version)
			}
			if len(state.PeerCertificates) == 0 {
				t.Fatal("server saw no client certificate")
			}
			if cn := state.PeerCertificates[0].Subject.CommonName; cn != ReplicationCommonName {
				t.Errorf("client CN = %q, want %q", cn, ReplicationCommonName)
			}
		})
	}
}

func TestTLSHandshakeRejects(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)

	tests := []struct {
		name       string
		server     *tls.Config
		client     *tls.Config
		wantServer bool // the server must refuse
		wantClient bool // the client must refuse
	}{
		{
			name:       "client certificate from another CA",
			server:     serverConfig(f.server, pool(f.ca.Cert)),
			client:     clientConfig("localhost", pool(f.ca.Cert), other.client),
			wantServer: true,
		},
		{
			name:       "no client certificate",
			server:     serverConfig(f.server, pool(f.ca.Cert)),
			client:     clientConfig("localhost", pool(f.ca.Cert), nil),
			wantServer: true,
		},
		{
			name:       "server certificate from another CA",
			server:     serverConfig(other.server, pool(f.ca.Cert)),
			client:     clientConfig("localhost", pool(f.ca.Cert), f.client),
			wantClient: true,
		},
		{
			name:       "server name not in the certificate",
			server:     serverConfig(f.server, pool(f.ca.Cert)),
			client:     clientConfig("db.example.com", pool(f.ca.Cert), f.client),
			wantClient: true,
		},
		{
			name:       "IP address not in the certificate",
			server:     serverConfig(f.server, pool(f.ca.Cert)),
			client:     clientConfig("127.0.0.2", pool(f.ca.Cert), f.client),
			wantClient: true,
		},
		{
			// A client certificate lacks ServerAuth, so it cannot be used
			// to impersonate the server even though the CA signed it.
			name:       "client certificate served as server certificate",
			server:     serverConfig(f.client, pool(f.ca.Cert)),
			client:     clientConfig(ReplicationCommonName, pool(f.ca.Cert), f.client),
			wantClient: true,
		},
		{
			name:       "server certificate presented as client certificate",
			server:     serverConfig(f.server, pool(f.ca.Cert)),
			client:     clientConfig("localhost", pool(f.ca.Cert), f.server),
			wantServer: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, serverErr, clientErr := handshake(t, tt.server, tt.client)
			if tt.wantServer && serverErr == nil {
				t.Error("server accepted the connection")
			}
			if tt.wantClient && clientErr == nil {
				t.Error("client accepted the server")
			}
			if serverErr == nil && clientErr == nil {
				t.Error("handshake succeeded")
			}
		})
	}
}

func TestCACertificate(t *testing.T) {
	f := newFixture(t)
	c := f.ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Error("CA certificate is not marked as a CA")
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen = %d (zero %v), want 0", c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage = %v", c.KeyUsage)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	checkCommon(t, c, "pgward-test-ca")
	if !c.NotAfter.Equal(now.Add(Validity)) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, now.Add(Validity))
	}
}

func TestLeafCertificates(t *testing.T) {
	f := newFixture(t)

	s := f.server.Cert
	checkCommon(t, s, "pgward-test-rw")
	if s.IsCA {
		t.Error("server certificate is a CA")
	}
	if len(s.ExtKeyUsage) != 1 || s.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("server ExtKeyUsage = %v, want ServerAuth only", s.ExtKeyUsage)
	}
	if s.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("server KeyUsage = %v", s.KeyUsage)
	}
	if strings.Join(s.DNSNames, ",") != "localhost,pgward-test-rw.default.svc" {
		t.Errorf("DNSNames = %v", s.DNSNames)
	}
	if len(s.IPAddresses) != 1 || !s.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IPAddresses = %v", s.IPAddresses)
	}
	if !bytes.Equal(s.AuthorityKeyId, f.ca.Cert.SubjectKeyId) || len(s.AuthorityKeyId) == 0 {
		t.Error("server AuthorityKeyId does not name the CA")
	}

	c := f.client.Cert
	if got := c.Subject.String(); got != "CN="+ReplicationCommonName {
		t.Errorf("client subject = %q, want the identity alone", got)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client ExtKeyUsage = %v, want ClientAuth only", c.ExtKeyUsage)
	}
	if len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 {
		t.Error("client certificate carries SANs")
	}

	for _, kp := range []*KeyPair{f.server, f.client} {
		if !kp.Cert.NotAfter.Equal(now.Add(Validity)) {
			t.Errorf("%s NotAfter = %v, want %v", kp.Cert.Subject.CommonName, kp.Cert.NotAfter, now.Add(Validity))
		}
	}
}

func checkCommon(t *testing.T, c *x509.Certificate, cn string) {
	t.Helper()
	if c.Subject.CommonName != cn {
		t.Errorf("CN = %q, want %q", c.Subject.CommonName, cn)
	}
	if len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != Organization {
		t.Errorf("Organization = %v, want [%s]", c.Subject.Organization, Organization)
	}
	if !c.NotBefore.Equal(now.Add(-ClockSkew)) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, now.Add(-ClockSkew))
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > serialBits {
		t.Errorf("serial %v is not a positive %d-bit number", c.SerialNumber, serialBits)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
	}
	if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("SignatureAlgorithm = %v", c.SignatureAlgorithm)
	}
}

// constReader returns the same byte forever, so serials drawn from it are
// predictable.
type constReader byte

func (r constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestSerialComesFromReader(t *testing.T) {
	ca, err := NewCA(constReader(0xab), now, "ca")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("ab", serialBits/8)
	if got := ca.Cert.SerialNumber.Text(16); got != want {
		t.Errorf("serial = %s, want %s", got, want)
	}
	if _, err := NewCA(failingReader{}, now, "ca"); err == nil {
		t.Error("NewCA succeeded without randomness")
	}
	if _, err := NewCA(nil, now, "ca"); err == nil {
		t.Error("NewCA succeeded with a nil reader")
	}
}

func TestNeedsRenewal(t *testing.T) {
	f := newFixture(t)
	notAfter := f.server.Cert.NotAfter
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"just issued", now, false},
		{"before NotBefore", now.Add(-ClockSkew - time.Second), true},
		{"at NotBefore", now.Add(-ClockSkew), false},
		{"a nanosecond before the renewal window", notAfter.Add(-RenewBefore - time.Nanosecond), false},
		{"renewal window opens", notAfter.Add(-RenewBefore), true},
		{"inside the renewal window", notAfter.Add(-time.Hour), true},
		{"at expiry", notAfter, true},
		{"expired", notAfter.Add(time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsRenewal(f.server.Cert, tt.at); got != tt.want {
				t.Errorf("NeedsRenewal at %v = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
	if !NeedsRenewal(nil, now) {
		t.Error("NeedsRenewal(nil) = false")
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)
	tests := []struct {
		name    string
		ca      *x509.Certificate
		cert    *x509.Certificate
		usage   x509.ExtKeyUsage
		at      time.Time
		wantErr bool
	}{
		{"server", f.ca.Cert, f.server.Cert, x509.ExtKeyUsageServerAuth, now, false},
		{"client", f.ca.Cert, f.client.Cert, x509.ExtKeyUsageClientAuth, now, false},
		{"server used as client", f.ca.Cert, f.server.Cert, x509.ExtKeyUsageClientAuth, now, true},
		{"client used as server", f.ca.Cert, f.client.Cert, x509.ExtKeyUsageServerAuth, now, true},
		{"other CA", other.ca.Cert, f.server.Cert, x509.ExtKeyUsageServerAuth, now, true},
		{"expired", f.ca.Cert, f.server.Cert, x509.ExtKeyUsageServerAuth, now.Add(Validity + time.Second), true},
		{"not yet valid", f.ca.Cert, f.server.Cert, x509.ExtKeyUsageServerAuth, now.Add(-time.Hour), true},
		{"missing", f.ca.Cert, nil, x509.ExtKeyUsageServerAuth, now, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.ca, tt.cert, tt.usage, tt.at)
			if (err != nil) != tt.wantErr {
				t.Errorf("Verify = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseKeyPair(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)

	kp, err := ParseKeyPair(f.server.CertPEM, f.server.KeyPEM)
	if err != nil {
		t.Fatalf("ParseKeyPair: %v", err)
	}
	if !kp.Cert.Equal(f.server.Cert) || !kp.Key.Equal(f.server.Key) {
		t.Error("round trip changed the key pair")
	}
	if !bytes.Contains(f.server.KeyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Error("key is not PEM PKCS#8")
	}

	sec1, err := x509.MarshalECPrivateKey(f.client.Key)
	if err != nil {
		t.Fatal(err)
	}
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	if _, err := ParseKeyPair(f.client.CertPEM, sec1PEM); err != nil {
		t.Errorf("SEC 1 key rejected: %v", err)
	}
	chain := append(bytes.Clone(f.server.CertPEM), f.ca.CertPEM...)
	if _, err := ParseKeyPair(chain, f.server.KeyPEM); err != nil {
		t.Errorf("certificate followed by its chain rejected: %v", err)
	}

	bad := []struct {
		name          string
		cert, key     []byte
		wantInMessage string
	}{
		{"key from another pair", f.server.CertPEM, f.client.KeyPEM, "does not match"},
		{"key from another CA's pair", f.server.CertPEM, other.server.KeyPEM, "does not match"},
		{"swapped", f.server.KeyPEM, f.server.CertPEM, "want"},
		{"empty certificate", nil, f.server.KeyPEM, "no PEM"},
		{"empty key", f.server.CertPEM, nil, "no PEM"},
		{"key after certificate", append(bytes.Clone(f.server.CertPEM), f.server.KeyPEM...), f.server.KeyPEM, "unexpected"},
		{"two keys", f.server.CertPEM, append(bytes.Clone(f.server.KeyPEM), f.client.KeyPEM...), "trailing"},
		{"corrupt key", f.server.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), "PKCS#8"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyPair(tt.cert, tt.key)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.wantInMessage) {
				t.Errorf("error %q does not mention %q", err, tt.wantInMessage)
			}
		})
	}
}

func TestIssueRejects(t *testing.T) {
	f := newFixture(t)
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	tests := []struct {
		name  string
		issue func() (*KeyPair, error)
	}{
		{"no SANs", func() (*KeyPair, error) { return f.ca.IssueServer(rand.Reader, now, "s", nil, nil) }},
		{"bad DNS name", func() (*KeyPair, error) {
			return f.ca.IssueServer(rand.Reader, now, "s", []string{"bad name"}, nil)
		}},
		{"path in DNS name", func() (*KeyPair, error) {
			return f.ca.IssueServer(rand.Reader, now, "s", []string{"a/b"}, nil)
		}},
		{"bad IP", func() (*KeyPair, error) { return f.ca.IssueServer(rand.Reader, now, "s", nil, []net.IP{{1, 2}}) }},
		{"empty CN", func() (*KeyPair, error) { return f.ca.IssueClient(rand.Reader, now, "") }},
		{"control character in CN", func() (*KeyPair, error) { return f.ca.IssueClient(rand.Reader, now, "a\nb") }},
		{"bidi override in CN", func() (*KeyPair, error) { return f.ca.IssueClient(rand.Reader, now, "app\u202egnp.") }},
		{"invalid UTF-8 in CN", func() (*KeyPair, error) { return f.ca.IssueClient(rand.Reader, now, "a\xffb") }},
		{"CA expired", func() (*KeyPair, error) {
			return f.ca.IssueServer(rand.Reader, f.ca.Cert.NotAfter, "s", nil, ips)
		}},
		{"CA not yet valid", func() (*KeyPair, error) {
			return f.ca.IssueClient(rand.Reader, now.Add(-time.Hour), "c")
		}},
		{"issuer is not a CA", func() (*KeyPair, error) { return f.server.IssueClient(rand.Reader, now, "c") }},
		{"no randomness", func() (*KeyPair, error) { return f.ca.IssueClient(failingReader{}, now, "c") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if kp, err := tt.issue(); err == nil {
				t.Errorf("issued %q", kp.Cert.Subject.CommonName)
			}
		})
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	f := newFixture(t)
	later := now.Add(Validity - 10*24*time.Hour)
	leaf, err := f.ca.IssueClient(rand.Reader, later, ControllerCommonName)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(f.ca.Cert.NotAfter) {
		t.Errorf("leaf NotAfter = %v, want the CA's %v", leaf.Cert.NotAfter, f.ca.Cert.NotAfter)
	}
	if err := Verify(f.ca.Cert, leaf.Cert, x509.ExtKeyUsageClientAuth, later); err != nil {
		t.Error(err)
	}
}

func TestIssueClientFor(t *testing.T) {
	f := newFixture(t)
	leaf, err := f.ca.IssueClientFor(rand.Reader, now, "app", 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(7 * 24 * time.Hour); !leaf.Cert.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", leaf.Cert.NotAfter, want)
	}
	if err := Verify(f.ca.Cert, leaf.Cert, x509.ExtKeyUsageClientAuth, now); err != nil {
		t.Error(err)
	}
	// Capped at the CA's expiry, as every leaf.
	long, err := f.ca.IssueClientFor(rand.Reader, now, "app", 10*Validity)
	if err != nil {
		t.Fatal(err)
	}
	if !long.Cert.NotAfter.Equal(f.ca.Cert.NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", long.Cert.NotAfter, f.ca.Cert.NotAfter)
	}
	if _, err := f.ca.IssueClientFor(rand.Reader, now, "app", 0); err == nil {
		t.Error("a zero validity was accepted")
	}
}
