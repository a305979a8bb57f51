package local

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/secrets"
)

// URIOptions configure `pgward local uri`.
type URIOptions struct {
	Dir string
	// User is the application owner or "postgres" (superuser access on).
	User string
	// ReadOnly prefers standbys instead of requiring the primary.
	ReadOnly bool
}

// URI returns a libpq connection URI for user that lists every instance,
// so clients follow the primary across failovers without a proxy. It holds
// no password: libpq reads it from the secret's pgpass file (passfile=),
// so the password never appears on a command line.
func URI(o URIOptions) (string, error) {
	l := Layout{Dir: o.Dir}
	st, err := LoadState(l)
	if err != nil {
		return "", err
	}
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return "", err
	}
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return "", err
	}
	cfg, err := loadInstanceConfig(l, st.Instances[0].Name)
	if err != nil {
		return "", err
	}
	var secret, db string
	switch o.User {
	case c.Spec.Bootstrap.Application().Owner:
		secret, db = cfg.Secrets.App, c.Spec.Bootstrap.Application().Database
	case "postgres":
		if cfg.Secrets.Superuser == "" {
			return "", fmt.Errorf("superuser access is off (spec.enableSuperuserAccess); postgres has no password")
		}
		secret, db = cfg.Secrets.Superuser, "postgres"
	default:
		return "", fmt.Errorf("no credentials for user %q: pgward manages %q and, with superuser access, postgres", o.User, c.Spec.Bootstrap.Application().Owner)
	}
	store := secrets.DirStore{Root: l.SecretsDir()}
	if _, err := store.Get(secret); err != nil {
		return "", fmt.Errorf("secret %q: %w", secret, err)
	}
	var hosts []string
	for _, is := range orderForURI(st, c.Spec.Instances, targetPrimary(l, st), o.ReadOnly) {
		hosts = append(hosts, localhost+":"+strconv.Itoa(is.Port))
	}
	q := url.Values{}
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", filepath.Join(l.SecretsDir(), cfg.Secrets.ServerCA, keyCACert))
	q.Set("passfile", filepath.Join(l.SecretsDir(), secret, "pgpass"))
	q.Set("connect_timeout", "3")
	if o.ReadOnly {
		q.Set("target_session_attrs", "prefer-standby")
	} else {
		q.Set("target_session_attrs", "read-write")
	}
	u := url.URL{Scheme: "postgresql", User: url.User(o.User), Host: strings.Join(hosts, ","), Path: "/" + db, RawQuery: q.Encode()}
	return u.String(), nil
}

// orderForURI lists the cluster's first n instances (the state keeps those
// of a larger past size) in instance order, the target primary first for
// read-write (one fewer connection attempt in the common case) and last
// for read-only.
func orderForURI(st *State, n int, primary string, readOnly bool) []InstanceState {
	var first, rest []InstanceState
	for _, is := range st.Instances[:min(n, len(st.Instances))] {
		if is.Name == primary {
			first = append(first, is)
		} else {
			rest = append(rest, is)
		}
	}
	if readOnly {
		return append(rest, first...)
	}
	return append(first, rest...)
}

// connectionInfo is what a local cluster's connection secrets say: every
// instance on loopback as "localhost" (the name the server certificate
// carries), the target primary first; one pgpass line for any port, so it
// serves every instance; TLS verified against the server CA.
func connectionInfo(l Layout, st *State, n int, serverCA string) secrets.ConnectionInfo {
	endpoints := func(readOnly bool) []secrets.Endpoint {
		var eps []secrets.Endpoint
		for _, is := range orderForURI(st, n, targetPrimary(l, st), readOnly) {
			eps = append(eps, secrets.Endpoint{Host: localhost, Port: is.Port})
		}
		return eps
	}
	q := url.Values{}
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", filepath.Join(l.SecretsDir(), serverCA, keyCACert))
	return secrets.ConnectionInfo{Endpoints: endpoints(false), ReadOnly: endpoints(true), PgpassAnyPort: true, Query: q}
}

// AppOwner returns the application owner of the cluster in l.
func AppOwner(l Layout) (string, error) {
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return "", err
	}
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return "", err
	}
	return c.Spec.Bootstrap.Application().Owner, nil
}
