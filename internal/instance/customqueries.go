package instance

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/customqueries"
	"github.com/pgward/pgward/internal/instanceapi"
)

// Custom queries are the user's SQL, so they run in a sandbox that does not
// trust the checks their text passed (customqueries.CheckSQL):
//   - as v1.MonitorRole, never the manager's superuser session: a member of
//     pg_monitor only, so it reads statistics and settings, not the
//     application's tables (unless granted to PUBLIC), no file, no program;
//   - over the instance's socket (peer authentication, no password);
//   - one statement per protocol message (the extended protocol: the server
//     refuses a second statement in a Parse);
//   - inside a READ ONLY transaction that is always rolled back, with
//     SET LOCAL statement_timeout, and the role's own defaults behind it
//     (read-only sessions, statement timeout, temp_file_limit, which it
//     cannot lift);
//   - bounded again from Go (the context cancels the query and drops the
//     connection), one query at a time, the whole set within a budget.
//
// A failure is counted in pgward_custom_query_errors_total by reason and
// never fails the scrape: the query's own samples are left out.
const (
	CustomQueryTimeout = time.Second
	customBudget       = 4 * time.Second
	customConnTimeout  = 2 * time.Second
)

// Reasons of pgward_custom_query_errors_total.
const (
	reasonTimeout = "timeout"
	reasonRefused = "refused"
	reasonError   = "error"
)

var customReasons = []string{reasonTimeout, reasonRefused, reasonError}

var (
	descCustomErrors  = desc("pgward_custom_query_errors_total", "Custom query runs that failed, by reason: timeout (cut at its timeout), refused (a write or a privilege the monitoring role lacks), error.", "query", "reason")
	descCustomSuccess = desc("pgward_custom_query_success", "1 if the custom query's last run succeeded on every target database (or its cached result is served).", "query")
	descCustomValid   = desc("pgward_custom_queries_valid", "1 if the custom queries file was read and accepted (0: none run; the instance manager's log says why).")
)

// customCollector runs the custom queries at scrape time.
type customCollector struct {
	m *Manager

	mu      sync.Mutex
	digest  [32]byte
	set     *customqueries.Set
	loadErr error
	missing bool
	cache   map[string]cachedQuery
	errs    map[[2]string]float64
}

type cachedQuery struct {
	until   time.Time
	metrics []prometheus.Metric
}

func newCustomCollector(m *Manager) *customCollector {
	return &customCollector{m: m, cache: map[string]cachedQuery{}, errs: map[[2]string]float64{}}
}

// Describe sends nothing: custom metrics are known only once their file is
// read, so the registry treats this collector as unchecked.
func (c *customCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. Scrapes never overlap
// (oneAtATime), but the lock keeps the counters safe regardless.
func (c *customCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path := c.m.cfg.CustomQueriesFile
	if path == "" {
		return
	}
	c.load(path)
	if c.missing {
		return
	}
	if c.loadErr != nil {
		ch <- prometheus.MustNewConstMetric(descCustomValid, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descCustomValid, prometheus.GaugeValue, 1)
	if len(c.set.Queries) == 0 {
		return
	}
	st := c.m.Status(0)
	c.m.mu.Lock()
	cluster := c.m.cluster
	c.m.mu.Unlock()
	if cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), customBudget)
	defer cancel()
	run := &customRun{c: c, ctx: ctx, conns: map[string]*pgx.Conn{}, defaultDB: cluster.Spec.Bootstrap.Application().Database}
	defer run.close()
	now := time.Now()
	for _, q := range c.set.Queries {
		ok := true
		if cq, hit := c.cache[q.Name]; hit && now.Before(cq.until) {
			for _, m := range cq.metrics {
				ch <- m
			}
		} else if st.PostmasterRunning && st.Role != instanceapi.RoleUnknown {
			var ms []prometheus.Metric
			ms, ok = run.query(q, st.Role == instanceapi.RolePrimary)
			for _, m := range ms {
				ch <- m
			}
			if ok && q.CacheSeconds > 0 {
				c.cache[q.Name] = cachedQuery{until: now.Add(time.Duration(q.CacheSeconds) * time.Second), metrics: ms}
			}
		} else {
			ok = false
		}
		ch <- prometheus.MustNewConstMetric(descCustomSuccess, prometheus.GaugeValue, b2f(ok), q.Name)
		for _, r := range customReasons {
			ch <- prometheus.MustNewConstMetric(descCustomErrors, prometheus.CounterValue, c.errs[[2]string{q.Name, r}], q.Name, r)
		}
	}
}

