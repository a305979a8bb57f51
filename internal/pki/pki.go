// Package pki issues the TLS material of a pgward cluster: one self-signed
// certificate authority per cluster, the server certificate PostgreSQL and
// the instance manager present, and the client certificates that
// authenticate streaming replication and the controller.
//
// Everything uses ECDSA P-256, is valid for 90 days and is due for renewal
// 7 days before it expires. The source of randomness and the current time
// are parameters rather than globals, so callers decide where they come from
// and tests can pin them. A leaf never outlives its CA, so replacing the CA
// means reissuing every certificate it signed.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/pgward/pgward/internal/safetext"
)

const (
	// ControllerCommonName is the subject common name of the client
	// certificate the pgward controller presents to instance managers.
	ControllerCommonName = "pgward-controller"

	// ReplicationCommonName is the subject common name of the client
	// certificate standbys use to stream WAL. PostgreSQL's cert method
	// requires it to equal the role name, so it is also the role's name.
	ReplicationCommonName = "streaming_replica"

	// MetricsCommonName is the subject common name of the client
	// certificate that may scrape an instance manager's metrics exporter,
	// and nothing else: the status port refuses it, and so does
	// PostgreSQL (no role of that name, and pg_ident may not map it).
	MetricsCommonName = "pgward-metrics"

	// Organization is the subject organization of CA and server
	// certificates, which makes them recognisable in a chain dump. Client
	// certificates carry the identity (CN) alone.
	Organization = "pgward"

	// Validity is how long an issued certificate is valid.
	Validity = 90 * 24 * time.Hour

	// RenewBefore is how long before its expiry a certificate is replaced.
	RenewBefore = 7 * 24 * time.Hour

	// ClockSkew is how far NotBefore is backdated so that a peer whose clock
	// runs slightly behind ours accepts a certificate issued a moment ago.
	ClockSkew = time.Minute
)

// PEM block types. PKCS#8 ("PRIVATE KEY") is what PostgreSQL, Go and most
// tools read without further hints.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemECKey       = "EC PRIVATE KEY"
)

// serialBits is the size of the random serial numbers; RFC 5280 permits up
// to 20 octets and CA/Browser practice asks for at least 64 random bits.
const serialBits = 128

// KeyPair is a certificate with its private key, both parsed and in PEM.
type KeyPair struct {
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// Key is the private key matching Cert's public key.
	Key *ecdsa.PrivateKey
	// CertPEM is Cert in PEM form ("CERTIFICATE").
	CertPEM []byte
	// KeyPEM is Key in PEM form ("PRIVATE KEY", PKCS#8).
	KeyPEM []byte
}

// ParseKeyPair parses a PEM certificate and a PEM private key (PKCS#8
// "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY") and checks that the key belongs
// to the certificate. The first block of certPEM is the certificate; any
// further blocks must also be certificates (a chain) and are not kept.
// The key must be ECDSA, since that is all this package issues.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("pki: certificate %q has a %T public key, want ECDSA", cert.Subject.CommonName, cert.PublicKey)
	}
	if !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("pki: private key does not match certificate %q", cert.Subject.CommonName)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: bytes.Clone(certPEM),
		KeyPEM:  bytes.Clone(keyPEM),
	}, nil
}

// ParseCertificatePEM parses the first block of data, which must be a PEM
// certificate. It is meant for CA bundles and peers' certificates, whose
// keys we do not hold.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	return parseCertificatePEM(data)
}

func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("pki: no PEM data in certificate")
	}
	if block.Type != pemCertificate {
		return nil, fmt.Errorf("pki: PEM block is %q, want %q", block.Type, pemCertificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse certificate: %w", err)
	}
	// Tolerate a chain after the leaf but nothing else: stray data, and
	// above all a private key pasted into the certificate field, is a
	// mistake worth reporting.
	for len(bytes.TrimSpace(rest)) > 0 {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("pki: trailing data after certificate")
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("pki: unexpected PEM block %q after certificate", block.Type)
		}
	}
	return cert, nil
}

