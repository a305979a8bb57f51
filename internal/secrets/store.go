package secrets

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// Store keeps named secrets, each a map of keys to values, like Kubernetes
// Secrets.
type Store interface {
	// Get returns the secret called name. A missing secret is an error
	// wrapping fs.ErrNotExist.
	Get(name string) (map[string][]byte, error)
	// Put creates or replaces the secret called name with exactly data.
	Put(name string, data map[string][]byte) error
}

// MaxSecretSize bounds the total size of a secret's values, as Kubernetes
// does, so a corrupted or hostile directory cannot exhaust memory.
const MaxSecretSize = 1 << 20

const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
	// tempPrefix starts the names of files being written. '+' is not
	// allowed in keys, so a temporary file can never be taken for a key.
	tempPrefix = "+tmp-"
)

var (
	// nameRE is a DNS-1123 subdomain, the rule for Kubernetes object names.
	// It admits no '/', no empty label and so no "." or "..".
	nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// keyRE is the rule for Kubernetes Secret keys.
	keyRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// ValidateName reports whether name is a valid secret name: a DNS-1123
// subdomain of at most 253 characters.
func ValidateName(name string) error {
	if len(name) > 253 || !nameRE.MatchString(name) {
		return fmt.Errorf("secrets: invalid secret name %q (want a DNS-1123 subdomain)", name)
	}
	return nil
}

// ValidateKey reports whether key is a valid key within a secret: letters,
// digits, '.', '_' and '-', at most 253 characters, and not "." or "..".
func ValidateKey(key string) error {
	if len(key) > 253 || !keyRE.MatchString(key) || key == "." || key == ".." {
		return fmt.Errorf("secrets: invalid secret key %q", key)
	}
	return nil
}

// DirStore is a Store on the local file system, used when pgward runs
// without Kubernetes. The secret called N is the directory Root/N (mode
// 0700) holding one file per key (mode 0600).
//
// Each key is replaced atomically (written to a temporary file in the same
// directory, synced, then renamed over the old one), so a reader sees the
// old or the new value and never a torn one. A Put of several keys is not
// atomic as a whole, and concurrent Puts of the same secret must be
// serialised by the caller. All access goes through os.Root, so a symbolic
// link planted in the directory cannot redirect reads or writes outside it.
type DirStore struct {
	// Root is the directory that holds the secrets. Put creates it (0700)
	// if it is missing.
	Root string
}

var _ Replacer = DirStore{}

// Get implements Store.
func (s DirStore) Get(name string) (map[string][]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return nil, fmt.Errorf("secrets: open store: %w", err)
	}
	defer func() { _ = root.Close() }()
	dir, err := root.OpenRoot(name)
	if err != nil {
		return nil, fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	defer func() { _ = dir.Close() }()

	entries, err := fs.ReadDir(dir.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	data := make(map[string][]byte, len(entries))
	total := 0
	for _, e := range entries {
		// Names that are not keys are leftovers of interrupted writes.
		if ValidateKey(e.Name()) != nil {
			continue
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("secrets: secret %q: key %q is not a regular file", name, e.Name())
		}
		value, err := readLimited(dir, e.Name(), MaxSecretSize-total)
		if err != nil {
			return nil, fmt.Errorf("secrets: secret %q: key %q: %w", name, e.Name(), err)
		}
		total += len(value)
		data[e.Name()] = value
	}
	return data, nil
}

// readLimited reads the file key of dir, failing if it exceeds limit bytes.
func readLimited(dir *os.Root, key string, limit int) ([]byte, error) {
	f, err := dir.Open(key)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	value, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(value) > limit {
		return nil, fmt.Errorf("secret is larger than %d bytes", MaxSecretSize)
	}
	return value, nil
}

// Put implements Store. Keys of the existing secret that are not in data
// are removed.
func (s DirStore) Put(name string, data map[string][]byte) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	total := 0
	for key, value := range data {
		if err := ValidateKey(key); err != nil {
			return err
		}
		total += len(value)
	}
	if total > MaxSecretSize {
		return fmt.Errorf("secrets: secret %q is larger than %d bytes", name, MaxSecretSize)
	}

	if err := os.MkdirAll(s.Root, dirMode); err != nil {
		return fmt.Errorf("secrets: create store: %w", err)
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return fmt.Errorf("secrets: open store: %w", err)
	}
	defer func() { _ = root.Close() }()

	created, err := ensureDir(root, name)
	if err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	if created {
		// Make the new directory entry itself durable.
		if err := syncDir(root, "."); err != nil {
			return fmt.Errorf("secrets: secret %q: %w", name, err)
		}
	}
	dir, err := root.OpenRoot(name)
	if err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	defer func() { _ = dir.Close() }()

	for key, value := range data {
		if err := writeAtomic(dir, key, value); err != nil {
			return fmt.Errorf("secrets: secret %q: key %q: %w", name, key, err)
		}
	}
	entries, err := fs.ReadDir(dir.FS(), ".")
	if err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	for _, e := range entries {
		if _, keep := data[e.Name()]; keep {
			continue
		}
		if err := dir.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("secrets: secret %q: remove %q: %w", name, e.Name(), err)
		}
	}
	// Renames and removals are durable only once the directory is synced.
	if err := syncDir(dir, "."); err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	return nil
}

