package build

import (
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/pgward/pgward/api/v1"
)

// Labels pgward puts on the objects it makes. The read-only Services select
// pods by ClusterLabel and RoleLabel; the read-write one selects the target
// primary by InstanceLabel (PrimarySelector), so a switchover moves it in
// one change.
const (
	ClusterLabel  = "pgward.io/cluster"
	InstanceLabel = "pgward.io/instance"
	RoleLabel     = "pgward.io/role"

	RolePrimary = "primary"
	RoleReplica = "replica"

	nameLabel      = "app.kubernetes.io/name"
	instanceLabel  = "app.kubernetes.io/instance"
	managedByLabel = "app.kubernetes.io/managed-by"
	componentLabel = "app.kubernetes.io/component"
	managedBy      = "pgward"
)

// OperatorName is the app.kubernetes.io/name of the operator's own pods;
// the status-port NetworkPolicy admits only pods with it.
const OperatorName = "pgward-operator"

// Ports every instance listens on.
const (
	PostgresPort = 5432
	StatusPort   = 8000
	// MetricsPort is the metrics exporter's, CloudNativePG's port.
	MetricsPort      = 9187
	postgresPortName = "postgresql"
	statusPortName   = "status"
	// MetricsPortName names MetricsPort in the pod, for a PodMonitor.
	MetricsPortName = "metrics"
)

// Paths inside an instance's container. The root filesystem is read-only:
// the data volume, the socket directory and /tmp are the only writable places.
const (
	ConfigDir   = "/etc/pgward"
	ConfigFile  = ConfigDir + "/config.json"
	ClusterFile = ConfigDir + "/cluster.json"
	// CustomQueriesFile is spec.monitoring's custom queries, resolved by
	// the operator from their ConfigMaps and Secrets (customqueries'
	// canonical form), in the config secret: pods mount no new secret.
	CustomQueriesFile = ConfigDir + "/" + CustomQueriesKey
	CustomQueriesKey  = "custom-queries.json"
	// DatabasesFile is the cluster's declared databases (the Database
	// objects naming it, v1.DatabaseDeclaration as JSON), set by the
	// operator in the config secret like the custom queries.
	DatabasesFile  = ConfigDir + "/" + DatabasesKey
	DatabasesKey   = "databases.json"
	SecretsRoot    = ConfigDir + "/secrets"
	DataMount      = "/var/lib/postgresql/data"
	DataDir        = DataMount + "/pgdata"
	ConfDir        = DataMount + "/conf"
	SocketDir      = "/run/postgresql"
	TmpDir         = "/tmp"
	TokenDir       = "/var/run/secrets/kubernetes.io/serviceaccount" // #nosec G101 -- a well-known mount path, not a credential
	configKeyJSON  = "config.json"
	clusterKeyJSON = "cluster.json"
)

// PostgresUID and PostgresGID are the user and group PostgreSQL runs as, as
// in Cloud Native PostgreSQL's images (postgresUID/postgresGID 26).
const (
	PostgresUID int64 = 26
	PostgresGID int64 = 26
)

// Keys of the TLS secrets, as in kubernetes.io/tls secrets.
const (
	KeyCACert  = "ca.crt"
	KeyCAKey   = "ca.key"
	KeyTLSCert = "tls.crt"
	KeyTLSKey  = "tls.key"
)

// InstanceName is the name of the i-th instance (1-based): its Pod and PVC.
func InstanceName(c *v1.Cluster, i int) string { return c.Name + "-" + strconv.Itoa(i) }

// InstanceNames lists the instances the spec asks for, in order.
func InstanceNames(c *v1.Cluster) []string {
	names := make([]string, c.Spec.Instances)
	for i := range names {
		names[i] = InstanceName(c, i+1)
	}
	return names
}

