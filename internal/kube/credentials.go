package kube

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/secrets"
)

// ensureCredentials makes sure the application owner's credentials exist
// and, with superuser access on, postgres's; a generated superuser secret
// is deleted when access is turned off. Secrets the user names in the spec
// are only checked, never written.
func (r *ClusterReconciler) ensureCredentials(ctx context.Context, c *v1.Cluster, tlsm *tlsMaterial) error {
	n := build.Secrets(c)
	init := c.Spec.Bootstrap.Application()
	if init.Secret != nil {
		if err := r.checkUserCredentials(ctx, c, n.App, init.Owner); err != nil {
			return err
		}
	} else if err := r.ensureGeneratedCredentials(ctx, c, n.App, init.Owner, init.Database, tlsm); err != nil {
		return err
	}
	generatedSuper := build.GeneratedSuperuserSecret(c)
	switch {
	case n.Superuser == "":
		return deleteOwned(ctx, r.Client, c, &corev1.Secret{ObjectMeta: objectKey(c, generatedSuper)})
	case c.Spec.SuperuserSecret != nil:
		return r.checkUserCredentials(ctx, c, n.Superuser, "postgres")
	default:
		return r.ensureGeneratedCredentials(ctx, c, n.Superuser, "postgres", "postgres", tlsm)
	}
}

// ensureGeneratedCredentials keeps the password of an existing secret and
// (re)writes only the derived keys, through secrets.EnsureCredentials so
// that both runtimes build connection secrets alike. Clients reach the
// primary through the read-write Service and verify its certificate: the
// secret carries the server CA's certificate (ca.crt) for that. The
// read-only URIs try the replicas' Service first and fall back to the
// read-write one, so they serve reads with no replica too.
func (r *ClusterReconciler) ensureGeneratedCredentials(ctx context.Context, c *v1.Cluster, name, user, db string, tlsm *tlsMaterial) error {
	var cur corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &cur)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading secret %s: %w", name, err)
	}
	store := &oneSecret{name: name}
	if err == nil {
		store.data = maps.Clone(cur.Data)
	}
	q := url.Values{}
	q.Set("sslmode", "verify-full")
	rw := secrets.Endpoint{Host: build.ClientHost(c), Port: build.PostgresPort}
	ro := secrets.Endpoint{Host: build.ROClientHost(c), Port: build.PostgresPort}
	info := secrets.ConnectionInfo{Endpoints: []secrets.Endpoint{rw}, ReadOnly: []secrets.Endpoint{ro, rw}, Query: q}
	if _, _, err := secrets.EnsureCredentials(store, name, user, db, info, r.rand()); err != nil {
		return fmt.Errorf("credentials in %s: %w", name, err)
	}
	data := maps.Clone(store.data)
	data[build.KeyCACert] = tlsm.serverCA
	_, err = ensure(ctx, r.Client, c, build.CredentialsSecret(c, name, data), mutateSecret)
	return err
}

// checkUserCredentials refuses a user's secret that the instance manager
// could not use.
func (r *ClusterReconciler) checkUserCredentials(ctx context.Context, c *v1.Cluster, name, user string) error {
	s, err := r.userSecret(ctx, c, name, "credentials")
	if err != nil {
		return err
	}
	if got := string(s.Data[secrets.KeyUsername]); got != user {
		return fmt.Errorf("credentials secret %s is for user %q, not %q", name, got, user)
	}
	if err := secrets.ValidatePassword(string(s.Data[secrets.KeyPassword])); err != nil {
		// The error names the problem, never the password.
		return fmt.Errorf("credentials secret %s: %w", name, err)
	}
	return nil
}

// oneSecret is a secrets.Store holding at most one secret in memory: the
// current content of a Kubernetes Secret, handed to EnsureCredentials.
type oneSecret struct {
	name string
	data map[string][]byte
}

func (s *oneSecret) Get(name string) (map[string][]byte, error) {
	if name != s.name || s.data == nil {
		return nil, fmt.Errorf("secret %s: %w", name, fs.ErrNotExist)
	}
	return maps.Clone(s.data), nil
}

func (s *oneSecret) Put(name string, data map[string][]byte) error {
	if name != s.name {
		return fmt.Errorf("secret %s is not %s", name, s.name)
	}
	s.data = maps.Clone(data)
	return nil
}

// userSecret reads a secret the Cluster's spec names, directly from the API
// server (user secrets are not in the cache). A secret that pgward made for
// a Cluster (labelled with it, or owned by one) is not the user's to hand
// over: naming another cluster's CA or credentials would have this
// cluster's pods mount them and its Role grant them.
func (r *ClusterReconciler) userSecret(ctx context.Context, c *v1.Cluster, name, what string) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("reading %s secret %s: %w", what, name, err)
	}
	owner := s.Labels[build.ClusterLabel]
	for _, ref := range s.OwnerReferences {
		if ref.Kind == v1.Kind && ref.APIVersion == v1.APIVersion {
			owner = ref.Name
		}
	}
	if owner != "" {
		return nil, fmt.Errorf("%s secret %s belongs to cluster %q (pgward generated it): refer to a secret of your own", what, name, owner)
	}
	return &s, nil
}
