package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMetrics scrapes a real 3-instance cluster's exporters over TLS: only
// the pgward-metrics certificate gets the metrics, and the primary's lag
// for a standby grows while that standby's WAL receiver is stopped, then
// recovers.
func TestMetrics(t *testing.T) {
	osUser := runAsUser(t)
	dir := newStateDir(t, "metrics")
	sample := filepath.Join(repoRoot, "config", "samples", "cluster-example.yaml")
	ctx := context.Background()
	out := mustPgward(t, "local", "up", "-f", sample, "--dir", dir)
	t.Cleanup(func() {
		if o, err := pgward(context.Background(), "local", "down", "--purge", "--dir", dir); err != nil {
			t.Errorf("cleanup down: %v\n%s", err, o)
		}
	})

	var cs struct {
		CurrentPrimary string `json:"currentPrimary"`
		Instances      []struct {
			Name       string `json:"name"`
			Port       int    `json:"port"`
			SocketDir  string `json:"socketDir"`
			StatusPort int    `json:"statusPort"`
			MetricsURL string `json:"metricsURL"`
		} `json:"instances"`
	}
	st := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
	if err := json.Unmarshal([]byte(st), &cs); err != nil {
		t.Fatalf("status: %v\n%s", err, st)
	}
	if cs.CurrentPrimary != "cluster-example-1" || len(cs.Instances) != 3 {
		t.Fatalf("status: %s", st)
	}
	urls := map[string]string{}
	for _, is := range cs.Instances {
		if !strings.HasPrefix(is.MetricsURL, "https://127.0.0.1:") || !strings.HasSuffix(is.MetricsURL, "/metrics") {
			t.Fatalf("%s: metrics URL %q", is.Name, is.MetricsURL)
		}
		if !strings.Contains(out, is.MetricsURL) {
			t.Errorf("up does not print %s's metrics address %s:\n%s", is.Name, is.MetricsURL, out)
		}
		urls[is.Name] = is.MetricsURL
	}

	secret := func(name, key string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", name, key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pair := func(name string) tls.Certificate {
		c, err := tls.X509KeyPair(secret(name, "tls.crt"), secret(name, "tls.key"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(secret("cluster-example-ca", "ca.crt"))
	get := func(url string, version uint16, certs ...tls.Certificate) (int, string, error) {
		cfg := &tls.Config{MinVersion: version, MaxVersion: version, RootCAs: roots, ServerName: "localhost"}
		if len(certs) > 0 {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer cl.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := cl.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	metricsCert := pair("cluster-example-metrics")
	scrape := func(name string) string {
		t.Helper()
		code, body, err := get(urls[name], tls.VersionTLS13, metricsCert)
		if err != nil || code != http.StatusOK {
			t.Fatalf("scraping %s: %d %v\n%s", name, code, err, body)
		}
		return body
	}

	t.Run("only pgward-metrics over TLS 1.3 may scrape", func(t *testing.T) {
		u := urls["cluster-example-1"]
		if _, _, err := get(u, tls.VersionTLS13); err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("no client certificate: want a TLS refusal, got %v", err)
		}
		for _, who := range []string{"cluster-example-replication", "cluster-example-controller"} {
			if code, body, err := get(u, tls.VersionTLS13, pair(who)); err != nil || code != http.StatusForbidden || strings.Contains(body, "pgward_up") {
				t.Errorf("%s's certificate: want 403, got %d %v %q", who, code, err, body)
			}
		}
		if _, _, err := get(u, tls.VersionTLS13, foreignClientCert(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("a certificate from another CA: want a TLS refusal, got %v", err)
		}
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS11} {
			if _, _, err := get(u, v, metricsCert); err == nil || !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("TLS version %x accepted by the exporter (%v)", v, err)
			}
		}
		// And the metrics certificate opens nothing else: not the status port.
		status := fmt.Sprintf("https://127.0.0.1:%d/pg/status", cs.Instances[0].StatusPort)
		if code, _, err := get(status, tls.VersionTLS13, metricsCert); err != nil || code != http.StatusForbidden {
			t.Errorf("/pg/status with the metrics certificate: want 403, got %d %v", code, err)
		}
	})

	t.Run("families", func(t *testing.T) {
		p := scrape("cluster-example-1")
		for _, want := range []string{
			"pgward_up 1", `pgward_role{role="primary"} 1`, `pgward_role{role="replica"} 0`, "pgward_timeline 1",
			"pgward_fenced 0", "pg_replication_in_recovery 0", "pg_replication_lag 0",
			`pgward_replication_lag_bytes{application_name="cluster-example-2",stage="replay"}`,
			`pgward_replication_lag_bytes{application_name="cluster-example-3",stage="replay"}`,
			`pgward_replication_lag_seconds{application_name="cluster-example-2",stage="replay"}`,
			`pgward_replication_standby{application_name="cluster-example-2",state="streaming",sync_state="async"} 1`,
			"pgward_wal_current_lsn_bytes ", "pg_stat_wal_bytes_total ", `pgward_connections{datname=`,
			`pg_locks_count{granted="true",mode="AccessShareLock"}`, `pg_database_size_bytes{datname="app"}`,
			"pg_stat_bgwriter_checkpoints_timed_total ", "pg_stat_bgwriter_checkpoints_req_total ",
			`pgward_certificate_expiry_seconds{certificate="server"}`, `pgward_certificate_expiry_seconds{certificate="replication"}`,
			`pgward_certificate_expiry_seconds{certificate="server-ca"}`, "pgward_epoch ", "pgward_last_promotion_timestamp_seconds 0",
			"# HELP pgward_replication_lag_bytes ",
		} {
			if !strings.Contains(p, want) {
				t.Errorf("primary's metrics lack %q", want)
			}
		}
		if c := grepLines(p, "pgward_exporter_collector_success{"); strings.Count(c, "} 1") != 8 {
			t.Errorf("a collector failed on the primary:\n%s", c)
		}
		r := scrape("cluster-example-2")
		for _, want := range []string{
			"pgward_up 1", `pgward_role{role="replica"} 1`, "pg_replication_in_recovery 1", "pg_replication_is_wal_receiver_up 1",
			"pg_replication_lag ", "pgward_replica_replay_lag_bytes ", "pgward_wal_received_lsn_bytes ", "pgward_wal_replayed_lsn_bytes ",
		} {
			if !strings.Contains(r, want) {
				t.Errorf("replica's metrics lack %q", want)
			}
		}
		// The command scrapes every instance, or one.
		all := mustPgward(t, "local", "metrics", "--dir", dir)
		for name := range urls {
			if !strings.Contains(all, "# pgward instance "+name) {
				t.Errorf("`pgward local metrics` lacks %s", name)
			}
		}
		if strings.Count(all, "# HELP pgward_up ") != 3 {
			t.Errorf("`pgward local metrics`: want 3 scrapes:\n%s", grepLines(all, "pgward_up"))
		}
		one := mustPgward(t, "local", "metrics", "--dir", dir, "cluster-example-3")
		if !strings.Contains(one, `pgward_role{role="replica"} 1`) || strings.Count(one, "# HELP pgward_up ") != 1 {
			t.Errorf("`pgward local metrics cluster-example-3`:\n%s", one)
		}
	})

	t.Run("lag grows while a standby's WAL receiver is stopped, then recovers", func(t *testing.T) {
		lag := func(standby string) float64 {
			t.Helper()
			v, ok := sampleValue(scrape("cluster-example-1"), fmt.Sprintf(`pgward_replication_lag_bytes{application_name=%q,stage="replay"}`, standby))
			if !ok {
				t.Fatalf("no replay lag for %s", standby)
			}
			return v
		}
		receiver := walReceiverPid(t, dir, "cluster-example-2")
		if err := syscall.Kill(receiver, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := true
		cont := func() {
			if stopped {
				stopped = false
				if err := syscall.Kill(receiver, syscall.SIGCONT); err != nil {
					t.Errorf("SIGCONT %d: %v", receiver, err)
				}
			}
		}
		t.Cleanup(cont)
		primary := cs.Instances[0]
		sock := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", primary.SocketDir, primary.Port)
		before := lag("cluster-example-2")
		for i := range 3 {
			if o, err := psql(ctx, osUser, sock, fmt.Sprintf(
				"CREATE TABLE IF NOT EXISTS metrics_lag (x text); INSERT INTO metrics_lag SELECT repeat('x', 1000) FROM generate_series(1, 2000) -- %d", i)); err != nil {
				t.Fatalf("writing on the primary: %v: %s", err, o)
			}
		}
		grown := lag("cluster-example-2")
		if grown < before+1<<20 {
			t.Errorf("cluster-example-2's replay lag: %v bytes before, %v after writing ~6 MB with its WAL receiver stopped", before, grown)
		}
		t.Logf("cluster-example-2's replay lag: %v bytes before, %v with its WAL receiver stopped", before, grown)
		// The other standby keeps up.
		eventually(t, 30*time.Second, "cluster-example-3 catches up", func() error {
			if v := lag("cluster-example-3"); v > 64<<10 {
				return fmt.Errorf("lag %v bytes", v)
			}
			return nil
		})
		cont()
		eventually(t, 60*time.Second, "cluster-example-2 catches up after SIGCONT", func() error {
			if v := lag("cluster-example-2"); v > 64<<10 {
				return fmt.Errorf("lag %v bytes", v)
			}
			return nil
		})
	})

	t.Run("a switchover moves role, timeline and the last promotion", func(t *testing.T) {
		start := time.Now()
		mustPgward(t, "local", "promote", "cluster-example-2", "--dir", dir)
		eventually(t, 60*time.Second, "cluster-example-2 reports itself primary", func() error {
			m := scrape("cluster-example-2")
			promoted, _ := sampleValue(m, "pgward_last_promotion_timestamp_seconds")
			tl, _ := sampleValue(m, "pgward_timeline")
			if !strings.Contains(m, `pgward_role{role="primary"} 1`) || tl < 2 || promoted < float64(start.Unix()-1) {
				return fmt.Errorf("role/timeline/promotion:\n%s", grepLines(m, "pgward_role{")+"\n"+grepLines(m, "pgward_timeline ")+"\n"+grepLines(m, "promotion_timestamp_seconds "))
			}
			return nil
		})
		eventually(t, 60*time.Second, "cluster-example-1 reports itself a streaming replica", func() error {
			m := scrape("cluster-example-1")
			if !strings.Contains(m, `pgward_role{role="replica"} 1`) || !strings.Contains(m, "pg_replication_is_wal_receiver_up 1") {
				return fmt.Errorf("old primary:\n%s", grepLines(m, "pgward_role{")+"\n"+grepLines(m, "wal_receiver_up"))
			}
			return nil
		})
	})
}

// sampleValue finds the sample "series value" in exposition text.
func sampleValue(body, series string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

func grepLines(body, what string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, what) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// walReceiverPid finds the WAL receiver among the instance's processes.
func walReceiverPid(t *testing.T, dir, name string) int {
	t.Helper()
	var pid int
	eventually(t, 30*time.Second, name+"'s WAL receiver", func() error {
		for _, p := range instancePids(t, dir, name) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			if err == nil && strings.Contains(string(b), "walreceiver") {
				pid = p
				return nil
			}
		}
		return fmt.Errorf("no walreceiver process under %s's manager", name)
	})
	return pid
}
