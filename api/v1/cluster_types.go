package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Group, Version and Kind identify the Cluster resource.
const (
	Group   = "postgresql.pgward.io"
	Version = "v1"
	Kind    = "Cluster"
	// APIVersion is the apiVersion string manifests carry.
	APIVersion = Group + "/" + Version
)

// Cluster is a highly available PostgreSQL cluster: one primary and
// zero or more streaming replicas.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pgw
// +kubebuilder:printcolumn:name="Instances",type=integer,JSONPath=`.status.instances`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyInstances`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Primary",type=string,JSONPath=`.status.currentPrimary`
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.description`,priority=1
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSpec   `json:"spec"`
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterList is a list of Clusters.
//
// +kubebuilder:object:root=true
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}

// ClusterSpec is the desired state of a Cluster.
type ClusterSpec struct {
	// Instances is the number of PostgreSQL instances: one primary, the rest replicas.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	// +kubebuilder:default=1
	Instances int `json:"instances"`

	// PostgresConfiguration holds postgresql.conf parameters, pg_hba and pg_ident lines.
	// +optional
	PostgresConfiguration PostgresConfiguration `json:"postgresql,omitempty"`

	// Bootstrap says how the first instance is created.
	// +optional
	Bootstrap *BootstrapConfiguration `json:"bootstrap,omitempty"`

	// SuperuserSecret names a secret (keys username, password) for the
	// postgres superuser; generated when absent and superuser access is on.
	// +optional
	SuperuserSecret *LocalObjectReference `json:"superuserSecret,omitempty"`

	// EnableSuperuserAccess gives the postgres superuser a password (and a
	// secret holding it). Off by default: postgres then has no password and
	// can only connect through the local socket as the instance's OS user.
	// +optional
	EnableSuperuserAccess *bool `json:"enableSuperuserAccess,omitempty"`

	// Certificates lets the user bring their own CA and certificates.
	// +optional
	Certificates *CertificatesConfiguration `json:"certificates,omitempty"`

	// MinSyncReplicas is the minimum number of synchronous standbys.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinSyncReplicas int `json:"minSyncReplicas,omitempty"`

	// MaxSyncReplicas is the maximum number of synchronous standbys.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxSyncReplicas int `json:"maxSyncReplicas,omitempty"`

	// FailoverDelay is how many seconds the primary must look unhealthy
	// before a replica is promoted in its place (0: at once).
	// +kubebuilder:validation:Minimum=0
	// +optional
	FailoverDelay int32 `json:"failoverDelay,omitempty"`

	// StorageConfiguration sizes each instance's data volume.
	// +optional
	StorageConfiguration StorageConfiguration `json:"storage,omitempty"`

	// PrimaryUpdateStrategy says how the primary gets a change that needs a
	// restart, once every replica has it: unsupervised (default: at once)
	// or supervised (when the user switches over).
	// +optional
	// +kubebuilder:validation:Enum=unsupervised;supervised
	PrimaryUpdateStrategy string `json:"primaryUpdateStrategy,omitempty"`

	// PrimaryUpdateMethod is switchover (default: to an updated replica,
	// a write pause under a second) or restart (in place: the primary is
	// down while it restarts).
	// +optional
	// +kubebuilder:validation:Enum=switchover;restart
	PrimaryUpdateMethod string `json:"primaryUpdateMethod,omitempty"`

	// Managed declares roles that pgward keeps as declared.
	// +optional
	Managed *ManagedConfiguration `json:"managed,omitempty"`

	// Backup archives WAL and keeps base backups in an object store.
	// +optional
	Backup *BackupConfiguration `json:"backup,omitempty"`

	// ExternalClusters are other clusters this one can bootstrap from.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	ExternalClusters []ExternalCluster `json:"externalClusters,omitempty"`

	// WalStorage gives the WAL a volume of its own (on Kubernetes a second
	// PVC; locally a directory beside the data directory, pg_wal linking
	// to it). It cannot be added or removed once the cluster exists.
	// +optional
	WalStorage *StorageConfiguration `json:"walStorage,omitempty"`

	// Tablespaces are declared tablespaces: storage of their own on every
	// instance (a PVC each on Kubernetes, a directory locally), created on
	// the primary, owner kept as declared; the temporary ones make
	// temp_tablespaces. They cannot be removed once the cluster exists.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Tablespaces []TablespaceConfiguration `json:"tablespaces,omitempty"`

	// Monitoring configures each instance's exporter (custom queries, the
	// built-in queries) and a PodMonitor on Kubernetes.
	// +optional
	Monitoring *MonitoringConfiguration `json:"monitoring,omitempty"`

	// NetworkPolicy, when enabled, makes the operator restrict who may reach
	// the instances on Kubernetes. It is a pgward extension (Cloud Native
	// PostgreSQL has no such field); the local runtime ignores it.
	// +optional
	NetworkPolicy *NetworkPolicyConfiguration `json:"networkPolicy,omitempty"`

	// Description is a free text about the cluster, stored and shown.
	// +optional
	Description string `json:"description,omitempty"`

	// Affinity places the pods (Kubernetes only).
	// +optional
	Affinity *AffinityConfiguration `json:"affinity,omitempty"`

	// TopologySpreadConstraints spread the pods (Kubernetes only); a
	// constraint without a labelSelector selects the cluster's pods.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// PriorityClassName of the pods (Kubernetes only).
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// SchedulerName of the pods (Kubernetes only).
	// +optional
	SchedulerName string `json:"schedulerName,omitempty"`

	// Resources of the postgres container (Kubernetes only): requests
	// must not exceed limits.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Env adds variables to the postgres container (Kubernetes only).
	// Names pgward, PostgreSQL, libpq, pgBackRest, the dynamic loader or
	// the Go runtime read are refused.
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// EnvFrom adds the keys of ConfigMaps and Secrets, under a prefix that
	// cannot form a refused name (Kubernetes only).
	// +optional
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`

	// InheritedMetadata are labels and annotations put on every object the
	// operator makes for the cluster; pgward's own keys are refused.
	// +optional
	InheritedMetadata *EmbeddedObjectMetadata `json:"inheritedMetadata,omitempty"`

	// PodSecurityContext is merged over pgward's (Kubernetes only), within
	// the restricted Pod Security Standard and pgward's user 26.
	// +optional
	PodSecurityContext *corev1.PodSecurityContext `json:"podSecurityContext,omitempty"`

	// SecurityContext is merged over the postgres container's (Kubernetes
	// only), within the restricted Pod Security Standard.
	// +optional
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`

	// SeccompProfile of the pod and its container: RuntimeDefault (the
	// default) or Localhost.
	// +optional
	SeccompProfile *corev1.SeccompProfile `json:"seccompProfile,omitempty"`

	// PodSelectorRefs name label selectors of pods of the Cluster's
	// namespace; a pg_hba rule's address ${podselector:NAME} stands for
	// the IP addresses of the running pods NAME selects, kept current by
	// the operator (Kubernetes only).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	PodSelectorRefs []PodSelectorRef `json:"podSelectorRefs,omitempty"`

	// ReplicationSlots keeps a physical replication slot on the primary
	// for each replica, with copies on the replicas for a failover.
	// +optional
	ReplicationSlots *ReplicationSlotsConfiguration `json:"replicationSlots,omitempty"`

	// Probes tunes the timing of the container's probes (Kubernetes only).
	// +optional
	Probes *ProbesConfiguration `json:"probes,omitempty"`

	// ProjectedVolumeTemplate is a projected volume mounted read-only at
	// /projected in the postgres container (Kubernetes only).
	// +optional
	ProjectedVolumeTemplate *corev1.ProjectedVolumeSource `json:"projectedVolumeTemplate,omitempty"`

	// ServiceAccountTemplate shapes the pods' ServiceAccount.
	// +optional
	ServiceAccountTemplate *ServiceAccountTemplate `json:"serviceAccountTemplate,omitempty"`

	// EnablePDB makes the PodDisruptionBudgets (default true).
	// +optional
	EnablePDB *bool `json:"enablePDB,omitempty"`

	// ImageName is the operand image on Kubernetes: PostgreSQL 15 (and
	// pgBackRest for backups), with or without pgward, which an init
	// container copies in (docs/operator.md, "Operand images"). Default:
	// the operator's own image. Locally PostgreSQL is the machine's
	// (`pgward local up --pg-bin`).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	ImageName string `json:"imageName,omitempty"`

	// ImageCatalogRef takes the image from an ImageCatalog or
	// ClusterImageCatalog entry instead of imageName.
	// +optional
	ImageCatalogRef *ImageCatalogRef `json:"imageCatalogRef,omitempty"`

	// ImagePullPolicy of the operand image (Kubernetes).
	// +optional
	// +kubebuilder:validation:Enum=Always;Never;IfNotPresent
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets name docker-registry Secrets of the Cluster's
	// namespace for pulling the operand image (Kubernetes).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ImagePullSecrets []LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Replica makes the whole cluster follow another one (a replica
	// cluster): its designated primary is a standby of the source, its
	// other instances cascade from it, and it accepts no writes until it is
	// promoted (enabled: false, or primary set to this cluster).
	// +optional
	Replica *ReplicaClusterConfiguration `json:"replica,omitempty"`

	// PrimaryLease tunes the primary's Lease on Kubernetes: how long an
	// isolated primary keeps writing, and how long the operator waits
	// before it promotes another instance (CloudNativePG's field names;
	// pgward's defaults are shorter). Locally a note: the controller fences
	// a silent instance by power instead.
	// +optional
	PrimaryLease *PrimaryLeaseConfiguration `json:"primaryLease,omitempty"`

	// MaxStartDelay (startDelay) is how many seconds an instance's
	// PostgreSQL may take to accept connections once started (crash
	// recovery, a long replay) before its manager stops it and reports
	// the failure; on Kubernetes it also sizes the startup probe.
	// Default 3600 (CloudNativePG's).
	// +optional
	// +kubebuilder:validation:Maximum=86400
	MaxStartDelay int32 `json:"startDelay,omitempty"`

	// MaxStopDelay (stopDelay) is how many seconds an instance has to
	// shut down when its manager is told to stop (`local down`, a pod
	// deleted): a smart shutdown for smartShutdownTimeout, then a fast
	// one, then an immediate one before the time is up. On Kubernetes it
	// is the pods' terminationGracePeriodSeconds. Default 180 (pgward's;
	// CloudNativePG's is 1800).
	// +optional
	// +kubebuilder:validation:Maximum=86400
	MaxStopDelay int32 `json:"stopDelay,omitempty"`

	// SmartShutdownTimeout is the part of stopDelay, in seconds, given to
	// a smart shutdown (sessions may finish) before the fast one; it must
	// leave at least 15 s of stopDelay. Default 0: a fast shutdown at once
	// (pgward's; CloudNativePG's default is 180).
	// +optional
	// +kubebuilder:validation:Minimum=0
	SmartShutdownTimeout *int32 `json:"smartShutdownTimeout,omitempty"`

	// LivenessProbeTimeout is how many seconds the instance manager may
	// fail to answer its liveness probe before the kubelet restarts the
	// container (Kubernetes only): the probe's failureThreshold is this
	// over its period, rounded up. Default 30.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	LivenessProbeTimeout *int32 `json:"livenessProbeTimeout,omitempty"`

	// LogLevel of the instance managers (and, locally, the controller):
	// error, warning, info (default), debug or trace.
	// +optional
	// +kubebuilder:validation:Enum=error;warning;info;debug;trace
	LogLevel string `json:"logLevel,omitempty"`

	// EphemeralVolumeSource replaces the pods' scratch volume (/tmp) by a
	// generic ephemeral volume: a claim made with the pod and deleted with
	// it (Kubernetes only). Its claim must ask for a fresh file-system
	// volume (no dataSource, selector or volumeName) and give no metadata.
	// +optional
	EphemeralVolumeSource *corev1.EphemeralVolumeSource `json:"ephemeralVolumeSource,omitempty"`

	// EphemeralVolumesSizeLimit bounds the pods' scratch volume (/tmp) and
	// shared memory (/dev/shm) (Kubernetes only).
	// +optional
	EphemeralVolumesSizeLimit *EphemeralVolumesSizeLimitConfiguration `json:"ephemeralVolumesSizeLimit,omitempty"`

	// PostgresUID is the user PostgreSQL runs as in the image; pgward's
	// pods always run as 26 (pgward's image's postgres), so only 26 is
	// accepted (Kubernetes only).
	// +optional
	PostgresUID int64 `json:"postgresUID,omitempty"`

	// PostgresGID is the group of PostgresUID: only 26 (Kubernetes only).
	// +optional
	PostgresGID int64 `json:"postgresGID,omitempty"`

	// MaxSwitchoverDelay (switchoverDelay) is how many seconds a primary
	// being demoted (a switchover; also fencing and hibernation) is given
	// for its fast shutdown before an immediate one; the switchover waits
	// that long and 30 s more for the target to catch up before it is
	// abandoned. Left out: 60 s for the shutdown and 30 s for the whole
	// switchover (pgward's; CloudNativePG's default is 3600).
	// +optional
	// +kubebuilder:validation:Maximum=86400
	MaxSwitchoverDelay int32 `json:"switchoverDelay,omitempty"`
}

// NetworkPolicyConfiguration describes the least-privilege NetworkPolicies
// the operator generates: PostgreSQL's port only from Clients and from the
// cluster's own instances (replication), the status port only from the
// operator's namespace, the metrics exporter only from MetricsClients.
// Everything else is denied, since a pod selected by a NetworkPolicy only
// accepts what some policy allows.
type NetworkPolicyConfiguration struct {
	// Enabled turns the policies on.
	Enabled bool `json:"enabled"`
	// Clients are the peers allowed to connect to PostgreSQL. Each entry
	// selects pods (podSelector, in the Cluster's namespace unless
	// namespaceSelector is set too), namespaces (namespaceSelector), or
	// pods in those namespaces (both). An empty list admits only the
	// cluster's own instances.
	// +optional
	Clients []NetworkPolicyPeer `json:"clients,omitempty"`
	// MetricsClients are the peers allowed to reach the metrics exporter
	// (port 9187, named metrics), typically Prometheus's pods; they also
	// need the <cluster>-metrics client certificate. An empty list admits
	// nobody.
	// +optional
	MetricsClients []NetworkPolicyPeer `json:"metricsClients,omitempty"`
}

// NetworkPolicyPeer selects clients by labels, with the meaning of a
// NetworkPolicyPeer in Kubernetes (IP blocks are not offered: pod and
// namespace identities are what pgward can reason about).
type NetworkPolicyPeer struct {
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// PostgresConfiguration is the PostgreSQL configuration a user may set.
type PostgresConfiguration struct {
	// Synchronous configures synchronous replication; the alternative to
	// minSyncReplicas/maxSyncReplicas (use one or the other).
	// +optional
	Synchronous *SynchronousReplicaConfiguration `json:"synchronous,omitempty"`

	// Parameters are postgresql.conf settings. Parameters that pgward must
	// control (ports, files, TLS, replication) are refused.
	// +optional
	// +kubebuilder:validation:MaxProperties=1000
	Parameters map[string]string `json:"parameters,omitempty"`

	// PgHBA lines are inserted after pgward's fixed rules and before the
	// final catch-all: "hostssl all all all scram-sha-256", then
	// "host all all all reject".
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	PgHBA []string `json:"pg_hba,omitempty"`

	// CatchAllNetworks restricts the final catch-all (a SCRAM password over
	// TLS) to clients in these CIDRs; everyone else not let in by pgward's
	// rules or pg_hba is rejected. Empty means every address. A pgward
	// field: CloudNativePG has no equivalent.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	CatchAllNetworks []string `json:"catchAllNetworks,omitempty"`

	// LDAP makes the catch-all rule authenticate against an LDAP
	// directory (CloudNativePG's postgresql.ldap), over TLS only.
	// +optional
	LDAP *LDAPConfig `json:"ldap,omitempty"`

	// SharedPreloadLibraries are the libraries PostgreSQL loads at start,
	// from those pgward knows to ship with PostgreSQL and to be safe to
	// preload (pg_stat_statements, auto_explain); their parameters
	// (pg_stat_statements.*, auto_explain.*) are then accepted. A change
	// takes effect at the next restart.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	SharedPreloadLibraries []string `json:"shared_preload_libraries,omitempty"`

	// PgIdent lines are appended to pg_ident.conf.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	PgIdent []string `json:"pg_ident,omitempty"`

	// SyncReplicaElectionConstraint chooses synchronous standbys only
	// among instances whose nodes differ from the primary's node in the
	// listed labels (Kubernetes only; CloudNativePG's field for
	// minSyncReplicas/maxSyncReplicas).
	// +optional
	SyncReplicaElectionConstraint *SyncReplicaElectionConstraints `json:"syncReplicaElectionConstraint,omitempty"`

	// EnableAlterSystem false makes every instance manager undo ALTER
	// SYSTEM while PostgreSQL runs: within a second of a setting appearing
	// in postgresql.auto.conf, the file is emptied and the configuration
	// reloaded (left out, the file is emptied at every start, and `local
	// audit` flags it meanwhile). true is refused: pgward's configuration
	// is the manifest's.
	// +optional
	EnableAlterSystem *bool `json:"enableAlterSystem,omitempty"`
}

