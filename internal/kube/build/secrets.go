package build

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
)

// CASecret holds the generated cluster CA, key included. Only the operator
// reads it: pods mount nothing but its ca.crt.
func CASecret(c *v1.Cluster, ca *pki.KeyPair) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(c, Secrets(c).CA, map[string]string{componentLabel: "ca"}),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{KeyCACert: ca.CertPEM, KeyCAKey: ca.KeyPEM},
	}
}

// TLSSecret holds a certificate issued by caCert: the server certificate,
// or a client certificate (replication, controller).
func TLSSecret(c *v1.Cluster, name, component string, kp *pki.KeyPair, caCert []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(c, name, map[string]string{componentLabel: component}),
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{KeyTLSCert: kp.CertPEM, KeyTLSKey: kp.KeyPEM, KeyCACert: caCert},
	}
}

// CredentialsSecret wraps a connection secret's data (username, password,
// dbname, host, port, pgpass, uri, jdbc-uri; see secrets.ConnectionSecretData)
// in a basic-auth Secret, which tools recognise as credentials.
func CredentialsSecret(c *v1.Cluster, name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(c, name, map[string]string{componentLabel: "credentials"}),
		Type:       corev1.SecretTypeBasicAuth,
		Data:       data,
	}
}

// InstanceConfig is the instance manager's Config for one instance in a
// pod. It holds paths, never secrets: the secrets are files under
// SecretsRoot, projected from the cluster's Secrets (see Pod).
func InstanceConfig(c *v1.Cluster, name, primary string, opts Options) instanceapi.Config {
	n := Secrets(c)
	cfg := instanceapi.Config{
		Name:        name,
		ClusterFile: ClusterFile,
		PGBinDir:    opts.PGBinDir,
		DataDir:     DataDir,
		ConfDir:     ConfDir,
		SocketDir:   SocketDir,
		// PostgreSQL's log goes to the instance manager's stderr, which is
		// the container's log: no log file grows on a volume.
		LogFile:       "/dev/stderr",
		ListenAddress: "*",
		Host:          ServerName(c),
		Port:          PostgresPort,
		StatusAddress: ":" + strconv.Itoa(StatusPort),
		// TLS with the server certificate; only the <c>-metrics client
		// certificate may scrape (see Secrets).
		MetricsAddress:    ":" + strconv.Itoa(MetricsPort),
		OSUser:            "postgres",
		CustomQueriesFile: CustomQueriesFile,
		DatabasesFile:     DatabasesFile,
		SecretsRoot:       SecretsRoot,
		Secrets: instanceapi.Secrets{
			ServerTLS: n.ServerTLS, ServerCA: n.ServerCA, ClientCA: n.ClientCA,
			Replication: n.Replication, App: n.App, Superuser: n.Superuser,
		},
		// Replicas reach the primary through the read-write Service, whose
		// name the server certificate carries: after a failover the
		// Service follows the relabelled primary.
		Primary:   instanceapi.Endpoint{Name: primary, Host: ServerName(c), Port: PostgresPort},
		SelfFence: selfFence(c, opts),
		Lease:     leaseConfig(c, opts),
	}
	if c.Spec.HasSQLRefs() {
		cfg.BootstrapSQLFile = ConfigDir + "/" + BootstrapSQLKey
	}
	if len(c.Spec.Tablespaces) > 0 {
		// The same path in every pod, each its own volumes (TablespacesMount).
		cfg.TablespacesDir, cfg.TablespaceLocation = TablespacesMount, TablespacesMount
	}
	if c.Spec.WalStorage != nil {
		// initdb --waldir and pg_basebackup --waldir put the WAL on its
		// own volume and link pg_wal there, as locally.
		cfg.WalDir = WalDir
	}
	return cfg
}

// selfFence is how long c's primary accepts writes without renewing its
// Lease or hearing from the operator: spec.primaryLease.renewDeadlineSeconds,
// else the operator's.
func selfFence(c *v1.Cluster, opts Options) time.Duration {
	if _, d := c.Spec.PrimaryLeaseTimes(); d > 0 {
		return d
	}
	return secondsDuration(opts.SelfFenceSeconds)
}

// leaseConfig tells the instance manager which Lease to renew when it is
// the primary, with the pod's projected token.
func leaseConfig(c *v1.Cluster, opts Options) *instanceapi.LeaseConfig {
	if opts.LeaseRenew <= 0 {
		return nil
	}
	return &instanceapi.LeaseConfig{
		Namespace: c.Namespace, Name: LeaseName(c), TokenDir: TokenDir,
		RenewPeriod: opts.LeaseRenew, RequestTimeout: opts.LeaseTimeout,
	}
}