// load re-reads the file when its content changed.
func (c *customCollector) load(path string) {
	b, err := os.ReadFile(path) // #nosec G304 -- the runtime-chosen file of config.json
	if errors.Is(err, fs.ErrNotExist) {
		// A pod made before custom queries existed projects no such
		// file (a pod's volumes never change): it runs none until it is
		// recreated. Said once, not at every scrape.
		if !c.missing {
			c.m.log.Info("no custom queries file: this instance runs none until its pod is recreated", "file", path)
		}
		c.missing, c.set, c.loadErr = true, &customqueries.Set{}, nil
		return
	}
	c.missing = false
	if err != nil {
		c.loadErr = fmt.Errorf("reading custom queries: %w", err)
		c.m.log.Error("custom queries", "err", c.loadErr)
		return
	}
	d := sha256.Sum256(b)
	if d == c.digest && (c.set != nil || c.loadErr != nil) {
		return
	}
	c.digest = d
	c.cache = map[string]cachedQuery{}
	c.set, c.loadErr = customqueries.Decode(b)
	if c.loadErr != nil {
		c.m.log.Error("custom queries refused", "err", c.loadErr)
	}
}

// customRun is one scrape's connections, one per database, as the
// monitoring role.
type customRun struct {
	c         *customCollector
	ctx       context.Context
	conns     map[string]*pgx.Conn
	version   int
	defaultDB string
}

func (r *customRun) close() {
	for _, conn := range r.conns {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(ctx)
		cancel()
	}
}

func (r *customRun) conn(db string) (*pgx.Conn, error) {
	if conn, ok := r.conns[db]; ok && !conn.IsClosed() {
		return conn, nil
	}
	cfg, err := localConnConfig(r.c.m.cfg.SocketDir, r.c.m.cfg.Port, db)
	if err != nil {
		return nil, err
	}
	cfg.User = v1.MonitorRole
	cfg.RuntimeParams["application_name"] = "pgward-metrics-exporter"
	// One statement per message, nothing cached between queries.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	cfg.ConnectTimeout = customConnTimeout
	ctx, cancel := context.WithTimeout(r.ctx, customConnTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %q as %s: %w", db, v1.MonitorRole, err)
	}
	r.conns[db] = conn
	if r.version == 0 {
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&r.version); err != nil {
			return nil, fmt.Errorf("reading the server version: %w", err)
		}
	}
	return conn, nil
}

// databases resolves a query's target databases.
func (r *customRun) databases(q customqueries.Query) ([]string, error) {
	if len(q.TargetDatabases) == 0 {
		return []string{r.defaultDB}, nil
	}
	var out []string
	for _, d := range q.TargetDatabases {
		if d != customqueries.AllDatabases {
			out = append(out, d)
			continue
		}
		conn, err := r.conn(r.defaultDB)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(r.ctx, CustomQueryTimeout)
		rows, err := conn.Query(ctx, "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
		if err == nil {
			var names []string
			names, err = pgx.CollectRows(rows, pgx.RowTo[string])
			out = append(out, names...)
		}
		cancel()
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// query runs q where it applies and converts its rows; false when any
// run failed (counted by reason).
func (r *customRun) query(q customqueries.Query, primary bool) ([]prometheus.Metric, bool) {
	if q.PrimaryOnly && !primary {
		return nil, true
	}
	fail := func(err error) ([]prometheus.Metric, bool) {
		reason := classify(err)
		r.c.errs[[2]string{q.Name, reason}]++
		r.c.m.log.Warn("custom query failed", "query", q.Name, "reason", reason, "err", err)
		return nil, false
	}
	dbs, err := r.databases(q)
	if err != nil {
		return fail(err)
	}
	if _, err := r.conn(dbs[0]); err != nil {
		return fail(err)
	}
	vr, _ := customqueries.ParseVersionRange(q.RunOnServer)
	if !vr.Matches(r.version) {
		return nil, true
	}
	conv := newConverter(q)
	ok := true
	for _, db := range dbs {
		conn, err := r.conn(db)
		if err == nil {
			err = runSandboxed(r.ctx, conn, q, conv)
		}
		if err != nil {
			if conn != nil && !conn.IsClosed() && classify(err) == reasonTimeout {
				// A cancelled query may leave the connection busy.
				_ = conn.Close(context.Background())
			}
			_, ok = fail(err)
		}
	}
	return conv.metrics, ok
}

// runSandboxed runs the predicate and the query in a READ ONLY
// transaction it rolls back, each statement bounded by the server and by
// the context.
func runSandboxed(parent context.Context, conn *pgx.Conn, q customqueries.Query, conv *converter) error {
	ctx, cancel := context.WithTimeout(parent, CustomQueryTimeout+500*time.Millisecond)
	defer cancel()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_ = tx.Rollback(rctx)
		rcancel()
	}()
	ms := strconv.FormatInt(CustomQueryTimeout.Milliseconds(), 10)
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = "+ms+"; SET LOCAL lock_timeout = "+ms, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if q.Predicate != "" {
		var run *bool
		if err := tx.QueryRow(ctx, q.Predicate).Scan(&run); err != nil {
			return fmt.Errorf("predicate_query: %w", err)
		}
		if run == nil || !*run {
			return nil
		}
	}
	rows, err := tx.Query(ctx, q.SQL)
	if err != nil {
		return err
	}
	defer rows.Close()
	names := make([]string, 0, len(rows.FieldDescriptions()))
	for _, f := range rows.FieldDescriptions() {
		names = append(names, f.Name)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		row := make(map[string]any, len(names))
		for i, n := range names {
			row[n] = vals[i]
		}
		conv.add(row)
	}
	return rows.Err()
}

// classify names why a run failed.
func classify(err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "57014":
		return reasonTimeout // query_canceled: statement_timeout
	case errors.As(err, &pe) && (pe.Code == "25006" || pe.Code == "42501"):
		return reasonRefused // read_only_sql_transaction, insufficient_privilege
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		return reasonTimeout
	}
	return reasonError
}