// SyncReplicaElectionConstraints names the node labels that make a
// failure domain for choosing synchronous standbys.
type SyncReplicaElectionConstraints struct {
	// Enabled turns the constraint on.
	Enabled bool `json:"enabled"`
	// NodeLabelsAntiAffinity are node label keys: a standby is eligible
	// when its node's values of them differ from the primary node's.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	NodeLabelsAntiAffinity []string `json:"nodeLabelsAntiAffinity,omitempty"`
}

// SynchronousReplicaConfiguration says how many standbys must confirm a
// commit before it is acknowledged.
type SynchronousReplicaConfiguration struct {
	// Method is "any" (quorum: any Number standbys) or "first" (priority:
	// the first Number standbys in order).
	// +kubebuilder:validation:Enum=any;first
	Method string `json:"method"`
	// Number of synchronous standbys.
	// +kubebuilder:validation:Minimum=1
	Number int `json:"number"`
	// DataDurability is "required" (default: writes wait rather than go
	// unreplicated when too few standbys are up) or "preferred" (writes
	// continue with fewer standbys, down to none).
	// +kubebuilder:validation:Enum=required;preferred
	// +optional
	DataDurability string `json:"dataDurability,omitempty"`
	// FailoverQuorum makes a failover wait until enough synchronous
	// standbys answer to find every commit acknowledged synchronously.
	// With dataDurability "required" pgward always does so, and false is
	// refused; with "preferred" it is off unless set.
	// +optional
	FailoverQuorum *bool `json:"failoverQuorum,omitempty"`
	// PodFailureDomainKeys are label keys of the instances' pods, and
	// NodeFailureDomainKeys of their nodes, whose values make an
	// instance's failure domain: synchronous standbys are chosen only
	// among instances in another domain than the primary's (Kubernetes
	// only).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	PodFailureDomainKeys []string `json:"podFailureDomainKeys,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=8
	NodeFailureDomainKeys []string `json:"nodeFailureDomainKeys,omitempty"`
}

