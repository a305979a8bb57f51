package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRollingUpdate: a parameter that needs a restart (shared_buffers),
// changed on a running 3-instance cluster, reaches every instance: the
// replicas restart one at a time, then the primary hands over to an
// updated replica, while a client keeps writing through the app's URI.
func TestRollingUpdate(t *testing.T) {
	runAsUser(t)
	manifest := func(buffers string) string {
		return fmt.Sprintf(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: roll
spec:
  instances: 3
  postgresql:
    parameters:
      shared_buffers: %s
`, buffers) + slotsManifest
	}
	dir := upCluster(t, "roll", manifest("32MB"))
	eventually(t, 30*time.Second, "every instance reporting the first manifest loaded", func() error { return runsStored(t, dir) })
	checkHASlots(t, dir, "roll", 3)
	first := currentPrimary(t, dir)
	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	appSQL(t, dir, "CREATE TABLE w (at timestamptz DEFAULT clock_timestamp())")
	// About 2,000 dirty buffers on the primary (plain INSERT: no ring
	// buffer writes them early), for checkShortShutdown below.
	appSQL(t, dir, "CREATE TABLE big (g int, s text); INSERT INTO big SELECT g, repeat('x', 500) FROM generate_series(1, 30000) g")

	// A writer, one insert at a time, recording the longest pause.
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	var longest time.Duration
	writes := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := time.Now()
		for ctx.Err() == nil {
			if _, err := psql(ctx, "", uri, "INSERT INTO w DEFAULT VALUES"); err == nil {
				mu.Lock()
				if gap := time.Since(last); gap > longest {
					longest = gap
				}
				writes++
				mu.Unlock()
				last = time.Now()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	start := time.Now()
	mustPgward(t, "local", "up", "-f", writeManifest(t, "roll.yaml", manifest("48MB")), "--dir", dir)
	eventually(t, 3*time.Minute, "every instance runs with shared_buffers 48MB", func() error {
		// An instance that reports the stored manifest loaded with nothing
		// pending (what the planner counts as updated) runs its settings:
		// checked on every look, after the status was read (an instance
		// only moves forward).
		want, reports := manifestReports(t, dir)
		var notYet error
		for name, port := range instancePorts(t, dir) {
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("target_session_attrs", "any")
			u.Host, u.RawQuery = fmt.Sprintf("localhost:%d", port), q.Encode()
			out, err := psql(context.Background(), "", u.String(), "SHOW shared_buffers")
			if r := reports[name]; err == nil && r.ManifestSHA256 == want && !r.PendingRestart && out != "48MB" {
				t.Errorf("%s reports the stored manifest loaded with no restart pending, but runs shared_buffers %s", name, out)
			}
			if (err != nil || out != "48MB") && notYet == nil {
				notYet = fmt.Errorf("%s (port %d): %w %s", name, port, err, out)
			}
		}
		if notYet != nil {
			return notYet
		}
		if p := currentPrimary(t, dir); p == "" {
			return fmt.Errorf("no primary")
		}
		return runsStored(t, dir)
	})
	took := time.Since(start)
	stop()
	<-done
	after := currentPrimary(t, dir)
	if after == first {
		t.Errorf("the primary %s did not hand over (primaryUpdateMethod switchover is the default)", first)
	}
	// The new primary keeps slots for the others, the old one streams
	// through one (replicationSlots.highAvailability); turned off, every
	// slot goes, so none keeps WAL.
	checkHASlots(t, dir, "roll", 3)
	checkShortShutdown(t, dir, first)
	mustPgward(t, "local", "up", "-f", writeManifest(t, "roll.yaml", strings.Replace(manifest("48MB"), "      slotPrefix: ha_\n", "      slotPrefix: ha_\n      enabled: false\n", 1)), "--dir", dir)
	checkNoSlots(t, dir, "roll", 3)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("rolled in %s; primary %s -> %s; %d writes, longest pause %s", took.Round(100*time.Millisecond), first, after, writes, longest.Round(time.Millisecond))
	// Not a benchmark: a bound far above the switchover's ~1 s that still
	// catches a restart in place or a failover by timeout.
	if longest > 8*time.Second {
		t.Errorf("writes paused for %s", longest)
	}
}

// manifestReport is what `local status` says of the manifest an instance
// runs.
type manifestReport struct {
	ManifestSHA256 string `json:"manifestSHA256"`
	PendingRestart bool   `json:"pendingRestart"`
}

// manifestReports returns the stored manifest's hex SHA-256 and what each
// instance reports.
func manifestReports(t *testing.T, dir string) (string, map[string]manifestReport) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	out := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
	var cs struct {
		Instances []struct {
			Name string `json:"name"`
			manifestReport
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	reports := map[string]manifestReport{}
	for _, is := range cs.Instances {
		reports[is.Name] = is.manifestReport
	}
	return hex.EncodeToString(sum[:]), reports
}

// runsStored checks that every instance reports the stored manifest
// loaded (the hex SHA-256 of its bytes, which the rolling update waits
// for) with no restart pending.
func runsStored(t *testing.T, dir string) error {
	t.Helper()
	want, reports := manifestReports(t, dir)
	if len(reports) == 0 {
		return fmt.Errorf("no instances in the status")
	}
	for name, r := range reports {
		if r.ManifestSHA256 != want || r.PendingRestart {
			return fmt.Errorf("%s reports manifest %q, pending restart %v; the stored one is %s", name, r.ManifestSHA256, r.PendingRestart, want)
		}
	}
	return nil
}

// TestLocalRestart: `pgward local restart` restarts every instance
// (postmaster start times all change), rolling, and ends with a healthy
// cluster whose primary handed over; `restart INSTANCE` restarts one.
func TestLocalRestart(t *testing.T) {
	runAsUser(t)
	dir := upCluster(t, "rst", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rst
spec:
  instances: 3
`)
	starts := func() map[int]string {
		out := map[int]string{}
		uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
		for name, port := range instancePorts(t, dir) {
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("target_session_attrs", "any")
			u.Host, u.RawQuery = fmt.Sprintf("localhost:%d", port), q.Encode()
			got, err := psql(context.Background(), "", u.String(), "SELECT pg_postmaster_start_time()")
			if err != nil {
				t.Fatalf("%s: %v %s", name, err, got)
			}
			out[port] = got
		}
		return out
	}
	before, first := starts(), currentPrimary(t, dir)
	out := mustPgward(t, "local", "restart", "--dir", dir)
	after := starts()
	for port, at := range before {
		if after[port] == at {
			t.Errorf("instance on port %d was not restarted (started %s)", port, at)
		}
	}
	if p := currentPrimary(t, dir); p == first || p == "" {
		t.Errorf("primary %s -> %s: the rolling restart ends with a switchover", first, p)
	}
	t.Logf("%s", out)
	// One instance.
	replica := "rst-1"
	if currentPrimary(t, dir) == replica {
		replica = "rst-2"
	}
	port := instancePorts(t, dir)[replica]
	mustPgward(t, "local", "restart", replica, "--dir", dir)
	again := starts()
	for p, at := range after {
		if changed := again[p] != at; changed != (p == port) {
			t.Errorf("instance on port %d restarted: %v (only %s, port %d, should)", p, changed, replica, port)
		}
	}
}

// checkShortShutdown: the old primary's clean shutdown for the switchover
// (which opens its window: nothing can be written from there on) found
// little left to write, because pgward checkpointed while it still took
// writes (internal/instance: checkpointBeforeShutdown); PostgreSQL 15 logs
// every checkpoint with what it wrote.
func checkShortShutdown(t *testing.T, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "instances", name, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	wrote := func(kind string) int {
		n, starting := -1, false
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "checkpoint starting: ") {
				starting = strings.Contains(l, "checkpoint starting: "+kind)
				continue
			}
			if _, rest, ok := strings.Cut(l, "checkpoint complete: wrote "); ok && starting {
				n, _ = strconv.Atoi(strings.Fields(rest)[0])
				starting = false
			}
		}
		return n
	}
	before, shutdown := wrote("immediate force wait"), wrote("shutdown")
	t.Logf("%s: the checkpoint before the shutdown wrote %d buffers, the shutdown checkpoint %d", name, before, shutdown)
	if before < 1000 || shutdown < 0 || shutdown > 200 {
		t.Errorf("%s's shutdown checkpoint wrote %d buffers (the one before it %d): the switchover's shutdown wrote what pgward should have checkpointed before it", name, shutdown, before)
	}
}
