package control

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/plan"
)

func TestObservation(t *testing.T) {
	st := &instanceapi.Status{Name: "c-2", Role: "replica", PostmasterRunning: true, Ready: true, Epoch: 3,
		ReceivedLSN: "0/5000060", ReplayedLSN: "0/5000000", StreamingFrom: "c-1", Timeline: 2}
	sent := time.Now()
	p := Observation(st, sent)
	if !p.Reachable || p.Role != plan.RoleReplica || p.ReceivedLSN != 0x5000060 || p.Epoch != 3 || p.StreamingFrom != "c-1" || !p.ObservedAt.Equal(sent) {
		t.Fatalf("%+v", p)
	}
	st.Ready = false
	if p := Observation(st, sent); p.Role != plan.RoleUnknown {
		t.Fatalf("a running instance that cannot answer queries must not count as a replica: %+v", p)
	}
	if u := Unreachable("c-3", sent); u.Reachable || u.Name != "c-3" {
		t.Fatalf("%+v", u)
	}
}

// TestObservationManifest: the manifest an instance runs reaches the
// planner with its pending restart; an instance manager older than the
// field (its JSON has no manifestSHA256) reaches it as none, which the
// planner does not count as running the current manifest
// (plan.TestRollingRestartOldManager).
func TestObservationManifest(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	var cur, old instanceapi.Status
	if err := json.Unmarshal([]byte(`{"name":"c-2","role":"replica","postmasterRunning":true,"ready":true,"pendingRestart":true,"manifestSHA256":"`+sum+`"}`), &cur); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"name":"c-2","role":"replica","postmasterRunning":true,"ready":true,"pendingRestart":false}`), &old); err != nil {
		t.Fatal(err)
	}
	if p := Observation(&cur, time.Now()); p.Manifest != sum || !p.PendingRestart {
		t.Errorf("current manager: %+v", p)
	}
	if p := Observation(&old, time.Now()); p.Manifest != "" || p.PendingRestart {
		t.Errorf("old manager: %+v", p)
	}
	// And back: a manager that runs no manifest yet says nothing.
	b, err := json.Marshal(instanceapi.Status{Name: "c-2"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "manifestSHA256") {
		t.Errorf("an empty manifest is sent: %s", b)
	}
}

func TestCommandCoversEveryAction(t *testing.T) {
	ep := &instanceapi.Endpoint{Name: "c-1", Host: "localhost", Port: 5432}
	for kind := range kinds {
		a := plan.Action{Kind: kind, Instance: "c-2", Epoch: 9}
		if kind == plan.ActionFollow || kind == plan.ActionRejoin || kind == plan.ActionRecreate {
			a.Primary = "c-1"
		}
		cmd, err := Command(a, 7, 42, ep)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		want := uint64(7)
		if kind == plan.ActionBootstrap || kind == plan.ActionPromote {
			want = 9
		}
		if cmd.Epoch != want || cmd.Ack != 42 || (a.Primary != "") != (cmd.Primary != nil) {
			t.Errorf("%s: %+v", kind, cmd)
		}
	}
	if _, err := Command(plan.Action{Kind: plan.ActionHold}, 1, 0, nil); err == nil {
		t.Error("hold became a command")
	}
	if _, err := Command(plan.Action{Kind: plan.ActionFollow, Instance: "c-2", Primary: "c-3"}, 1, 0, ep); err == nil {
		t.Error("follow with the wrong endpoint accepted")
	}
}

// A standby whose WAL receiver restarted reports a received position at a
// segment start, behind what it has replayed: the planner must see at least
// the replayed position, or it could rank a less advanced standby first.
func TestObservationNeverRanksAStandbyBelowWhatItReplayed(t *testing.T) {
	st := &instanceapi.Status{Name: "c-2", Role: instanceapi.RoleReplica, PostmasterRunning: true, Ready: true,
		ReceivedLSN: "0/6000000", ReplayedLSN: "0/16000190"}
	if got := Observation(st, time.Now()).ReceivedLSN; got != 0x16000190 {
		t.Fatalf("received %s, want the replayed 0/16000190", got)
	}
	st.ReceivedLSN = "0/16000200"
	if got := Observation(st, time.Now()).ReceivedLSN; got != 0x16000200 {
		t.Fatalf("received %s, want 0/16000200", got)
	}
}
