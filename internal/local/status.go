package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// ClusterStatus is what `pgward local status -o json` prints.
type ClusterStatus struct {
	Cluster           string           `json:"cluster"`
	Dir               string           `json:"dir"`
	ControllerRunning bool             `json:"controllerRunning"`
	TargetPrimary     string           `json:"targetPrimary"`
	CurrentPrimary    string           `json:"currentPrimary"`
	Instances         []InstanceReport `json:"instances"`
	// Fenced and Hibernated are the user's requests in force
	// (`pgward local fence`, `hibernate`, or the manifest's annotations).
	Fenced     []string `json:"fenced,omitempty"`
	Hibernated bool     `json:"hibernated,omitempty"`
	// Error says what is wrong with the cluster as a whole (a damaged
	// state file), if anything.
	Error string `json:"error,omitempty"`
}

// RoleDesignatedPrimary is the role `status` shows for a replica
// cluster's designated primary.
const RoleDesignatedPrimary = "designated primary"

// InstanceReport is one instance's line of the status.
type InstanceReport struct {
	Name       string `json:"name"`
	Role       string `json:"role"`
	State      string `json:"state"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	SocketDir  string `json:"socketDir"`
	StatusPort int    `json:"statusPort"`
	// MetricsURL is the instance's metrics exporter.
	MetricsURL string `json:"metricsURL,omitempty"`
	Timeline   uint32 `json:"timeline,omitempty"`
	// CurrentLSN is the primary's write position; ReceivedLSN and
	// ReplayedLSN a replica's.
	CurrentLSN  string `json:"currentLSN,omitempty"`
	ReceivedLSN string `json:"receivedLSN,omitempty"`
	ReplayedLSN string `json:"replayedLSN,omitempty"`
	// LagBytes is how far the replica's replay is behind the primary,
	// as the primary sees it.
	LagBytes *int64 `json:"lagBytes,omitempty"`
	// Source is, on a replica cluster's designated primary (role
	// "designated primary"), the external cluster it follows; LagBytes is
	// then its replay's distance from the source's WAL as last reported by
	// the source, ReplayDelaySeconds the age of the last transaction it
	// replayed while behind.
	Source             string  `json:"source,omitempty"`
	ReplayDelaySeconds float64 `json:"replayDelaySeconds,omitempty"`
	// TLS is the replication connection's protocol (replicas) as the
	// primary sees it.
	TLS      string `json:"tls,omitempty"`
	ClientDN string `json:"clientDN,omitempty"`
	// Archive is the primary's WAL archiving (spec.backup), Backup the
	// last base backup the instance ran.
	Archive *instanceapi.Archive   `json:"archive,omitempty"`
	Backup  *instanceapi.BackupRun `json:"backup,omitempty"`
	// ManifestSHA256 identifies the stored manifest PostgreSQL has loaded
	// (hex SHA-256 of its bytes), PendingRestart whether settings in it
	// wait for a restart: what the rolling update waits on.
	ManifestSHA256 string `json:"manifestSHA256,omitempty"`
	PendingRestart bool   `json:"pendingRestart,omitempty"`
	// Databases is the primary's result for each declared database (the
	// file's Database documents).
	Databases []instanceapi.DatabaseResult `json:"databases,omitempty"`
	Error     string                       `json:"error,omitempty"`
}

// StatusOptions configure `pgward local status`.
type StatusOptions struct {
	Dir    string
	Output string // "table" or "json"
	Out    io.Writer
}

// Status reports every instance as the instances report themselves.
func Status(ctx context.Context, o StatusOptions) error {
	cs, err := Observe(ctx, Layout{Dir: o.Dir})
	if err != nil {
		return err
	}
	switch o.Output {
	case "json":
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(cs)
	case "", "table":
		printTable(o.Out, cs)
		return nil
	default:
		return fmt.Errorf("unknown output format %q (table or json)", o.Output)
	}
}

// Observe gathers the cluster's status.
func Observe(ctx context.Context, l Layout) (*ClusterStatus, error) {
	st, err := LoadState(l)
	if err != nil {
		return nil, err
	}
	cl, err := newStatusClient(l, st.Cluster, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer cl.CloseIdle()
	sts, errs := observe(ctx, cl, st)
	cs := &ClusterStatus{Cluster: st.Cluster, Dir: l.Dir, ControllerRunning: controllerRunning(l), TargetPrimary: targetPrimary(l, st)}
	if _, err := loadMemory(l); err != nil {
		cs.Error = err.Error() + " (the controller cannot start until it is fixed or removed)"
	}
	var readiness *instanceapi.Streaming
	if manifest, err := os.ReadFile(l.ClusterFile()); err == nil {
		if c, err := v1.LoadAndValidate(manifest); err == nil {
			_, readiness = streamingChecks(c)
			if cs.Fenced, cs.Hibernated, err = applyFencing(l, c); err != nil {
				cs.Error = strings.TrimSpace(cs.Error + " fencing request: " + err.Error())
			}
		}
	}
	peers := map[string]instanceapi.Peer{}
	for _, s := range sts {
		if s != nil && (s.Role == instanceapi.RolePrimary || s.Designated) && s.PostmasterRunning && !s.Fenced {
			cs.CurrentPrimary = s.Name
			for _, p := range s.Replication {
				peers[p.ApplicationName] = p
			}
		}
	}
	for i, is := range st.Instances {
		r := InstanceReport{Name: is.Name, Host: localhost, Port: is.Port, StatusPort: is.StatusPort, Role: instanceapi.RoleUnknown}
		if is.MetricsPort != 0 {
			r.MetricsURL = MetricsURL(is)
		}
		if s := sts[i]; s != nil {
			r.Role, r.Timeline, r.SocketDir, r.Error = s.Role, s.Timeline, s.SocketDir, s.Error
			if s.ConfigError != "" {
				r.Error = strings.TrimSpace(r.Error + " " + s.ConfigError)
			}
			if s.RolesError != "" {
				r.Error = strings.TrimSpace(r.Error + " managed roles: " + s.RolesError)
			}
			if s.TablespacesError != "" {
				r.Error = strings.TrimSpace(r.Error + " tablespaces: " + s.TablespacesError)
			}
			r.Databases = s.Databases
			for _, d := range s.Databases {
				if !d.Applied {
					r.Error = strings.TrimSpace(r.Error + " database " + d.Object + ": " + d.Message)
				}
			}
			r.CurrentLSN, r.ReceivedLSN, r.ReplayedLSN = s.CurrentLSN, s.ReceivedLSN, s.ReplayedLSN
			r.Archive, r.Backup = s.Archive, s.Backup
			r.ManifestSHA256, r.PendingRestart = s.ManifestSHA256, s.PendingRestart
			r.State = instanceapi.StateOf(s)
			if s.PostmasterRunning && s.Ready {
				if err := passStreaming(s, readiness); err != nil {
					r.State = "not ready (" + err.Error() + ")"
				}
			}
			if s.Designated {
				r.Role, r.Source = RoleDesignatedPrimary, s.Source
				if w := s.WALReceiver; w != nil {
					lag := w.LagBytes
					r.LagBytes, r.ReplayDelaySeconds = &lag, w.ReplayDelaySeconds
				}
			}
			if p, ok := peers[is.Name]; ok {
				lag := p.LagBytes
				r.LagBytes = &lag
				r.TLS, r.ClientDN = p.TLSVersion, p.ClientDN
				if !p.SSL {
					r.TLS = "none"
				}
			}
		} else {
			r.State = "unreachable"
			if errs[i] != nil {
				r.Error = errs[i].Error()
			}
			if why, ok := crashLooping(l, is.Name); ok {
				r.Error = why
			}
		}
		cs.Instances = append(cs.Instances, r)
	}
	return cs, nil
}

func printTable(out io.Writer, cs *ClusterStatus) {
	_, _ = fmt.Fprintf(out, "Cluster %s  primary: %s (target %s)  controller: %s\n\n",
		cs.Cluster, orDash(cs.CurrentPrimary), cs.TargetPrimary, map[bool]string{true: "running", false: "stopped"}[cs.ControllerRunning])
	if cs.Hibernated {
		_, _ = fmt.Fprintln(out, "Hibernated: every instance is kept down (pgward local hibernate off brings it back)")
	}
	if len(cs.Fenced) > 0 {
		_, _ = fmt.Fprintf(out, "Fenced on request: %s\n", strings.Join(cs.Fenced, ", "))
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(w, "INSTANCE\tROLE\tSTATE\tTL\tLSN\tLAG\tTLS\tPORT")
	for _, r := range cs.Instances {
		lsn := r.CurrentLSN
		if lsn == "" {
			lsn = r.ReplayedLSN
		}
		lag := "-"
		if r.LagBytes != nil {
			lag = fmt.Sprintf("%d B", *r.LagBytes)
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\n", r.Name, r.Role, r.State, r.Timeline, orDash(lsn), lag, orDash(r.TLS), r.Port)
	}
	_ = w.Flush()
	for _, r := range cs.Instances {
		if line := archiveLine(r.Archive); line != "" {
			_, _ = fmt.Fprintf(out, "\n%s archiving: %s", r.Name, line)
		}
		if b := r.Backup; b != nil {
			line := b.Phase + " " + b.Label
			if b.Error != "" {
				line += ": " + b.Error
			}
			_, _ = fmt.Fprintf(out, "\n%s last backup (started %s): %s", r.Name, b.Started.Format(time.RFC3339), strings.TrimSpace(line))
		}
	}
	for _, r := range cs.Instances {
		if r.Source != "" {
			_, _ = fmt.Fprintf(out, "\n%s follows the source cluster %s (LAG is from the source; the cluster accepts no writes)", r.Name, r.Source)
		}
	}
	if cs.Error != "" {
		_, _ = fmt.Fprintf(out, "\ncluster: %s", cs.Error)
	}
	for _, r := range cs.Instances {
		if r.Error != "" {
			_, _ = fmt.Fprintf(out, "\n%s: %s", r.Name, r.Error)
		}
	}
	if len(cs.Instances) > 0 {
		_, _ = fmt.Fprintln(out)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// archiveLine says what was archived last, what waits, and the last
// failure when it is newer than the last success.
func archiveLine(a *instanceapi.Archive) string {
	if a == nil {
		return ""
	}
	line := fmt.Sprintf("%d archived", a.ArchivedCount)
	if a.LastArchivedWAL != "" && a.LastArchivedTime != nil {
		line += fmt.Sprintf(", last %s at %s", a.LastArchivedWAL, a.LastArchivedTime.UTC().Format(time.RFC3339))
	}
	line += fmt.Sprintf(", %d waiting (pg_wal %s)", a.Pending, humanBytes(a.PGWALBytes))
	if a.LastFailedTime != nil && (a.LastArchivedTime == nil || a.LastFailedTime.After(*a.LastArchivedTime)) {
		line += fmt.Sprintf("; FAILING since %s on %s (%d failures; see the instance log)", a.LastFailedTime.UTC().Format(time.RFC3339), a.LastFailedWAL, a.FailedCount)
	}
	return line
}
