package local

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// IssueUserCertificate signs a client certificate for the PostgreSQL role
// user with the cluster's client CA, for pg_hba lines with the cert method
// (CloudNativePG's `kubectl cnpg certificate`). It writes tls.crt, tls.key
// and the server CA's ca.crt into out, a new directory (0700, files 0600),
// and returns a connection string that uses them. pgward's own identities
// cannot be issued: streaming_replica's certificate is replication, the
// controller's commands the instances, the metrics one scrapes them; and
// postgres only with superuser access on, as with its password.
func IssueUserCertificate(l Layout, user, out string, now time.Time) (string, error) {
	c, st, err := loadClusterState(l)
	if err != nil {
		return "", err
	}
	switch {
	case slices.Contains([]string{v1.ReplicationUser, v1.ControllerIdentity, v1.MetricsIdentity}, user):
		return "", fmt.Errorf("%q is one of pgward's own identities: its certificate is pgward's alone", user)
	case user == v1.SuperuserRole && (c.Spec.EnableSuperuserAccess == nil || !*c.Spec.EnableSuperuserAccess):
		return "", fmt.Errorf("a certificate for %q needs enableSuperuserAccess: true", v1.SuperuserRole)
	}
	if err := secrets.ValidateIdentifier("user", user); err != nil {
		return "", err
	}
	names := tlsNamesFor(c)
	store := secrets.DirStore{Root: l.SecretsDir()}
	caData, err := store.Get(names.ClientCA)
	if err != nil {
		return "", fmt.Errorf("reading the client CA %q: %w", names.ClientCA, err)
	}
	if len(caData[keyCAKey]) == 0 {
		return "", fmt.Errorf("the client CA %q is yours (pgward has no key for it): sign the certificate with it yourself", names.ClientCA)
	}
	ca, err := pki.ParseKeyPair(caData[keyCACert], caData[keyCAKey])
	if err != nil {
		return "", fmt.Errorf("client CA %q: %w", names.ClientCA, err)
	}
	serverCA, err := store.Get(names.ServerCA)
	if err != nil {
		return "", fmt.Errorf("reading the server CA %q: %w", names.ServerCA, err)
	}
	kp, err := ca.IssueClient(rand.Reader, now, user)
	if err != nil {
		return "", fmt.Errorf("issuing a certificate for %q: %w", user, err)
	}
	if err := os.Mkdir(out, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s exists: give a new directory, pgward will not overwrite keys", out)
		}
		return "", err
	}
	for name, data := range map[string][]byte{"tls.crt": kp.CertPEM, "tls.key": kp.KeyPEM, "ca.crt": serverCA[keyCACert]} {
		if err := instance.WriteFileAtomic(filepath.Join(out, name), data, 0o600); err != nil {
			return "", err
		}
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	hosts := make([]string, 0, len(st.Instances))
	ports := make([]string, 0, len(st.Instances))
	for _, is := range st.Instances[:c.Spec.Instances] {
		hosts = append(hosts, localhost)
		ports = append(ports, strconv.Itoa(is.Port))
	}
	return fmt.Sprintf("host=%s port=%s user=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s target_session_attrs=read-write",
		strings.Join(hosts, ","), strings.Join(ports, ","), user,
		filepath.Join(abs, "ca.crt"), filepath.Join(abs, "tls.crt"), filepath.Join(abs, "tls.key")), nil
}