// ManifestFor is the Cluster as the instance manager reads it: apiVersion,
// kind, name, namespace and spec. Status and the rest of the metadata are
// the API server's and the operator's business, and the instance manager's
// strict loader refuses a status.
func ManifestFor(c *v1.Cluster) ([]byte, error) {
	spec := c.Spec.DeepCopy()
	// The instance manager has no use for the Kubernetes-only extension;
	// leaving it out means changing it does not rewrite every instance's
	// configuration.
	spec.NetworkPolicy = nil
	dropPodShape(spec)
	b, err := json.Marshal(struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            *v1.ClusterSpec   `json:"spec"`
	}{
		TypeMeta: metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.Kind},
		Metadata: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace},
		Spec:     spec,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding cluster %s for its instances: %w", c.Name, err)
	}
	return b, nil
}

// InstanceConfigSecret holds one instance's config.json and the cluster
// manifest it reads. It is a Secret, not a ConfigMap, because pg_hba lines
// may carry LDAP or RADIUS secrets.
func InstanceConfigSecret(c *v1.Cluster, name, primary string, opts Options) (*corev1.Secret, error) {
	return InstanceConfigSecretWithSQL(c, name, primary, opts, nil)
}

// InstanceConfigSecretWithSQL is InstanceConfigSecret carrying the SQL of
// bootstrap.initdb's references, resolved by the operator (key
// bootstrap-sql.json, projected beside config.json): pods never mount the
// user's Secrets or ConfigMaps themselves.
func InstanceConfigSecretWithSQL(c *v1.Cluster, name, primary string, opts Options, sql *v1.ResolvedSQL) (*corev1.Secret, error) {
	cfg := InstanceConfig(c, name, primary, opts)
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config of %s: %w", name, err)
	}
	manifest, err := ManifestFor(c)
	if err != nil {
		return nil, err
	}
	// The reconciler sets the custom queries (SetCustomQueries); the key
	// always exists, so that the pod's projection of it never changes and
	// adding queries needs no new pod.
	data := map[string][]byte{configKeyJSON: cfgJSON, clusterKeyJSON: manifest, CustomQueriesKey: {}, DatabasesKey: []byte("[]")}
	if c.Spec.HasSQLRefs() {
		if sql == nil {
			return nil, fmt.Errorf("config of %s: bootstrap.initdb's SQL references are not resolved", name)
		}
		b, err := json.Marshal(sql)
		if err != nil {
			return nil, fmt.Errorf("encoding the bootstrap SQL of %s: %w", name, err)
		}
		data[BootstrapSQLKey] = b
	}
	return &corev1.Secret{
		ObjectMeta: objectMeta(c, InstanceConfigSecretName(name),
			map[string]string{InstanceLabel: name, componentLabel: "instance-config"}),
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}, nil
}

// BootstrapSQLKey is the instance config Secret's key holding the SQL of
// bootstrap.initdb's references (v1.ResolvedSQL as JSON).
const BootstrapSQLKey = "bootstrap-sql.json"

// SetCustomQueries puts the cluster's resolved custom queries into an
// instance's config secret.
func SetCustomQueries(s *corev1.Secret, queries []byte) {
	s.Data[CustomQueriesKey] = queries
}

// SetDatabases puts the cluster's declared databases (a JSON list of
// v1.DatabaseDeclaration) into an instance's config secret.
func SetDatabases(s *corev1.Secret, decls []byte) {
	s.Data[DatabasesKey] = decls
}

// BackupKeySecret holds the generated passphrase that encrypts the
// cluster's backups (when spec.backup names no encryptionKey). It is owned
// by the Cluster like every generated secret: deleting the Cluster deletes
// it, so whoever needs to restore later keeps a copy (docs/backup.md).
func BackupKeySecret(c *v1.Cluster, passphrase []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(c, c.Name+v1.BackupKeySuffix, map[string]string{componentLabel: "backup-key"}),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{v1.BackupKeyKey: passphrase},
	}
}

// ClusterKeyJSON is the instance config Secret's key holding the Cluster
// as the instance manager reads it (ManifestFor).
const ClusterKeyJSON = clusterKeyJSON

// ConfigKeyJSON is the key of an instance's config.json in its config Secret.
const ConfigKeyJSON = configKeyJSON