func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("pki: no PEM data in private key")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("pki: trailing data after private key")
	}
	// Error messages here never include the key material or parser details
	// that might quote it.
	switch block.Type {
	case pemPrivateKey:
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("pki: private key is not valid PKCS#8")
		}
		key, ok := parsed.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("pki: private key is %T, want ECDSA", parsed)
		}
		return key, nil
	case pemECKey:
		key, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("pki: private key is not a valid SEC 1 EC key")
		}
		return key, nil
	default:
		return nil, fmt.Errorf("pki: PEM block is %q, want %q", block.Type, pemPrivateKey)
	}
}

// NewCA creates a self-signed certificate authority named commonName. It
// may sign end-entity certificates only (MaxPathLen 0), so a leaked leaf key
// can never mint further certificates.
func NewCA(rnd io.Reader, now time.Time, commonName string) (*KeyPair, error) {
	if err := checkCommonName(commonName); err != nil {
		return nil, err
	}
	tmpl, key, err := newTemplate(rnd, now, commonName)
	if err != nil {
		return nil, err
	}
	tmpl.NotAfter = now.Add(Validity)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLen = 0
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	return sign(rnd, tmpl, tmpl, key, key)
}

// IssueServer uses kp, which must be a CA, to issue a certificate for TLS
// servers (ExtKeyUsageServerAuth) valid for dnsNames and ips. At least one
// of them is required: clients verifying a host name look only at the
// subject alternative names, never at commonName.
func (kp *KeyPair) IssueServer(rnd io.Reader, now time.Time, commonName string, dnsNames []string, ips []net.IP) (*KeyPair, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("pki: a server certificate needs at least one DNS name or IP address")
	}
	for _, name := range dnsNames {
		if err := checkDNSName(name); err != nil {
			return nil, err
		}
	}
	for _, ip := range ips {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("pki: invalid IP address %v", ip)
		}
	}
	tmpl, key, err := kp.leafTemplate(rnd, now, commonName, Validity)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.DNSNames = append([]string(nil), dnsNames...)
	tmpl.IPAddresses = append([]net.IP(nil), ips...)
	return sign(rnd, tmpl, kp.Cert, key, kp.Key)
}

// IssueClient uses kp, which must be a CA, to issue a certificate for TLS
// clients (ExtKeyUsageClientAuth) whose commonName is the identity it
// proves: a PostgreSQL role name such as ReplicationCommonName, or
// ControllerCommonName.
func (kp *KeyPair) IssueClient(rnd io.Reader, now time.Time, commonName string) (*KeyPair, error) {
	return kp.IssueClientFor(rnd, now, commonName, Validity)
}

// IssueClientFor is IssueClient with a validity of the caller's choice
// (still capped at the CA's expiry): users' certificates are short-lived
// because nothing can revoke them.
func (kp *KeyPair) IssueClientFor(rnd io.Reader, now time.Time, commonName string, validity time.Duration) (*KeyPair, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("pki: validity %s is not positive", validity)
	}
	tmpl, key, err := kp.leafTemplate(rnd, now, commonName, validity)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	// The subject is the identity alone: PostgreSQL shows it as client_dn
	// (/CN=streaming_replica), and an identity with extra attributes is
	// harder to audit and to match.
	tmpl.Subject = pkix.Name{CommonName: commonName}
	return sign(rnd, tmpl, kp.Cert, key, kp.Key)
}

// TLSCertificate returns kp in the form crypto/tls serves or presents.
func (kp *KeyPair) TLSCertificate() tls.Certificate {
	return tls.Certificate{
		Certificate: [][]byte{kp.Cert.Raw},
		PrivateKey:  kp.Key,
		Leaf:        kp.Cert,
	}
}