// FailoverQuorum reports whether a failover must find every commit that
// was acknowledged synchronously (always so with dataDurability
// "required").
func (s *ClusterSpec) FailoverQuorum() bool {
	sy := s.PostgresConfiguration.Synchronous
	return sy != nil && sy.FailoverQuorum != nil && *sy.FailoverQuorum
}

// SyncBounds returns the minimum and maximum number of synchronous
// standbys and the method, from either spec.postgresql.synchronous or the
// legacy minSyncReplicas/maxSyncReplicas.
func (s *ClusterSpec) SyncBounds() (minSync, maxSync int, method string) {
	if sy := s.PostgresConfiguration.Synchronous; sy != nil {
		if sy.DataDurability == "preferred" {
			return 0, sy.Number, sy.Method
		}
		return sy.Number, sy.Number, sy.Method
	}
	return s.MinSyncReplicas, s.MaxSyncReplicas, "any"
}

// BootstrapConfiguration holds exactly one bootstrap method.
type BootstrapConfiguration struct {
	// InitDB creates a new cluster with initdb.
	// +optional
	InitDB *BootstrapInitDB `json:"initdb,omitempty"`
	// Recovery creates the cluster from another cluster's backups.
	// +optional
	Recovery *BootstrapRecovery `json:"recovery,omitempty"`
	// PgBaseBackup clones another running cluster.
	// +optional
	PgBaseBackup *BootstrapPgBaseBackup `json:"pg_basebackup,omitempty"`
}

