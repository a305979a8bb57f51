package instance

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

func TestContactCountsOnlyCompletedExchanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newContactTracker(t0)
	// Requests arrive but none acknowledges an answer: no contact.
	id1 := c.receive(t0.Add(1*time.Second), 0)
	c.receive(t0.Add(2*time.Second), 12345)
	if got := c.since(t0.Add(3 * time.Second)); got != 3*time.Second {
		t.Fatalf("unacknowledged requests counted as contact: since = %s", got)
	}
	// The controller acknowledges answer id1: contact as of its receipt.
	c.receive(t0.Add(4*time.Second), id1)
	if got := c.since(t0.Add(5 * time.Second)); got != 4*time.Second {
		t.Fatalf("since = %s, want 4s (from the acknowledged request's receipt)", got)
	}
}

// A command carries the ID of the status answer its decision was made on:
// accepting it closes that exchange, so a replica promoted right after a
// controller pause is in contact as of the status request that preceded the
// promotion, not as of before the pause. A refused command (stale epoch)
// closes nothing.
func TestCommandAcknowledgesTheAnswerItWasDecidedOn(t *testing.T) {
	t0 := time.Now().Add(-time.Minute)
	m := &Manager{cfg: &Config{Name: "c-2"}, wake: make(chan struct{}, 1), contact: newContactTracker(t0)}
	// The controller was away for a minute; its first request after the
	// pause acknowledges an answer from before it.
	stale := m.contact.receive(t0, 0)
	fresh := m.contact.receive(time.Now(), stale)
	if away := m.contact.since(time.Now()); away < 50*time.Second {
		t.Fatalf("contact %s ago, want about a minute (only the stale exchange is complete)", away)
	}
	m.st.SeenEpoch = 5
	if err := m.Submit(instanceapi.Command{Kind: instanceapi.CommandPromote, Epoch: 4, Ack: fresh}); err == nil {
		t.Fatal("a command from an older epoch was accepted")
	}
	if away := m.contact.since(time.Now()); away < 50*time.Second {
		t.Fatalf("a refused command counted as contact (%s ago)", away)
	}
	if err := m.Submit(instanceapi.Command{Kind: instanceapi.CommandPromote, Epoch: 6, Ack: fresh}); err != nil {
		t.Fatal(err)
	}
	if away := m.contact.since(time.Now()); away > 5*time.Second {
		t.Fatalf("the promote command did not close the exchange it acknowledges: contact %s ago", away)
	}
}

func TestParseControlData(t *testing.T) {
	out := "Database cluster state:               shut down\nLatest checkpoint location:           0/3000028\n"
	got, err := parseControlData(out)
	if err != nil || got != "0/3000029" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := parseControlData(strings.Replace(out, "shut down", "in production", 1)); err == nil {
		t.Fatal("accepted a data directory that was not shut down cleanly")
	}
	wrap := "Database cluster state: shut down\nLatest checkpoint location: 0/FFFFFFFF\n"
	if got, _ := parseControlData(wrap); got != "1/0" {
		t.Fatalf("carry: got %q", got)
	}
}

func TestQuoteConnValue(t *testing.T) {
	if got := quoteConnValue(`/a b/it's\x`); got != `'/a b/it\'s\\x'` {
		t.Fatalf("got %s", got)
	}
}

func TestSubmitValidatesCommands(t *testing.T) {
	m := &Manager{cfg: &Config{Name: "c-1"}, wake: make(chan struct{}, 1), contact: newContactTracker(time.Now())}
	m.st.SeenEpoch = 5
	cases := []struct {
		cmd  instanceapi.Command
		want string
	}{
		{instanceapi.Command{Kind: "drop-everything", Epoch: 5}, "unknown command"},
		{instanceapi.Command{Kind: instanceapi.CommandFollow, Epoch: 5}, "needs a primary endpoint"},
		{instanceapi.Command{Kind: instanceapi.CommandFollow, Epoch: 5, Primary: &Endpoint{Name: "c-1", Host: "localhost", Port: 5432}}, "cannot follow itself"},
		{instanceapi.Command{Kind: instanceapi.CommandPromote}, "needs an epoch"},
		{instanceapi.Command{Kind: instanceapi.CommandSetSyncStandbys, Epoch: 5, SyncStandbys: "ANY 1 (a)\nhot_standby=off"}, "control or invisible character U+000A"},
		{instanceapi.Command{Kind: instanceapi.CommandSetSyncStandbys, Epoch: 5, SyncStandbys: "ANY 1 (a\u202e)"}, "U+202E"},
		{instanceapi.Command{Kind: instanceapi.CommandFence, Epoch: 4}, "stale epoch"},
	}
	for _, c := range cases {
		err := m.Submit(c.cmd)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cmd, err, c.want)
		}
	}
	if err := m.Submit(instanceapi.Command{Kind: instanceapi.CommandFence, Epoch: 4}); !errors.Is(err, errStaleEpoch) {
		t.Errorf("stale epoch not recognisable: %v", err)
	}
	if err := m.Submit(instanceapi.Command{Kind: instanceapi.CommandFence, Epoch: 5}); err != nil {
		t.Fatalf("valid command refused: %v", err)
	}
	if got := m.takePending(); got == nil || got.Kind != instanceapi.CommandFence {
		t.Fatalf("pending = %+v", got)
	}
}

