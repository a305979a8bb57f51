package kube

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

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
	var generated *caRef
	if n.ServerCA == n.CA || n.ClientCA == n.CA {
		ca, bundle, st, err := r.ensureCA(ctx, c)
		if err != nil {
			return nil, err
		}
		generated = &caRef{secret: n.CA, cert: bundle, parsed: ca, rotation: st}
	}
	serverCA, err := r.caFor(ctx, c, n.ServerCA, generated)
	if err != nil {
		return nil, err
	}
	clientCA, err := r.caFor(ctx, c, n.ClientCA, generated)
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
	// rotation is the state of a rotation of the generated CA under way:
	// leaves the old CA signed are kept for a while (see caState.keepsOld).
	rotation *caState
}

// ensureCA creates the cluster CA, starts its rotation when it is due
// (see carotation.go), and returns it with the trust bundle (ca.crt) and
// the state of a rotation under way.
func (r *ClusterReconciler) ensureCA(ctx context.Context, c *v1.Cluster) (*pki.KeyPair, []byte, *caState, error) {
	name := build.Secrets(c).CA
	var cur corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &cur)
	var old *pki.KeyPair
	// A request on the Cluster (v1.RotateCAAnnotation) is handled once:
	// its value is recorded in the CA secret with the write that acts on
	// it, and a request made during a rotation is taken as met by it.
	req := c.Annotations[v1.RotateCAAnnotation]
	handled := map[string]string{}
	if req != "" {
		handled[caRotateHandledAnnotation] = req
	}
	switch {
	case err == nil:
		if v, ok := cur.Annotations[caRotateHandledAnnotation]; ok && req == "" {
			handled[caRotateHandledAnnotation] = v
		}
		kp, st, perr := readCAState(&cur)
		if perr == nil && st != nil {
			// A rotation under way: keep the bundle and its state as they are.
			ann := map[string]string{caRotationAnnotation: string(st.phase), caRotationStartedAnnotation: cur.Annotations[caRotationStartedAnnotation]}
			maps.Copy(ann, handled)
			return kp, cur.Data[build.KeyCACert], st, r.ensureCASecret(ctx, c, kp, cur.Data[build.KeyCACert], ann)
		}
		requested := req != "" && req != cur.Annotations[caRotateHandledAnnotation]
		if perr == nil && !requested && !pki.NeedsRenewal(kp.Cert, r.now()) {
			return kp, kp.CertPEM, nil, r.ensureCASecret(ctx, c, kp, kp.CertPEM, handled)
		}
		if perr == nil && r.now().Before(kp.Cert.NotAfter) && !r.now().Before(kp.Cert.NotBefore) {
			old = kp // due (or asked for) but still valid: rotate with an overlap
		}
	case !apierrors.IsNotFound(err):
		return nil, nil, nil, fmt.Errorf("reading secret %s: %w", name, err)
	}
	now := r.now()
	cn := c.Name + " CA"
	if old != nil {
		// A name of its own, so that nothing can take one CA for the other.
		cn += " " + now.UTC().Format("20060102T150405Z")
	}
	kp, err := pki.NewCA(r.rand(), now, cn)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the CA of cluster %s: %w", c.Name, err)
	}
	if old == nil {
		// Nothing valid to overlap with: the CA is replaced at once.
		return kp, kp.CertPEM, nil, r.ensureCASecret(ctx, c, kp, kp.CertPEM, handled)
	}
	bundle := append(certPEM(kp.Cert), certPEM(old.Cert)...)
	ann := map[string]string{caRotationAnnotation: string(caTrust), caRotationStartedAnnotation: now.UTC().Format(time.RFC3339)}
	maps.Copy(ann, handled)
	if err := r.ensureCASecret(ctx, c, kp, bundle, ann); err != nil {
		return nil, nil, nil, err
	}
	log.FromContext(ctx).Info("CA rotation", "step", "the CA is due: a new CA signs from now on; ca.crt trusts it and the old one")
	r.event(c, "CARotation", "the CA is due: a new CA signs from now on, and ca.crt trusts it and the old one")
	return kp, bundle, &caState{phase: caTrust, started: now, old: old.Cert, newFP: fingerprint(kp.Cert)}, nil
}

// caAnnotations are the CA secret's annotations pgward manages.
var caAnnotations = []string{caRotationAnnotation, caRotationStartedAnnotation, caRotateHandledAnnotation}

