package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const customQueriesManifest = `apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: cq
spec:
  instances: 2
  bootstrap:
    initdb: {database: app, owner: app}
  storage: {size: 1Gi}
  monitoring:
    customQueriesConfigMap:
      - {name: e2e-queries, key: queries}
    customQueriesSecret:
      - {name: e2e-secret-queries, key: queries}
    enablePodMonitor: true
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: e2e-queries
data:
  queries: |
    e2e_databases:
      target_databases: ["*"]
      query: SELECT current_database() AS datname, 1 AS present
      metrics:
        - datname: {usage: LABEL, description: Database}
        - present: {usage: GAUGE, description: "1 per database the query ran in"}
    e2e_sleep:
      query: SELECT pg_sleep(3) IS NOT NULL AS slept
      metrics:
        - slept: {usage: GAUGE, description: Never reached}
    e2e_write:
      query: WITH i AS (INSERT INTO public.victim VALUES (1) RETURNING 1) SELECT count(*) AS n FROM i
      metrics:
        - n: {usage: GAUGE, description: Rows written}
    e2e_files:
      query: SELECT count(*) AS n FROM pg_catalog.pg_ls_dir('.')
      metrics:
        - n: {usage: GAUGE, description: Files in the data directory}
    e2e_hist:
      query: SELECT 'a' AS app, ARRAY[1, 5]::float8[] AS idle, ARRAY[1, 2]::bigint[] AS idle_bucket, 3.5::float8 AS idle_sum, 2::bigint AS idle_count, 'on' AS st
      metrics:
        - app: {usage: LABEL}
        - idle: {usage: HISTOGRAM, description: Idle seconds}
        - st: {usage: MAPPEDMETRIC, metric_mapping: {"on": 1, "off": 0}, description: State}
---
apiVersion: v1
kind: Secret
metadata:
  name: e2e-secret-queries
stringData:
  queries: |
    e2e_primary:
      primary: true
      cache_seconds: 30
      query: SELECT pg_is_in_recovery()::int AS recovery
      metrics:
        - recovery: {usage: GAUGE, description: "0 on the primary"}
`

