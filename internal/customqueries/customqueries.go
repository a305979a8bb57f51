// Package customqueries reads CloudNativePG's custom query format (the YAML
// of spec.monitoring.customQueriesConfigMap and customQueriesSecret) and
// decides everything about it that needs no server: which keys pgward
// implements, whether a query text is one read-only statement, which
// databases and servers it runs on, and what metric each column becomes.
// It is pure (no I/O, no database driver), so the admission webhook, `pgward
// validate`, `pgward local up`, the operator and the instance manager all
// judge a query set alike; the instance manager runs what it accepts in a
// sandbox of its own (read-only transaction, statement timeout, a role in
// pg_monitor and nothing else), which does not rely on these checks.
package customqueries

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// Bounds of a query set: a scrape runs every query, one at a time.
const (
	MaxQueries          = 100
	MaxColumns          = 200
	MaxQueryBytes       = 64 << 10
	MaxCacheSeconds     = 86400
	MaxTargetDatabases  = 64
	MaxMetricMappings   = 256
	MaxDescriptionBytes = 1024
)

// MetricPrefix starts every custom metric's name, as in CloudNativePG
// (cnpg_<query>_<column>), so dashboards built on its custom queries keep
// working unchanged.
const MetricPrefix = "cnpg_"

// Usages of a column, CloudNativePG's (and postgres_exporter's) words.
const (
	UsageDiscard      = "DISCARD"
	UsageLabel        = "LABEL"
	UsageCounter      = "COUNTER"
	UsageGauge        = "GAUGE"
	UsageMappedMetric = "MAPPEDMETRIC"
	UsageDuration     = "DURATION"
	UsageHistogram    = "HISTOGRAM"
)

var usages = []string{UsageDiscard, UsageLabel, UsageCounter, UsageGauge, UsageMappedMetric, UsageDuration, UsageHistogram}

// AllDatabases in target_databases means every database that accepts
// connections (templates excluded).
const AllDatabases = "*"

// Query is one custom query, as the instance manager runs it.
type Query struct {
	// Name is the query's key in the YAML; metrics are named after it.
	Name string `json:"name"`
	// Origin says where it came from, for errors and the failure metric's
	// documentation ("ConfigMap example-monitoring, key custom-queries").
	Origin string `json:"origin"`
	SQL    string `json:"query"`
	// Predicate, when set, runs first; the query runs only when it returns
	// true (CloudNativePG's predicate_query).
	Predicate string `json:"predicateQuery,omitempty"`
	// PrimaryOnly: primary or master in the YAML.
	PrimaryOnly     bool     `json:"primaryOnly,omitempty"`
	CacheSeconds    int      `json:"cacheSeconds,omitempty"`
	RunOnServer     string   `json:"runOnServer,omitempty"`
	TargetDatabases []string `json:"targetDatabases,omitempty"`
	Columns         []Column `json:"columns"`
}

// Column is one entry of a query's metrics list.
type Column struct {
	// Name is the result column it reads.
	Name        string             `json:"name"`
	Usage       string             `json:"usage"`
	Description string             `json:"description,omitempty"`
	Mapping     map[string]float64 `json:"metricMapping,omitempty"`
}

// Set is a cluster's queries, sorted by name, plus whether the built-in
// statistics collectors are off (spec.monitoring.disableDefaultQueries).
type Set struct {
	Queries []Query `json:"queries"`
}

// Source is one ConfigMap or Secret key holding queries.
type Source struct {
	// Origin names it for errors: the field and the object.
	Origin string
	Data   []byte
}

