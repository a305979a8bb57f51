package kube

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// This file is `kubectl pgward certificate`: a client certificate for a
// PostgreSQL user, signed by the cluster's client CA, for `cert` pg_hba
// lines. It runs on the user's machine: the key is generated in the
// plugin's memory and written only where the user asked (a new directory,
// or one Secret). Signing needs the client CA's key, so the user needs get
// on the Secret holding it: whoever can read it can sign a certificate for
// any role a cert line admits, i.e. it is database-administrator power
// (docs/security.md).

// UserCertificate is a client certificate issued for a user of a Cluster.
type UserCertificate struct {
	Cluster *v1.Cluster
	User    string
	// Cert is the certificate and its key (never logged).
	Cert *pki.KeyPair
	// ServerCA verifies the instances' certificates (for verify-full).
	ServerCA []byte
}

// IssueUserCertificate checks user and validity with the decision both
// runtimes share (v1.Cluster.CheckUserCertificate), reads the cluster's
// client CA and server CA, and signs a certificate with a new key.
func IssueUserCertificate(ctx context.Context, cl client.Client, key types.NamespacedName, user string, validity time.Duration, now time.Time) (*UserCertificate, error) {
	var c v1.Cluster
	if err := cl.Get(ctx, key, &c); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", key, err)
	}
	if err := c.CheckUserCertificate(user, validity); err != nil {
		return nil, err
	}
	n := build.Secrets(&c)
	var caSecret corev1.Secret
	if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.ClientCA}, &caSecret); err != nil {
		return nil, fmt.Errorf("reading the client CA (secret %s): %w", n.ClientCA, err)
	}
	if len(caSecret.Data[build.KeyCAKey]) == 0 {
		return nil, fmt.Errorf("the client CA (secret %s, spec.certificates.clientCASecret) is yours: pgward has no key for it, sign the certificate with it yourself", n.ClientCA)
	}
	ca, err := pki.ParseKeyPair(caSecret.Data[build.KeyCACert], caSecret.Data[build.KeyCAKey])
	if err != nil {
		return nil, fmt.Errorf("client CA (secret %s): %w", n.ClientCA, err)
	}
	serverCA := caSecret.Data[build.KeyCACert]
	if n.ServerCA != n.ClientCA {
		var s corev1.Secret
		if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.ServerCA}, &s); err != nil {
			return nil, fmt.Errorf("reading the server CA (secret %s, spec.certificates.serverCASecret): %w", n.ServerCA, err)
		}
		serverCA = s.Data[build.KeyCACert]
	}
	if len(serverCA) == 0 {
		return nil, fmt.Errorf("the server CA (secret %s) has no %s", n.ServerCA, build.KeyCACert)
	}
	kp, err := ca.IssueClientFor(rand.Reader, now, user, validity)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %q: %w", user, err)
	}
	return &UserCertificate{Cluster: &c, User: user, Cert: kp, ServerCA: serverCA}, nil
}

// CheckUserCertificateSecretName refuses a --secret that is not a Secret
// name, or that is one of the cluster's own Secrets (which would then hold
// a user's key, or be fought over with the operator).
func CheckUserCertificateSecretName(c *v1.Cluster, name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("--secret %q: %s", name, errs[0])
	}
	n := build.Secrets(c)
	own := []string{n.CA, n.ServerCA, n.ServerTLS, n.ClientCA, n.Replication, n.Controller, n.Metrics, n.App, n.Superuser, build.GeneratedSuperuserSecret(c)}
	if slices.Contains(own, name) {
		return fmt.Errorf("--secret %q is one of the cluster's own secrets: name a new one", name)
	}
	return nil
}

// StoreUserCertificate writes uc into the kubernetes.io/tls Secret name in
// the Cluster's namespace, labelled for and owned by the Cluster. An
// existing Secret is replaced only if pgward wrote it for this Cluster (a
// renewal); any other is refused, never overwritten. It returns whether
// the Secret was created (false: renewed).
func StoreUserCertificate(ctx context.Context, cl client.Client, uc *UserCertificate, name string) (bool, error) {
	c := uc.Cluster
	if err := CheckUserCertificateSecretName(c, name); err != nil {
		return false, err
	}
	want := build.UserCertificateSecret(c, name, uc.User, uc.Cert, uc.ServerCA)
	var cur corev1.Secret
	err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := cl.Create(ctx, want); err != nil {
			return false, fmt.Errorf("creating secret %s: %w", name, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading secret %s: %w", name, err)
	case !build.IsUserCertificateSecret(c, &cur):
		return false, fmt.Errorf("--secret: secret %s exists and pgward did not write it for cluster %s: refusing to overwrite it, name a new one", name, c.Name)
	}
	// A renewal: the read resourceVersion makes a concurrent change fail
	// rather than be lost.
	want.ResourceVersion = cur.ResourceVersion
	if err := cl.Update(ctx, want); err != nil {
		return false, fmt.Errorf("replacing secret %s: %w", name, err)
	}
	return false, nil
}
