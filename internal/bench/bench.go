// Package bench measures a local cluster's availability under failure:
// time from killing (or freezing) the primary to the first acknowledged
// write on its successor, switchover write-unavailability, acknowledged
// writes lost and moments when two instances accepted writes; and backups:
// base backup and restore throughput, WAL archive lag and point-in-time
// recovery against a real S3 store (backup.go). It drives the
// real local runtime and real PostgreSQL; the numbers it prints are what
// docs/benchmarks.md records.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/local"
)

// Options configure a benchmark run.
type Options struct {
	Manifest []byte
	// Dir is the state directory; empty means a fresh temporary one,
	// purged afterwards.
	Dir   string
	RunAs string
	Out   io.Writer
	// JSON prints the report as JSON (for tests) instead of text.
	JSON bool
}

// ack is one acknowledged write: at is when the client saw it (for
// durations), word what its server said (for the order of writes).
type ack struct {
	id   int64
	port int
	at   time.Time
	word serverWord
}

// recorder collects acknowledged writes from the writer and the probes.
type recorder struct {
	mu     sync.Mutex
	writes []ack // the writer's, in order
	probes []ack // every instance's probe writes
}

func (r *recorder) write(a ack) {
	r.mu.Lock()
	r.writes = append(r.writes, a)
	r.mu.Unlock()
}

func (r *recorder) probe(a ack) {
	r.mu.Lock()
	r.probes = append(r.probes, a)
	r.mu.Unlock()
}

// firstWriteAfter returns the first writer ack after t on a port other
// than notPort.
func (r *recorder) firstWriteAfter(t time.Time, notPort int) (ack, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.writes) - 1; i >= 0; i-- {
		if r.writes[i].at.Before(t) {
			for _, a := range r.writes[i+1:] {
				if a.port != notPort {
					return a, true
				}
			}
			return ack{}, false
		}
	}
	for _, a := range r.writes {
		if a.at.After(t) && a.port != notPort {
			return a, true
		}
	}
	return ack{}, false
}

// cluster is a running benchmark cluster.
type cluster struct {
	dir   string
	temp  bool
	uri   string
	ports map[int]string // port -> instance
}

func startCluster(ctx context.Context, o Options) (*cluster, error) {
	c := &cluster{dir: o.Dir}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "pgward-bench-")
		if err != nil {
			return nil, err
		}
		// The run-as user must reach the state directory below it.
		if err := os.Chmod(d, 0o711); err != nil { // #nosec G302 -- traversal only
			return nil, err
		}
		c.dir, c.temp = filepath.Join(d, "cluster"), true
	}
	if err := local.Up(ctx, local.UpOptions{Dir: c.dir, Manifest: o.Manifest, RunAs: o.RunAs, Out: io.Discard}); err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	cs, err := local.Observe(ctx, local.Layout{Dir: c.dir})
	if err != nil {
		return nil, err
	}
	c.ports = map[int]string{}
	for _, i := range cs.Instances {
		c.ports[i.Port] = i.Name
	}
	owner, err := appOwner(c.dir)
	if err != nil {
		return nil, err
	}
	c.uri, err = local.URI(local.URIOptions{Dir: c.dir, User: owner})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cluster) stop() {
	_ = local.Down(context.Background(), local.DownOptions{Dir: c.dir, Purge: c.temp, Out: io.Discard})
	if c.temp {
		_ = os.RemoveAll(filepath.Dir(c.dir))
	}
}

// appOwner reads the application owner from the stored manifest.
func appOwner(dir string) (string, error) {
	return local.AppOwner(local.Layout{Dir: dir})
}

// writer commits one numbered row at a time over the read-write URI and
// records each acknowledged commit with the port of the server that
// acknowledged it.
func writer(ctx context.Context, uri string, rec *recorder) {
	var conn *pgx.Conn
	// Closing must work after ctx has ended.
	closeCtx := context.WithoutCancel(ctx)
	defer func() {
		if conn != nil {
			_ = conn.Close(closeCtx)
		}
	}()
	// A frozen host accepts TCP connections (the kernel does) but never
	// answers; a short per-host timeout moves on to the next host soon.
	uri = strings.Replace(uri, "connect_timeout=3", "connect_timeout=1", 1)
	var id int64
	for ctx.Err() == nil {
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := pgx.Connect(cctx, uri)
			cancel()
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			conn = c
		}
		id++
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var port int
		var walfile, lsn string
		var srv time.Time
		err := conn.QueryRow(wctx, "INSERT INTO bench_writes(id) VALUES ($1) RETURNING current_setting('port')::int, "+serverAckSQL, id).
			Scan(&port, &walfile, &lsn, &srv)
		cancel()
		if err != nil {
			_ = conn.Close(closeCtx)
			conn = nil
			continue
		}
		// A word that does not parse leaves timeline 0: never in the
		// surviving history, so it shows as divergent rather than vanish.
		word, _ := parseServerWord(walfile, lsn, srv)
		rec.write(ack{id: id, port: port, at: time.Now(), word: word})
	}
}

