package local

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// IssueUserCertificate signs a client certificate for the PostgreSQL role
// user with the cluster's client CA, for pg_hba lines with the cert method
// (CloudNativePG's `kubectl cnpg certificate`). It writes tls.crt, tls.key
// and the server CA's ca.crt into out, a new directory (0700, files 0600),
// and returns a connection string that uses them. Which users and
// validities are refused is v1.Cluster.CheckUserCertificate's decision,
// shared with `kubectl pgward certificate`.
func IssueUserCertificate(l Layout, user, out string, validity time.Duration, now time.Time) (string, error) {
	c, st, err := loadClusterState(l)
	if err != nil {
		return "", err
	}
	if err := c.CheckUserCertificate(user, validity); err != nil {
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
	kp, err := ca.IssueClientFor(rand.Reader, now, user, validity)
	if err != nil {
		return "", fmt.Errorf("issuing a certificate for %q: %w", user, err)
	}
	if err := WriteCertificateDir(out, kp.CertPEM, kp.KeyPEM, serverCA[keyCACert]); err != nil {
		return "", err
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

// WriteCertificateDir creates out (0700; it must not exist, so no key is
// ever overwritten or written where someone else prepared a directory) and
// writes tls.crt, tls.key and ca.crt into it, each 0600. Both runtimes'
// certificate verbs write with it.
func WriteCertificateDir(out string, certPEM, keyPEM, caPEM []byte) error {
	if err := os.Mkdir(out, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("--out: %s exists: give a new directory, pgward will not overwrite keys", out)
		}
		return fmt.Errorf("--out: %w", err)
	}
	// Mkdir's mode went through the umask: make sure.
	if err := os.Chmod(out, 0o700); err != nil { // #nosec G302 -- a directory: 0700 is its owner's alone
		return fmt.Errorf("--out: %w", err)
	}
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": caPEM} {
		if err := instance.WriteFileAtomic(filepath.Join(out, name), data, 0o600); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}
