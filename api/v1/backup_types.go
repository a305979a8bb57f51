package v1

// BackupConfiguration is where and how the cluster's WAL is archived and
// its base backups are kept. The field names are Cloud Native
// PostgreSQL's; pgward stores the backups with pgBackRest, which encrypts
// every object on the client before it leaves the instance (see
// docs/backup.md for why, and for what differs from barman-cloud).
type BackupConfiguration struct {
	// BarmanObjectStore is the S3-compatible object store backups go to.
	BarmanObjectStore *BarmanObjectStoreConfiguration `json:"barmanObjectStore,omitempty"`
	// RetentionPolicy keeps base backups (and the WAL they need) for this
	// long: a number and a unit, d (days), w (weeks) or m (months, of 30
	// days), e.g. "30d". The newest full backup is never removed.
	// +optional
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]{0,3}[dwm]$`
	RetentionPolicy string `json:"retentionPolicy,omitempty"`
	// VolumeSnapshot configures backups taken as CSI VolumeSnapshots of
	// an instance's volumes (Kubernetes only; a Backup with method
	// volumeSnapshot takes one).
	// +optional
	VolumeSnapshot *VolumeSnapshotConfiguration `json:"volumeSnapshot,omitempty"`
}

// BarmanObjectStoreConfiguration locates an S3 bucket and path, the
// credentials to reach it, and how WAL and base backups are compressed.
type BarmanObjectStoreConfiguration struct {
	// DestinationPath is s3://bucket[/path]. Each cluster keeps its
	// backups under <path>/<serverName>.
	DestinationPath string `json:"destinationPath"`
	// EndpointURL is the store's https:// URL; its host must be a DNS name
	// that the store's certificate carries (empty: AWS S3).
	// +optional
	EndpointURL string `json:"endpointURL,omitempty"`
	// EndpointCA is the CA certificate that signed the store's
	// certificate (empty: the system's trusted CAs).
	// +optional
	EndpointCA *SecretKeySelector `json:"endpointCA,omitempty"`
	// S3Credentials are the access key pair.
	S3Credentials *S3Credentials `json:"s3Credentials,omitempty"`
	// ServerName names this cluster's backups in the store (default: the
	// cluster's name). A cluster recovered from another must use a
	// different destinationPath or serverName than its source.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$`
	ServerName string `json:"serverName,omitempty"`
	// EncryptionKey is a pgward field: the secret key holding the
	// passphrase that encrypts every WAL file and backup file before it
	// is uploaded (aes-256-cbc). When absent pgward generates one in
	// <cluster>-backup-key (key "key"). Whoever restores needs it: keep a
	// copy outside the cluster.
	// +optional
	EncryptionKey *SecretKeySelector `json:"encryptionKey,omitempty"`
	// Wal configures WAL archiving.
	// +optional
	Wal *WalBackupConfiguration `json:"wal,omitempty"`
	// Data configures base backups.
	// +optional
	Data *DataBackupConfiguration `json:"data,omitempty"`
}

// S3Credentials name the secret keys holding the access key pair.
type S3Credentials struct {
	AccessKeyID     *SecretKeySelector `json:"accessKeyId,omitempty"`
	SecretAccessKey *SecretKeySelector `json:"secretAccessKey,omitempty"`
	// Region is the bucket's region (default us-east-1).
	// +optional
	Region *SecretKeySelector `json:"region,omitempty"`
}

// WalBackupConfiguration says how WAL segments are archived.
type WalBackupConfiguration struct {
	// Compression is gzip, bzip2, lz4 or zstd (empty: none).
	// +optional
	// +kubebuilder:validation:Enum=gzip;bzip2;lz4;zstd
	Compression string `json:"compression,omitempty"`
	// MaxParallel is how many segments are uploaded at once (default 1).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	MaxParallel int `json:"maxParallel,omitempty"`
}

// DataBackupConfiguration says how base backups are taken.
type DataBackupConfiguration struct {
	// Compression is gzip, bzip2, lz4 or zstd (empty: none).
	// +optional
	// +kubebuilder:validation:Enum=gzip;bzip2;lz4;zstd
	Compression string `json:"compression,omitempty"`
	// Jobs is how many files are copied at once (default 2).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	Jobs int `json:"jobs,omitempty"`
	// ImmediateCheckpoint starts a backup with a fast checkpoint instead
	// of waiting for the next scheduled one.
	// +optional
	ImmediateCheckpoint bool `json:"immediateCheckpoint,omitempty"`
}