// Application returns the application database, its owner and the
// owner's secret, from whichever bootstrap method is set (after
// SetDefaults, exactly one is). Only InitDB's initdb options are
// meaningful for initdb; a recovered cluster has the backup's.
func (b *BootstrapConfiguration) Application() *BootstrapInitDB {
	if b == nil {
		return &BootstrapInitDB{Database: DefaultDatabase, Owner: DefaultDatabase}
	}
	if r := b.Recovery; r != nil && b.InitDB == nil {
		return &BootstrapInitDB{Database: r.Database, Owner: r.Owner, Secret: r.Secret}
	}
	if p := b.PgBaseBackup; p != nil && b.InitDB == nil {
		return &BootstrapInitDB{Database: p.Database, Owner: p.Owner, Secret: p.Secret}
	}
	if b.InitDB == nil {
		return &BootstrapInitDB{Database: DefaultDatabase, Owner: DefaultDatabase}
	}
	return b.InitDB
}

// BootstrapInitDB configures initdb and the application database.
type BootstrapInitDB struct {
	// Database is the application database (default "app").
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]{0,62}$`
	Database string `json:"database,omitempty"`
	// Owner is the application user owning Database (default: Database's name).
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]{0,62}$`
	Owner string `json:"owner,omitempty"`
	// Secret names a secret (keys username, password) for Owner; generated when absent.
	// +optional
	Secret *LocalObjectReference `json:"secret,omitempty"`
	// DataChecksums enables data page checksums (pgward defaults it to true).
	// +optional
	DataChecksums *bool `json:"dataChecksums,omitempty"`
	// Encoding is the database encoding (default UTF8).
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.@-]{1,64}$`
	Encoding string `json:"encoding,omitempty"`
	// LocaleCollate is LC_COLLATE (default C).
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.@-]{1,64}$`
	LocaleCollate string `json:"localeCollate,omitempty"`
	// LocaleCType is LC_CTYPE (default C).
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.@-]{1,64}$`
	LocaleCType string `json:"localeCType,omitempty"`
	// PostInitSQL runs as superuser in the postgres database after initdb.
	// +optional
	PostInitSQL []string `json:"postInitSQL,omitempty"`
	// PostInitApplicationSQL runs as superuser in the application database.
	// +optional
	PostInitApplicationSQL []string `json:"postInitApplicationSQL,omitempty"`
	// PostInitTemplateSQL runs as superuser in template1, before the
	// application database is created from it.
	// +optional
	PostInitTemplateSQL []string `json:"postInitTemplateSQL,omitempty"`
	// PostInitSQLRefs are Secret and ConfigMap keys holding SQL run after
	// PostInitSQL, in the postgres database: the Secrets first, then the
	// ConfigMaps, each list in order.
	// +optional
	PostInitSQLRefs *SQLRefs `json:"postInitSQLRefs,omitempty"`
	// PostInitApplicationSQLRefs are run after PostInitApplicationSQL, in
	// the application database.
	// +optional
	PostInitApplicationSQLRefs *SQLRefs `json:"postInitApplicationSQLRefs,omitempty"`
	// PostInitTemplateSQLRefs are run after PostInitTemplateSQL, in template1.
	// +optional
	PostInitTemplateSQLRefs *SQLRefs `json:"postInitTemplateSQLRefs,omitempty"`
	// Locale is initdb's --locale: the default of LocaleCollate and
	// LocaleCType when they are not set (lc_messages, lc_monetary,
	// lc_numeric and lc_time are postgresql.parameters).
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.@-]{1,64}$`
	Locale string `json:"locale,omitempty"`
	// LocaleProvider is libc (default) or icu; builtin needs PostgreSQL 17.
	// +optional
	// +kubebuilder:validation:Enum=libc;icu;builtin
	LocaleProvider string `json:"localeProvider,omitempty"`
	// ICULocale is the ICU locale of the cluster (with LocaleProvider icu),
	// a BCP 47 language tag such as en-US or de-DE-u-co-phonebk.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ICULocale string `json:"icuLocale,omitempty"`
	// ICURules (PostgreSQL 16+) and BuiltinLocale (PostgreSQL 17+) are
	// refused on PostgreSQL 15, naming the version they need.
	// +optional
	ICURules string `json:"icuRules,omitempty"`
	// +optional
	BuiltinLocale string `json:"builtinLocale,omitempty"`
	// WalSegmentSize is initdb's --wal-segsize in MB: a power of 2 from 1 to 1024.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	WalSegmentSize int `json:"walSegmentSize,omitempty"`
	// Options are extra initdb options, from an allow-list (--data-checksums,
	// -k): initdb's own postgresql.conf is not the one pgward runs with.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Options []string `json:"options,omitempty"`
	// Import fills the new cluster with databases (and roles) of another
	// cluster, logically: pg_dump from an entry of spec.externalClusters,
	// pg_restore here, after initdb.
	// +optional
	Import *Import `json:"import,omitempty"`
}