func TestReplicationConnInfoUsesCertificatesNotPasswords(t *testing.T) {
	m := &Manager{cfg: &Config{SecretsRoot: "/s", Secrets: Secrets{ServerCA: "ca", Replication: "repl"}}}
	ci := m.replicationConnInfo(Endpoint{Name: "c-2", Host: "localhost", Port: 5433}, "c-1")
	for _, want := range []string{"user=streaming_replica", "sslmode=verify-full", "sslcert='/s/repl/tls.crt'", "sslkey='/s/repl/tls.key'", "sslrootcert='/s/ca/ca.crt'", "application_name='c-1'", "port=5433"} {
		if !strings.Contains(ci, want) {
			t.Errorf("conninfo lacks %s: %s", want, ci)
		}
	}
	if strings.Contains(ci, "password") {
		t.Errorf("conninfo carries a password: %s", ci)
	}
}

func TestReplicaTimelineNeverGoesBack(t *testing.T) {
	m := &Manager{}
	st := instanceapi.Status{Role: instanceapi.RoleReplica, Timeline: 5} // WAL receiver up
	m.keepTimeline(&st)
	// Receiver down: PostgreSQL falls back to the last restartpoint's timeline.
	st = instanceapi.Status{Role: instanceapi.RoleReplica, Timeline: 3}
	m.keepTimeline(&st)
	if st.Timeline != 5 {
		t.Fatalf("a replica fell back to timeline %d; the planner would rank it below a less advanced one", st.Timeline)
	}
	m.resetTimeline()
	st = instanceapi.Status{Role: instanceapi.RoleReplica, Timeline: 6}
	if m.keepTimeline(&st); st.Timeline != 6 {
		t.Fatalf("after a new data directory: %d", st.Timeline)
	}
	primary := instanceapi.Status{Role: instanceapi.RolePrimary, Timeline: 2}
	if m.keepTimeline(&primary); primary.Timeline != 2 {
		t.Fatal("a primary's timeline was rewritten")
	}
}

// Commands that restart PostgreSQL back off when they keep failing (a full
// disk restarted postgres 46 times in 12 s), a success resets the wait, and
// fencing is never delayed.
func TestRestartBackoff(t *testing.T) {
	now := time.Now()
	var b backoff
	if w := b.wait(instanceapi.CommandStart, now); w != 0 {
		t.Fatalf("no failure yet, wait %s", w)
	}
	var waits []time.Duration
	for range 10 {
		b.done(instanceapi.CommandStart, errors.New("No space left on device"), now)
		waits = append(waits, b.wait(instanceapi.CommandRejoin, now))
	}
	want := []time.Duration{200, 400, 800, 1600, 3200, 6400, 12800, 15000, 15000, 15000}
	for i, w := range waits {
		if w != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", waits, want)
		}
	}
	if w := b.wait(instanceapi.CommandFence, now); w != 0 {
		t.Fatalf("fence delayed by %s", w)
	}
	b.done(instanceapi.CommandFence, errors.New("x"), now)
	b.done(instanceapi.CommandStart, nil, now)
	if w := b.wait(instanceapi.CommandStart, now); w != 0 || b.failures != 0 {
		t.Fatalf("after a success: wait %s, %d failures", w, b.failures)
	}
	m := &Manager{cfg: &Config{Name: "c-1"}, wake: make(chan struct{}, 1), contact: newContactTracker(now)}
	m.retry.done(instanceapi.CommandStart, errors.New("boom"), time.Now())
	m.lastErr = "start: postgres exited while starting: exit status 1: FATAL: could not write lock file"
	err := m.Submit(instanceapi.Command{Kind: instanceapi.CommandStart})
	if !errors.Is(err, errBackingOff) || !strings.Contains(err.Error(), "FATAL: could not write lock file") {
		t.Fatalf("start during the backoff: %v", err)
	}
	if err := m.Submit(instanceapi.Command{Kind: instanceapi.CommandFence}); err != nil {
		t.Fatalf("fence during the backoff: %v", err)
	}
}

// The cause a failed start reports is the server's own last FATAL or PANIC.
func TestLastFatal(t *testing.T) {
	log := "2026-11-30 04:10:00.1 UTC [12] LOG:  starting PostgreSQL 15\n" +
		"2026-11-30 04:10:00.2 UTC [12] FATAL:  could not write lock file \"postmaster.pid\": No space left on device\n" +
		"2026-11-30 04:10:00.3 UTC [12] LOG:  database system is shut down\n"
	if got := lastFatal(log); got != `FATAL: could not write lock file "postmaster.pid": No space left on device` {
		t.Fatalf("got %q", got)
	}
	if got := lastFatal("LOG: all fine\n"); got != "" {
		t.Fatalf("got %q from a log without errors", got)
	}
}
