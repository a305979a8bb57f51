package instanceapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Config is everything an instance manager needs to know, written by the
// runtime (local controller or operator) to a 0600 JSON file. It holds paths
// to secrets, never secrets themselves.
type Config struct {
	// Name is the instance name, e.g. "cluster-example-1".
	Name string `json:"name"`
	// ClusterFile is the Cluster manifest (the desired spec).
	ClusterFile string `json:"clusterFile"`
	// PGBinDir holds postgres, initdb and pg_basebackup.
	PGBinDir string `json:"pgBinDir"`
	// DataDir is PGDATA; ConfDir holds the rendered configuration, kept
	// outside PGDATA so pg_basebackup and pg_rewind never copy another
	// instance's settings over ours.
	DataDir string `json:"dataDir"`
	// WalDir, when set, holds the WAL (spec.walStorage): pg_wal is a link
	// to it.
	WalDir    string `json:"walDir,omitempty"`
	ConfDir   string `json:"confDir"`
	SocketDir string `json:"socketDir"`
	// LogFile receives PostgreSQL's stderr.
	LogFile string `json:"logFile"`
	// ListenAddress is what PostgreSQL binds; Host is the name peers and
	// clients use, which the server certificate must carry.
	ListenAddress string `json:"listenAddress"`
	Host          string `json:"host"`
	Port          int    `json:"port"`
	// StatusAddress is host:port of the HTTPS status server.
	StatusAddress string `json:"statusAddress"`
	// MetricsAddress is host:port of the metrics exporter (HTTPS, a client
	// certificate named pki.MetricsCommonName required); empty: none.
	MetricsAddress string `json:"metricsAddress,omitempty"`
	// CustomQueriesFile holds the cluster's custom queries in
	// internal/customqueries' canonical form (written by the runtime from
	// spec.monitoring's ConfigMaps and Secrets); empty or absent: none.
	// The exporter re-reads it when it changes.
	CustomQueriesFile string `json:"customQueriesFile,omitempty"`
	// DatabasesFile holds the cluster's declared databases (the Database
	// kind on Kubernetes, Database documents of the manifest file
	// locally) as a JSON list of v1.DatabaseDeclaration, written by the
	// runtime; empty or absent: none. The primary re-reads it every
	// second and reconciles at once when it changed, else every 10 s.
	DatabasesFile string `json:"databasesFile,omitempty"`
	// OSUser is the operating-system user PostgreSQL runs as; the peer map
	// lets exactly this user in as the postgres role over the socket.
	OSUser string `json:"osUser"`
	// SecretsRoot is the directory of secrets (one directory per secret).
	SecretsRoot string  `json:"secretsRoot"`
	Secrets     Secrets `json:"secrets"`
	// Primary is the instance that should be primary when the instance
	// starts for the first time; afterwards commands say.
	Primary Endpoint `json:"primary"`
	// SelfFence is how long a primary may go without a completed exchange
	// with the controller before it stops accepting writes (clusters of
	// more than one instance). Zero disables it.
	SelfFence time.Duration `json:"selfFence,omitempty"`
	// Lease, on Kubernetes, is the cluster's coordination Lease that the
	// primary renews itself through the API server: a renewal counts as
	// contact for SelfFence like a completed exchange with the controller,
	// so an operator restart of any length does not stop writes. Nil in the
	// local runtime, which has no API server.
	Lease *LeaseConfig `json:"lease,omitempty"`
	// Supervisor is the controller this manager keeps alive (local
	// runtime only); see Supervisor.
	Supervisor *Supervisor `json:"supervisor,omitempty"`
	// BootstrapSQLFile, when set, is a JSON file of the SQL that
	// bootstrap.initdb's Secret and ConfigMap references hold, resolved by
	// the runtime (v1.ResolvedSQL): the instance manager runs it after the
	// inline statements of the same field. It may hold secrets: 0600
	// locally, a Secret key on Kubernetes.
	BootstrapSQLFile string `json:"bootstrapSQLFile,omitempty"`
	// TablespacesDir holds this instance's tablespaces (spec.tablespaces):
	// <dir>/<name>/data, 0700, made by the instance manager before
	// PostgreSQL needs it. TablespaceLocation is the prefix of the location
	// CREATE TABLESPACE records: the same string on every instance (a
	// replica replays CREATE TABLESPACE with the primary's location), that
	// resolves to TablespacesDir in PostgreSQL's processes. On Kubernetes
	// both are the fixed mount path of the tablespaces' volumes; locally,
	// where every instance shares one file system, it is
	// LocalTablespaceLocation, which resolves through each process's working
	// directory (its data directory) to the tablespaces beside it.
	TablespacesDir     string `json:"tablespacesDir,omitempty"`
	TablespaceLocation string `json:"tablespaceLocation,omitempty"`
}