// SQLRefs names Secret and ConfigMap keys that hold SQL.
type SQLRefs struct {
	// SecretRefs are run first, in order.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	SecretRefs []SecretKeySelector `json:"secretRefs,omitempty"`
	// ConfigMapRefs are run after the secrets, in order.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ConfigMapRefs []ConfigMapKeySelector `json:"configMapRefs,omitempty"`
}

// ConfigMapKeySelector is a key of a ConfigMap in the Cluster's namespace
// (locally: a ConfigMap in the manifest file).
type ConfigMapKeySelector struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// Import is CloudNativePG's logical import of databases from an external
// cluster into a new one.
type Import struct {
	// Type is microservice (one database into the application database,
	// owned by the application owner) or monolith (the listed databases
	// and roles under their own names).
	// +kubebuilder:validation:Enum=microservice;monolith
	Type string `json:"type"`
	// Databases to import: exactly one for microservice; for monolith a
	// list, or "*" for every database of the source but postgres and the
	// templates.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	Databases []string `json:"databases"`
	// Roles to import (monolith only), or "*" for every ordinary role.
	// Their attributes and memberships are copied, never their passwords.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Roles []string `json:"roles,omitempty"`
	// Source names the external cluster to import from.
	Source ImportSource `json:"source"`
	// PostImportApplicationSQL runs as superuser in the application
	// database after a microservice import.
	// +optional
	PostImportApplicationSQL []string `json:"postImportApplicationSQL,omitempty"`
	// SchemaOnly imports the schema without the data.
	// +optional
	SchemaOnly bool `json:"schemaOnly,omitempty"`
	// PgDumpExtraOptions and PgRestoreExtraOptions come from an allow-list
	// (--jobs=N and options that only leave something out): they reach a
	// command line.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	PgDumpExtraOptions []string `json:"pgDumpExtraOptions,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=16
	PgRestoreExtraOptions []string `json:"pgRestoreExtraOptions,omitempty"`
}