// leafTemplate prepares an end-entity certificate to be signed by kp. It
// refuses to sign with a CA that is not valid at now, and caps the leaf's
// expiry at the CA's: a leaf cannot be trusted past its issuer anyway, and
// would only fail later and more confusingly.
func (kp *KeyPair) leafTemplate(rnd io.Reader, now time.Time, commonName string, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if kp == nil || kp.Cert == nil || kp.Key == nil {
		return nil, nil, errors.New("pki: CA key pair is incomplete")
	}
	ca := kp.Cert
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("pki: %q is not a CA certificate", ca.Subject.CommonName)
	}
	if now.Before(ca.NotBefore) || !now.Before(ca.NotAfter) {
		return nil, nil, fmt.Errorf("pki: CA %q is not valid at %s (valid %s to %s)",
			ca.Subject.CommonName, now.UTC().Format(time.RFC3339),
			ca.NotBefore.UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := checkCommonName(commonName); err != nil {
		return nil, nil, err
	}
	tmpl, key, err := newTemplate(rnd, now, commonName)
	if err != nil {
		return nil, nil, err
	}
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	// ECDSA keys only sign; KeyEncipherment belongs to RSA key transport.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	return tmpl, key, nil
}

// newTemplate generates a key and fills in the fields common to every
// certificate.
func newTemplate(rnd io.Reader, now time.Time, commonName string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if rnd == nil {
		return nil, nil, errors.New("pki: no source of randomness")
	}
	if now.IsZero() {
		return nil, nil, errors.New("pki: no current time")
	}
	serial, err := randomSerial(rnd)
	if err != nil {
		return nil, nil, err
	}
	// Since Go 1.26 GenerateKey draws from the system's secure source
	// whatever reader it is given; rnd still feeds serials and signatures
	// wherever the standard library honours it.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   commonName,
			Organization: []string{Organization},
		},
		NotBefore:          now.Add(-ClockSkew),
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	return tmpl, key, nil
}

// randomSerial returns a positive serial of serialBits random bits.
func randomSerial(rnd io.Reader) (*big.Int, error) {
	buf := make([]byte, serialBits/8)
	for {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return nil, fmt.Errorf("pki: read serial number: %w", err)
		}
		// RFC 5280 requires a positive serial; zero is the one value a
		// 128-bit draw can produce that is not.
		if serial := new(big.Int).SetBytes(buf); serial.Sign() > 0 {
			return serial, nil
		}
	}
}

// sign creates the certificate and re-parses it so that the returned Cert
// is exactly what peers will see.
func sign(rnd io.Reader, tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rnd, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal private key: %w", err)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: keyDER}),
	}, nil
}

// NeedsRenewal reports whether cert should be replaced at now: it is within
// RenewBefore of its expiry, already expired, or not valid yet (which means
// the clock moved backwards or the certificate came from elsewhere; either
// way it cannot be served now). A nil certificate needs issuing.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	if cert == nil {
		return true
	}
	if now.Before(cert.NotBefore) {
		return true
	}
	return !now.Before(cert.NotAfter.Add(-RenewBefore))
}

// Verify checks that cert chains to the trusted ca, is valid at now and
// allows usage (for example x509.ExtKeyUsageServerAuth). It does not check
// host names; use cert.VerifyHostname for that.
func Verify(ca *x509.Certificate, cert *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	if ca == nil || cert == nil {
		return errors.New("pki: verify: missing certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("pki: verify %q: %w", cert.Subject.CommonName, err)
	}
	return nil
}

// maxCommonName is the upper bound RFC 5280 sets for a commonName.
const maxCommonName = 64

func checkCommonName(cn string) error {
	if cn == "" {
		return errors.New("pki: empty common name")
	}
	if len(cn) > maxCommonName {
		return fmt.Errorf("pki: common name %q is longer than %d bytes", cn, maxCommonName)
	}
	if strings.ContainsFunc(cn, safetext.Forbidden) {
		return fmt.Errorf("pki: common name %q contains a control or invisible character", cn)
	}
	return nil
}

// checkDNSName accepts host names as written in a SAN: letters, digits,
// hyphens and dots, optionally starting with a "*." wildcard label.
func checkDNSName(name string) error {
	host := strings.TrimPrefix(name, "*.")
	if host == "" || len(name) > 253 {
		return fmt.Errorf("pki: invalid DNS name %q", name)
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("pki: invalid DNS name %q", name)
		}
		for _, r := range label {
			if !isLDH(r) {
				return fmt.Errorf("pki: invalid DNS name %q", name)
			}
		}
	}
	return nil
}

// isLDH reports whether r is a letter, digit or hyphen, the characters of a
// host name label.
func isLDH(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-':
		return true
	}
	return false
}
