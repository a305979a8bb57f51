// Package instance is the instance manager: the process that owns one
// PostgreSQL instance. It creates the data directory (initdb or a TLS
// pg_basebackup as streaming_replica), renders the configuration, runs
// postgres as its direct child and reaps it, reconciles the roles pgward
// needs, and serves the instance's status over mutual TLS.
//
// It executes but never decides: who is primary comes from its Config (and,
// later, from the controller over the status port). The same code is PID 1 in
// a Kubernetes pod and a plain process in the local runtime.
package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pgward/pgward/internal/instanceapi"
	"os"
	"path/filepath"
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
	// Supervisor is the controller this manager keeps alive (local
	// runtime only); see Supervisor.
	Supervisor *Supervisor `json:"supervisor,omitempty"`
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

// Endpoint locates an instance's PostgreSQL.
type Endpoint = instanceapi.Endpoint

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

// Save writes the config atomically with mode 0600.
func (c *Config) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o600)
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
	if c.Port <= 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	return errors.Join(errs...)
}

// IsPrimary reports whether this instance should be the primary.
func (c *Config) IsPrimary() bool { return c.Primary.Name == c.Name }

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, so readers never see a half-written file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