// ImportSource names the external cluster an import reads.
type ImportSource struct {
	// ExternalCluster is the name of an entry of spec.externalClusters
	// with connectionParameters.
	ExternalCluster string `json:"externalCluster"`
}

// LocalObjectReference names a secret in the Cluster's namespace. Locally, a
// secret is a directory of that name under the state directory's secrets/,
// holding one file per key.
type LocalObjectReference struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// CertificatesConfiguration names user-provided TLS material. Every field
// left empty is generated and renewed by pgward.
type CertificatesConfiguration struct {
	// ServerCASecret holds ca.crt (and ca.key if pgward should sign the server certificate).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServerCASecret string `json:"serverCASecret,omitempty"`
	// ServerTLSSecret holds tls.crt and tls.key for PostgreSQL and the status port.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServerTLSSecret string `json:"serverTLSSecret,omitempty"`
	// ClientCASecret holds ca.crt (and ca.key if pgward should sign client certificates).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ClientCASecret string `json:"clientCASecret,omitempty"`
	// ReplicationTLSSecret holds tls.crt and tls.key of the streaming_replica client certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ReplicationTLSSecret string `json:"replicationTLSSecret,omitempty"`
	// ServerAltDNSNames are extra DNS names for the generated server certificate.
	// +optional
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:MaxItems=100
	ServerAltDNSNames []string `json:"serverAltDNSNames,omitempty"`
}