// converter turns rows into the query's metrics, as CloudNativePG names
// them (cnpg_<query>_<column>), LABEL columns as labels.
type converter struct {
	q      customqueries.Query
	labels []string
	descs  map[string]*prometheus.Desc
	seen   map[string]bool
	// metrics are the samples so far, in row order.
	metrics []prometheus.Metric
}

func newConverter(q customqueries.Query) *converter {
	cv := &converter{q: q, labels: q.Labels(), descs: map[string]*prometheus.Desc{}, seen: map[string]bool{}}
	for _, col := range q.Columns {
		if col.Usage == customqueries.UsageLabel || col.Usage == customqueries.UsageDiscard {
			continue
		}
		help := col.Description
		if help == "" {
			help = "Custom query " + q.Name + ", column " + col.Name + "."
		}
		cv.descs[col.Name] = prometheus.NewDesc(customqueries.MetricName(q.Name, col.Name), help, cv.labels, nil)
	}
	return cv
}

// add converts one row. A NULL or unconvertible value leaves its sample
// out (no made-up zero); a second row with the same labels is dropped.
func (cv *converter) add(row map[string]any) {
	lv := make([]string, len(cv.labels))
	for i, l := range cv.labels {
		lv[i] = labelValue(row[l])
	}
	key := strings.Join(lv, "\x00")
	for _, col := range cv.q.Columns {
		d := cv.descs[col.Name]
		if d == nil {
			continue
		}
		if cv.seen[col.Name+"\x00"+key] {
			continue
		}
		var m prometheus.Metric
		var err error
		switch col.Usage {
		case customqueries.UsageCounter:
			if f, ok := toFloat(row[col.Name]); ok {
				m, err = prometheus.NewConstMetric(d, prometheus.CounterValue, f, lv...)
			}
		case customqueries.UsageGauge, customqueries.UsageDuration:
			if f, ok := toFloat(row[col.Name]); ok {
				m, err = prometheus.NewConstMetric(d, prometheus.GaugeValue, f, lv...)
			}
		case customqueries.UsageMappedMetric:
			if f, ok := col.Mapping[labelValue(row[col.Name])]; ok {
				m, err = prometheus.NewConstMetric(d, prometheus.GaugeValue, f, lv...)
			}
		case customqueries.UsageHistogram:
			m, err = histogram(d, row, col.Name, lv)
		}
		if m != nil && err == nil {
			cv.seen[col.Name+"\x00"+key] = true
			cv.metrics = append(cv.metrics, m)
		}
	}
}

// histogram reads CloudNativePG's histogram columns: <c> the upper bounds,
// <c>_bucket the cumulative counts, <c>_sum and <c>_count.
func histogram(d *prometheus.Desc, row map[string]any, name string, lv []string) (prometheus.Metric, error) {
	bounds, _ := row[name].([]any)
	counts, _ := row[name+"_bucket"].([]any)
	sum, okS := toFloat(row[name+"_sum"])
	count, okC := toFloat(row[name+"_count"])
	if len(bounds) != len(counts) || !okS || !okC || count < 0 {
		return nil, errors.New("histogram columns missing or of different lengths")
	}
	buckets := map[float64]uint64{}
	for i := range bounds {
		b, ok1 := toFloat(bounds[i])
		n, ok2 := toFloat(counts[i])
		if !ok1 || !ok2 || n < 0 {
			return nil, errors.New("histogram bucket not a number")
		}
		buckets[b] = uint64(n)
	}
	return prometheus.NewConstHistogram(d, uint64(count), sum, buckets, lv...)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case nil:
		return 0, false
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case bool:
		return b2f(x), true
	case time.Time:
		return float64(x.UnixMilli()) / 1000, true
	case pgtype.Numeric:
		f, err := x.Float64Value()
		return f.Float64, err == nil && f.Valid
	case pgtype.Interval:
		if !x.Valid {
			return 0, false
		}
		return float64(x.Microseconds)/1e6 + float64(x.Days)*86400 + float64(x.Months)*30*86400, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

func labelValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case pgtype.Numeric:
		if f, err := x.Float64Value(); err == nil && f.Valid {
			return strconv.FormatFloat(f.Float64, 'g', -1, 64)
		}
		return ""
	}
	return fmt.Sprint(v)
}
