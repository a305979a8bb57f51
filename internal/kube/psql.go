package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/secrets"
)

// This file is the read side of `kubectl pgward psql`: which pod, which
// role, and the credentials and CA to reach it with verify-full. The
// plugin runs psql on the user's machine through a port-forward; it needs
// get on the Cluster, on its pods, create on pods/portforward and get on
// the credentials Secret of the role (the app owner's, or the superuser's).

// PsqlTarget is where and as whom `kubectl pgward psql` connects.
type PsqlTarget struct {
	// Pod is the instance's pod, the port-forward's end.
	Pod string
	// ServerName is the name the instance's certificate is verified
	// against (libpq's host; the connection itself goes to hostaddr).
	ServerName string
	// Login is the role, its password and the database (its String
	// redacts the password).
	Login secrets.Credentials
	// ServerCA verifies the instance's certificate.
	ServerCA []byte
}

// PsqlChoice is the pure part of PsqlTarget: the pod, the role, the
// database and the Secret holding the role's password.
type PsqlChoice struct {
	Pod, User, DBName, Secret string
}

// ChoosePsql decides where and as whom psql connects to c: the primary
// (or instance, which must be one of c's instances), as the application
// owner, or as postgres with superuser, which c must allow.
func ChoosePsql(c *v1.Cluster, instance string, superuser bool) (PsqlChoice, error) {
	n := build.Secrets(c)
	app := c.Spec.Bootstrap.Application()
	ch := PsqlChoice{User: app.Owner, DBName: app.Database, Secret: n.App}
	if superuser {
		if !build.SuperuserAccess(c) {
			return PsqlChoice{}, fmt.Errorf("--superuser: cluster %s has no superuser access (spec.enableSuperuserAccess is not true): connect as the app owner, or enable it", c.Name)
		}
		ch = PsqlChoice{User: v1.SuperuserRole, DBName: v1.SuperuserRole, Secret: n.Superuser}
	}
	names := c.Status.InstanceNames
	if len(names) == 0 {
		names = build.InstanceNames(c)
	}
	switch {
	case instance != "":
		if !slices.Contains(names, instance) {
			return PsqlChoice{}, fmt.Errorf("instance %q is not an instance of cluster %s (%v)", instance, c.Name, names)
		}
		ch.Pod = instance
	case c.Status.CurrentPrimary == "":
		return PsqlChoice{}, fmt.Errorf("cluster %s has no primary yet (kubectl pgward status %s shows why): name an instance", c.Name, c.Name)
	default:
		ch.Pod = c.Status.CurrentPrimary
	}
	return ch, nil
}

// ResolvePsql reads the Cluster and the role's credentials Secret. The CA
// comes from that Secret's ca.crt (the operator writes it there for
// verify-full clients); a user's credentials Secret may lack it, and then
// the server CA's Secret is read.
func ResolvePsql(ctx context.Context, cl client.Client, key types.NamespacedName, instance string, superuser bool) (*PsqlTarget, error) {
	var c v1.Cluster
	if err := cl.Get(ctx, key, &c); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", key, err)
	}
	ch, err := ChoosePsql(&c, instance, superuser)
	if err != nil {
		return nil, err
	}
	var s corev1.Secret
	if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: ch.Secret}, &s); err != nil {
		return nil, fmt.Errorf("reading the credentials of %q (secret %s): %w", ch.User, ch.Secret, err)
	}
	if u := string(s.Data[secrets.KeyUsername]); u != ch.User {
		return nil, fmt.Errorf("secret %s is for user %q, not %q", ch.Secret, u, ch.User)
	}
	password := string(s.Data[secrets.KeyPassword])
	if err := secrets.ValidatePassword(password); err != nil {
		return nil, fmt.Errorf("secret %s: %w", ch.Secret, err)
	}
	ca := s.Data[build.KeyCACert]
	if len(ca) == 0 {
		name := build.Secrets(&c).ServerCA
		var caSecret corev1.Secret
		if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &caSecret); err != nil {
			return nil, fmt.Errorf("secret %s has no %s, and reading the server CA (secret %s): %w", ch.Secret, build.KeyCACert, name, err)
		}
		ca = caSecret.Data[build.KeyCACert]
	}
	if len(ca) == 0 {
		return nil, errors.New("no server CA certificate found: cannot verify the server")
	}
	return &PsqlTarget{
		Pod:        ch.Pod,
		ServerName: build.ServerName(&c),
		Login:      secrets.Credentials{Username: ch.User, Password: password, DBName: ch.DBName},
		ServerCA:   ca,
	}, nil
}
