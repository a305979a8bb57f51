package instance

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// fixed emits what it is given, so emit's decisions can be gathered.
type fixed struct {
	v     managerView
	s     *pgSnapshot
	certs []certExpiry
	now   time.Time
}

func (f fixed) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (f fixed) Collect(ch chan<- prometheus.Metric) { emit(ch, f.v, f.s, f.certs, f.now) }

// gather returns "name{label=value,...}" -> value.
func gather(t *testing.T, f fixed) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", mf.GetName())
		}
		if !strings.HasPrefix(mf.GetName(), "pgward_") && !strings.HasPrefix(mf.GetName(), "pg_") {
			t.Errorf("%s is neither pgward_ nor pg_", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

func f64(v float64) *float64 { return &v }

func TestEmitPrimary(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got := gather(t, fixed{
		v: managerView{role: instanceapi.RolePrimary, postmasterRunning: true, ready: true, timeline: 3, epoch: 7, promotedAt: now.Add(-time.Hour)},
		s: &pgSnapshot{
			answered: true, currentLSN: f64(1000), walBytes: f64(5000),
			standbys: []standby{
				// A standby that received everything but replays behind.
				{name: "c-2", state: "streaming", syncState: "async", sent: f64(0), write: f64(0), flush: f64(0), replay: f64(300), replayLag: f64(1.5)},
				// One whose positions PostgreSQL does not know yet.
				{name: "c-3", state: "startup", syncState: "async"},
			},
			connections: []countBy{{"app", "idle", 2}},
			locks:       []countBy{{"AccessShareLock", "true", 4}},
			databases:   []countBy{{"app", "", 8e6}},
			bgwriter:    &bgwriter{checkpointsTimed: 2, checkpointWriteMS: 1500},
			failed:      map[string]error{},
		},
		certs: []certExpiry{{name: "server", notAfter: now.Add(90 * time.Second)}, {name: "replication", err: errors.New("unreadable")}},
		now:   now,
	})
	want := map[string]float64{
		"pgward_up{}": 1, "pgward_role{role=primary}": 1, "pgward_role{role=replica}": 0, "pgward_role{role=unknown}": 0,
		"pgward_timeline{}": 3, "pgward_fenced{}": 0, "pgward_epoch{}": 7,
		"pgward_last_promotion_timestamp_seconds{}":                                       float64(now.Add(-time.Hour).Unix()),
		"pgward_certificate_expiry_seconds{certificate=server}":                           90,
		"pgward_wal_current_lsn_bytes{}":                                                  1000,
		"pg_stat_wal_bytes_total{}":                                                       5000,
		"pg_replication_in_recovery{}":                                                    0,
		"pg_replication_lag{}":                                                            0,
		"pgward_replication_lag_bytes{application_name=c-2,stage=replay}":                 300,
		"pgward_replication_lag_bytes{application_name=c-2,stage=sent}":                   0,
		"pgward_replication_lag_seconds{application_name=c-2,stage=replay}":               1.5,
		"pgward_replication_lag_seconds{application_name=c-2,stage=write}":                0,
		"pgward_replication_standby{application_name=c-3,state=startup,sync_state=async}": 1,
		"pgward_connections{datname=app,state=idle}":                                      2,
		"pg_locks_count{granted=true,mode=AccessShareLock}":                               4,
		"pg_database_size_bytes{datname=app}":                                             8e6,
		"pg_stat_bgwriter_checkpoints_timed_total{}":                                      2,
		"pg_stat_bgwriter_checkpoint_write_time_seconds_total{}":                          1.5,
		"pgward_exporter_collector_success{collector=replication}":                        1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for _, absent := range []string{
		"pgward_certificate_expiry_seconds{certificate=replication}", // unreadable: no made-up value
		"pgward_replication_lag_bytes{application_name=c-3,stage=replay}",
		"pg_replication_is_wal_receiver_up{}", "pgward_replica_replay_lag_bytes{}",
	} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s present", absent)
		}
	}
}

func TestEmitReplicaAndFailures(t *testing.T) {
	got := gather(t, fixed{
		v: managerView{role: instanceapi.RoleReplica, postmasterRunning: true, timeline: 2},
		s: &pgSnapshot{
			answered: true, inRecovery: true, receivedLSN: f64(900), replayedLSN: f64(700), replayLagSeconds: f64(4),
			failed: map[string]error{collectorLocks: errors.New("timeout")},
			locks:  []countBy{{"ExclusiveLock", "true", 1}},
		},
	})
	for k, v := range map[string]float64{
		"pgward_role{role=replica}": 1, "pg_replication_in_recovery{}": 1, "pg_replication_is_wal_receiver_up{}": 0,
		"pg_replication_lag{}": 4, "pgward_replica_replay_lag_bytes{}": 200, "pgward_wal_received_lsn_bytes{}": 900,
		"pgward_exporter_collector_success{collector=locks}": 0, "pgward_exporter_collector_success{collector=wal}": 1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["pg_locks_count{granted=true,mode=ExclusiveLock}"]; ok {
		t.Error("a failed collector's partial rows were emitted")
	}

	// PostgreSQL down: the manager's view only, and up = 0.
	got = gather(t, fixed{v: managerView{role: instanceapi.RolePrimary, fenced: true}})
	if got["pgward_up{}"] != 0 || got["pgward_fenced{}"] != 1 || got["pgward_role{role=primary}"] != 1 {
		t.Errorf("postgres down: %v", got)
	}
	if _, ok := got["pg_replication_in_recovery{}"]; ok {
		t.Error("PostgreSQL's families emitted without PostgreSQL")
	}
	// It answered nothing at all.
	got = gather(t, fixed{s: &pgSnapshot{failed: map[string]error{collectorWAL: errors.New("x")}}})
	if got["pgward_up{}"] != 0 {
		t.Errorf("up = %v without an answer", got["pgward_up{}"])
	}
}

// Only a verified certificate named pgward-metrics may scrape: not the
// replication certificate every instance holds, not the controller's.
func TestRequireMetrics(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	h := requireMetrics(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	for _, tc := range []struct {
		cn     string
		method string
		want   int
	}{
		{"", http.MethodGet, http.StatusUnauthorized},
		{pki.ReplicationCommonName, http.MethodGet, http.StatusForbidden},
		{pki.ControllerCommonName, http.MethodGet, http.StatusForbidden},
		{pki.MetricsCommonName, http.MethodPost, http.StatusMethodNotAllowed},
		{pki.MetricsCommonName, http.MethodGet, http.StatusOK},
	} {
		r := httptest.NewRequestWithContext(t.Context(), tc.method, MetricsPath, nil)
		r.TLS = &tls.ConnectionState{}
		if tc.cn != "" {
			kp, err := ca.IssueClient(rand.Reader, now, tc.cn)
			if err != nil {
				t.Fatal(err)
			}
			r.TLS.VerifiedChains = [][]*x509.Certificate{{kp.Cert, ca.Cert}}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%q %s: %d, want %d", tc.cn, tc.method, w.Code, tc.want)
		}
	}
}

// The handshake itself requires a client certificate verified against the
// client CA (the status port only asks for one), TLS 1.3 only.
func TestMetricsTLSRequiresAClientCertificate(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(rand.Reader, now, "c-rw", []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := &tlsFiles{certFile: write("tls.crt", srv.CertPEM), keyFile: write("tls.key", srv.KeyPEM), clientCAFile: write("ca.crt", ca.CertPEM)}
	c, err := f.metricsConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientAuth != tls.RequireAndVerifyClientCert || c.MinVersion != tls.VersionTLS13 || c.ClientCAs == nil {
		t.Errorf("metrics TLS: client auth %v, min version %x", c.ClientAuth, c.MinVersion)
	}
	if s, _ := f.serverConfig(nil); s.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Errorf("the status port's configuration changed: %v", s.ClientAuth)
	}
}

// A second scrape waits for the first rather than querying PostgreSQL at
// the same time, and gives up with 503 after the wait.
func TestOneAtATime(t *testing.T) {
	release := make(chan struct{})
	running := make(chan struct{}, 2)
	h := oneAtATime(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		running <- struct{}{}
		<-release
		w.WriteHeader(http.StatusOK)
	}), 2*time.Second)
	serve := func() chan int {
		done := make(chan int, 1)
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, MetricsPath, nil))
			done <- w.Code
		}()
		return done
	}
	first := serve()
	<-running
	if code := <-serve(); code != http.StatusServiceUnavailable {
		t.Errorf("a scrape during a long one: %d, want 503 after the wait", code)
	}
	second := serve()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-running:
		t.Fatal("two scrapes ran at once")
	default:
	}
	close(release)
	if a, b := <-first, <-second; a != http.StatusOK || b != http.StatusOK {
		t.Errorf("codes %d %d", a, b)
	}
}

