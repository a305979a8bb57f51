// Package instanceapi is the wire contract of the instance manager's status
// port: the paths, the JSON documents and a client that speaks mutual TLS.
//
// The instance manager serves it and both runtimes (the local controller and
// the Kubernetes operator) consume it, so it imports nothing from pgward.
package instanceapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Paths served on the status port. The probes are unauthenticated and say
// nothing beyond ok/not ok; everything under /pg/ requires a client
// certificate from the cluster's client CA carrying the controller identity.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathStatus  = "/pg/status"
	PathCommand = "/pg/command"
	// PathBackup: POST starts a base backup on the primary (202, or 409
	// when one runs or this is not the primary); GET lists the backups in
	// the object store (a BackupList).
	PathBackup = "/pg/backup"
	// PathReload: POST a ReloadRequest; the instance re-reads its
	// manifest, secrets and certificates and reloads PostgreSQL at once
	// instead of at its next periodic check (202); Status.Reload shows
	// the outcome.
	PathReload = "/pg/reload"
	// PathConfig: GET the configuration files PostgreSQL runs with, as
	// rendered (a ConfigFiles), for `kubectl pgward report`.
	PathConfig = "/pg/config"
	// AckParam on a status request names the RequestID of the previous
	// answer the controller received: only a completed exchange counts as
	// contact for the instance's self-fencing timer.
	AckParam = "ack"
	// PathWatch answers with the instance's Digest as soon as it differs
	// from the SinceParam the caller last saw, or after at most WatchWait:
	// a long poll that wakes the controller when an instance changes
	// (its postmaster died, it shut down, it was promoted) rather than at
	// its next periodic check. It is not contact for self-fencing (no ack):
	// only a status exchange is.
	PathWatch  = "/pg/watch"
	SinceParam = "since"
)

// WatchWait is the longest a watch request is held open: below the status
// server's write timeout (10 s), so the answer always gets out.
const WatchWait = 8 * time.Second

// WatchAnswer is the answer on PathWatch.
type WatchAnswer struct {
	Digest string `json:"digest"`
}

// Commands the controller sends. Each names an end state, so sending one
// again when it already holds changes nothing.
const (
	CommandBootstrap       = "bootstrap"
	CommandPromote         = "promote"
	CommandFollow          = "follow"
	CommandFence           = "fence"
	CommandStart           = "start"
	CommandDemote          = "demote"
	CommandRejoin          = "rejoin"
	CommandRecreate        = "recreate"
	CommandSetSyncStandbys = "set-sync-standbys"
	// CommandRestart restarts postgres in its role (fast shutdown, start),
	// for settings that need a restart.
	CommandRestart = "restart"
)

// Command asks an instance manager to reach a state. Epoch is the
// controller's fencing epoch; an instance refuses commands from an older
// epoch than the one it has seen, so a stale controller cannot act.
//
// Ack, like a status request's ack, names the RequestID of the last status
// answer the controller received from this instance: the decision the
// command carries out was made on that answer, so the exchange it closes
// counts as contact. A replica promoted right after the controller comes
// back from a pause would otherwise start as a primary that has not heard
// from the controller for the whole pause, and fence itself at once.
type Command struct {
	Kind         string    `json:"kind"`
	Epoch        uint64    `json:"epoch"`
	Ack          uint64    `json:"ack,omitempty"`
	Primary      *Endpoint `json:"primary,omitempty"`
	SyncStandbys string    `json:"syncStandbys,omitempty"`
	// Designated, on bootstrap and promote, makes the instance the
	// designated primary of a replica cluster: a standby that follows the
	// source cluster (spec.replica.source) instead of accepting writes.
	Designated bool `json:"designated,omitempty"`
}