// dnsName is a Kubernetes object name (RFC 1123 subdomain).
var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// LeaseConfig locates the cluster's primary Lease (coordination.k8s.io/v1)
// and says how often the primary renews it. The API server's address comes
// from the pod's environment (KUBERNETES_SERVICE_HOST/PORT) and the
// credentials from TokenDir (the pod's projected, short-lived token and the
// cluster's CA), as for any in-cluster client; the pods' Role allows get
// and update on this one Lease and nothing else of its kind.
type LeaseConfig struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// TokenDir holds token and ca.crt.
	TokenDir string `json:"tokenDir"`
	// RenewPeriod is how often the primary renews; RequestTimeout bounds
	// one renewal (get and update).
	RenewPeriod    time.Duration `json:"renewPeriod"`
	RequestTimeout time.Duration `json:"requestTimeout"`
}

// Secrets names the secrets (under SecretsRoot) the instance reads.
type Secrets struct {
	// ServerTLS has tls.crt and tls.key for PostgreSQL and the status port.
	ServerTLS string `json:"serverTLS"`
	// ServerCA has ca.crt, which replicas trust for the primary's certificate.
	ServerCA string `json:"serverCA"`
	// ClientCA has ca.crt, which verifies client certificates.
	ClientCA string `json:"clientCA"`
	// Replication has tls.crt and tls.key of streaming_replica.
	Replication string `json:"replication"`
	// App has username and password of the application owner.
	App string `json:"app"`
	// Superuser has the postgres password; empty when superuser access is off.
	Superuser string `json:"superuser,omitempty"`
}

// LoadConfig reads and checks a Config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the path is the operator-chosen config file
	if err != nil {
		return nil, fmt.Errorf("reading instance config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parsing instance config %s: %w", path, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("instance config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) check() error {
	var errs []error
	req := map[string]string{
		"name": c.Name, "clusterFile": c.ClusterFile, "pgBinDir": c.PGBinDir,
		"dataDir": c.DataDir, "confDir": c.ConfDir, "socketDir": c.SocketDir,
		"host": c.Host, "statusAddress": c.StatusAddress, "osUser": c.OSUser,
		"secretsRoot": c.SecretsRoot, "primary.name": c.Primary.Name,
	}
	for k, v := range req {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", k))
		}
	}
	if c.WalDir != "" && !filepath.IsAbs(c.WalDir) {
		errs = append(errs, fmt.Errorf("walDir must be absolute, got %q", c.WalDir))
	}
	for k, p := range map[string]string{"dataDir": c.DataDir, "confDir": c.ConfDir, "socketDir": c.SocketDir} {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s must be absolute, got %q", k, p))
		}
	}
	errs = append(errs, c.checkTablespaces()...)
	if l := c.Lease; l != nil {
		switch {
		case !dnsName.MatchString(l.Namespace) || !dnsName.MatchString(l.Name):
			// Both go into the request path: only Kubernetes object names.
			errs = append(errs, fmt.Errorf("lease.namespace %q and lease.name %q must be Kubernetes object names", l.Namespace, l.Name))
		case !filepath.IsAbs(l.TokenDir):
			errs = append(errs, fmt.Errorf("lease.tokenDir must be absolute, got %q", l.TokenDir))
		case l.RenewPeriod <= 0 || l.RequestTimeout <= 0:
			errs = append(errs, errors.New("lease.renewPeriod and lease.requestTimeout must be positive"))
		}
	}
	if c.Port <= 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	return errors.Join(errs...)
}