// StorageConfiguration sizes a data volume.
type StorageConfiguration struct {
	// Size is a Kubernetes quantity such as 1Gi. Required on Kubernetes;
	// locally it is recorded but not enforced.
	// +optional
	Size string `json:"size,omitempty"`
	// StorageClass is the StorageClass of the instances' volumes on
	// Kubernetes (default: the cluster's default class). The local runtime
	// stores data in the state directory and says so at `up`.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	StorageClass *string `json:"storageClass,omitempty"`
	// PersistentVolumeClaimTemplate is the PVCs' spec on Kubernetes,
	// merged with size and storageClass (which must agree with it).
	// +optional
	PersistentVolumeClaimTemplate *corev1.PersistentVolumeClaimSpec `json:"pvcTemplate,omitempty"`
	// ResizeInUseVolumes (default true, CloudNativePG's meaning): on
	// Kubernetes a larger size grows the existing PVCs in place, while
	// their pods use them (the StorageClass must allow expansion). False:
	// existing PVCs are left as they are; only PVCs created from then on
	// (a new instance, or one whose PVC was deleted to re-create it) get
	// the new size, and the Cluster's VolumeSize condition names the
	// smaller ones. Locally there are no volumes: `up` says so.
	// +optional
	ResizeInUseVolumes *bool `json:"resizeInUseVolumes,omitempty"`
}

