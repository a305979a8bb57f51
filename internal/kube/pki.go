package kube

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// tlsMaterial is what the reconciler learned while making sure the
// cluster's certificates exist.
type tlsMaterial struct {
	serverCA []byte // PEM of the CA that signed the server certificate
	client   *ClientTLS
}

// ensurePKI makes sure every certificate of the cluster exists, chains to
// its CA, carries the right names and is not due for renewal. It generates
// what the user did not provide (the cluster CA, the server, replication,
// operator and metrics scraper certificates) and only checks what the user did: a
// user-provided Secret is never written.
func (r *ClusterReconciler) ensurePKI(ctx context.Context, c *v1.Cluster) (*tlsMaterial, error) {
	n := build.Secrets(c)
	var generatedCA *pki.KeyPair
	if n.ServerCA == n.CA || n.ClientCA == n.CA {
		ca, err := r.ensureCA(ctx, c)
		if err != nil {
			return nil, err
		}
		generatedCA = ca
	}
	serverCA, err := r.caFor(ctx, c, n.ServerCA, generatedCA)
	if err != nil {
		return nil, err
	}
	clientCA, err := r.caFor(ctx, c, n.ClientCA, generatedCA)
	if err != nil {
		return nil, err
	}
	serverNames := build.ServerDNSNames(c, r.Options.ClusterDomain)
	if n.ServerTLS == c.Name+"-server" {
		if _, err := r.ensureLeaf(ctx, c, n.ServerTLS, "server", serverCA, build.ServerName(c), serverNames); err != nil {
			return nil, err
		}
	} else if err := r.checkUserLeaf(ctx, c, n.ServerTLS, serverCA); err != nil {
		return nil, err
	}
	if n.Replication == c.Name+"-replication" {
		if _, err := r.ensureLeaf(ctx, c, n.Replication, "replication", clientCA, pki.ReplicationCommonName, nil); err != nil {
			return nil, err
		}
	} else if err := r.checkUserLeaf(ctx, c, n.Replication, clientCA); err != nil {
		return nil, err
	}
	ctl, err := r.ensureLeaf(ctx, c, n.Controller, "controller", clientCA, pki.ControllerCommonName, nil)
	if err != nil {
		return nil, err
	}
	// The scraper's certificate: the metrics exporters admit only it.
	if _, err := r.ensureLeaf(ctx, c, n.Metrics, "metrics", clientCA, pki.MetricsCommonName, nil); err != nil {
		return nil, err
	}
	return &tlsMaterial{
		serverCA: serverCA.cert,
		client:   &ClientTLS{ServerCA: serverCA.cert, ClientCert: ctl.CertPEM, ClientKey: ctl.KeyPEM},
	}, nil
}

// caRef is a CA as read from its secret; key is nil when the user kept the
// CA's key to themselves.
type caRef struct {
	secret string
	cert   []byte
	parsed *pki.KeyPair // nil without a key
}

// ensureCA creates the cluster CA, renews it when it is due, and returns it.
func (r *ClusterReconciler) ensureCA(ctx context.Context, c *v1.Cluster) (*pki.KeyPair, error) {
	name := build.Secrets(c).CA
	var cur corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &cur)
	switch {
	case err == nil:
		kp, perr := pki.ParseKeyPair(cur.Data[build.KeyCACert], cur.Data[build.KeyCAKey])
		if perr == nil && !pki.NeedsRenewal(kp.Cert, r.now()) {
			if _, err := ensure(ctx, r.Client, c, build.CASecret(c, kp), mutateSecret); err != nil {
				return nil, err
			}
			return kp, nil
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading secret %s: %w", name, err)
	}
	kp, err := pki.NewCA(r.rand(), r.now(), c.Name+" CA")
	if err != nil {
		return nil, fmt.Errorf("creating the CA of cluster %s: %w", c.Name, err)
	}
	if _, err := ensure(ctx, r.Client, c, build.CASecret(c, kp), mutateSecret); err != nil {
		return nil, err
	}
	return kp, nil
}