// TestCustomQueries runs CloudNativePG-format custom queries from a
// ConfigMap and a Secret of the manifest file on a real 2-instance
// cluster, scraped over mutual TLS: their metrics appear with their labels,
// in every target database, primary-only ones on the primary only; a query
// that sleeps past its timeout is cut and counted without breaking the
// scrape; a write and a superuser-only function are refused (the role is in
// pg_monitor only, the transaction read-only) and counted, the table
// untouched. Then every metric name in config/monitoring's alerts and
// dashboard must be one the real exporters emitted.
func TestCustomQueries(t *testing.T) {
	osUser := runAsUser(t)
	dir := newStateDir(t, "custom-queries")
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	manifest := writeManifest(t, "custom-queries.yaml", customQueriesManifest)
	up := mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	for _, want := range []string{"configmaps: e2e-queries written from the manifest file", "monitoring: 6 custom queries, run by each exporter as pgward_monitor",
		"note: spec.monitoring.enablePodMonitor (and its relabelings) applies on Kubernetes only"} {
		if !strings.Contains(up, want) {
			t.Errorf("up does not say %q:\n%s", want, up)
		}
	}
	ctx := context.Background()

	var cs struct {
		CurrentPrimary string `json:"currentPrimary"`
		Instances      []struct {
			Name      string `json:"name"`
			Port      int    `json:"port"`
			SocketDir string `json:"socketDir"`
		} `json:"instances"`
	}
	st := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
	if err := json.Unmarshal([]byte(st), &cs); err != nil || cs.CurrentPrimary != "cq-1" {
		t.Fatalf("status: %v\n%s", err, st)
	}
	sock := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", cs.Instances[0].SocketDir, cs.Instances[0].Port)
	superSQL := func(sql string) string {
		t.Helper()
		out, err := psql(ctx, osUser, sock, sql)
		if err != nil {
			t.Fatalf("%s: %v: %s", sql, err, out)
		}
		return out
	}
	// A table anyone may write: only the read-only transaction stops the
	// monitoring role.
	superSQL("CREATE TABLE public.victim (x int); GRANT INSERT, SELECT ON public.victim TO PUBLIC")

	scrape := func(name string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		out := mustPgward(t, "local", "metrics", "--dir", dir, name)
		return out, time.Since(start)
	}
	p, took := scrape("cq-1")
	t.Logf("first scrape of the primary took %s", took)
	if took > 9*time.Second {
		t.Errorf("a scrape with a sleeping custom query took %s", took)
	}
	for _, want := range []string{
		"pgward_up 1", "pgward_custom_queries_valid 1",
		`cnpg_e2e_databases_present{datname="app"} 1`, `cnpg_e2e_databases_present{datname="postgres"} 1`,
		"# HELP cnpg_e2e_databases_present 1 per database the query ran in",
		`cnpg_e2e_hist_idle_bucket{app="a",le="1"} 1`, `cnpg_e2e_hist_idle_bucket{app="a",le="5"} 2`,
		`cnpg_e2e_hist_idle_sum{app="a"} 3.5`, `cnpg_e2e_hist_idle_count{app="a"} 2`, `cnpg_e2e_hist_st{app="a"} 1`,
		"cnpg_e2e_primary_recovery 0",
		`pgward_custom_query_errors_total{query="e2e_sleep",reason="timeout"} 1`,
		`pgward_custom_query_errors_total{query="e2e_write",reason="refused"} 1`,
		`pgward_custom_query_errors_total{query="e2e_files",reason="refused"} 1`,
		`pgward_custom_query_errors_total{query="e2e_databases",reason="error"} 0`,
		`pgward_custom_query_success{query="e2e_sleep"} 0`, `pgward_custom_query_success{query="e2e_databases"} 1`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("the primary's scrape lacks %q:\n%s", want, grepLines(p, "cnpg_")+"\n"+grepLines(p, "custom_quer"))
		}
	}
	for _, absent := range []string{"cnpg_e2e_sleep_slept", "cnpg_e2e_write_n", "cnpg_e2e_files_n"} {
		if strings.Contains(p, absent) {
			t.Errorf("a failed query left samples: %s", grepLines(p, absent))
		}
	}
	if n := superSQL("SELECT count(*) FROM public.victim"); n != "0" {
		t.Errorf("the write query wrote %s rows", n)
	}
	// Query texts (they may come from a Secret) stay out of the server log.
	if b, err := os.ReadFile(filepath.Join(dir, "instances", "cq-1", "postgres.log")); err != nil {
		t.Error(err)
	} else if strings.Contains(string(b), "pg_sleep(3)") || strings.Contains(string(b), "INSERT INTO public.victim") {
		t.Errorf("the server log holds a custom query's text:\n%s", grepLines(string(b), "STATEMENT"))
	} else if !strings.Contains(string(b), "statement timeout") {
		t.Errorf("the server log does not show the timeout at all (is it the right log?)")
	}
	// Counted again at the next scrape; the cached primary-only query is
	// served from the cache.
	p2, _ := scrape("cq-1")
	if !strings.Contains(p2, `pgward_custom_query_errors_total{query="e2e_sleep",reason="timeout"} 2`) || !strings.Contains(p2, "cnpg_e2e_primary_recovery 0") {
		t.Errorf("second scrape:\n%s", grepLines(p2, "e2e_"))
	}

	t.Run("the monitoring role holds pg_monitor and nothing else", func(t *testing.T) {
		got := superSQL(`SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolpassword IS NULL,
			(SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = a.oid)
			FROM pg_authid a WHERE rolname = 'pgward_monitor'`)
		if got != "f|f|f|f|f|t|pg_monitor" {
			t.Errorf("pgward_monitor: %q", got)
		}
		// And its own sessions start read-only.
		mon := fmt.Sprintf("host=%s port=%d user=pgward_monitor dbname=app", cs.Instances[0].SocketDir, cs.Instances[0].Port)
		out, err := psql(ctx, osUser, mon, "INSERT INTO public.victim VALUES (2)")
		if err == nil || !strings.Contains(out, "read-only transaction") {
			t.Errorf("a pgward_monitor session wrote: %v %s", err, out)
		}
	})

	r, _ := scrape("cq-2")
	if !strings.Contains(r, `cnpg_e2e_databases_present{datname="app"} 1`) || strings.Contains(r, "cnpg_e2e_primary_recovery") {
		t.Errorf("the replica runs every query but the primary-only one:\n%s", grepLines(r, "cnpg_"))
	}

	t.Run("a changed ConfigMap reaches the running exporters", func(t *testing.T) {
		changed := strings.Replace(customQueriesManifest, "    e2e_sleep:\n", "    e2e_added:\n      query: SELECT 42 AS answer\n      metrics:\n        - answer: {usage: GAUGE, description: Added later}\n    e2e_sleep:\n", 1)
		if err := os.WriteFile(manifest, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
		if m, _ := scrape("cq-2"); !strings.Contains(m, "cnpg_e2e_added_answer 42") {
			t.Errorf("the added query does not run:\n%s", grepLines(m, "e2e_added"))
		}
		// A refused change is refused by up, naming where, and changes nothing.
		bad := strings.Replace(customQueriesManifest, "SELECT pg_sleep(3) IS NOT NULL AS slept", "DELETE FROM public.victim", 1)
		if err := os.WriteFile(manifest, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := pgward(ctx, "local", "up", "-f", manifest, "--dir", dir)
		if err == nil || !strings.Contains(out, `spec.monitoring.customQueriesConfigMap[0] (ConfigMap e2e-queries, key queries): query "e2e_sleep", key query: starts with "DELETE"`) {
			t.Errorf("up with a writing query: %v\n%s", err, out)
		}
		if m, _ := scrape("cq-2"); !strings.Contains(m, "cnpg_e2e_added_answer 42") {
			t.Errorf("a refused change removed the queries")
		}
		if b, err := os.ReadFile(filepath.Join(dir, "configmaps", "e2e-queries", "queries")); err != nil || strings.Contains(string(b), "DELETE") {
			t.Errorf("the refused ConfigMap was stored: %v %s", err, b)
		}
	})

	t.Run("alerts and dashboard name only metrics the exporter emits", func(t *testing.T) {
		emitted := map[string]bool{}
		for _, body := range []string{p, r} {
			for _, l := range strings.Split(body, "\n") {
				if l == "" || strings.HasPrefix(l, "#") {
					continue
				}
				name := l[:strings.IndexAny(l, "{ ")]
				emitted[name] = true
			}
		}
		for _, f := range []string{"prometheusrule.yaml", "grafana-dashboard.json"} {
			b, err := os.ReadFile(filepath.Join(repoRoot, "config", "monitoring", f))
			if err != nil {
				t.Fatal(err)
			}
			names := metricNames(string(b))
			if len(names) < 10 {
				t.Fatalf("%s: only %d metric names found: %v", f, len(names), names)
			}
			for _, n := range names {
				if !emitted[n] {
					t.Errorf("%s uses %s, which no scrape of the primary or the replica emitted", f, n)
				}
			}
		}
	})
}

// labelNames are the names in the rules and dashboard that are labels the
// scrape configuration adds, not metrics.
var labelNames = []string{"pgward_cluster"}

var metricToken = regexp.MustCompile(`\b(?:pgward|pg|cnpg)_[a-z0-9_]+\b`)

// metricNames finds the pgward_, pg_ and cnpg_ names in the expressions
// of a rules or dashboard file (expr: lines; descriptions name roles and
// views too), leaving out label names.
func metricNames(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "expr:") && !strings.HasPrefix(t, `"expr":`) {
			continue
		}
		for _, m := range metricToken.FindAllString(l, -1) {
			if !slices.Contains(labelNames, m) && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	slices.Sort(out)
	return out
}