// Endpoint locates an instance's PostgreSQL.
type Endpoint struct {
	Name string `json:"name"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// Roles an instance reports.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
	RoleUnknown = "unknown"
)

// Status is what an instance reports about itself on PathStatus.
type Status struct {
	Name string `json:"name"`
	// Role is primary, replica, or unknown while PostgreSQL is down.
	Role string `json:"role"`
	// PostmasterRunning is false when the instance manager saw the
	// postmaster exit; it reports that at once rather than waiting for a timeout.
	PostmasterRunning bool `json:"postmasterRunning"`
	// Ready is true when PostgreSQL accepts connections.
	Ready bool `json:"ready"`
	// Phase says what the instance manager is doing (initdb, basebackup, running...).
	Phase     string `json:"phase"`
	PGVersion string `json:"pgVersion,omitempty"`
	SystemID  string `json:"systemID,omitempty"`
	Timeline  uint32 `json:"timeline,omitempty"`
	// LSNs in PostgreSQL's X/Y text form; empty when not applicable.
	CurrentLSN  string `json:"currentLSN,omitempty"`
	ReceivedLSN string `json:"receivedLSN,omitempty"`
	ReplayedLSN string `json:"replayedLSN,omitempty"`
	// PendingRestart is true when a changed parameter needs a restart.
	PendingRestart bool `json:"pendingRestart"`
	// ManifestSHA256 is the hex SHA-256 of the manifest file whose
	// configuration PostgreSQL has loaded (the bytes of ReloadRequest's
	// ManifestSHA256): taken before the query that read PendingRestart,
	// after PostgreSQL confirmed the load, so the two together say
	// whether the instance runs the manifest it was given. Empty while
	// PostgreSQL does not run, and from instance managers older than the
	// field, which the planner does not count as running any manifest.
	ManifestSHA256 string `json:"manifestSHA256,omitempty"`
	// StreamingFrom names the primary a replica streams from ("" if none).
	StreamingFrom string `json:"streamingFrom,omitempty"`
	// WALReceiver describes a replica's upstream connection.
	WALReceiver *WALReceiver `json:"walReceiver,omitempty"`
	// Replication lists the standbys connected to a primary.
	Replication []Peer `json:"replication,omitempty"`
	// Host, Port and SocketDir say where PostgreSQL listens.
	Host      string `json:"host"`
	Port      int    `json:"port"`
	SocketDir string `json:"socketDir,omitempty"`
	// Epoch is the fencing epoch of the last bootstrap or promotion this
	// instance executed (or the highest a command carried).
	Epoch uint64 `json:"epoch"`
	// Fenced means the instance manager keeps postgres from accepting
	// writes until told otherwise.
	Fenced bool `json:"fenced"`
	// SelfFence is how long this instance, as a primary, accepts writes
	// without contact (0: never, a single instance). Nil from managers
	// older than the field: they fenced after 30 s. The controller's bound
	// must cover what the running manager was started with, which an
	// operator upgrade or a changed --self-fence does not change until the
	// pod restarts.
	SelfFence *time.Duration `json:"selfFence,omitempty"`
	// Empty means there is no data directory yet.
	Empty bool `json:"empty"`
	// SyncStandbyNames is the synchronous_standby_names a primary runs with.
	SyncStandbyNames string `json:"syncStandbyNames,omitempty"`
	// Busy names the command being executed, if any.
	Busy string `json:"busy,omitempty"`
	// RequestID identifies this answer; the next request acknowledges it.
	RequestID uint64 `json:"requestID"`
	// Error carries the last error the instance manager hit, if any.
	Error string `json:"error,omitempty"`
	// ConfigError says why the instance still runs an older configuration:
	// PostgreSQL refused the manifest's latest (in its words, with the
	// manifest's field).
	ConfigError string `json:"configError,omitempty"`
	// ServerCertSHA256 and ClientCAsSHA256 identify (hex SHA-256 of the DER)
	// the server certificate and the client CA certificates PostgreSQL last
	// read, at its start or a reload; empty while it does not run. CA
	// rotation waits on them before it goes on.
	ServerCertSHA256 string   `json:"serverCertSHA256,omitempty"`
	ClientCAsSHA256  []string `json:"clientCAsSHA256,omitempty"`
	// RolesError says why spec.managed.roles is not (yet) what the
	// primary has; empty when it is.
	RolesError string `json:"rolesError,omitempty"`
	// TablespacesError says why spec.tablespaces is not (yet) what the
	// primary has; empty when it is.
	TablespacesError string `json:"tablespacesError,omitempty"`
	// Databases is the primary's result for each declared database (see
	// Config.DatabasesFile), for the generation it applied.
	Databases []DatabaseResult `json:"databases,omitempty"`
	// Archive is the WAL archiver's state on a primary that archives.
	Archive *Archive `json:"archive,omitempty"`
	// Backup is the last base backup this instance ran, if any.
	Backup *BackupRun `json:"backup,omitempty"`
	// Designated means the instance is the designated primary of a
	// replica cluster, following Source (a spec.externalClusters entry).
	Designated bool   `json:"designated,omitempty"`
	Source     string `json:"source,omitempty"`
	// Reload is the last reload request this instance received and its
	// outcome (`pgward local reload`, `kubectl pgward reload`).
	Reload     *ReloadResult `json:"reload,omitempty"`
	ObservedAt time.Time     `json:"observedAt"`
}

// DatabaseResult is the outcome of one declared database: Object and
// Generation echo the declaration's; Applied is true when the server has
// it as declared, else Message says why not (each schema's and
// extension's problem named).
type DatabaseResult struct {
	Object     string `json:"object"`
	Generation int64  `json:"generation,omitempty"`
	Applied    bool   `json:"applied"`
	Message    string `json:"message,omitempty"`
}

// ConfigFiles are an instance's configuration files by name
// (postgresql.conf, pg_hba.conf, pg_ident.conf, postgresql.auto.conf);
// Errors says why one could not be read.
type ConfigFiles struct {
	Files  map[string]string `json:"files"`
	Errors map[string]string `json:"errors,omitempty"`
}

// ReloadRequest asks an instance to apply its configuration now.
type ReloadRequest struct {
	// ID names the request; Status.Reload echoes it, so that the one who
	// asked knows the outcome is that of its own request.
	ID string `json:"id"`
	// ManifestSHA256, when set, is the hex SHA-256 of the manifest file
	// the reload must apply: the instance waits until its file has that
	// content (on Kubernetes the kubelet updates a mounted Secret a little
	// after the Secret changed), at most ReloadManifestWait.
	ManifestSHA256 string `json:"manifestSHA256,omitempty"`
}

// ReloadManifestWait bounds an instance's wait for the manifest a reload
// request names.
const ReloadManifestWait = 2 * time.Minute

// ReloadResult is the outcome of the last ReloadRequest.
type ReloadResult struct {
	ID string `json:"id"`
	// Done is false while the instance waits for the manifest or reloads.
	Done bool       `json:"done"`
	At   *time.Time `json:"at,omitempty"`
	// PendingRestart names the parameters whose new value waits for a
	// restart of PostgreSQL (pg_settings.pending_restart).
	PendingRestart []string `json:"pendingRestart,omitempty"`
	// Error says why the new configuration is not in effect.
	Error string `json:"error,omitempty"`
}

// Digest summarises what in a status a controller acts on: role, whether
// PostgreSQL runs and is ready, the manager's phase, command and fencing,
// epoch, timeline, restart and configuration state, what it streams from
// and which standbys stream from it, a backup's phase. It leaves out what
// moves all the time (LSNs, lag, times, request IDs, error wording), so a
// busy healthy instance keeps one digest and a watch stays quiet.
func (s *Status) Digest() string {
	type peer struct{ Name, State, Sync string }
	var peers []peer
	for _, p := range s.Replication {
		peers = append(peers, peer{p.ApplicationName, p.State, p.SyncState})
	}
	slices.SortFunc(peers, func(a, b peer) int { return strings.Compare(a.Name, b.Name) })
	receiver := ""
	if s.WALReceiver != nil {
		receiver = s.WALReceiver.Status
	}
	backup := ""
	if s.Backup != nil {
		backup = s.Backup.Phase + "@" + s.Backup.Started.UTC().Format(time.RFC3339Nano)
	}
	raw, _ := json.Marshal([]any{
		s.Name, s.Role, s.PostmasterRunning, s.Ready, s.Phase, s.Busy, s.Fenced, s.Empty, s.Epoch,
		s.Timeline, s.PendingRestart, s.ManifestSHA256, s.StreamingFrom, receiver, s.SyncStandbyNames, peers,
		s.Error != "", s.ConfigError != "", s.RolesError != "", s.Designated, s.Source, backup,
	})
	if len(s.Databases) > 0 {
		// Only with declared databases, so that the digest of every other
		// instance stays what it was.
		type db struct {
			O string
			G int64
			A bool
		}
		var dbs []db
		for _, d := range s.Databases {
			dbs = append(dbs, db{d.Object, d.Generation, d.Applied})
		}
		more, _ := json.Marshal(dbs)
		raw = append(raw, more...)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}

// Archive is pg_stat_archiver plus what waits in pg_wal.
type Archive struct {
	ArchivedCount    int64      `json:"archivedCount"`
	LastArchivedWAL  string     `json:"lastArchivedWAL,omitempty"`
	LastArchivedTime *time.Time `json:"lastArchivedTime,omitempty"`
	FailedCount      int64      `json:"failedCount"`
	LastFailedWAL    string     `json:"lastFailedWAL,omitempty"`
	LastFailedTime   *time.Time `json:"lastFailedTime,omitempty"`
	// Pending is how many finished WAL segments wait to be archived;
	// PGWALBytes is the size of pg_wal, which grows while they wait.
	Pending    int64 `json:"pending"`
	PGWALBytes int64 `json:"pgWALBytes"`
}

// Backup phases.
const (
	BackupRunning   = "running"
	BackupCompleted = "completed"
	BackupFailed    = "failed"
)

// BackupRun is one base backup an instance ran.
type BackupRun struct {
	Phase   string     `json:"phase"`
	Started time.Time  `json:"started"`
	Stopped *time.Time `json:"stopped,omitempty"`
	// Label is the new backup's label once it completed.
	Label string `json:"label,omitempty"`
	Error string `json:"error,omitempty"`
}

// BackupList is the answer to GET PathBackup.
type BackupList struct {
	Stanza  string       `json:"stanza"`
	Backups []BackupInfo `json:"backups"`
}

// BackupInfo describes one base backup in the object store.
type BackupInfo struct {
	Label     string    `json:"label"`
	Type      string    `json:"type"`
	Start     time.Time `json:"start"`
	Stop      time.Time `json:"stop"`
	StartLSN  string    `json:"startLSN"`
	StopLSN   string    `json:"stopLSN"`
	Timeline  int       `json:"timeline"`
	Size      int64     `json:"size"`
	RepoSize  int64     `json:"repoSize"`
	Encrypted bool      `json:"encrypted"`
}

// WALReceiver is a replica's view of its upstream (pg_stat_wal_receiver).
type WALReceiver struct {
	Status     string `json:"status"`
	SenderHost string `json:"senderHost,omitempty"`
	SenderPort int    `json:"senderPort,omitempty"`
	// LagBytes is how far replay is behind the end of the WAL the sender
	// last reported having (latest_end_lsn): the lag from the upstream.
	LagBytes int64 `json:"lagBytes"`
	// ReplayDelaySeconds is how old the last replayed transaction is
	// (0 when replay is caught up with everything received).
	ReplayDelaySeconds float64 `json:"replayDelaySeconds"`
}

// Peer is one row of the primary's pg_stat_replication joined with pg_stat_ssl.
type Peer struct {
	ApplicationName string `json:"applicationName"`
	State           string `json:"state"`
	SyncState       string `json:"syncState"`
	SentLSN         string `json:"sentLSN,omitempty"`
	ReplayLSN       string `json:"replayLSN,omitempty"`
	LagBytes        int64  `json:"lagBytes"`
	SSL             bool   `json:"ssl"`
	TLSVersion      string `json:"tlsVersion,omitempty"`
	ClientDN        string `json:"clientDN,omitempty"`
}

// StateOf is an instance's state in words, as both runtimes' status
// commands print it.
func StateOf(s *Status) string {
	switch {
	case s.Fenced && !s.PostmasterRunning:
		return "fenced"
	case !s.PostmasterRunning:
		return "down (" + s.Phase + ")"
	case !s.Ready:
		return "not ready"
	case s.Role == RoleReplica && s.WALReceiver != nil:
		return s.WALReceiver.Status
	case s.Role == RoleReplica:
		return "disconnected"
	default:
		return "running"
	}
}

// PathAudit (GET) answers what an audit cannot see from outside the
// instance: who its processes run as, what postgresql.auto.conf sets, how
// the fixed parameters are set in the running server, and the
// configuration files as rendered. Like the status, only the controller's
// certificate may read it.
const PathAudit = "/pg/audit"

// AuditEvidence is the answer to GET PathAudit. Each part carries its own
// error when it could not be read, so that one failure leaves the rest.
type AuditEvidence struct {
	Name string `json:"name"`
	// Processes are every process the instance manager sees (in a pod:
	// every process of its container), with the lowest of their real,
	// effective and saved uids.
	Processes      []AuditProc `json:"processes,omitempty"`
	ProcessesError string      `json:"processesError,omitempty"`
	// AutoConf lists the parameters postgresql.auto.conf sets (names only).
	AutoConf      []string `json:"autoConf"`
	AutoConfError string   `json:"autoConfError,omitempty"`
	// Settings are the running server's pg_settings rows of fixed
	// parameters; RoleSettings the parameters set for a role or database
	// (names only); ConfFile the rendered postgresql.conf they must come from.
	Settings      []AuditSetting     `json:"settings,omitempty"`
	RoleSettings  []AuditRoleSetting `json:"roleSettings,omitempty"`
	ConfFile      string             `json:"confFile,omitempty"`
	SettingsError string             `json:"settingsError,omitempty"`
	// SuperuserHasPassword says whether the postgres role has a password.
	SuperuserHasPassword *bool `json:"superuserHasPassword,omitempty"`
	// PostgresConf, HBA and Ident are the rendered files as on disk.
	PostgresConf string `json:"postgresConf,omitempty"`
	HBA          string `json:"hba,omitempty"`
	Ident        string `json:"ident,omitempty"`
	FilesError   string `json:"filesError,omitempty"`
	// WalDir is the WAL directory of an instance with spec.walStorage.
	WalDir *AuditWalDir `json:"walDir,omitempty"`
}

// AuditWalDir is what an instance's separate WAL directory is on disk.
type AuditWalDir struct {
	// Dir is the configured WAL directory; Link where the data
	// directory's pg_wal points ("" when it is not a symbolic link).
	Dir  string `json:"dir"`
	Link string `json:"link,omitempty"`
	// Mode and UID are the WAL directory's permission bits and owner.
	Mode  uint32 `json:"mode"`
	UID   int    `json:"uid"`
	Error string `json:"error,omitempty"`
}

// AuditProc is one process and its uid.
type AuditProc struct {
	PID  int    `json:"pid"`
	UID  int    `json:"uid"`
	Name string `json:"name"`
}

// AuditSetting is one row of pg_settings.
type AuditSetting struct {
	Name       string `json:"name"`
	Setting    string `json:"setting"`
	Source     string `json:"source"`
	SourceFile string `json:"sourceFile,omitempty"`
}

// AuditRoleSetting is one parameter set for a role or database; empty
// means all.
type AuditRoleSetting struct {
	Database string `json:"database,omitempty"`
	Role     string `json:"role,omitempty"`
	Name     string `json:"name"`
}
