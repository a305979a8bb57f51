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
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgward/pgward/internal/instanceapi"
)

// Config is the instance manager's configuration file. Its contract lives
// in instanceapi beside the status contract, so the operator's builders
// write it without importing the manager.
type Config = instanceapi.Config

// Secrets names the secrets an instance reads (instanceapi.Secrets).
type Secrets = instanceapi.Secrets

// Endpoint locates an instance's PostgreSQL.
type Endpoint = instanceapi.Endpoint

// LoadConfig reads and checks a Config file.
func LoadConfig(path string) (*Config, error) { return instanceapi.LoadConfig(path) }

// SaveConfig writes c atomically with mode 0600.
func SaveConfig(c *Config, path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o600)
}

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

// LocalTablespaceLocation is instanceapi.LocalTablespaceLocation.
const LocalTablespaceLocation = instanceapi.LocalTablespaceLocation