// IsPrimary reports whether this instance should be the primary.
func (c *Config) IsPrimary() bool { return c.Primary.Name == c.Name }

// Supervisor describes the controller that supervises this instance
// manager, when there is one to keep alive (the local runtime; on
// Kubernetes the operator is a Deployment the kubelet restarts, and this is
// nil).
//
// A manager outlives its controller: a controller that crashes takes no
// instance down with it, and whichever manager notices first starts a new
// one, which adopts the running managers and resumes the planner from its
// persisted memory. The primary keeps accepting writes meanwhile, within its
// self-fencing window. A controller frozen (SIGSTOP) is as good as dead, so
// a manager kills it and starts another. With no controller for OrphanAfter
// and none that can be started, a manager stops PostgreSQL and exits:
// nothing runs unsupervised for long.
type Supervisor struct {
	// Command starts a controller; it must exit at once if another holds
	// the cluster's lock (several managers may start one at the same time).
	Command []string `json:"command"`
	// PidFile is where a running controller writes its pid.
	PidFile string `json:"pidFile"`
	// StopFile, while it exists, means the cluster is being stopped: the
	// controller's absence is intended and nothing is restarted.
	StopFile string `json:"stopFile"`
	// LogFile receives the output of a controller this manager starts.
	LogFile string `json:"logFile"`
	// OrphanAfter is how long a manager stays without a controller (no
	// completed exchange, none running) before it stops PostgreSQL and exits.
	OrphanAfter time.Duration `json:"orphanAfter"`
}

// LocalTablespaceLink is the symbolic link, in a local instance's data
// directory, to the "tablespaces" directory beside it. It lives in
// pg_dynshmem, a directory whose contents PostgreSQL leaves alone (it
// removes only its own mmap.* files there) and that pg_basebackup and
// pg_rewind skip: a link elsewhere in the data directory would be copied
// by pg_rewind as the directory it names (the source server reports it
// as one), tablespace files and all. The instance manager makes it again
// wherever it is missing.
const LocalTablespaceLink = "pg_dynshmem/pgward_tablespaces"

// LocalTablespaceLocation is the local runtime's TablespaceLocation.
// PostgreSQL's processes run in their data directory (the postmaster
// changes into it, its children inherit it), so this one string names, in
// each instance's processes, its own tablespaces through
// LocalTablespaceLink: a replica replaying the primary's CREATE TABLESPACE
// uses its own directory, never the primary's, though all of them share
// one file system. (PostgreSQL folds "..", so the way out of the data
// directory cannot be spelled in the location itself.)
const LocalTablespaceLocation = "/proc/self/cwd/" + LocalTablespaceLink

// checkTablespaces makes sure the location CREATE TABLESPACE records
// resolves to TablespacesDir: the fixed path itself, or the local form,
// which resolves to the directory beside DataDir.
func (c *Config) checkTablespaces() []error {
	if c.TablespacesDir == "" && c.TablespaceLocation == "" {
		return nil
	}
	switch {
	case !filepath.IsAbs(c.TablespacesDir) || filepath.Clean(c.TablespacesDir) != c.TablespacesDir:
		return []error{fmt.Errorf("tablespacesDir must be a clean absolute path, got %q", c.TablespacesDir)}
	case c.TablespaceLocation == c.TablespacesDir:
		return nil
	case c.TablespaceLocation == LocalTablespaceLocation && filepath.Join(filepath.Dir(c.DataDir), "tablespaces") == c.TablespacesDir:
		return nil
	}
	return []error{fmt.Errorf("tablespaceLocation %q does not name tablespacesDir %q", c.TablespaceLocation, c.TablespacesDir)}
}
