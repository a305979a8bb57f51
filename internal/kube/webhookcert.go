package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// The operator reads and patches its own webhook configurations (to set the
// CA bundle) and nothing else of admissionregistration.
//
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,resourceNames=pgward-mutating-webhook,verbs=update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,resourceNames=pgward-validating-webhook,verbs=update;patch
//
// Its certificate is a Secret of the operator's namespace, which the
// namespaced install may not otherwise reach. A create cannot be limited to
// a name (the name is not known when it is authorized); reads and updates
// are.
//
// +kubebuilder:rbac:groups="",namespace=pgward-system,resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",namespace=pgward-system,resources=secrets,resourceNames=pgward-webhook-cert,verbs=get;update

// WebhookCerts keeps the admission webhooks' serving certificate: a CA and
// a certificate for the webhook Service, kept in a Secret of the operator's
// namespace (so every replica serves the same one), written to CertDir for
// the webhook server (which reloads it when it changes), and the CA put
// into the webhook configurations' caBundle so the API server trusts it.
// It renews them 7 days before they expire (see package pki).
type WebhookCerts struct {
	// Client must read directly from the API server: it runs before the
	// manager's cache starts.
	Client     client.Client
	Namespace  string
	SecretName string
	// ServiceName is the webhook Service; the certificate is valid for its
	// DNS names, plus Hosts (extra names or IP addresses).
	ServiceName   string
	ClusterDomain string
	Hosts         []string
	CertDir       string
	// MutatingName and ValidatingName are the webhook configurations.
	MutatingName, ValidatingName string
	// Interval is how often Start checks the certificate.
	Interval time.Duration
	Now      func() time.Time
	Rand     io.Reader
}

// Start re-checks the certificate every Interval until ctx ends. It runs on
// every replica, leader or not, since each serves webhooks.
func (w *WebhookCerts) Start(ctx context.Context) error {
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := w.Ensure(ctx); err != nil {
				log.FromContext(ctx).Error(err, "renewing the webhook certificate")
			}
		}
	}
}

// NeedLeaderElection tells the manager to run Start on every replica.
func (w *WebhookCerts) NeedLeaderElection() bool { return false }

// Ensure makes the certificate, the files and the CA bundles current.
func (w *WebhookCerts) Ensure(ctx context.Context) error {
	ca, leaf, err := w.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := w.writeFiles(leaf); err != nil {
		return err
	}
	return w.patchBundles(ctx, ca.CertPEM)
}

func (w *WebhookCerts) dnsNames() ([]string, []net.IP) {
	svc := w.ServiceName
	dns := []string{svc, svc + "." + w.Namespace, svc + "." + w.Namespace + ".svc"}
	if w.ClusterDomain != "" {
		dns = append(dns, svc+"."+w.Namespace+".svc."+w.ClusterDomain)
	}
	var ips []net.IP
	for _, h := range w.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// ensureSecret returns a valid CA and serving certificate, creating or
// renewing them in the Secret. Replicas racing here converge: a create or
// update that loses (AlreadyExists, Conflict) reads the winner's Secret.
func (w *WebhookCerts) ensureSecret(ctx context.Context) (ca, leaf *pki.KeyPair, err error) {
	key := types.NamespacedName{Namespace: w.Namespace, Name: w.SecretName}
	for range 3 {
		var s corev1.Secret
		err := w.Client.Get(ctx, key, &s)
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("reading secret %s: %w", key, err)
		}
		ca, leaf, fresh := w.current(&s)
		if fresh {
			return ca, leaf, nil
		}
		if ca, leaf, err = w.issue(ca); err != nil {
			return nil, nil, err
		}
		s.Namespace, s.Name = w.Namespace, w.SecretName
		s.Type = corev1.SecretTypeTLS
		s.Labels = map[string]string{"app.kubernetes.io/name": build.OperatorName, "app.kubernetes.io/component": "webhook-cert"}
		s.Data = map[string][]byte{
			build.KeyCACert: ca.CertPEM, build.KeyCAKey: ca.KeyPEM,
			build.KeyTLSCert: leaf.CertPEM, build.KeyTLSKey: leaf.KeyPEM,
		}
		if exists {
			err = w.Client.Update(ctx, &s)
		} else {
			err = w.Client.Create(ctx, &s)
		}
		switch {
		case err == nil:
			return ca, leaf, nil
		case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
			continue
		default:
			return nil, nil, fmt.Errorf("writing secret %s: %w", key, err)
		}
	}
	return nil, nil, fmt.Errorf("secret %s keeps changing under us", key)
}

