package local

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/customqueries"
	"github.com/pgward/pgward/internal/secrets"
)

// SecretDocs are the Secrets a manifest file carries beside its Cluster,
// by name: what `kubectl apply` would create next to it.
type SecretDocs map[string]map[string][]byte

// SplitManifest separates a file's Cluster from the Secrets beside it (as
// CloudNativePG's samples and `make objectstore-up`'s secret file are
// written). Anything else is refused: locally nothing would apply it.
func SplitManifest(data []byte) ([]byte, SecretDocs, error) {
	cluster, secretDocs, cms, err := SplitManifestWithConfigMaps(data)
	if err == nil && len(cms) > 0 {
		err = errors.New("the file holds ConfigMaps: use SplitManifestWithConfigMaps")
	}
	return cluster, secretDocs, err
}

// SplitManifestWithConfigMaps is SplitManifest that also returns the
// ConfigMaps of the file (spec.monitoring's custom queries), by name.
func SplitManifestWithConfigMaps(data []byte) ([]byte, SecretDocs, SecretDocs, error) {
	docs := v1.SplitDocuments(data)
	var cluster []byte
	out := SecretDocs{}
	cms := SecretDocs{}
	for i, doc := range docs {
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, nil, nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		switch {
		case tm.Kind == "Secret" && tm.APIVersion == "v1":
			name, data, err := parseSecretDoc(doc)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("document %d (Secret): %w", i+1, err)
			}
			if _, dup := out[name]; dup {
				return nil, nil, nil, fmt.Errorf("document %d: a second Secret %q", i+1, name)
			}
			out[name] = data
		case tm.Kind == "ConfigMap" && tm.APIVersion == "v1":
			name, data, err := ParseConfigMapDoc(doc)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("document %d (ConfigMap): %w", i+1, err)
			}
			if _, dup := cms[name]; dup {
				return nil, nil, nil, fmt.Errorf("document %d: a second ConfigMap %q", i+1, name)
			}
			cms[name] = data
		case tm.Kind == v1.DatabaseKind:
			// Read by DatabaseDocs: the file's declared databases.
			continue
		case cluster == nil && (tm.Kind == v1.Kind || tm.Kind == ""):
			cluster = doc
		case tm.Kind == v1.Kind:
			return nil, nil, nil, fmt.Errorf("document %d: a second Cluster: give one per file", i+1)
		default:
			return nil, nil, nil, fmt.Errorf("document %d: kind %q: the local runtime reads a Cluster, its Secrets, ConfigMaps and Databases only", i+1, tm.Kind)
		}
	}
	if cluster == nil {
		return nil, nil, nil, errors.New("no Cluster in the file")
	}
	return cluster, out, cms, nil
}

// ParseConfigMapDoc reads a ConfigMap's name and data (binaryData too),
// strictly, with the names and keys a local store accepts.
func ParseConfigMapDoc(doc []byte) (string, map[string][]byte, error) {
	var cm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"metadata"`
		Data       map[string]string `json:"data,omitempty"`
		BinaryData map[string]string `json:"binaryData,omitempty"`
		Immutable  *bool             `json:"immutable,omitempty"`
	}
	if err := yaml.UnmarshalStrict(doc, &cm); err != nil {
		return "", nil, err
	}
	if err := secrets.ValidateName(cm.Metadata.Name); err != nil {
		return "", nil, err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return "", nil, fmt.Errorf("%q: binaryData[%s] is not base64", cm.Metadata.Name, k)
		}
		data[k] = b
	}
	for k := range data {
		if err := secrets.ValidateKey(k); err != nil {
			return "", nil, fmt.Errorf("%q: %w", cm.Metadata.Name, err)
		}
	}
	return cm.Metadata.Name, data, nil
}

// CustomQuerySources resolves spec.monitoring's references; see
// customqueries.Sources.
func CustomQuerySources(c *v1.Cluster, get func(kind, name string) (map[string][]byte, error)) ([]customqueries.Source, error) {
	return customqueries.Sources(c, get)
}

func parseSecretDoc(doc []byte) (string, map[string][]byte, error) {
	var s struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace,omitempty"`
			Labels    map[string]string `json:"labels,omitempty"`
		} `json:"metadata"`
		Type       string            `json:"type,omitempty"`
		Data       map[string]string `json:"data,omitempty"`
		StringData map[string]string `json:"stringData,omitempty"`
	}
	if err := yaml.UnmarshalStrict(doc, &s); err != nil {
		return "", nil, err
	}
	if err := secrets.ValidateName(s.Metadata.Name); err != nil {
		return "", nil, err
	}
	data := map[string][]byte{}
	for k, v := range s.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return "", nil, fmt.Errorf("%q: data[%s] is not base64", s.Metadata.Name, k)
		}
		data[k] = b
	}
	for k, v := range s.StringData {
		data[k] = []byte(v)
	}
	for k := range data {
		if err := secrets.ValidateKey(k); err != nil {
			return "", nil, fmt.Errorf("%q: %w", s.Metadata.Name, err)
		}
	}
	return s.Metadata.Name, data, nil
}