// InstanceIndex returns the 1-based index of an instance of c, or 0 if name
// is not one of c's instance names.
func InstanceIndex(c *v1.Cluster, name string) int {
	rest, ok := strings.CutPrefix(name, c.Name+"-")
	if !ok {
		return 0
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 1 || strconv.Itoa(i) != rest {
		return 0
	}
	return i
}

// Names of the per-cluster objects.
func rwService(c *v1.Cluster) string { return c.Name + "-rw" }
func roService(c *v1.Cluster) string { return c.Name + "-ro" }
func rService(c *v1.Cluster) string  { return c.Name + "-r" }

// ServiceNames are the three Services of a cluster: read-write (primary),
// read-only (replicas) and read (any instance).
func ServiceNames(c *v1.Cluster) []string {
	return []string{rwService(c), roService(c), rService(c)}
}

// RWServiceName is the Service that selects the primary.
func RWServiceName(c *v1.Cluster) string { return rwService(c) }

// InstanceConfigSecretName holds an instance's config.json and cluster.json.
func InstanceConfigSecretName(instance string) string { return instance + "-config" }

// ServiceAccountName is the identity of the cluster's pods (also the name of
// its Role and RoleBinding).
func ServiceAccountName(c *v1.Cluster) string { return c.Name }

// LeaseName is the cluster's primary Lease (coordination.k8s.io/v1): named
// after the cluster, as CloudNativePG names its own, and the only Lease the
// pods' Role lets them touch.
func LeaseName(c *v1.Cluster) string { return c.Name }

// PrimaryPDBName and ReplicaPDBName are the PodDisruptionBudgets. Every
// object name of a Cluster is its name plus a suffix, and no suffix may end
// with another suffix of the same kind: a replica budget named <c> made
// Cluster "a-primary"'s replica budget Cluster "a"'s primary budget, and
// whichever Cluster came second could not be reconciled
// (TestObjectNamesNeverCollideAcrossClusters proves there is no such pair).
func PrimaryPDBName(c *v1.Cluster) string { return c.Name + "-primary" }

// ReplicaPDBName is the replicas' PodDisruptionBudget.
func ReplicaPDBName(c *v1.Cluster) string { return c.Name + "-replicas" }

// LegacyReplicaPDBName is what ReplicaPDBName was before it had a suffix:
// the reconciler deletes a budget of that name that the Cluster controls,
// so an upgraded operator leaves no stale budget behind (nor one that holds
// the name another Cluster's primary budget needs).
func LegacyReplicaPDBName(c *v1.Cluster) string { return c.Name }

// PostgresPolicyName and StatusPolicyName are the NetworkPolicies.
func PostgresPolicyName(c *v1.Cluster) string { return c.Name + "-postgresql" }

// StatusPolicyName is the NetworkPolicy of the status port.
func StatusPolicyName(c *v1.Cluster) string { return c.Name + "-status" }

// MetricsPolicyName is the NetworkPolicy of the metrics port.
func MetricsPolicyName(c *v1.Cluster) string { return c.Name + "-metrics" }

// SecretNames are the names of the secrets a cluster uses: generated ones
// unless the spec names the user's own.
type SecretNames struct {
	// CA is the generated cluster CA (ca.crt, ca.key). It signs whatever the
	// user did not provide.
	CA string
	// ServerCA has the ca.crt clients and replicas trust for the server.
	ServerCA string
	// ServerTLS is PostgreSQL's and the status port's certificate.
	ServerTLS string
	// ClientCA has the ca.crt that verifies client certificates.
	ClientCA string
	// Replication is streaming_replica's client certificate.
	Replication string
	// Controller is the operator's client certificate for the status port.
	// No pod mounts it.
	Controller string
	// Metrics is the scraper's client certificate (CN pgward-metrics),
	// the only one the metrics exporter admits. No pod of the cluster
	// mounts it: the scraper's does.
	Metrics string
	// App holds the application owner's credentials.
	App string
	// Superuser holds postgres's credentials; "" when superuser access is off.
	Superuser string
}

// Secrets returns the secret names c uses.
func Secrets(c *v1.Cluster) SecretNames {
	certs := c.Spec.Certificates
	if certs == nil {
		certs = &v1.CertificatesConfiguration{}
	}
	n := SecretNames{
		CA:          c.Name + "-ca",
		ServerCA:    orDefault(certs.ServerCASecret, c.Name+"-ca"),
		ServerTLS:   orDefault(certs.ServerTLSSecret, c.Name+"-server"),
		ClientCA:    orDefault(certs.ClientCASecret, c.Name+"-ca"),
		Replication: orDefault(certs.ReplicationTLSSecret, c.Name+"-replication"),
		Controller:  c.Name + "-controller",
		Metrics:     c.Name + "-metrics",
		App:         c.Name + "-app",
	}
	if init := initDB(c); init != nil && init.Secret != nil {
		n.App = init.Secret.Name
	}
	if SuperuserAccess(c) {
		n.Superuser = c.Name + "-superuser"
		if c.Spec.SuperuserSecret != nil {
			n.Superuser = c.Spec.SuperuserSecret.Name
		}
	}
	return n
}

// GeneratedSuperuserSecret is the superuser secret pgward makes and owns.
func GeneratedSuperuserSecret(c *v1.Cluster) string { return c.Name + "-superuser" }

// SuperuserAccess reports whether the postgres superuser gets a password.
func SuperuserAccess(c *v1.Cluster) bool {
	return c.Spec.EnableSuperuserAccess != nil && *c.Spec.EnableSuperuserAccess
}

// NetworkPolicyEnabled reports whether c asks for NetworkPolicies.
func NetworkPolicyEnabled(c *v1.Cluster) bool {
	return c.Spec.NetworkPolicy != nil && c.Spec.NetworkPolicy.Enabled
}

func initDB(c *v1.Cluster) *v1.BootstrapInitDB {
	if c.Spec.Bootstrap == nil {
		return nil
	}
	return c.Spec.Bootstrap.InitDB
}

// ServerDNSNames are the names the server certificate carries: each Service
// (the defaults, then spec.managed.services' additional ones, so that
// clients can verify-full through them too) in its short, namespaced and
// fully qualified forms, then the user's extra names. Replicas and the
// operator verify the certificate against the read-write Service's short
// name.
func ServerDNSNames(c *v1.Cluster, clusterDomain string) []string {
	var names []string
	for _, svc := range append(ServiceNames(c), AdditionalServiceNames(c)...) {
		names = append(names, svc, svc+"."+c.Namespace, svc+"."+c.Namespace+".svc")
		if clusterDomain != "" {
			names = append(names, svc+"."+c.Namespace+".svc."+clusterDomain)
		}
	}
	if c.Spec.Certificates != nil {
		names = append(names, c.Spec.Certificates.ServerAltDNSNames...)
	}
	return names
}

// ServerName is the name instances' certificates are verified against by
// peers and by the operator: every instance serves the same certificate.
func ServerName(c *v1.Cluster) string { return rwService(c) }

// ClientHost is the host written into the application's connection secret.
func ClientHost(c *v1.Cluster) string { return fmt.Sprintf("%s.%s.svc", rwService(c), c.Namespace) }

// ROClientHost is the replicas' Service as the read-only URIs name it.
func ROClientHost(c *v1.Cluster) string { return fmt.Sprintf("%s.%s.svc", roService(c), c.Namespace) }

// ClusterLabels select every pod of c.
func ClusterLabels(c *v1.Cluster) map[string]string {
	return map[string]string{ClusterLabel: c.Name}
}

// commonLabels go on every object pgward makes for c.
func commonLabels(c *v1.Cluster) map[string]string {
	return map[string]string{
		ClusterLabel:   c.Name,
		nameLabel:      "postgresql",
		instanceLabel:  c.Name,
		managedByLabel: managedBy,
	}
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
