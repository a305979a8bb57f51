package customqueries

import (
	"strings"
	"testing"
)

const good = `
pg_stat_user_tables:
  target_databases: ["*", app]
  query: |
    SELECT current_database() datname, relname, seq_scan, 'x;y' AS semi -- a comment; here
    FROM pg_catalog.pg_stat_user_tables;
  cache_seconds: 30
  runonserver: ">=10.0.0 <99"
  metrics:
    - datname: {usage: LABEL, description: "Name of current database"}
    - relname: {usage: "label", description: "Name of this table"}
    - seq_scan: {usage: COUNTER, description: "Sequential scans"}
    - semi: {usage: DISCARD}
pg_activity:
  master: true
  query: "SELECT application_name, ARRAY[1,2] AS idle, ARRAY[1,3] AS idle_bucket, 4.5 AS idle_sum, 3 AS idle_count, 'on' AS st, $q$;$q$ AS x"
  metrics:
    - application_name: {usage: LABEL}
    - idle: {usage: HISTOGRAM, description: "Idle time"}
    - st: {usage: MAPPEDMETRIC, metric_mapping: {"on": 1, "off": 0}}
    - x: {usage: DISCARD}
`

func TestParseAccepts(t *testing.T) {
	set, err := Parse([]Source{{Origin: "ConfigMap m, key k", Data: []byte(good)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Queries) != 2 || set.Queries[0].Name != "pg_activity" {
		t.Fatalf("queries: %+v", set.Queries)
	}
	a, u := set.Queries[0], set.Queries[1]
	if !a.PrimaryOnly || a.Columns[2].Mapping["on"] != 1 {
		t.Errorf("pg_activity: %+v", a)
	}
	if u.CacheSeconds != 30 || len(u.TargetDatabases) != 2 || u.Columns[1].Usage != UsageLabel {
		t.Errorf("pg_stat_user_tables: %+v", u)
	}
	if got := strings.Join(u.Labels(), ","); got != "datname,relname" {
		t.Errorf("labels %s", got)
	}
	if got := a.Columns[1].MetricNames(a.Name); got[0] != "cnpg_pg_activity_idle_bucket" {
		t.Errorf("histogram names %v", got)
	}
	// The canonical form reads back, checked again.
	b, err := set.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil || len(back.Queries) != 2 {
		t.Fatalf("decode: %v %+v", err, back)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"a write", "q:\n  query: DELETE FROM t\n  metrics: [{a: {usage: GAUGE}}]\n", `key query: starts with "DELETE"`},
		{"DO", "q:\n  query: DO $$BEGIN END$$\n  metrics: [{a: {usage: GAUGE}}]\n", `starts with "DO"`},
		{"COPY TO PROGRAM", "q:\n  query: COPY (SELECT 1) TO PROGRAM 'id'\n  metrics: [{a: {usage: GAUGE}}]\n", `starts with "COPY"`},
		{"two statements", "q:\n  query: SELECT 1 AS a; DELETE FROM t\n  metrics: [{a: {usage: GAUGE}}]\n", "more than one statement"},
		{"a second statement after a comment", "q:\n  query: \"SELECT 1 AS a /* c */; SET x = 1\"\n  metrics: [{a: {usage: GAUGE}}]\n", "more than one statement"},
		{"commit inside", "q:\n  query: \"SELECT 1 AS a; COMMIT\"\n  metrics: [{a: {usage: GAUGE}}]\n", "more than one statement"},
		{"an unterminated string hides a statement", "q:\n  query: \"SELECT 'a; DELETE FROM t\"\n  metrics: [{a: {usage: GAUGE}}]\n", "unterminated string"},
		{"an unknown key", "q:\n  query: SELECT 1 AS a\n  metrics: [{a: {usage: GAUGE}}]\n  timeout: 3\n", "key timeout: pgward does not support this key"},
		{"an unknown column key", "q:\n  query: SELECT 1 AS a\n  metrics: [{a: {usage: GAUGE, unit: s}}]\n", `key "unit"`},
		{"an unknown usage", "q:\n  query: SELECT 1 AS a\n  metrics: [{a: {usage: SUMMARY}}]\n", "usage must be one of"},
		{"a mapped metric without a mapping", "q:\n  query: SELECT 1 AS a\n  metrics: [{a: {usage: MAPPEDMETRIC}}]\n", "needs metric_mapping"},
		{"a bad query name", "\"q-1\":\n  query: SELECT 1 AS a\n  metrics: [{a: {usage: GAUGE}}]\n", "the name must match"},
		{"a bad column name", "q:\n  query: SELECT 1\n  metrics: [{\"a b\": {usage: GAUGE}}]\n", "column name must match"},
		{"a newline in a description", "q:\n  query: SELECT 1 AS a\n  metrics: [{a: {usage: GAUGE, description: \"x\\ny\"}}]\n", "control character"},
		{"a bad version range", "q:\n  query: SELECT 1 AS a\n  runonserver: \">=abc\"\n  metrics: [{a: {usage: GAUGE}}]\n", "key runonserver"},
		{"a cache too long", "q:\n  query: SELECT 1 AS a\n  cache_seconds: 999999\n  metrics: [{a: {usage: GAUGE}}]\n", "key cache_seconds"},
		{"no metrics", "q:\n  query: SELECT 1 AS a\n", "key metrics"},
		{"a database name with a newline", "q:\n  query: SELECT 1 AS a\n  target_databases: [\"a\\nb\"]\n  metrics: [{a: {usage: GAUGE}}]\n", "target_databases[0]"},
		{"colliding metric names", "a:\n  query: SELECT 1 AS b_c\n  metrics: [{b_c: {usage: GAUGE}}]\na_b:\n  query: SELECT 1 AS c\n  metrics: [{c: {usage: GAUGE}}]\n", "also produced by"},
		{"not YAML", "q: [", "not valid YAML"},
		{"duplicate keys", "q: {}\nq: {}\n", "not valid YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]Source{{Origin: "ConfigMap m, key k", Data: []byte(tc.yaml)}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
			if !strings.Contains(err.Error(), "ConfigMap m, key k") {
				t.Errorf("the error does not name the source: %v", err)
			}
		})
	}
	// The same query name in two sources.
	src := "q:\n  query: SELECT 1 AS a\n  metrics: [{a: {usage: GAUGE}}]\n"
	if _, err := Parse([]Source{{"one", []byte(src)}, {"two", []byte(src)}}); err == nil || !strings.Contains(err.Error(), "defined by one too") {
		t.Errorf("duplicate across sources: %v", err)
	}
}