// ensureCASecret writes the CA secret: kp's key, the trust bundle, and the
// rotation's annotations (nil: none).
func (r *ClusterReconciler) ensureCASecret(ctx context.Context, c *v1.Cluster, kp *pki.KeyPair, bundle []byte, ann map[string]string) error {
	want := build.CASecret(c, kp)
	want.Data[build.KeyCACert] = bundle
	want.Annotations = map[string]string{}
	for _, k := range caAnnotations {
		if v, ok := ann[k]; ok {
			want.Annotations[k] = v
		}
	}
	_, err := ensure(ctx, r.Client, c, want, func(cur, want *corev1.Secret) {
		mutateSecret(cur, want)
		for _, k := range caAnnotations {
			if v, ok := want.Annotations[k]; ok {
				if cur.Annotations == nil {
					cur.Annotations = map[string]string{}
				}
				cur.Annotations[k] = v
			} else {
				delete(cur.Annotations, k)
			}
		}
	})
	return err
}

// caFor returns the CA in secret name: the generated one, or the user's,
// read directly from the API server (user secrets are not in the cache,
// which holds only pgward's own objects).
func (r *ClusterReconciler) caFor(ctx context.Context, c *v1.Cluster, name string, generated *caRef) (*caRef, error) {
	if name == build.Secrets(c).CA && generated != nil {
		return generated, nil
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
// or (for the server) missing a DNS name. During a rotation of the
// generated CA, a leaf of the old CA is kept while it is valid and the
// rotation's step keeps it (its validity ends with the old CA's, so it is
// always "due" then: renewing it under the new CA would outrun the
// instances' trust).
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
		leaf := r.verifiedLeaf(c, &cur)
		kp, perr := leaf.kp, leaf.err
		current := perr == nil && !pki.NeedsRenewal(kp.Cert, r.now()) && leaf.signedBy(ca.parsed.Cert)
		if perr == nil && !current && ca.rotation.keepsOld(dns != nil) && leaf.signedBy(ca.rotation.old) &&
			!r.now().Before(kp.Cert.NotBefore) && r.now().Before(kp.Cert.NotAfter) {
			current = true
		}
		// A ca.crt that changed (a rotation's bundle) is rewritten beside
		// the same certificate: the certificate moves only when it must.
		if current && kp.Cert.Subject.CommonName == cn && slices.Equal(kp.Cert.DNSNames, dns) {
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

// leafMemo is one version of a certificate secret, parsed, and the CAs it
// was checked against. Parsing the key and checking the signature of every
// leaf at every 2 s check was a tenth of a healthy Cluster's reconcile; a
// secret's content changes only with its resourceVersion, and what depends
// on the time (renewal, validity) is still decided at each reconcile.
type leafMemo struct {
	uid, version string
	kp           *pki.KeyPair
	err          error

	mu       sync.Mutex
	verified map[[32]byte]bool // CA certificate's hash -> signature checks
}

// signedBy reports whether the leaf's certificate is signed by ca.
func (m *leafMemo) signedBy(ca *x509.Certificate) bool {
	if m.err != nil || ca == nil {
		return false
	}
	key := sha256.Sum256(ca.Raw)
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, seen := m.verified[key]
	if !seen {
		ok = m.kp.Cert.CheckSignatureFrom(ca) == nil
		m.verified[key] = ok
	}
	return ok
}

// verifiedLeaf returns s's certificate and key parsed, from the memo when
// this version of s was parsed before.
func (r *ClusterReconciler) verifiedLeaf(c *v1.Cluster, s *corev1.Secret) *leafMemo {
	key := c.Namespace + "/" + c.Name
	r.mu.Lock()
	m := r.leaves[key][s.Name]
	r.mu.Unlock()
	if m != nil && m.uid == string(s.UID) && m.version == s.ResourceVersion && s.ResourceVersion != "" {
		return m
	}
	kp, err := pki.ParseKeyPair(s.Data[build.KeyTLSCert], s.Data[build.KeyTLSKey])
	m = &leafMemo{uid: string(s.UID), version: s.ResourceVersion, kp: kp, err: err, verified: map[[32]byte]bool{}}
	r.mu.Lock()
	if r.leaves == nil {
		r.leaves = map[string]map[string]*leafMemo{}
	}
	if r.leaves[key] == nil {
		r.leaves[key] = map[string]*leafMemo{}
	}
	r.leaves[key][s.Name] = m
	r.mu.Unlock()
	return m
}
