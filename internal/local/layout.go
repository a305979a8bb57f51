// Package local is the embedded runtime: it runs a Cluster's instance
// managers as processes on loopback, with the same certificates, secrets,
// pg_hba and status API as on Kubernetes, under a small controller process
// that supervises them until `pgward local down`.
//
// Everything lives in one state directory (mode 0700):
//
//	cluster.yaml         the desired spec
//	state.json           ports and the run-as user, fixed at first `up`
//	controller.pid/.lock the supervising controller
//	up.lock, stopping    `up`/`down` serialization; a stop in progress
//	bin/pgward           the binary the unprivileged user executes
//	secrets/<name>/<key> secrets, one directory each (0700), one file per key (0600)
//	instances/<name>/    config.json, data/, conf/, run/ (socket), and logs
//	log/                 the controller's log
package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pgward/pgward/internal/instance"
)

// Layout names the files of a state directory.
type Layout struct{ Dir string }

// ClusterFile is the stored manifest.
func (l Layout) ClusterFile() string { return filepath.Join(l.Dir, "cluster.yaml") }

// StateFile records what must not change between runs.
func (l Layout) StateFile() string { return filepath.Join(l.Dir, "state.json") }

// PidFile holds the controller's pid.
func (l Layout) PidFile() string { return filepath.Join(l.Dir, "controller.pid") }

// LockFile is held (flock) by the running controller.
func (l Layout) LockFile() string { return filepath.Join(l.Dir, "controller.lock") }

// UpLockFile is held (flock) by `up` while it prepares the directory and
// starts the controller, and by `down`: the two never interleave.
func (l Layout) UpLockFile() string { return filepath.Join(l.Dir, "up.lock") }

// StopFile exists while the cluster is being stopped: managers do not
// restart a controller then.
func (l Layout) StopFile() string { return filepath.Join(l.Dir, "stopping") }

// ControllerCommand is how `up`, and any instance manager that finds no
// controller running, start one.
func (l Layout) ControllerCommand() []string {
	return []string{filepath.Join(l.BinDir(), "pgward"), "local", "controller", "--dir", l.Dir}
}

// LogDir holds the controller's log.
func (l Layout) LogDir() string { return filepath.Join(l.Dir, "log") }

// ControllerLog is the controller's log file.
func (l Layout) ControllerLog() string { return filepath.Join(l.LogDir(), "controller.log") }

// BinDir holds the pgward binary the run-as user executes.
func (l Layout) BinDir() string { return filepath.Join(l.Dir, "bin") }

// SecretsDir is the root of the secrets store.
func (l Layout) SecretsDir() string { return filepath.Join(l.Dir, "secrets") }

// ConfigMapsDir holds the ConfigMaps of the manifest file, one directory
// each, like secrets.
func (l Layout) ConfigMapsDir() string { return filepath.Join(l.Dir, "configmaps") }

// CustomQueriesFile is spec.monitoring's custom queries, checked and in
// canonical form, for every instance's exporter.
func (l Layout) CustomQueriesFile() string { return filepath.Join(l.Dir, "custom-queries.json") }

// InstanceDir is one instance's directory.
func (l Layout) InstanceDir(name string) string { return filepath.Join(l.Dir, "instances", name) }

// InstanceConfig is the instance manager's config file.
func (l Layout) InstanceConfig(name string) string {
	return filepath.Join(l.InstanceDir(name), "config.json")
}

// InstanceLog receives the instance manager's own log.
func (l Layout) InstanceLog(name string) string {
	return filepath.Join(l.InstanceDir(name), "instance.log")
}

// State is what `up` fixes on the first run and reuses afterwards, so a
// resumed cluster keeps its ports and owner.
type State struct {
	Cluster   string          `json:"cluster"`
	RunAs     string          `json:"runAs"`
	PGBinDir  string          `json:"pgBinDir"`
	Instances []InstanceState `json:"instances"`
	// TargetPrimary is the instance that should be primary.
	TargetPrimary string     `json:"targetPrimary"`
	HA            HASettings `json:"ha"`
}

// HASettings tune failure detection. The controller's wait before replacing
// an unreachable primary is derived from them (plan.FenceTiming).
type HASettings struct {
	// UnreachableTimeout: a primary that does not answer for this long
	// counts as failed (a dead postmaster reported by a live instance
	// manager counts at once).
	UnreachableTimeout Duration `json:"unreachableTimeout"`
	// SelfFence: a primary that completes no exchange with the controller
	// for this long stops accepting writes.
	SelfFence Duration `json:"selfFence"`
}

// Duration is a time.Duration written as text ("3s") in JSON.
type Duration struct{ time.Duration }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// withDefaults fills unset settings and overrides them with the given
// non-zero values.
func (h HASettings) withDefaults(unreachable, selfFence time.Duration) (HASettings, error) {
	if unreachable > 0 {
		h.UnreachableTimeout.Duration = unreachable
	}
	if selfFence > 0 {
		h.SelfFence.Duration = selfFence
	}
	if h.UnreachableTimeout.Duration == 0 {
		h.UnreachableTimeout.Duration = defaultUnreachableTimeout
	}
	if h.SelfFence.Duration == 0 {
		h.SelfFence.Duration = defaultSelfFence
	}
	if h.UnreachableTimeout.Duration < 200*time.Millisecond || h.SelfFence.Duration < time.Second {
		return h, fmt.Errorf("unreachable timeout must be at least 200ms and self-fence at least 1s (got %s, %s)",
			h.UnreachableTimeout.Duration, h.SelfFence.Duration)
	}
	return h, nil
}

// InstanceState is one instance's fixed endpoints.
type InstanceState struct {
	Name       string `json:"name"`
	Port       int    `json:"port"`
	StatusPort int    `json:"statusPort"`
	// MetricsPort is the metrics exporter's (added to a resumed state
	// that has none).
	MetricsPort int `json:"metricsPort,omitempty"`
}

// Instance returns the named instance's state.
func (s *State) Instance(name string) (InstanceState, bool) {
	for _, i := range s.Instances {
		if i.Name == name {
			return i, true
		}
	}
	return InstanceState{}, false
}

// LoadState reads state.json.
func LoadState(l Layout) (*State, error) {
	b, err := os.ReadFile(l.StateFile()) // #nosec G703 -- the state directory is the user's own choice
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no cluster in %s (run `pgward local up` first): %w", l.Dir, err)
		}
		return nil, fmt.Errorf("reading state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", l.StateFile(), err)
	}
	return &s, nil
}

// Save writes state.json atomically.
func (s *State) Save(l Layout) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return instance.WriteFileAtomic(l.StateFile(), b, 0o600)
}

func loadInstanceConfig(l Layout, name string) (*instance.Config, error) {
	return instance.LoadConfig(l.InstanceConfig(name))
}
