package instanceapi

import (
	"testing"
	"time"
)

// TestDigest: a watch must wake the controller for every change it acts on
// and stay quiet for what moves on a busy, healthy instance.
func TestDigest(t *testing.T) {
	base := func() Status {
		return Status{
			Name: "c-1", Role: RolePrimary, PostmasterRunning: true, Ready: true, Phase: "running", Epoch: 3, Timeline: 2,
			CurrentLSN: "0/3000000", Replication: []Peer{{ApplicationName: "c-2", State: "streaming", SyncState: "sync", LagBytes: 10}, {ApplicationName: "c-3", State: "streaming", SyncState: "potential"}},
			SyncStandbyNames: "ANY 1 (c-2, c-3)", RequestID: 7, ObservedAt: time.Unix(100, 0),
		}
	}
	ref := base()
	same := map[string]func(*Status){
		"LSN moved":          func(s *Status) { s.CurrentLSN = "0/4000000" },
		"lag moved":          func(s *Status) { s.Replication[0].LagBytes = 99; s.Replication[0].ReplayLSN = "0/1" },
		"another request":    func(s *Status) { s.RequestID = 8; s.ObservedAt = time.Unix(200, 0) },
		"peers in any order": func(s *Status) { s.Replication[0], s.Replication[1] = s.Replication[1], s.Replication[0] },
		"archiver moved":     func(s *Status) { s.Archive = &Archive{ArchivedCount: 5} },
	}
	for name, change := range same {
		t.Run("same/"+name, func(t *testing.T) {
			want := ref.Digest()
			s := base()
			change(&s)
			if got := s.Digest(); got != want {
				t.Errorf("digest changed (%s -> %s)", want, got)
			}
		})
	}
	x, y := base(), base()
	x.Error, y.Error = "PostgreSQL has not answered for 3s", "PostgreSQL has not answered for 4s"
	if x.Digest() != y.Digest() {
		t.Error("the digest follows an error's wording (which changes every second)")
	}
	differs := map[string]func(*Status){
		"postmaster died":      func(s *Status) { s.PostmasterRunning = false },
		"not ready":            func(s *Status) { s.Ready = false },
		"role":                 func(s *Status) { s.Role = RoleReplica },
		"phase":                func(s *Status) { s.Phase = "stopping" },
		"busy":                 func(s *Status) { s.Busy = "demote" },
		"fenced":               func(s *Status) { s.Fenced = true },
		"epoch":                func(s *Status) { s.Epoch = 4 },
		"timeline":             func(s *Status) { s.Timeline = 3 },
		"pending restart":      func(s *Status) { s.PendingRestart = true },
		"manifest loaded":      func(s *Status) { s.ManifestSHA256 = "ab12" },
		"standby left":         func(s *Status) { s.Replication = s.Replication[:1] },
		"standby caught up":    func(s *Status) { s.Replication[1].State = "catchup" },
		"sync state":           func(s *Status) { s.Replication[1].SyncState = "sync" },
		"sync names":           func(s *Status) { s.SyncStandbyNames = "" },
		"an error appeared":    func(s *Status) { s.Error = "boom" },
		"config refused":       func(s *Status) { s.ConfigError = "bad" },
		"streaming from":       func(s *Status) { s.StreamingFrom = "c-2" },
		"WAL receiver":         func(s *Status) { s.WALReceiver = &WALReceiver{Status: "streaming"} },
		"backup":               func(s *Status) { s.Backup = &BackupRun{Phase: BackupRunning} },
		"designated":           func(s *Status) { s.Designated = true },
		"data directory gone":  func(s *Status) { s.Empty = true },
		"managed roles failed": func(s *Status) { s.RolesError = "x" },
	}
	for name, change := range differs {
		t.Run("differs/"+name, func(t *testing.T) {
			s := base()
			change(&s)
			if s.Digest() == ref.Digest() {
				t.Error("digest unchanged")
			}
		})
	}
}
