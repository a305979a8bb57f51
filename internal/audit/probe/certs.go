package probe

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"time"

	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/pki"
)

// The keys certificate secrets hold, the same in both runtimes.
const (
	keyCACert  = "ca.crt"
	keyTLSCert = "tls.crt"
	keyTLSKey  = "tls.key"
)

// SecretData reads one secret's data by name: the local state store or the
// Kubernetes API, whichever the adapter has.
type SecretData func(name string) (map[string][]byte, error)

// CA is one CA the cluster trusts: Name is what leaves refer to, ReadFrom
// the secret whose ca.crt holds it (on Kubernetes pgward's own CA is read
// from the controller secret, so the audit never reads the CA's key).
type CA struct {
	Name, ReadFrom string
}

// Leaf is a certificate secret the cluster uses, the CA it must chain to
// and what it must be usable for.
type Leaf struct {
	Secret, CA string
	Usage      x509.ExtKeyUsage
}

// Certificates reads the CAs and leaves. What cannot be read or parsed is a
// FAIL part naming the secret (and key), so the expiry and chain checks
// report it rather than skip it.
func Certificates(read SecretData, cas []CA, leaves []Leaf) ([]audit.Cert, []audit.Part) {
	var certs []audit.Cert
	var problems []audit.Part
	parse := func(secret, key string) *x509.Certificate {
		data, err := read(secret)
		if err != nil {
			problems = append(problems, audit.Part{Subject: secret, Status: audit.Fail, Evidence: err.Error()})
			return nil
		}
		c, err := pki.ParseCertificatePEM(data[key])
		if err != nil {
			problems = append(problems, audit.Part{Subject: secret + "/" + key, Status: audit.Fail, Evidence: err.Error()})
			return nil
		}
		return c
	}
	byName := map[string]*x509.Certificate{}
	for _, ca := range cas {
		if _, ok := byName[ca.Name]; ok {
			continue
		}
		byName[ca.Name] = parse(ca.ReadFrom, keyCACert)
		if byName[ca.Name] != nil {
			certs = append(certs, audit.Cert{Name: ca.ReadFrom + "/" + keyCACert, Cert: byName[ca.Name]})
		}
	}
	for _, lf := range leaves {
		if c := parse(lf.Secret, keyTLSCert); c != nil {
			certs = append(certs, audit.Cert{Name: lf.Secret + "/" + keyTLSCert, Cert: c, CA: byName[lf.CA], Usage: lf.Usage})
		}
	}
	return certs, problems
}

// CertExpiry decides each certificate's validity period at now.
func CertExpiry(certs []audit.Cert, problems []audit.Part, now time.Time) audit.Result {
	parts := problems
	for _, c := range certs {
		parts = append(parts, audit.DecideExpiry(c, now))
	}
	return audit.Combine(parts)
}

// CertChain decides each leaf's chain and usage, and that the key stored
// beside a certificate is its own (a mismatched pair fails only at the
// next TLS handshake otherwise).
func CertChain(read SecretData, certs []audit.Cert, problems []audit.Part) audit.Result {
	parts := problems
	for _, c := range certs {
		if c.CA == nil && c.Usage != 0 {
			parts = append(parts, audit.Part{Subject: c.Name, Status: audit.Fail, Evidence: "its CA could not be read"})
			continue
		}
		p := audit.DecideChain(c)
		if c.CA != nil && p.Status == audit.Pass {
			secret, _, _ := strings.Cut(c.Name, "/")
			if data, err := read(secret); err != nil {
				p = audit.Part{Subject: c.Name, Status: audit.Fail, Evidence: err.Error()}
			} else if _, err := tls.X509KeyPair(data[keyTLSCert], data[keyTLSKey]); err != nil {
				p = audit.Part{Subject: c.Name, Status: audit.Fail, Evidence: "does not match " + keyTLSKey + ": " + err.Error()}
			}
		}
		parts = append(parts, p)
	}
	return audit.Combine(parts)
}