// caFor returns the CA in secret name: the generated one, or the user's,
// read directly from the API server (user secrets are not in the cache,
// which holds only pgward's own objects).
func (r *ClusterReconciler) caFor(ctx context.Context, c *v1.Cluster, name string, generated *pki.KeyPair) (*caRef, error) {
	if name == build.Secrets(c).CA && generated != nil {
		return &caRef{secret: name, cert: generated.CertPEM, parsed: generated}, nil
	}
	s, err := r.userSecret(ctx, c, name, "CA")
	if err != nil {
		return nil, err
	}
	cert := s.Data[build.KeyCACert]
	if _, err := pki.ParseCertificatePEM(cert); err != nil {
		return nil, fmt.Errorf("CA secret %s: %s: %w", name, build.KeyCACert, err)
	}
	ref := &caRef{secret: name, cert: cert}
	if key := s.Data[build.KeyCAKey]; len(key) > 0 {
		kp, err := pki.ParseKeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("CA secret %s: %w", name, err)
		}
		ref.parsed = kp
	}
	return ref, nil
}

// ensureLeaf issues (or reissues) the certificate in secret name, signed by
// ca: when it is missing, unparsable, due for renewal, signed by another CA,
// or (for the server) missing a DNS name.
func (r *ClusterReconciler) ensureLeaf(ctx context.Context, c *v1.Cluster, name, component string, ca *caRef, cn string, dns []string) (*pki.KeyPair, error) {
	if ca.parsed == nil {
		return nil, fmt.Errorf("CA secret %s has no %s, so pgward cannot issue %s; provide it yourself or include the CA key",
			ca.secret, build.KeyCAKey, name)
	}
	var cur corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &cur)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading secret %s: %w", name, err)
	}
	if err == nil {
		kp, perr := pki.ParseKeyPair(cur.Data[build.KeyTLSCert], cur.Data[build.KeyTLSKey])
		if perr == nil && !pki.NeedsRenewal(kp.Cert, r.now()) && kp.Cert.CheckSignatureFrom(ca.parsed.Cert) == nil &&
			kp.Cert.Subject.CommonName == cn && slices.Equal(kp.Cert.DNSNames, dns) &&
			bytes.Equal(cur.Data[build.KeyCACert], ca.cert) {
			if _, err := ensure(ctx, r.Client, c, build.TLSSecret(c, name, component, kp, ca.cert), mutateSecret); err != nil {
				return nil, err
			}
			return kp, nil
		}
	}
	var kp *pki.KeyPair
	if dns != nil {
		kp, err = ca.parsed.IssueServer(r.rand(), r.now(), cn, dns, nil)
	} else {
		kp, err = ca.parsed.IssueClient(r.rand(), r.now(), cn)
	}
	if err != nil {
		return nil, fmt.Errorf("issuing %s: %w", name, err)
	}
	if _, err := ensure(ctx, r.Client, c, build.TLSSecret(c, name, component, kp, ca.cert), mutateSecret); err != nil {
		return nil, err
	}
	return kp, nil
}

// checkUserLeaf verifies a user-provided certificate against its CA, so a
// mismatch shows in the Cluster's status rather than as TLS errors between
// instances.
func (r *ClusterReconciler) checkUserLeaf(ctx context.Context, c *v1.Cluster, name string, ca *caRef) error {
	s, err := r.userSecret(ctx, c, name, "certificate")
	if err != nil {
		return err
	}
	kp, err := pki.ParseKeyPair(s.Data[build.KeyTLSCert], s.Data[build.KeyTLSKey])
	if err != nil {
		return fmt.Errorf("certificate secret %s: %w", name, err)
	}
	caCert, err := pki.ParseCertificatePEM(ca.cert)
	if err != nil {
		return fmt.Errorf("CA secret %s: %w", ca.secret, err)
	}
	if err := kp.Cert.CheckSignatureFrom(caCert); err != nil {
		return fmt.Errorf("certificate secret %s is not signed by CA secret %s: %w", name, ca.secret, err)
	}
	if r.now().After(kp.Cert.NotAfter) {
		return fmt.Errorf("certificate secret %s expired at %s", name, kp.Cert.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return nil
}

// mutateSecret copies a Secret's managed content. A Secret's type cannot
// change, so it is only set on creation.
func mutateSecret(cur, want *corev1.Secret) {
	cur.Data = want.Data
	cur.StringData = nil
}