// prober tries a write on one instance every 50ms, directly (not through
// the multi-host URI), and records every one that commits: two instances
// committing in the same round is split brain.
func prober(ctx context.Context, uri string, port int, rec *recorder) {
	var conn *pgx.Conn
	// Closing must work after ctx has ended.
	closeCtx := context.WithoutCancel(ctx)
	defer func() {
		if conn != nil {
			_ = conn.Close(closeCtx)
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := pgx.Connect(cctx, singleHost(uri, port))
			cancel()
			if err != nil {
				continue
			}
			conn = c
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		var walfile, lsn string
		var srv time.Time
		err := conn.QueryRow(wctx, "INSERT INTO bench_probes(port) VALUES ($1) RETURNING "+serverAckSQL, port).Scan(&walfile, &lsn, &srv)
		cancel()
		if err == nil {
			word, _ := parseServerWord(walfile, lsn, srv)
			rec.probe(ack{port: port, at: time.Now(), word: word})
			continue
		}
		if !strings.Contains(err.Error(), "read-only transaction") {
			_ = conn.Close(closeCtx)
			conn = nil
		}
	}
}

// singleHost rewrites the multi-host URI to one instance, any role.
func singleHost(uri string, port int) string {
	start := strings.Index(uri, "@") + 1
	end := strings.Index(uri[start:], "/") + start
	u := uri[:start] + "localhost:" + strconv.Itoa(port) + uri[end:]
	return strings.Replace(u, "target_session_attrs=read-write", "target_session_attrs=any", 1)
}

func prepareTables(ctx context.Context, uri string) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, `DROP TABLE IF EXISTS bench_writes, bench_probes;
		CREATE TABLE bench_writes(id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE bench_probes(port int NOT NULL, at timestamptz NOT NULL DEFAULT now())`)
	return err
}

// missing returns the acknowledged writes not found on the current primary.
func missing(ctx context.Context, uri string, acks []ack) ([]ack, error) {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	ids := make([]int64, len(acks))
	for i, a := range acks {
		ids[i] = a.id
	}
	rows, err := conn.Query(ctx, "SELECT id FROM unnest($1::bigint[]) AS a(id) EXCEPT SELECT id FROM bench_writes", ids)
	if err != nil {
		return nil, err
	}
	lost, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]ack, len(acks))
	for _, a := range acks {
		byID[a.id] = a
	}
	out := make([]ack, 0, len(lost))
	for _, id := range lost {
		out = append(out, byID[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// splitBrain judges every acknowledged write (writer's and probes') by
// what its server said (serverOrder), against the timeline history of the
// final primary, read from its data directory.
func splitBrain(rec *recorder, dataDir string) (divergent, overlapping int, err error) {
	rec.mu.Lock()
	all := append(append([]ack(nil), rec.writes...), rec.probes...)
	final := uint32(0)
	if n := len(rec.writes); n > 0 {
		final = rec.writes[n-1].word.tli
	}
	rec.mu.Unlock()
	if final == 0 {
		return 0, 0, errors.New("the last acknowledged write did not say its timeline")
	}
	h, err := readHistory(dataDir, final)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the final timeline's history: %w", err)
	}
	words := make([]serverWord, len(all))
	for i, a := range all {
		words[i] = a.word
	}
	divergent, overlapping = serverOrder(words, h)
	return divergent, overlapping, nil
}

// Round is one measured failover or switchover.
type Round struct {
	N          int           `json:"n"`
	OldPrimary string        `json:"oldPrimary"`
	NewPrimary string        `json:"newPrimary"`
	Start      time.Time     `json:"start"`
	FirstWrite time.Time     `json:"firstWrite"`
	Duration   time.Duration `json:"durationNs"`
	Err        string        `json:"error,omitempty"`
}

// Summary is a run's result.
type Summary struct {
	Mode          string        `json:"mode"`
	Rounds        []Round       `json:"rounds"`
	P50           time.Duration `json:"p50Ns"`
	P95           time.Duration `json:"p95Ns"`
	Max           time.Duration `json:"maxNs"`
	Acknowledged  int           `json:"acknowledged"`
	MissingAcked  int           `json:"missingAcknowledged"`
	MissingSample []string      `json:"missingSample,omitempty"`
	SplitBrain    int           `json:"splitBrainMoments"`
	// Divergent counts acknowledged writes (writer's and probes') that
	// the final timeline's history does not hold, by their servers' word.
	Divergent       int  `json:"divergentAcknowledged"`
	FailedRounds    int  `json:"failedRounds"`
	SyncReplication bool `json:"syncReplication"`
}

func summarize(mode string, rounds []Round) Summary {
	s := Summary{Mode: mode, Rounds: rounds}
	var ds []time.Duration
	for _, r := range rounds {
		if r.Err != "" {
			s.FailedRounds++
			continue
		}
		ds = append(ds, r.Duration)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) > 0 {
		s.P50 = ds[(len(ds)-1)/2]
		s.P95 = ds[min(len(ds)-1, (len(ds)*95+99)/100-1)]
		s.Max = ds[len(ds)-1]
	}
	return s
}

// signalInstance sends sig to the instance manager and every postgres
// process of instance name.
func signalInstance(dir, name string, sig syscall.Signal) error {
	pids, err := local.InstanceProcesses(local.Layout{Dir: dir}, name)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return errors.New("no processes found for " + name)
	}
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
	return nil
}

// postmasterPid reads an instance's postmaster.pid.
func postmasterPid(dir, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "instances", name, "data", "postmaster.pid")) // #nosec G304 -- inside the state dir
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// syncOn reports whether the manifest asks for synchronous replication.
func syncOn(manifest []byte) bool {
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return false
	}
	lo, _, _ := c.Spec.SyncBounds()
	return lo > 0
}