// SecretKeySelector names one key of a secret in the Cluster's namespace
// (locally: the file <key> in secrets/<name>/ under the state directory).
type SecretKeySelector struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// ExternalCluster is another cluster this one can bootstrap from: through
// its backups in an object store, or by connecting to it.
type ExternalCluster struct {
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	Name string `json:"name"`
	// ConnectionParameters are libpq keywords (host, port, user, dbname,
	// sslmode, ...) to reach it; sslmode must verify the server
	// (verify-ca or verify-full), and credentials come from the secret
	// fields below, never from here.
	// +optional
	ConnectionParameters map[string]string `json:"connectionParameters,omitempty"`
	// SSLCert and SSLKey are a client certificate to authenticate with,
	// SSLRootCert the CA that signed the server's certificate.
	// +optional
	SSLCert *SecretKeySelector `json:"sslCert,omitempty"`
	// +optional
	SSLKey *SecretKeySelector `json:"sslKey,omitempty"`
	// +optional
	SSLRootCert *SecretKeySelector `json:"sslRootCert,omitempty"`
	// Password authenticates the connection's user.
	// +optional
	Password *SecretKeySelector `json:"password,omitempty"`
	// BarmanObjectStore locates the other cluster's backups; its
	// encryptionKey must name the key they were written with.
	// +optional
	BarmanObjectStore *BarmanObjectStoreConfiguration `json:"barmanObjectStore,omitempty"`
}

// BootstrapRecovery creates the cluster from another cluster's backups and
// WAL, up to a recovery target. The new cluster starts a new timeline and
// gets credentials and certificates of its own.
type BootstrapRecovery struct {
	// Source names the entry of spec.externalClusters to recover from.
	// +optional
	Source string `json:"source,omitempty"`
	// Backup names a Backup object of the Cluster's namespace to recover
	// from, instead of Source (Kubernetes only): the operator resolves it
	// to the backed-up Cluster's object store and the backup's ID. The
	// local runtime refuses it: there, name the store in
	// spec.externalClusters and the backup in recoveryTarget.backupID.
	// +optional
	Backup *LocalObjectReference `json:"backup,omitempty"`
	// VolumeSnapshots are the VolumeSnapshots (of a Backup with method
	// volumeSnapshot) the first instance's volumes are created from
	// (Kubernetes only).
	// +optional
	VolumeSnapshots *DataSource `json:"volumeSnapshots,omitempty"`
	// RecoveryTarget stops the recovery at a point (empty: the end of the
	// archived WAL).
	// +optional
	RecoveryTarget *RecoveryTarget `json:"recoveryTarget,omitempty"`
	// Database is the application database in the backup (default "app");
	// Owner its owner (default: the database's name); Secret the new
	// owner credentials (generated when absent).
	// +optional
	Database string `json:"database,omitempty"`
	// +optional
	Owner string `json:"owner,omitempty"`
	// +optional
	Secret *LocalObjectReference `json:"secret,omitempty"`
}

// RecoveryTarget is PostgreSQL's recovery target, with Cloud Native
// PostgreSQL's names. At most one of targetTime, targetLSN, targetXID,
// targetName and targetImmediate may be set.
type RecoveryTarget struct {
	// BackupID is the base backup to start from (a pgBackRest label as
	// `pgward local backups` lists; default: the newest one that ends
	// before the target).
	// +optional
	BackupID string `json:"backupID,omitempty"`
	// TargetTime is a timestamp with a time zone, RFC 3339 or
	// PostgreSQL's "2006-01-02 15:04:05.999999-07".
	// +optional
	TargetTime string `json:"targetTime,omitempty"`
	// TargetLSN is a WAL location such as 0/3000060.
	// +optional
	TargetLSN string `json:"targetLSN,omitempty"`
	// TargetXID is a transaction id.
	// +optional
	TargetXID string `json:"targetXID,omitempty"`
	// TargetName is a restore point made with pg_create_restore_point.
	// +optional
	TargetName string `json:"targetName,omitempty"`
	// TargetImmediate stops as soon as the backup is consistent.
	// +optional
	TargetImmediate *bool `json:"targetImmediate,omitempty"`
	// Exclusive stops just before the target instead of just after it.
	// +optional
	Exclusive *bool `json:"exclusive,omitempty"`
}

// BootstrapPgBaseBackup clones another running cluster with pg_basebackup
// (streaming replication protocol); the clone becomes an independent
// primary with this cluster's credentials and certificates.
type BootstrapPgBaseBackup struct {
	// Source names the entry of spec.externalClusters to clone.
	Source string `json:"source"`
	// Database and Owner name the application database in the source
	// (default "app"); Secret the owner's new credentials.
	// +optional
	Database string `json:"database,omitempty"`
	// +optional
	Owner string `json:"owner,omitempty"`
	// +optional
	Secret *LocalObjectReference `json:"secret,omitempty"`
}