// checkSecretDocs refuses Secrets in the file that would replace one
// pgward generates (a CA, a certificate, the credentials): locally the file
// is applied over the state directory.
func checkSecretDocs(c *v1.Cluster, docs SecretDocs) error {
	generated := v1.GeneratedSecretNames(c.Name)
	for name := range docs {
		if slices.Contains(generated, name) {
			return fmt.Errorf("the file's Secret %q: pgward generates that secret for cluster %q; name yours differently", name, c.Name)
		}
	}
	return nil
}

// checkReferencedSecrets makes sure every secret key the backup
// configuration and the managed roles name exists, naming the field that
// refers to a missing one.
func checkReferencedSecrets(c *v1.Cluster, store secrets.Store) error {
	var errs []error
	for _, u := range append(append(c.BackupSecretKeys(), c.ManagedPasswordSecrets()...), c.LDAPSecretKeys()...) {
		data, err := store.Get(u.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: no secret %q (add it to the manifest file as a Secret, or to the state directory's secrets/)", u.Field, u.Name))
			continue
		}
		if _, ok := data[u.Key]; !ok {
			errs = append(errs, fmt.Errorf("%s: secret %q has no key %q", u.Field, u.Name, u.Key))
			continue
		}
		if u.Field == "spec.postgresql.ldap.bindSearchAuth.bindPassword" {
			// It goes into pg_hba.conf, quoted: refused here, before
			// anything starts, if it could leave its quotes or line (the
			// error names the field, never the value).
			pw := strings.TrimRight(string(data[u.Key]), "\n")
			if pw == "" {
				errs = append(errs, fmt.Errorf("%s: secret %q: key %q is empty", u.Field, u.Name, u.Key))
			} else if err := v1.CheckLDAPValue(pw); err != nil {
				errs = append(errs, fmt.Errorf("%s: secret %q: the password %w", u.Field, u.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ensureBackupKey generates the passphrase that encrypts the cluster's
// backups when the manifest names none, once: a new one would make the
// backups already in the store unreadable.
func ensureBackupKey(c *v1.Cluster, store secrets.Store, rnd io.Reader) (bool, error) {
	b := c.Spec.Backup
	if b == nil || b.BarmanObjectStore == nil || b.BarmanObjectStore.EncryptionKey == nil ||
		b.BarmanObjectStore.EncryptionKey.Name != c.Name+v1.BackupKeySuffix {
		return false, nil
	}
	if _, err := store.Get(c.Name + v1.BackupKeySuffix); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(rnd, key); err != nil {
		return false, err
	}
	return true, store.Put(c.Name+v1.BackupKeySuffix, map[string][]byte{v1.BackupKeyKey: []byte(hex.EncodeToString(key))})
}

// bootstrapSQLFile holds the SQL of bootstrap.initdb's references (0600).
const bootstrapSQLFile = "bootstrap-sql.json"

// resolveSQLRefs reads bootstrap.initdb's SQL references: Secrets from the
// file, else from the state directory's store (when store is not nil),
// ConfigMaps from the file only. Errors name the reference's field.
func resolveSQLRefs(c *v1.Cluster, docs, cms SecretDocs, store secrets.Store) (*v1.ResolvedSQL, error) {
	return c.Spec.ResolveSQLRefs(func(secret bool, name, key string) (string, error) {
		if !secret {
			data, ok := cms[name]
			if !ok {
				return "", fmt.Errorf("no ConfigMap %q in the manifest file (locally, ConfigMaps come from the file, beside the Cluster)", name)
			}
			v, ok := data[key]
			if !ok {
				return "", fmt.Errorf("ConfigMap %q has no key %q", name, key)
			}
			return string(v), nil
		}
		data, ok := docs[name]
		if !ok && store == nil {
			return "", nil // root's preflight: the unprivileged run reads the store
		}
		if !ok {
			if d, err := store.Get(name); err == nil {
				data, ok = d, true
			}
		}
		if !ok {
			return "", fmt.Errorf("no secret %q (add it to the manifest file as a Secret, or to the state directory's secrets/)", name)
		}
		v, ok := data[key]
		if !ok {
			return "", fmt.Errorf("secret %q has no key %q", name, key)
		}
		return string(v), nil
	})
}
