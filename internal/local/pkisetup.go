package local

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// tlsSecrets are the names of the secrets holding the cluster's TLS material.
type tlsSecrets struct {
	ServerCA, ServerTLS, ClientCA, Replication, Controller string
	// Metrics is the scraper's client certificate (pki.MetricsCommonName).
	Metrics string
}

// Keys of TLS secrets, as in Kubernetes' kubernetes.io/tls secrets.
const (
	keyCACert  = "ca.crt"
	keyCAKey   = "ca.key"
	keyTLSCert = "tls.crt"
	keyTLSKey  = "tls.key"
)

// serverDNSNames and serverIPs are what clients verify locally: every
// instance listens on loopback and is reached as "localhost".
var (
	serverDNSNames = []string{"localhost"}
	serverIPs      = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
)

// ensurePKI makes sure every TLS secret exists and is not due for renewal,
// generating what the user did not provide. A user-provided certificate is
// never replaced; a user-provided CA is used to sign only if its key is given.
func ensurePKI(store secrets.Store, c *v1.Cluster, rnd io.Reader, now time.Time) (tlsSecrets, []string, error) {
	names := tlsNamesFor(c)
	var notes []string
	generatedCA := c.Name + "-ca"
	caRenewed := false
	if names.ServerCA == generatedCA || names.ClientCA == generatedCA {
		renewed, err := ensureCA(store, generatedCA, c.Name, rnd, now)
		if err != nil {
			return names, nil, err
		}
		caRenewed = renewed
		if renewed {
			notes = append(notes, "generated CA "+generatedCA)
		}
	}
	leaves := leafSpecs(c, names)
	for _, l := range leaves {
		if l.userGiven {
			if err := checkUserLeaf(store, l.secret, l.ca, now); err != nil {
				return names, nil, err
			}
			continue
		}
		issued, err := ensureLeaf(store, l.secret, l.ca, l.cn, l.server, l.dns, caRenewed, rnd, now)
		if err != nil {
			return names, nil, err
		}
		if issued {
			notes = append(notes, "issued "+l.secret+" ("+l.cn+")")
		}
	}
	return names, notes, nil
}

// tlsNamesFor names the secrets holding c's TLS material: the user's where
// the spec names them, pgward's otherwise.
func tlsNamesFor(c *v1.Cluster) tlsSecrets {
	certs := certificatesOf(c)
	return tlsSecrets{
		ServerCA:    orDefault(certs.ServerCASecret, c.Name+"-ca"),
		ServerTLS:   orDefault(certs.ServerTLSSecret, c.Name+"-server"),
		ClientCA:    orDefault(certs.ClientCASecret, c.Name+"-ca"),
		Replication: orDefault(certs.ReplicationTLSSecret, c.Name+"-replication"),
		Controller:  c.Name + "-controller",
		Metrics:     c.Name + "-metrics",
	}
}

func certificatesOf(c *v1.Cluster) *v1.CertificatesConfiguration {
	if c.Spec.Certificates == nil {
		return &v1.CertificatesConfiguration{}
	}
	return c.Spec.Certificates
}

// leafSpec describes one leaf certificate of the cluster.
type leafSpec struct {
	secret, ca, cn string
	userGiven      bool
	server         bool
	dns            []string
}

// leafSpecs lists the cluster's leaf certificates: the server's, the
// replication client's and the controller's.
func leafSpecs(c *v1.Cluster, names tlsSecrets) []leafSpec {
	certs := certificatesOf(c)
	return []leafSpec{
		{names.ServerTLS, names.ServerCA, c.Name + "-rw", certs.ServerTLSSecret != "", true, append(append([]string{}, serverDNSNames...), certs.ServerAltDNSNames...)},
		{names.Replication, names.ClientCA, pki.ReplicationCommonName, certs.ReplicationTLSSecret != "", false, nil},
		{names.Controller, names.ClientCA, pki.ControllerCommonName, false, false, nil},
		{names.Metrics, names.ClientCA, pki.MetricsCommonName, false, false, nil},
	}
}