// ResizeInUse says whether existing volumes grow in place (unset: true).
func (s StorageConfiguration) ResizeInUse() bool {
	return s.ResizeInUseVolumes == nil || *s.ResizeInUseVolumes
}

// ClusterStatus is the observed state of a Cluster.
type ClusterStatus struct {
	// +optional
	Phase string `json:"phase,omitempty"`
	// +optional
	Instances int `json:"instances,omitempty"`
	// +optional
	ReadyInstances int `json:"readyInstances,omitempty"`
	// +optional
	InstanceNames []string `json:"instanceNames,omitempty"`
	// CurrentPrimary is the instance that is primary now.
	// +optional
	CurrentPrimary string `json:"currentPrimary,omitempty"`
	// TargetPrimary is the instance that should be primary.
	// +optional
	TargetPrimary string `json:"targetPrimary,omitempty"`
	// +optional
	TimelineID int `json:"timelineID,omitempty"`
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// PlannerMemory is the failover planner's persisted state (fencing
	// epoch, target primary, when the primary was last seen). The operator
	// writes it before acting on any decision, so that a restarted operator
	// resumes under the same epoch instead of deciding twice. It lives in
	// the status because only the operator may write that.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	PlannerMemory *runtime.RawExtension `json:"plannerMemory,omitempty"`
}
