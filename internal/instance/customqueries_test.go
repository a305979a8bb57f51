package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pgward/pgward/internal/customqueries"
)

// TestConverter turns rows into CloudNativePG-named metrics: labels from
// LABEL columns, NULLs and unmapped values left out (no made-up zero), a
// repeated label set kept once, histograms from their four columns.
func TestConverter(t *testing.T) {
	q := customqueries.Query{Name: "q", Columns: []customqueries.Column{
		{Name: "db", Usage: customqueries.UsageLabel},
		{Name: "n", Usage: customqueries.UsageCounter, Description: "N"},
		{Name: "g", Usage: customqueries.UsageGauge},
		{Name: "st", Usage: customqueries.UsageMappedMetric, Mapping: map[string]float64{"on": 1}},
		{Name: "h", Usage: customqueries.UsageHistogram},
		{Name: "skip", Usage: customqueries.UsageDiscard},
	}}
	cv := newConverter(q)
	cv.add(map[string]any{"db": "app", "n": int64(3), "g": nil, "st": "on", "h": []any{1.0, 5.0}, "h_bucket": []any{int64(1), int64(2)}, "h_sum": 3.5, "h_count": int64(2), "skip": "x"})
	cv.add(map[string]any{"db": "app", "n": int64(9), "g": 1.5, "st": "off"}) // same labels: dropped for n, kept for g
	cv.add(map[string]any{"db": "b", "n": "7", "g": time.Unix(10, 0), "st": "weird"})
	got := map[string]float64{}
	for _, m := range cv.metrics {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		var ls []string
		for _, l := range pb.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		key := m.Desc().String()
		name := key[strings.Index(key, `"`)+1:]
		name = name[:strings.Index(name, `"`)]
		v := pb.GetCounter().GetValue() + pb.GetGauge().GetValue() + float64(pb.GetHistogram().GetSampleCount())
		got[fmt.Sprintf("%s{%s}", name, strings.Join(ls, ","))] = v
	}
	want := map[string]float64{
		"cnpg_q_n{db=app}": 3, "cnpg_q_st{db=app}": 1, "cnpg_q_h{db=app}": 2, "cnpg_q_g{db=app}": 1.5,
		"cnpg_q_n{db=b}": 7, "cnpg_q_g{db=b}": 10,
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// And a registry accepts them (names, labels, histogram shape).
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(fixedMetrics(cv.metrics))
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

type fixedMetrics []prometheus.Metric

func (f fixedMetrics) Describe(chan<- *prometheus.Desc) {}
func (f fixedMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, m := range f {
		ch <- m
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&pgconn.PgError{Code: "57014"}, reasonTimeout},
		{fmt.Errorf("x: %w", &pgconn.PgError{Code: "25006"}), reasonRefused},
		{&pgconn.PgError{Code: "42501"}, reasonRefused},
		{context.DeadlineExceeded, reasonTimeout},
		{&pgconn.PgError{Code: "42P01"}, reasonError},
		{errors.New("connection refused"), reasonError},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
}

// recorder answers pg_is_in_recovery() with false and fails every other
// query, recording each.
type recorder struct{ sqls []string }

type row struct {
	sql string
}

func (r row) Scan(dest ...any) error {
	if strings.Contains(r.sql, "pg_is_in_recovery()") && len(dest) == 1 {
		*(dest[0].(*bool)) = false
		return nil
	}
	return errors.New("not answered")
}

func (q *recorder) QueryRow(_ context.Context, sql string, _ ...any) pgx.Row {
	q.sqls = append(q.sqls, sql)
	return row{sql}
}

func (q *recorder) Query(_ context.Context, sql string, _ ...any) (pgx.Rows, error) {
	q.sqls = append(q.sqls, sql)
	return nil, errors.New("not answered")
}

// TestDisableDefaultQueries: spec.monitoring.disableDefaultQueries runs
// none of the statistics collectors' queries and reports no success line
// for them; health, replication and WAL still run.
func TestDisableDefaultQueries(t *testing.T) {
	for _, stats := range []bool{true, false} {
		q := &recorder{}
		s := querySnapshot(context.Background(), q, stats)
		all := strings.Join(q.sqls, "\n")
		for _, view := range []string{"pg_stat_activity", "pg_locks", "pg_database", "pg_stat_bgwriter", "pg_stat_archiver"} {
			if strings.Contains(all, view) != stats {
				t.Errorf("stats=%v: a query on %s: %v", stats, view, strings.Contains(all, view))
			}
		}
		if !strings.Contains(all, "pg_current_wal_lsn") || !strings.Contains(all, "pg_stat_replication") {
			t.Errorf("stats=%v: health queries missing:\n%s", stats, all)
		}
		got := gather(t, fixed{s: s, now: time.Now()})
		_, locks := got["pgward_exporter_collector_success{collector=locks}"]
		_, wal := got["pgward_exporter_collector_success{collector=wal}"]
		if locks != stats || !wal {
			t.Errorf("stats=%v: success lines locks %v wal %v", stats, locks, wal)
		}
	}
}

// TestCustomQueriesFile: no file (a pod made before custom queries
// existed) runs nothing and says nothing; a file that does not decode is
// reported by pgward_custom_queries_valid 0, and one that does by 1.
func TestCustomQueriesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "custom-queries.json")
	m := &Manager{cfg: &Config{CustomQueriesFile: path}, log: slog.New(slog.DiscardHandler)}
	gatherCustom := func() string {
		t.Helper()
		reg := prometheus.NewRegistry()
		reg.MustRegister(newCustomCollector(m))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			for _, mt := range mf.GetMetric() {
				out = append(out, fmt.Sprintf("%s %v", mf.GetName(), mt.GetGauge().GetValue()))
			}
		}
		return strings.Join(out, "\n")
	}
	if got := gatherCustom(); got != "" {
		t.Errorf("no file: %q", got)
	}
	if err := os.WriteFile(path, []byte(`{"queries":[{"name":"q","query":"DELETE FROM t","columns":[{"name":"a","usage":"GAUGE"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := gatherCustom(); got != "pgward_custom_queries_valid 0" {
		t.Errorf("a refused file: %q", got)
	}
	if err := os.WriteFile(path, []byte(`{"queries":null}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := gatherCustom(); got != "pgward_custom_queries_valid 1" {
		t.Errorf("an empty set: %q", got)
	}
}
