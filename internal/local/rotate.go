package local

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// RotatePasswordOptions configure `pgward local rotate-password`.
type RotatePasswordOptions struct {
	Dir string
	// User is the application owner or, with superuser access, postgres.
	User string
	// Password is the new password; empty generates one.
	Password string
	// Timeout bounds the wait for the primary to apply it.
	Timeout time.Duration
	Out     io.Writer
}

// RotatePassword gives User a new password: it replaces the user's secret
// as a whole (password, pgpass and URIs together, see DirStore.Replace),
// and the primary's instance manager, which re-reads the password secrets
// every second, sets it on the role: no restart, no reload, and sessions
// already open keep running. It returns once a new connection with the new
// password succeeds, so what it reports is what clients get. The password
// is never printed, logged or passed on a command line.
func RotatePassword(ctx context.Context, o RotatePasswordOptions) error {
	l := Layout{Dir: o.Dir}
	secret, db, err := passwordSecret(l, o.User)
	if err != nil {
		return err
	}
	password := o.Password
	if password == "" {
		if password, err = secrets.GeneratePassword(rand.Reader); err != nil {
			return err
		}
	} else if err := secrets.ValidatePassword(password); err != nil {
		return err
	}
	say := func(s string) { _, _ = fmt.Fprintln(o.Out, s) }
	// Under up's lock: an `up` reads the password and writes the secret's
	// derived keys back, which would otherwise restore the old password.
	unlock, err := lockUp(ctx, l, say)
	if err != nil {
		return err
	}
	defer unlock()
	info, err := localConnectionInfo(l)
	if err != nil {
		return err
	}
	store := secrets.DirStore{Root: l.SecretsDir()}
	if err := secrets.RotatePassword(store, secret, o.User, db, password, info); err != nil {
		return err
	}
	if !controllerRunning(l) {
		say("rotated the password of " + o.User + " in secret " + secret + "; the cluster is not running: the primary sets it when it starts")
		return nil
	}
	start := time.Now()
	if err := waitPasswordWorks(ctx, l, o.User, o.Timeout); err != nil {
		return fmt.Errorf("rotated the password of %s in secret %s, but the primary has not applied it yet (it keeps trying): %w", o.User, secret, err)
	}
	say(fmt.Sprintf("rotated the password of %s in secret %s; the primary applied it in %s, without a restart",
		o.User, secret, time.Since(start).Round(10*time.Millisecond)))
	return nil
}

// passwordSecret names the secret and database of a user whose password
// pgward manages, refusing the others with the reason.
func passwordSecret(l Layout, user string) (secret, db string, err error) {
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return "", "", err
	}
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return "", "", err
	}
	st, err := LoadState(l)
	if err != nil {
		return "", "", err
	}
	cfg, err := loadInstanceConfig(l, st.Instances[0].Name)
	if err != nil {
		return "", "", err
	}
	init := c.Spec.Bootstrap.Application()
	switch user {
	case init.Owner:
		return cfg.Secrets.App, init.Database, nil
	case "postgres":
		if cfg.Secrets.Superuser == "" {
			return "", "", errors.New("superuser access is off (spec.enableSuperuserAccess): postgres has no password to rotate")
		}
		return cfg.Secrets.Superuser, "postgres", nil
	case pki.ReplicationCommonName:
		return "", "", errors.New(pki.ReplicationCommonName + " has no password: it logs in with its client certificate only")
	}
	return "", "", fmt.Errorf("pgward manages no password for %q: only %q and, with superuser access, postgres", user, init.Owner)
}

// localConnectionInfo is the connection information `up` writes into the
// credentials (see (*prepared).connectionInfo).
func localConnectionInfo(l Layout) (secrets.ConnectionInfo, error) {
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return secrets.ConnectionInfo{}, err
	}
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return secrets.ConnectionInfo{}, err
	}
	st, err := LoadState(l)
	if err != nil {
		return secrets.ConnectionInfo{}, err
	}
	cfg, err := loadInstanceConfig(l, st.Instances[0].Name)
	if err != nil {
		return secrets.ConnectionInfo{}, err
	}
	return connectionInfo(l, st, c.Spec.Instances, cfg.Secrets.ServerCA), nil
}

// waitPasswordWorks connects as user the way clients do (the multi-host
// URI, verify-full TLS, the password from the secret's pgpass file) until
// it succeeds. Failed attempts leave an authentication failure in the
// server log, never the password.
func waitPasswordWorks(ctx context.Context, l Layout, user string, timeout time.Duration) error {
	uri, err := URI(URIOptions{Dir: l.Dir, User: user})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, uri)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no connection with the new password within %s: %w", timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