// Parse reads the sources in order and returns their queries. A query
// name defined by two sources is refused (CloudNativePG lets the later
// win; saying so is clearer than a silent override). Every problem is
// reported, each naming its source, query and key.
func Parse(sources []Source) (*Set, error) {
	var (
		errs []error
		set  Set
		from = map[string]string{}
	)
	for _, s := range sources {
		qs, err := parseOne(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, q := range qs {
			if prev, dup := from[q.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: query %q is defined by %s too", s.Origin, q.Name, prev))
				continue
			}
			from[q.Name] = s.Origin
			set.Queries = append(set.Queries, q)
		}
	}
	if len(set.Queries) > MaxQueries {
		errs = append(errs, fmt.Errorf("%d custom queries, more than the %d allowed (a scrape runs every one)", len(set.Queries), MaxQueries))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(set.Queries, func(a, b Query) int { return strings.Compare(a.Name, b.Name) })
	if err := set.checkNames(); err != nil {
		return nil, err
	}
	return &set, nil
}

func parseOne(s Source) ([]Query, error) {
	if len(s.Data) > MaxQueries*MaxQueryBytes {
		return nil, fmt.Errorf("%s: %d bytes, too large", s.Origin, len(s.Data))
	}
	j, err := yaml.YAMLToJSONStrict(s.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %s", s.Origin, strings.Join(strings.Fields(err.Error()), " "))
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Origin, err)
	}
	if top == nil {
		return nil, nil
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: must be a map of query names to queries", s.Origin)
	}
	var (
		out  []Query
		errs []error
	)
	for _, name := range sortedKeys(obj) {
		q, qerrs := parseQuery(s.Origin, name, obj[name])
		errs = append(errs, qerrs...)
		if len(qerrs) == 0 {
			out = append(out, q)
		}
	}
	return out, errors.Join(errs...)
}

// queryKeys are the keys of a query pgward implements.
var queryKeys = []string{"query", "metrics", "primary", "master", "cache_seconds", "runonserver", "target_databases", "predicate_query"}

func parseQuery(origin, name string, v any) (Query, []error) {
	q := Query{Name: name, Origin: origin}
	var errs []error
	bad := func(key, format string, a ...any) {
		where := fmt.Sprintf("%s: query %q", origin, name)
		if key != "" {
			where += ", key " + key
		}
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...)))
	}
	if !metricName.MatchString(name) {
		bad("", "the name must match %s (it becomes part of metric names)", metricName)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		bad("", "must be a map with query and metrics")
		return q, errs
	}
	for _, k := range sortedKeys(obj) {
		if !slices.Contains(queryKeys, k) {
			bad(k, "pgward does not support this key (it reads %s)", strings.Join(queryKeys, ", "))
		}
	}
	q.SQL, _ = obj["query"].(string)
	if err := CheckSQL(q.SQL); err != nil {
		bad("query", "%v", err)
	}
	if p, ok := obj["predicate_query"]; ok {
		q.Predicate, _ = p.(string)
		if err := CheckSQL(q.Predicate); err != nil {
			bad("predicate_query", "%v", err)
		}
	}
	for _, k := range []string{"primary", "master"} {
		if x, ok := obj[k]; ok {
			b, isBool := x.(bool)
			if !isBool {
				bad(k, "must be true or false")
			}
			q.PrimaryOnly = q.PrimaryOnly || b
		}
	}
	if x, ok := obj["cache_seconds"]; ok {
		n, isNum := x.(json.Number)
		i, err := strconv.Atoi(string(n))
		if !isNum || err != nil || i < 0 || i > MaxCacheSeconds {
			bad("cache_seconds", "must be an integer from 0 to %d", MaxCacheSeconds)
		}
		q.CacheSeconds = i
	}
	if x, ok := obj["runonserver"]; ok {
		q.RunOnServer, _ = x.(string)
		if _, err := ParseVersionRange(q.RunOnServer); err != nil {
			bad("runonserver", "%v", err)
		}
	}
	if x, ok := obj["target_databases"]; ok {
		list, isList := x.([]any)
		if !isList || len(list) == 0 || len(list) > MaxTargetDatabases {
			bad("target_databases", "must be a list of 1 to %d database names (or \"*\")", MaxTargetDatabases)
		}
		for i, d := range list {
			s, _ := d.(string)
			if err := checkDatabase(s); err != nil {
				bad(fmt.Sprintf("target_databases[%d]", i), "%v", err)
			}
			q.TargetDatabases = append(q.TargetDatabases, s)
		}
	}
	cols, cerrs := parseColumns(obj["metrics"])
	for _, e := range cerrs {
		bad("metrics", "%v", e)
	}
	q.Columns = cols
	return q, errs
}

// columnKeys are the keys of a column pgward implements.
var columnKeys = []string{"usage", "description", "metric_mapping"}

func parseColumns(v any) ([]Column, []error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, []error{errors.New("must be a non-empty list of column: {usage, description}")}
	}
	if len(list) > MaxColumns {
		return nil, []error{fmt.Errorf("%d columns, more than the %d allowed", len(list), MaxColumns)}
	}
	var (
		out  []Column
		errs []error
		seen = map[string]bool{}
	)
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok || len(m) != 1 {
			errs = append(errs, fmt.Errorf("[%d]: must be a map of one column name to {usage, description}", i))
			continue
		}
		for name, spec := range m {
			c := Column{Name: name}
			bad := func(format string, a ...any) {
				errs = append(errs, fmt.Errorf("[%d] (column %q): %s", i, name, fmt.Sprintf(format, a...)))
			}
			if !labelName.MatchString(name) || strings.HasPrefix(name, "__") {
				bad("the column name must match %s and not start with __", labelName)
			}
			if seen[name] {
				bad("listed twice")
			}
			seen[name] = true
			obj, ok := spec.(map[string]any)
			if !ok {
				bad("must be a map with usage and description")
				continue
			}
			for _, k := range sortedKeys(obj) {
				if !slices.Contains(columnKeys, k) {
					bad("pgward does not support the key %q (it reads %s)", k, strings.Join(columnKeys, ", "))
				}
			}
			c.Usage, _ = obj["usage"].(string)
			c.Usage = strings.ToUpper(c.Usage)
			if !slices.Contains(usages, c.Usage) {
				bad("usage must be one of %s", strings.Join(usages, ", "))
			}
			c.Description, _ = obj["description"].(string)
			if err := checkText(c.Description, MaxDescriptionBytes); err != nil {
				bad("description: %v", err)
			}
			if mm, ok := obj["metric_mapping"]; ok {
				mobj, isMap := mm.(map[string]any)
				if !isMap || len(mobj) > MaxMetricMappings || c.Usage != UsageMappedMetric {
					bad("metric_mapping must be a map of at most %d values to numbers, with usage MAPPEDMETRIC", MaxMetricMappings)
				}
				c.Mapping = map[string]float64{}
				for k, val := range mobj {
					n, isNum := val.(json.Number)
					f, err := n.Float64()
					if !isNum || err != nil {
						bad("metric_mapping[%s] must be a number", k)
					}
					c.Mapping[k] = f
				}
			}
			if c.Usage == UsageMappedMetric && len(c.Mapping) == 0 {
				bad("usage MAPPEDMETRIC needs metric_mapping")
			}
			out = append(out, c)
		}
	}
	return out, errs
}

