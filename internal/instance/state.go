package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// persisted is what the instance manager must remember across its own
// restarts: the fencing epoch it runs at, whether it is fenced, whom it
// follows and the synchronous standbys it runs with as a primary. It lives
// beside the rendered configuration, outside PGDATA, so no clone or rewind
// can carry another instance's copy over it.
type persisted struct {
	// Epoch is the epoch of the last bootstrap or promotion executed here.
	Epoch uint64 `json:"epoch"`
	// SeenEpoch is the highest epoch any command carried; commands from an
	// older epoch come from a stale controller and are refused.
	SeenEpoch uint64 `json:"seenEpoch"`
	Fenced    bool   `json:"fenced"`
	// Primary is the instance this one follows (itself when primary).
	Primary Endpoint `json:"primary"`
	// SyncStandbys is synchronous_standby_names when running as primary.
	SyncStandbys string `json:"syncStandbys"`
	// PromotedAt is when this instance last completed a promotion (a
	// failover or switchover onto it); zero if never.
	PromotedAt time.Time `json:"promotedAt,omitzero"`
	// Designated means this instance is the designated primary of a
	// replica cluster: a standby following spec.replica.source (Primary is
	// itself then).
	Designated bool `json:"designated,omitempty"`
}

func statePath(confDir string) string { return filepath.Join(confDir, "instance-state.json") }

func loadPersisted(confDir string, initial Endpoint) (persisted, error) {
	st := persisted{Primary: initial}
	b, err := os.ReadFile(statePath(confDir)) // #nosec G304 -- our own state file
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("reading instance state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parsing %s: %w", statePath(confDir), err)
	}
	return st, nil
}

func (p persisted) save(confDir string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(statePath(confDir), b, 0o600)
}