func TestCheckSQL(t *testing.T) {
	for _, ok := range []string{
		"SELECT 1", "select 1;", "  -- c\n (SELECT 1)", "WITH a AS (SELECT 1) SELECT * FROM a", "VALUES (1)", "TABLE pg_stat_activity",
		"SELECT E'\\';' AS a", `SELECT 1 AS "x;y"`, "SELECT $a$ ; $a$", "/* a /* nested ; */ */ SELECT 1",
	} {
		if err := CheckSQL(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", "  ", "INSERT INTO t VALUES (1)", "SET statement_timeout = 0", "BEGIN", "COMMIT", "CALL p()", "EXPLAIN ANALYZE DELETE FROM t",
		"SELECT 1; SELECT 2", "SELECT E'\\'; DROP TABLE t", "SELECT $a$ x", "/* SELECT 1", "SELECT 1 \x00",
	} {
		if err := CheckSQL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestVersionRange(t *testing.T) {
	for _, tc := range []struct {
		r    string
		v    int
		want bool
	}{
		{"", 150004, true}, {">=10.0.0", 150004, true}, {">=16", 150004, false}, {">=11.0.0 <15.0.0", 150004, false},
		{"<15 || >=15.4", 150004, true}, {"<15 || >=15.5", 150004, false}, {"15.4", 150004, true}, {"!=15.4.0", 150004, false},
	} {
		r, err := ParseVersionRange(tc.r)
		if err != nil {
			t.Fatalf("%q: %v", tc.r, err)
		}
		if got := r.Matches(tc.v); got != tc.want {
			t.Errorf("%q on %d: %v", tc.r, tc.v, got)
		}
	}
}