// checkNames refuses two queries whose metrics would have the same name
// ("a" with column "b_c" and "a_b" with column "c"), which the registry
// would otherwise refuse at every scrape.
func (s *Set) checkNames() error {
	owner := map[string]string{}
	var errs []error
	for _, q := range s.Queries {
		for _, c := range q.Columns {
			if c.Usage == UsageLabel || c.Usage == UsageDiscard {
				continue
			}
			for _, n := range c.MetricNames(q.Name) {
				if prev, dup := owner[n]; dup && prev != q.Name {
					errs = append(errs, fmt.Errorf("%s: query %q: metric %s is also produced by query %q", q.Origin, q.Name, n, prev))
				}
				owner[n] = q.Name
			}
		}
	}
	return errors.Join(errs...)
}

// MetricName is the metric a column of query becomes.
func MetricName(query, column string) string { return MetricPrefix + query + "_" + column }

// MetricNames are the names a column's samples carry (a histogram has
// three series names).
func (c Column) MetricNames(query string) []string {
	n := MetricName(query, c.Name)
	if c.Usage == UsageHistogram {
		return []string{n + "_bucket", n + "_sum", n + "_count"}
	}
	return []string{n}
}

// Labels are the query's LABEL columns, in order.
func (q Query) Labels() []string {
	var out []string
	for _, c := range q.Columns {
		if c.Usage == UsageLabel {
			out = append(out, c.Name)
		}
	}
	return out
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,99}$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,99}$`)
)

// checkDatabase accepts "*" or a database name PostgreSQL could have.
func checkDatabase(s string) error {
	if s == AllDatabases {
		return nil
	}
	if s == "" || len(s) > 63 {
		return errors.New("a database name of 1 to 63 bytes, or \"*\"")
	}
	return checkText(s, 63)
}

// checkText refuses control characters and invalid UTF-8 (a description
// becomes the metric's HELP line).
func checkText(s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("longer than %d bytes", limit)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Encode is the canonical form runtimes hand to the instance manager.
func (s *Set) Encode() ([]byte, error) { return json.Marshal(s) }

// Decode reads what Encode wrote and checks it again: the instance manager
// trusts no file to have been checked by its writer.
func Decode(b []byte) (*Set, error) {
	var s Set
	if len(bytes.TrimSpace(b)) == 0 {
		return &s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("custom queries: %w", err)
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Check applies Parse's rules to a decoded set.
func (s *Set) Check() error {
	if len(s.Queries) > MaxQueries {
		return fmt.Errorf("%d custom queries, more than %d", len(s.Queries), MaxQueries)
	}
	var errs []error
	for _, q := range s.Queries {
		if !metricName.MatchString(q.Name) {
			errs = append(errs, fmt.Errorf("query %q: bad name", q.Name))
		}
		if err := CheckSQL(q.SQL); err != nil {
			errs = append(errs, fmt.Errorf("query %q: %w", q.Name, err))
		}
		if q.Predicate != "" {
			if err := CheckSQL(q.Predicate); err != nil {
				errs = append(errs, fmt.Errorf("query %q: predicate: %w", q.Name, err))
			}
		}
		if _, err := ParseVersionRange(q.RunOnServer); err != nil {
			errs = append(errs, fmt.Errorf("query %q: %w", q.Name, err))
		}
		for _, d := range q.TargetDatabases {
			if err := checkDatabase(d); err != nil {
				errs = append(errs, fmt.Errorf("query %q: target database: %w", q.Name, err))
			}
		}
		if len(q.Columns) == 0 || len(q.Columns) > MaxColumns {
			errs = append(errs, fmt.Errorf("query %q: %d columns", q.Name, len(q.Columns)))
		}
		for _, c := range q.Columns {
			if !labelName.MatchString(c.Name) || !slices.Contains(usages, c.Usage) || checkText(c.Description, MaxDescriptionBytes) != nil {
				errs = append(errs, fmt.Errorf("query %q: column %q", q.Name, c.Name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.checkNames()
}