// Without PostgreSQL the exporter still says what the manager knows and
// when its certificates expire, read from the secret files.
func TestExporterWithoutPostgres(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(rand.Reader, now, "c-rw", []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for name, files := range map[string]map[string][]byte{
		"c-server": {"tls.crt": srv.CertPEM}, "c-ca": {"ca.crt": ca.CertPEM},
	} {
		if err := os.MkdirAll(filepath.Join(root, name), 0o700); err != nil {
			t.Fatal(err)
		}
		for k, v := range files {
			if err := os.WriteFile(filepath.Join(root, name, k), v, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := &Manager{
		cfg: &Config{Name: "c-1", DataDir: filepath.Join(root, "data"), SecretsRoot: root, Secrets: Secrets{
			ServerTLS: "c-server", ServerCA: "c-ca", ClientCA: "c-ca", Replication: "c-missing",
		}},
		store: secrets.DirStore{Root: root},
		st:    persisted{Epoch: 4, Fenced: true},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&exporter{m: m})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	if v := got["pgward_up"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
		t.Errorf("pgward_up = %v without PostgreSQL", v)
	}
	if v := got["pgward_fenced"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("pgward_fenced = %v", v)
	}
	if v := got["pgward_epoch"].GetMetric()[0].GetGauge().GetValue(); v != 4 {
		t.Errorf("pgward_epoch = %v", v)
	}
	certs := map[string]float64{}
	for _, mt := range got["pgward_certificate_expiry_seconds"].GetMetric() {
		certs[mt.GetLabel()[0].GetValue()] = mt.GetGauge().GetValue()
	}
	want := pki.Validity.Seconds()
	for _, name := range []string{"server", "server-ca", "client-ca"} {
		if v, ok := certs[name]; !ok || v > want || v < want-60 {
			t.Errorf("%s expires in %v s, want about %v", name, v, want)
		}
	}
	if _, ok := certs["replication"]; ok {
		t.Error("an expiry for a certificate that does not exist")
	}
	if _, ok := got["pg_replication_in_recovery"]; ok {
		t.Error("PostgreSQL's families without PostgreSQL")
	}
}
