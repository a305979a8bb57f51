package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// A real Prometheus (Debian's package: prometheus and promtool 2.42) against
// config/monitoring. .ci/run sets PGWARD_CI and hack/install-deps.sh installs
// the package, so in CI a missing binary fails these tests; elsewhere they
// skip with a note.
func promBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("PGWARD_CI") != "" || os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI (hack/install-deps.sh installs Debian's prometheus package): %v", name, err)
	}
	t.Skipf("%s not installed (apt-get install prometheus); CI runs this test", name)
	return ""
}

// rulesFile writes the PrometheusRule's spec.groups as a plain rule file,
// the form Prometheus and promtool read, and returns its path.
func rulesFile(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []json.RawMessage `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &pr); err != nil || pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Fatalf("prometheusrule.yaml: %v (kind %q, %d groups)", err, pr.Kind, len(pr.Spec.Groups))
	}
	out, err := json.Marshal(map[string]any{"groups": pr.Spec.Groups}) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "pgward-rules.yaml")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAlertRulesWithPromtool checks the alerts with promtool and runs the
// unit tests of config/monitoring/prometheusrule_test.yaml: every alert
// fires on synthetic series where it should, and not where it should not.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool := promBinary(t, "promtool")
	dir := t.TempDir()
	rules := rulesFile(t, dir)
	tests, err := os.ReadFile(filepath.Join(repoRoot, "config", "monitoring", "prometheusrule_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheusrule_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	// Every alert of the rules must be tested firing in the tests file.
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if b, err := os.ReadFile(rules); err != nil || json.Unmarshal(b, &rf) != nil {
		t.Fatalf("reading back %s: %v", rules, err)
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			firing := regexp.MustCompile(`(?m)^\s+alertname: ` + regexp.QuoteMeta(r.Alert) + `\n\s+exp_alerts:\n\s+- exp_labels:`)
			quiet := regexp.MustCompile(`alertname: ` + regexp.QuoteMeta(r.Alert) + `, exp_alerts: \[\]`)
			if !firing.Match(tests) || !quiet.Match(tests) {
				t.Errorf("prometheusrule_test.yaml lacks a case where %s fires and one where it does not", r.Alert)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", "prometheusrule_test.yaml"}} {
		cmd := exec.CommandContext(ctx, promtool, args...) // #nosec G204 -- Debian's promtool on files the test wrote
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

const prometheusManifest = `apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: prom
spec:
  instances: 2
  bootstrap:
    initdb: {database: app, owner: app}
  storage: {size: 1Gi}
  monitoring:
    customQueriesConfigMap:
      - {name: prom-queries, key: queries}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: prom-queries
data:
  queries: |
    prom_backends:
      query: SELECT count(*) AS n FROM pg_catalog.pg_stat_activity
      metrics:
        - n: {usage: GAUGE, description: Backends}
`

// promAPI queries a Prometheus HTTP API on loopback.
type promAPI struct {
	base string
	cl   *http.Client
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
}

func (p promAPI) get(path string, q url.Values, into any) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.cl.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s %s: %s", path, q.Encode(), env.Error)
	}
	return json.Unmarshal(env.Data, into)
}

// query evaluates expr at now; an evaluation error is an error.
func (p promAPI) query(expr string) ([]promSeries, error) {
	var d struct {
		Result []promSeries `json:"result"`
	}
	err := p.get("/api/v1/query", url.Values{"query": {expr}}, &d)
	return d.Result, err
}

// queryRange evaluates expr over the last span, as a Grafana panel does.
func (p promAPI) queryRange(expr string, span time.Duration) ([]promSeries, error) {
	now := time.Now()
	var d struct {
		Result []promSeries `json:"result"`
	}
	err := p.get("/api/v1/query_range", url.Values{
		"query": {expr}, "start": {strconv.FormatInt(now.Add(-span).Unix(), 10)},
		"end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"1"},
	}, &d)
	return d.Result, err
}

// localScrapeConfig is the block of docs/operations.md that tells users how
// to scrape a local cluster, with its example paths and targets replaced by
// this run's: the TLS settings are used as documented.
func localScrapeConfig(t *testing.T, certDir, cluster string, targets map[string]string) map[string]any {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- local-scrape-config:")
	if !ok {
		t.Fatal("docs/operations.md lost its local-scrape-config block")
	}
	_, after, _ = strings.Cut(after, "```yaml\n")
	block, _, _ := strings.Cut(after, "```")
	var cfg struct {
		ScrapeConfigs []map[string]any `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(block), &cfg); err != nil || len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("docs' local scrape config: %v\n%s", err, block)
	}
	sc := cfg.ScrapeConfigs[0]
	tlsc, _ := sc["tls_config"].(map[string]any)
	const docDir = "/etc/prometheus/pgward/cluster-example/"
	for key, file := range map[string]string{"ca_file": "ca.crt", "cert_file": "tls.crt", "key_file": "tls.key"} {
		if tlsc[key] != docDir+file {
			t.Fatalf("docs' local scrape config: tls_config.%s is %v, want %s", key, tlsc[key], docDir+file)
		}
		tlsc[key] = filepath.Join(certDir, file)
	}
	if sc["scheme"] != "https" || tlsc["server_name"] != "localhost" || tlsc["min_version"] != "TLS13" {
		t.Fatalf("docs' local scrape config changed its TLS settings: %v", sc)
	}
	var static []map[string]any
	for name, target := range targets {
		static = append(static, map[string]any{"targets": []string{target}, "labels": map[string]string{"pgward_cluster": cluster, "instance": name}})
	}
	sc["static_configs"] = static
	return sc
}

// TestPrometheus runs Debian's Prometheus as an unprivileged user on
// loopback with the scrape configuration docs/operations.md documents,
// against a real 2-instance cluster over TLS 1.3 with the metrics client
// certificate, and the alerts of config/monitoring loaded as rules. Once
// both targets are up: no alert expression fails or fires on the healthy
// cluster, every rule evaluates, and every panel query of the Grafana
// dashboard evaluates and returns series (a panel allowed to be empty says
// "Only ..." in its description). Then a fenced replica makes the
// instance-down and standby-missing expressions non-empty and
// PgwardInstanceDown pending; unfenced, they empty again.
func TestPrometheus(t *testing.T) {
	prom := promBinary(t, "prometheus")
	start := time.Now()
	runAsUser(t) // PostgreSQL's OS user must exist
	dir := newStateDir(t, "prometheus")
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	mustPgward(t, "local", "up", "-f", writeManifest(t, "prometheus.yaml", prometheusManifest), "--dir", dir)
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))

	var cs struct {
		Instances []struct {
			Name       string `json:"name"`
			MetricsURL string `json:"metricsURL"`
		} `json:"instances"`
	}
	st := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
	if err := json.Unmarshal([]byte(st), &cs); err != nil || len(cs.Instances) != 2 {
		t.Fatalf("status: %v\n%s", err, st)
	}
	targets := map[string]string{}
	for _, is := range cs.Instances {
		u, err := url.Parse(is.MetricsURL)
		if err != nil || u.Host == "" {
			t.Fatalf("%s: metrics URL %q", is.Name, is.MetricsURL)
		}
		targets[is.Name] = u.Host
	}

	// Prometheus' own directory, as a user would set it up: the three
	// files copied out of the state directory, owned by Prometheus' user.
	uid, gid := promUser(t)
	promDir := filepath.Join(workRoot, "prometheus-server")
	certDir := filepath.Join(promDir, "pgward")
	for _, d := range []string{promDir, certDir, filepath.Join(promDir, "data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	copies := map[string]string{"ca.crt": "prom-ca/ca.crt", "tls.crt": "prom-metrics/tls.crt", "tls.key": "prom-metrics/tls.key"}
	for to, from := range copies {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(certDir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := map[string]any{
		"global":         map[string]string{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files":     []string{rulesFile(t, promDir)},
		"scrape_configs": []any{localScrapeConfig(t, certDir, "prom", targets)},
	}
	cfgYAML, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(promDir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, cfgYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := filepath.Walk(promDir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeLoopbackAddr(t)
	api := promAPI{base: "http://" + addr, cl: &http.Client{Timeout: 10 * time.Second}}
	startPrometheus(t, prom, promDir, cfgFile, addr, uid, gid)

	eventually(t, 30*time.Second, "both targets up over TLS", func() error {
		var d struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
				ScrapeURL string            `json:"scrapeUrl"`
			} `json:"activeTargets"`
		}
		if err := api.get("/api/v1/targets", url.Values{"state": {"active"}}, &d); err != nil {
			return err
		}
		if len(d.ActiveTargets) != 2 {
			return fmt.Errorf("%d targets", len(d.ActiveTargets))
		}
		for _, tg := range d.ActiveTargets {
			if tg.Health != "up" || !strings.HasPrefix(tg.ScrapeURL, "https://127.0.0.1:") {
				return fmt.Errorf("%s %s: %s %s", tg.Labels["instance"], tg.ScrapeURL, tg.Health, tg.LastError)
			}
		}
		return nil
	})
	t.Logf("targets up after %s", time.Since(start).Round(time.Millisecond))

	t.Run("healthy: alerts evaluate and stay quiet, every panel has data", func(t *testing.T) {
		for _, r := range alertRules(t) {
			// rate() and increase() need two samples: wait for them before
			// calling the answer final.
			eventually(t, 15*time.Second, r.Alert+" evaluates empty", func() error {
				res, err := api.query(r.Expr)
				if err != nil {
					return err
				}
				if len(res) > 0 {
					return fmt.Errorf("fires on a healthy cluster: %v", res)
				}
				return nil
			})
		}
		var rules struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := api.get("/api/v1/rules", nil, &rules); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" {
					t.Errorf("rule %s: %s %s", r.Name, r.Health, r.LastError)
				}
			}
		}
		if n != len(alertRules(t)) {
			t.Errorf("Prometheus loaded %d rules, the file has %d", n, len(alertRules(t)))
		}

		var values []string
		if err := api.get("/api/v1/label/pgward_cluster/values", url.Values{"match[]": {"pgward_up"}}, &values); err != nil || len(values) != 1 || values[0] != "prom" {
			t.Errorf("the dashboard's cluster variable (label_values(pgward_up, pgward_cluster)): %v %v", values, err)
		}
		for _, p := range dashboardPanels(t) {
			for _, expr := range p.Exprs {
				q := strings.ReplaceAll(expr, "$cluster", "prom") // what Grafana does with one cluster chosen
				eventually(t, 15*time.Second, fmt.Sprintf("panel %q: %s", p.Title, q), func() error {
					res, err := api.queryRange(q, time.Minute)
					if err != nil {
						return err
					}
					if len(res) == 0 && !strings.HasPrefix(p.Description, "Only ") {
						return errors.New("no series on a healthy cluster (and the panel's description does not say \"Only ...\")")
					}
					return nil
				})
			}
		}
	})

	t.Run("a fenced replica fires the instance-down alert, then recovers", func(t *testing.T) {
		exprs := map[string]string{}
		for _, r := range alertRules(t) {
			exprs[r.Alert] = r.Expr
		}
		mustPgward(t, "local", "fence", "on", "prom-2", "--dir", dir)
		fenced := time.Now()
		defer func() { _, _ = pgward(context.Background(), "local", "fence", "off", "prom-2", "--dir", dir) }()
		eventually(t, 20*time.Second, "PgwardInstanceDown's expression names prom-2", func() error {
			res, err := api.query(exprs["PgwardInstanceDown"])
			if err != nil {
				return err
			}
			if len(res) != 1 || res[0].Metric["instance"] != "prom-2" {
				return fmt.Errorf("got %v", res)
			}
			return nil
		})
		eventually(t, 20*time.Second, "PgwardStandbyMissing's expression names prom", func() error {
			res, err := api.query(exprs["PgwardStandbyMissing"])
			if err != nil {
				return err
			}
			if len(res) != 1 || res[0].Metric["pgward_cluster"] != "prom" {
				return fmt.Errorf("got %v", res)
			}
			return nil
		})
		eventually(t, 20*time.Second, "PgwardInstanceDown active in Prometheus", func() error {
			var d struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			}
			if err := api.get("/api/v1/alerts", nil, &d); err != nil {
				return err
			}
			for _, a := range d.Alerts {
				if a.Labels["alertname"] == "PgwardInstanceDown" && a.Labels["instance"] == "prom-2" && (a.State == "pending" || a.State == "firing") {
					return nil
				}
			}
			return fmt.Errorf("alerts: %v", d.Alerts)
		})
		t.Logf("alert pending %s after the fence", time.Since(fenced).Round(time.Millisecond))
		mustPgward(t, "local", "fence", "off", "prom-2", "--dir", dir)
		for _, name := range []string{"PgwardInstanceDown", "PgwardStandbyMissing"} {
			eventually(t, 30*time.Second, name+" empty again", func() error {
				res, err := api.query(exprs[name])
				if err != nil {
					return err
				}
				if len(res) > 0 {
					return fmt.Errorf("still %v", res)
				}
				return nil
			})
		}
	})
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

type alertRule struct{ Alert, Expr string }

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []struct {
				Rules []alertRule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &pr); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Fatalf("a rule without alert or expr: %+v", r)
			}
			out = append(out, r)
		}
	}
	return out
}

type dashboardPanel struct {
	Title, Description string
	Exprs              []string
}

func dashboardPanels(t *testing.T) []dashboardPanel {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			Targets     []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var out []dashboardPanel
	for _, p := range d.Panels {
		dp := dashboardPanel{Title: p.Title, Description: p.Description}
		for _, tg := range p.Targets {
			dp.Exprs = append(dp.Exprs, tg.Expr)
		}
		if len(dp.Exprs) == 0 {
			t.Fatalf("panel %q has no query", p.Title)
		}
		out = append(out, dp)
	}
	return out
}

// promUser is the unprivileged user Prometheus runs as: Debian's package
// creates prometheus; without root, ourselves.
func promUser(t *testing.T) (int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Getuid(), os.Getgid()
	}
	u, err := user.Lookup("prometheus")
	if err != nil {
		t.Fatalf("running as root needs the OS user prometheus (Debian's prometheus package creates it): %v", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("user prometheus: uid %q gid %q", u.Uid, u.Gid)
	}
	return uid, gid
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// startPrometheus starts Prometheus as uid:gid in its own process group and
// stops it (TERM, then KILL) when the test ends; its log goes to
// promDir/prometheus.log and is shown if the test failed.
func startPrometheus(t *testing.T, prom, promDir, cfgFile, addr string, uid, gid int) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(promDir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(context.Background(), prom, // #nosec G204 -- Debian's prometheus with arguments the test chose
		"--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+addr, "--web.console.templates=", "--web.console.libraries=")
	cmd.Dir = promDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + promDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} // #nosec G115 -- ids from the user database, checked non-negative by Atoi of its numbers
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(promDir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
	eventually(t, 20*time.Second, "prometheus ready", func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(promDir, "prometheus.log"))
			t.Fatalf("prometheus exited:\n%s", b)
		default:
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d", resp.StatusCode)
		}
		return nil
	})
}