// ensureCA creates the cluster CA, or replaces it when nothing can verify
// against it any more (expired, or not valid yet). It reports whether a new
// CA was made, in which case every leaf must be reissued.
//
// A CA that is merely due for renewal is kept: replacing it here would
// break every client holding the old ca.crt at once. The running
// controller renews it with an overlap (see autoRenewCA).
func ensureCA(store secrets.Store, name, cluster string, rnd io.Reader, now time.Time) (bool, error) {
	data, err := store.Get(name)
	if err == nil {
		kp, perr := pki.ParseKeyPair(data[keyCACert], data[keyCAKey])
		if perr != nil {
			return false, fmt.Errorf("secret %q: %w", name, perr)
		}
		if !now.Before(kp.Cert.NotBefore) && now.Before(kp.Cert.NotAfter) {
			return false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading secret %q: %w", name, err)
	}
	ca, err := pki.NewCA(rnd, now, cluster+" CA")
	if err != nil {
		return false, fmt.Errorf("creating CA: %w", err)
	}
	if err := store.Put(name, map[string][]byte{keyCACert: ca.CertPEM, keyCAKey: ca.KeyPEM}); err != nil {
		return false, fmt.Errorf("storing CA: %w", err)
	}
	return true, nil
}

// ensureLeaf issues (or renews) a certificate signed by the CA in caSecret.
func ensureLeaf(store secrets.Store, name, caSecret, cn string, server bool, dns []string, force bool, rnd io.Reader, now time.Time) (bool, error) {
	caData, err := store.Get(caSecret)
	if err != nil {
		return false, fmt.Errorf("reading CA secret %q: %w", caSecret, err)
	}
	if len(caData[keyCAKey]) == 0 {
		return false, fmt.Errorf("CA secret %q has no %s, so pgward cannot issue %q; provide %s yourself or include the CA key", caSecret, keyCAKey, name, name)
	}
	ca, err := pki.ParseKeyPair(caData[keyCACert], caData[keyCAKey])
	if err != nil {
		return false, fmt.Errorf("CA secret %q: %w", caSecret, err)
	}
	if !force {
		if data, err := store.Get(name); err == nil {
			kp, perr := pki.ParseKeyPair(data[keyTLSCert], data[keyTLSKey])
			// Any CA of the bundle will do: during a CA rotation the
			// server certificate stays on the old CA (see rotate-ca).
			if perr == nil && signedByOneOf(kp.Cert, caData[keyCACert]) &&
				(!pki.NeedsRenewal(kp.Cert, now) || heldForRotation(kp.Cert, caData[keyCACert], now)) {
				return false, nil
			}
		}
	}
	var kp *pki.KeyPair
	if server {
		kp, err = ca.IssueServer(rnd, now, cn, dns, serverIPs)
	} else {
		kp, err = ca.IssueClient(rnd, now, cn)
	}
	if err != nil {
		return false, fmt.Errorf("issuing %q: %w", name, err)
	}
	if err := putWhole(store, name, map[string][]byte{keyTLSCert: kp.CertPEM, keyTLSKey: kp.KeyPEM, keyCACert: ca.CertPEM}); err != nil {
		return false, fmt.Errorf("storing %q: %w", name, err)
	}
	return true, nil
}

// checkUserLeaf verifies a user-provided certificate against its CA so a
// mismatch fails at `up` rather than as a TLS error between instances.
func checkUserLeaf(store secrets.Store, name, caSecret string, now time.Time) error {
	data, err := store.Get(name)
	if err != nil {
		return fmt.Errorf("certificate secret %q: %w", name, err)
	}
	kp, err := pki.ParseKeyPair(data[keyTLSCert], data[keyTLSKey])
	if err != nil {
		return fmt.Errorf("certificate secret %q: %w", name, err)
	}
	caData, err := store.Get(caSecret)
	if err != nil {
		return fmt.Errorf("CA secret %q: %w", caSecret, err)
	}
	ca, err := pki.ParseCertificatePEM(caData[keyCACert])
	if err != nil {
		return fmt.Errorf("CA secret %q: %w", caSecret, err)
	}
	if err := kp.Cert.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("certificate secret %q is not signed by CA secret %q: %w", name, caSecret, err)
	}
	if now.After(kp.Cert.NotAfter) {
		return fmt.Errorf("certificate secret %q expired at %s", name, kp.Cert.NotAfter.Format(time.RFC3339))
	}
	return nil
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// signedByOneOf reports whether cert is signed by a certificate of the PEM
// bundle.
func signedByOneOf(cert *x509.Certificate, bundle []byte) bool {
	for _, ca := range bundleCerts(bundle) {
		if cert.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

// bundleCerts parses every certificate of a PEM bundle, skipping what does
// not parse.
func bundleCerts(bundle []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && block.Type == "CERTIFICATE" {
			out = append(out, c)
		}
	}
}

// putWhole writes a secret so that readers never see part of the old
// version and part of the new (a certificate with another one's key): an
// existing secret is replaced as a whole when the store can.
func putWhole(store secrets.Store, name string, data map[string][]byte) error {
	if r, ok := store.(secrets.Replacer); ok {
		if _, err := store.Get(name); err == nil {
			return r.Replace(name, data)
		}
	}
	return store.Put(name, data)
}

// heldForRotation reports whether a leaf due for renewal is left as it is
// because a CA rotation is under way and the leaf is still on an old CA of
// the bundle: reissued now, it would come from the new CA before every
// PostgreSQL trusts it (a client certificate), or before clients hold the
// new ca.crt (the server certificate). The rotation's steps reissue it;
// only within caFinishMargin of its expiry is it renewed regardless.
func heldForRotation(cert *x509.Certificate, bundle []byte, now time.Time) bool {
	cas := bundleCerts(bundle)
	if len(cas) < 2 || cert.CheckSignatureFrom(cas[0]) == nil {
		return false
	}
	return !now.Before(cert.NotBefore) && now.Before(cert.NotAfter.Add(-caFinishMargin))
}
