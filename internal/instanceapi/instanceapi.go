// Package instanceapi is the wire contract of the instance manager's status
// port: the paths, the JSON documents and a client that speaks mutual TLS.
//
// The instance manager serves it and both runtimes (the local controller and
// the Kubernetes operator) consume it, so it imports nothing from pgward.
package instanceapi

import (
	"time"
)

// Paths served on the status port. The probes are unauthenticated and say
// nothing beyond ok/not ok; everything under /pg/ requires a client
// certificate from the cluster's client CA carrying the controller identity.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathStatus  = "/pg/status"
)

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
	// WALReceiver describes a replica's upstream connection.
	WALReceiver *WALReceiver `json:"walReceiver,omitempty"`
	// Replication lists the standbys connected to a primary.
	Replication []Peer `json:"replication,omitempty"`
	// Host, Port and SocketDir say where PostgreSQL listens.
	Host      string `json:"host"`
	Port      int    `json:"port"`
	SocketDir string `json:"socketDir,omitempty"`
	// Error carries the last error the instance manager hit, if any.
	Error      string    `json:"error,omitempty"`
	ObservedAt time.Time `json:"observedAt"`
}

// WALReceiver is a replica's view of its upstream (pg_stat_wal_receiver).
type WALReceiver struct {
	Status     string `json:"status"`
	SenderHost string `json:"senderHost,omitempty"`
	SenderPort int    `json:"senderPort,omitempty"`
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