// ensureDir makes name a 0700 directory under root and reports whether it
// had to create it. An existing directory is tightened to 0700 in case
// something loosened it.
func ensureDir(root *os.Root, name string) (bool, error) {
	created := true
	if err := root.Mkdir(name, dirMode); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return false, err
		}
		created = false
	}
	info, err := root.Lstat(name)
	if err != nil {
		return false, err
	}
	if !info.IsDir() {
		return false, errors.New("exists and is not a directory")
	}
	// Mkdir's mode is filtered by the umask; set it exactly.
	if err := root.Chmod(name, dirMode); err != nil {
		return false, err
	}
	return created, nil
}

// writeAtomic replaces the file key of dir with value: it writes a 0600
// temporary file next to it, syncs it and renames it into place, so that a
// crash leaves either the old or the new content. rename(2) replaces a
// symbolic link at key rather than following it.
func writeAtomic(dir *os.Root, key string, value []byte) (err error) {
	// The key is left out of the name so that a long key cannot push it past
	// the file system's limit on name length.
	tmp := tempPrefix + rand.Text()
	f, err := dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = dir.Remove(tmp)
		}
	}()
	// The mode given to OpenFile is filtered by the umask; set it exactly.
	if err = f.Chmod(fileMode); err != nil {
		return err
	}
	if _, err = f.Write(value); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return dir.Rename(tmp, key)
}

// syncDir fsyncs the directory path of root.
func syncDir(root *os.Root, path string) error {
	d, err := root.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// Replace implements Replacer: the new secret is written in full to a
// temporary directory beside the old one, and the two are exchanged with
// one renameat2(RENAME_EXCHANGE), so a reader opening the secret's files
// sees only old keys or only new ones (a rotated password and its pgpass
// line never disagree). The old directory is then removed. The secret must
// exist and be a directory; the exchange does not follow a symbolic link.
func (s DirStore) Replace(name string, data map[string][]byte) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := validateData(data); err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return fmt.Errorf("secrets: open store: %w", err)
	}
	defer func() { _ = root.Close() }()
	if info, err := root.Lstat(name); err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	} else if !info.IsDir() {
		return fmt.Errorf("secrets: secret %q: exists and is not a directory", name)
	}
	tmp := tempPrefix + rand.Text()
	defer func() { _ = root.RemoveAll(tmp) }()
	if err := writeSecretDir(root, tmp, data); err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	// Root is the trusted store path; tmp and name are single components
	// checked above, and renameat2 never follows the last one.
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(s.Root, tmp), unix.AT_FDCWD, filepath.Join(s.Root, name), unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("secrets: secret %q: exchanging with the new version: %w", name, err)
	}
	if err := syncDir(root, "."); err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	return nil
}

// validateData checks keys and the total size of a secret.
func validateData(data map[string][]byte) error {
	total := 0
	for key, value := range data {
		if err := ValidateKey(key); err != nil {
			return err
		}
		total += len(value)
	}
	if total > MaxSecretSize {
		return fmt.Errorf("larger than %d bytes", MaxSecretSize)
	}
	return nil
}

// writeSecretDir creates the directory dir under root holding exactly
// data, every file and the directory itself synced.
func writeSecretDir(root *os.Root, dir string, data map[string][]byte) error {
	if _, err := ensureDir(root, dir); err != nil {
		return err
	}
	d, err := root.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	for key, value := range data {
		if err := writeAtomic(d, key, value); err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
	}
	return syncDir(d, ".")
}