// current parses the Secret and reports whether its certificates can be
// used as they are. A CA that is still good is returned for reuse.
func (w *WebhookCerts) current(s *corev1.Secret) (ca, leaf *pki.KeyPair, fresh bool) {
	now := w.now()
	ca, err := pki.ParseKeyPair(s.Data[build.KeyCACert], s.Data[build.KeyCAKey])
	if err != nil || pki.NeedsRenewal(ca.Cert, now) {
		return nil, nil, false
	}
	leaf, err = pki.ParseKeyPair(s.Data[build.KeyTLSCert], s.Data[build.KeyTLSKey])
	if err != nil || pki.NeedsRenewal(leaf.Cert, now) || leaf.Cert.CheckSignatureFrom(ca.Cert) != nil {
		return ca, nil, false
	}
	dns, ips := w.dnsNames()
	if !slices.Equal(leaf.Cert.DNSNames, dns) || !slices.EqualFunc(leaf.Cert.IPAddresses, ips, net.IP.Equal) {
		return ca, nil, false
	}
	return ca, leaf, true
}

// issue signs a new serving certificate with ca, making a new CA first if
// ca is nil.
func (w *WebhookCerts) issue(ca *pki.KeyPair) (*pki.KeyPair, *pki.KeyPair, error) {
	now := w.now()
	if ca == nil {
		var err error
		if ca, err = pki.NewCA(w.rand(), now, "pgward webhook CA"); err != nil {
			return nil, nil, fmt.Errorf("creating the webhook CA: %w", err)
		}
	}
	dns, ips := w.dnsNames()
	leaf, err := ca.IssueServer(w.rand(), now, w.ServiceName, dns, ips)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing the webhook certificate: %w", err)
	}
	return ca, leaf, nil
}

// writeFiles puts tls.crt and tls.key where the webhook server reads them,
// each replaced atomically and only when it changed.
func (w *WebhookCerts) writeFiles(leaf *pki.KeyPair) error {
	if err := os.MkdirAll(w.CertDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", w.CertDir, err)
	}
	// The key first: the server reloads when the certificate changes, and
	// must then find the matching key.
	for _, f := range []struct {
		name string
		data []byte
	}{{build.KeyTLSKey, leaf.KeyPEM}, {build.KeyTLSCert, leaf.CertPEM}} {
		path := filepath.Join(w.CertDir, f.name)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, f.data) { // #nosec G304 -- our own cert dir
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// patchBundles sets caBundle on every webhook of both configurations. A
// configuration that does not exist (webhooks not installed) is skipped.
func (w *WebhookCerts) patchBundles(ctx context.Context, bundle []byte) error {
	var errs []error
	if w.MutatingName != "" {
		var m admissionv1.MutatingWebhookConfiguration
		errs = append(errs, w.patchConfig(ctx, w.MutatingName, &m, func() bool {
			changed := false
			for i := range m.Webhooks {
				if !bytes.Equal(m.Webhooks[i].ClientConfig.CABundle, bundle) {
					m.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
				}
			}
			return changed
		}))
	}
	if w.ValidatingName != "" {
		var v admissionv1.ValidatingWebhookConfiguration
		errs = append(errs, w.patchConfig(ctx, w.ValidatingName, &v, func() bool {
			changed := false
			for i := range v.Webhooks {
				if !bytes.Equal(v.Webhooks[i].ClientConfig.CABundle, bundle) {
					v.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
				}
			}
			return changed
		}))
	}
	return errors.Join(errs...)
}

func (w *WebhookCerts) patchConfig(ctx context.Context, name string, obj client.Object, set func() bool) error {
	// Every replica runs this at start: two of them patching at once is
	// the normal case, not an error. A conflict means another replica (or
	// kubectl apply) wrote first: read again and see if anything is left
	// to do.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := w.Client.Get(ctx, types.NamespacedName{Name: name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("reading webhook configuration %s: %w", name, err)
		}
		before := obj.DeepCopyObject().(client.Object)
		if !set() {
			return nil
		}
		return w.Client.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return fmt.Errorf("setting the CA bundle of %s: %w", name, err)
	}
	return nil
}

func (w *WebhookCerts) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *WebhookCerts) rand() io.Reader {
	if w.Rand != nil {
		return w.Rand
	}
	return rand.Reader
}
