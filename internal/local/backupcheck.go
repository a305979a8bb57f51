package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/backup"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/secrets"
)

// preflightBackup reaches every object store the manifest names, with the
// credentials the file carries, before anything is written: an unreachable
// endpoint, a refused certificate, wrong keys or a missing bucket fail
// `up` at once, naming the field, instead of a bootstrap that retries. A
// recovery's target is checked against the source's backups too. Stores
// whose secrets are not in the file (already in the state directory) are
// checked when the instance manager first uses them.
func preflightBackup(ctx context.Context, c *v1.Cluster, docs SecretDocs, dir string, owner *Owner) error {
	if err := checkReferencedSecrets(c, preflightStore{docs, dir}); err != nil {
		return err
	}
	type store struct {
		field string
		s     *v1.BarmanObjectStoreConfiguration
		info  bool
	}
	var stores []store
	if b := c.Spec.Backup; b != nil && b.BarmanObjectStore != nil {
		stores = append(stores, store{"spec.backup.barmanObjectStore", b.BarmanObjectStore, false})
	}
	if src := c.Spec.RecoverySource(); src != nil && src.BarmanObjectStore != nil {
		stores = append(stores, store{fmt.Sprintf("spec.externalClusters[%s].barmanObjectStore", src.Name), src.BarmanObjectStore, true})
	}
	if len(stores) == 0 {
		return nil
	}
	bin, err := backup.FindBin()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "pgward-preflight-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	var cred *syscall.Credential
	if os.Geteuid() == 0 && owner != nil {
		cred = owner.Credential()
		if err := os.Chown(tmp, int(owner.UID), int(owner.GID)); err != nil {
			return err
		}
	}
	for i, st := range stores {
		conf, ok, err := preflightConf(st.s, docs, filepath.Join(tmp, fmt.Sprint(i)), owner, cred != nil, st.info)
		if err != nil {
			return fmt.Errorf("%s: %w", st.field, err)
		}
		if !ok {
			continue
		}
		// pgBackRest retries a refused connection for four times its
		// I/O timeout: a plain dial says the same at once.
		ep, _ := v1.ParseEndpointURL(st.s.EndpointURL)
		addr := net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
		conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%s.endpointURL: the object store does not answer at %s: %w", st.field, addr, err)
		}
		_ = conn.Close()
		t := backup.Tool{Bin: bin, Config: conf, Stanza: st.s.ServerName, Cred: cred}
		if err := t.Ping(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.field, err)
		}
		if st.info {
			infos, err := t.Info(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", st.field, err)
			}
			if _, err := backup.ChooseSet(infos, c.Spec.Bootstrap.Recovery.RecoveryTarget); err != nil {
				return fmt.Errorf("spec.bootstrap.recovery: %w", err)
			}
		}
	}
	return nil
}

// preflightConf writes a pgBackRest configuration for s under dir from the
// file's secrets; ok is false when a secret it needs is not in the file.
func preflightConf(s *v1.BarmanObjectStoreConfiguration, docs SecretDocs, dir string, owner *Owner, chown, needKey bool) (string, bool, error) {
	get := func(sel *v1.SecretKeySelector) (string, bool) {
		if sel == nil {
			return "", true
		}
		v, ok := docs[sel.Name][sel.Key]
		return strings.TrimSpace(string(v)), ok
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, err
	}
	files := map[string][]byte{}
	caFile := ""
	if s.EndpointCA != nil {
		ca, ok := docs[s.EndpointCA.Name][s.EndpointCA.Key]
		if !ok {
			return "", false, nil
		}
		caFile = filepath.Join(dir, "ca.crt")
		files[caFile] = ca
	}
	repo, err := backup.RepoFor(s, "", func(v1.SecretKeySelector) string { return caFile })
	if err != nil {
		return "", false, err
	}
	var sec backup.Secrets
	var ok1, ok2, ok3 bool
	sec.AccessKey, ok1 = get(s.S3Credentials.AccessKeyID)
	sec.SecretKey, ok2 = get(s.S3Credentials.SecretAccessKey)
	sec.Region, ok3 = get(s.S3Credentials.Region)
	if !ok1 || !ok2 || !ok3 {
		return "", false, nil
	}
	// Listing needs no key; reading the backups' index does.
	sec.CipherPass = "preflight-listing-only"
	if needKey {
		k, ok := get(s.EncryptionKey)
		if !ok || k == "" {
			return "", false, nil
		}
		sec.CipherPass = k
	}
	conf, err := backup.RenderConfig(repo, sec, backup.Local{PGData: "/nonexistent", SocketDir: dir, Port: 5432, StateDir: dir})
	if err != nil {
		return "", false, err
	}
	path := filepath.Join(dir, "pgbackrest.conf")
	files[path] = conf
	for p, b := range files {
		if err := instance.WriteFileAtomic(p, b, 0o600); err != nil {
			return "", false, err
		}
	}
	if chown {
		for _, p := range []string{dir, caFile, path} {
			if p == "" {
				continue
			}
			if err := os.Chown(p, int(owner.UID), int(owner.GID)); err != nil {
				return "", false, err
			}
		}
	}
	return path, true, nil
}

// preflightStore finds secrets in the manifest file first, then in an
// existing state directory's secrets/ (a cluster being resumed). The
// generated encryption key counts as present: `up` makes it.
type preflightStore struct {
	docs SecretDocs
	dir  string
}

func (p preflightStore) Get(name string) (map[string][]byte, error) {
	if d, ok := p.docs[name]; ok {
		return d, nil
	}
	if strings.HasSuffix(name, v1.BackupKeySuffix) {
		return map[string][]byte{v1.BackupKeyKey: nil}, nil
	}
	if p.dir == "" {
		return nil, fs.ErrNotExist
	}
	return secrets.DirStore{Root: Layout{Dir: p.dir}.SecretsDir()}.Get(name)
}

func (p preflightStore) Put(string, map[string][]byte) error {
	return errors.New("preflight writes nothing")
}
