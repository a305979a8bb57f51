package local

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/audit/probe"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/pgconf"
	"github.com/pgward/pgward/internal/secrets"
)

// AuditOptions configure `pgward local audit`.
type AuditOptions struct {
	Dir    string
	Output string // "text" or "json"
	Out    io.Writer
	// Now is the time certificates are judged at (default time.Now).
	Now time.Time
}

// Audit checks the running cluster in o.Dir against pgward's controls and
// prints one line per control. It reports whether any control failed.
// It runs as the state directory's owner (root reruns it as that user),
// so it reads nothing root could be tricked into following.
func Audit(ctx context.Context, o AuditOptions) (failed bool, err error) {
	if o.Output != "" && o.Output != "text" && o.Output != "json" {
		return false, fmt.Errorf("unknown output format %q (text or json)", o.Output)
	}
	if os.Geteuid() == 0 {
		return false, errRoot
	}
	a, err := newAuditor(Layout{Dir: o.Dir}, o.Now)
	if err != nil {
		return false, err
	}
	rs := audit.Run(ctx, a.checks())
	if err := audit.Print(o.Out, rs, o.Output); err != nil {
		return false, err
	}
	return audit.Failed(rs), nil
}

// auditor holds what every check reads once: the state, the manifest and
// each instance's config.
type auditor struct {
	l       Layout
	st      *State
	cluster *v1.Cluster
	cfgs    []*instance.Config
	store   secrets.DirStore
	now     time.Time
}

func newAuditor(l Layout, now time.Time) (*auditor, error) {
	st, err := LoadState(l)
	if err != nil {
		return nil, err
	}
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return nil, err
	}
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return nil, fmt.Errorf("stored manifest: %w", err)
	}
	a := &auditor{l: l, st: st, cluster: c, store: secrets.DirStore{Root: l.SecretsDir()}, now: now}
	if a.now.IsZero() {
		a.now = time.Now()
	}
	for _, is := range st.Instances {
		cfg, err := loadInstanceConfig(l, is.Name)
		if err != nil {
			return nil, err
		}
		a.cfgs = append(a.cfgs, cfg)
	}
	if len(a.cfgs) == 0 {
		return nil, errors.New("the state names no instance")
	}
	return a, nil
}

// Fixes printed with failed controls.
const (
	fixRestart = "run `pgward local down` then `pgward local up`: the instance managers render the configuration again"
)

func (a *auditor) checks() []audit.Check {
	return []audit.Check{
		audit.Func{Name: "processes-not-root", Fix: "stop the cluster and start it again with `pgward local up` (as root it runs everything as the run-as user)", Fn: a.processes},
		audit.Func{Name: "process-environment", Fix: "find what started the process named; `pgward local up` starts every process of the cluster with a minimal environment", Fn: a.environment},
		audit.Func{Name: "file-modes", Fix: "chmod the files named 0600 and the directories 0700 (pgward's secret store tightens secrets on the next `up`)", Fn: a.fileModes},
		audit.Func{Name: "certificate-expiry", Fix: "run `pgward local up` again: it renews generated certificates due within the renewal window; replace user-provided ones", Fn: a.certExpiry},
		audit.Func{Name: "certificate-chain", Fix: "replace the certificate with one issued by the cluster's CA (remove the generated secret and run `pgward local up` to issue it again)", Fn: a.certChain},
		audit.Func{Name: "pg-hba-rules", Fix: "find who edited pg_hba.conf, then " + fixRestart, Fn: a.hbaRules},
		audit.Func{Name: "pg-ident-maps", Fix: "find who edited pg_ident.conf, then " + fixRestart, Fn: a.identMaps},
		audit.Func{Name: "postgresql-conf-enforced", Fix: "find who edited postgresql.conf, then " + fixRestart, Fn: a.confEnforced},
		audit.Func{Name: "settings-running", Fix: "empty postgresql.auto.conf (ALTER SYSTEM RESET ALL) and reload, or restart the instance; ALTER ROLE/DATABASE ... RESET a fixed parameter set for a role or database", Fn: a.liveSettings},
		audit.Func{Name: "alter-system-drift", Fix: "run ALTER SYSTEM RESET ALL (then SELECT pg_reload_conf()) and put the setting in spec.postgresql.parameters; pgward also empties the file at the next start", Fn: a.autoConf},
		audit.Func{Name: "replication-streams", Fix: "restart the replica named (`pgward local down` then `up`): its primary_conninfo is rendered with TLS 1.3 and streaming_replica's certificate", Fn: a.streams},
		audit.Func{Name: "postgres-tls-1.3-only", Fix: fixRestart + " (ssl_min_protocol_version is enforced)", Fn: a.postgresTLS12},
		audit.Func{Name: "replication-needs-certificate", Fix: "restore pgward's pg_hba.conf (" + fixRestart + "); streaming_replica must authenticate with cert only", Fn: a.replicationPassword},
		audit.Func{Name: "replication-needs-tls", Fix: "restore pgward's pg_hba.conf (" + fixRestart + "): replication is hostssl only", Fn: a.replicationNoTLS},
		audit.Func{Name: "superuser-no-password", Fix: "ALTER ROLE postgres PASSWORD NULL (superuser access is off), and remove any superuser secret", Fn: a.superuser},
		audit.Func{Name: "status-port-needs-certificate", Fix: "restart the instance manager (`pgward local down` then `up`): the status port must require the controller's client certificate", Fn: a.statusAnonymous},
		audit.Func{Name: "status-port-tls-1.3-only", Fix: "restart the instance manager with pgward's build: the status port serves TLS 1.3 only", Fn: a.statusTLS12},
	}
}

// --- processes ---

// processes checks that no process of the cluster (clusterProcs) runs
// with a uid of 0.
func (a *auditor) processes(context.Context) audit.Result {
	pids, err := a.clusterProcs()
	if err != nil {
		return audit.Result{Status: audit.Warn, Evidence: "listing /proc: " + err.Error()}
	}
	var procs []audit.Proc
	for _, pid := range pids {
		uid, name := probe.ProcUID(pid)
		procs = append(procs, audit.Proc{PID: pid, UID: uid, Name: name})
	}
	r := audit.Combine([]audit.Part{audit.DecideProcesses(procs)})
	if r.Status == audit.Warn {
		r.Fix = "start the cluster (`pgward local up`) and audit it again"
	}
	return r
}

// environment reads the environment every process of the cluster started
// with. PostgreSQL's children overwrite theirs with their title and
// show none; another user's (root's) cannot be read and is skipped (the
// process check reports it).
func (a *auditor) environment(context.Context) audit.Result {
	pids, err := a.clusterProcs()
	if err != nil {
		return audit.Result{Status: audit.Warn, Evidence: "listing /proc: " + err.Error()}
	}
	var envs []audit.ProcEnv
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ") // #nosec G304 -- procfs
		if err != nil || len(b) == 0 {
			continue
		}
		_, name := probe.ProcUID(pid)
		pe := audit.ProcEnv{PID: pid, Name: name}
		for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			if k, _, ok := strings.Cut(kv, "="); ok {
				pe.Vars = append(pe.Vars, k)
			}
		}
		envs = append(envs, pe)
	}
	r := audit.Combine([]audit.Part{audit.DecideEnvironment(envs)})
	if r.Status == audit.Warn {
		r.Fix = "start the cluster (`pgward local up`) and audit it again"
	}
	return r
}

// clusterProcs lists every process of the cluster: those whose command
// line names the state directory (the controller, the instance managers,
// anything else started for it) and everything below them (postgres and
// its children), except this audit and the processes that started it.
func (a *auditor) clusterProcs() ([]int, error) {
	entries, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	type pinfo struct {
		ppid int
		cmd  string
	}
	all := map[int]pinfo{}
	for _, e := range entries {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok || st.state == 'Z' {
			continue
		}
		b, _ := os.ReadFile(e + "/cmdline") // #nosec G304 -- procfs
		all[pid] = pinfo{ppid: st.ppid, cmd: strings.TrimRight(string(b), "\x00")}
	}
	self := map[int]bool{}
	for p := os.Getpid(); p > 1; p = all[p].ppid {
		self[p] = true
		if _, ok := all[p]; !ok {
			break
		}
	}
	dirArg := a.l.Dir
	seed := map[int]bool{}
	for pid, p := range all {
		if self[pid] {
			continue
		}
		for _, arg := range strings.Split(p.cmd, "\x00") {
			if strings.Contains(arg, dirArg+"/") || strings.HasSuffix(arg, dirArg) {
				seed[pid] = true
				break
			}
		}
	}
	var out []int
	for pid := range all {
		if self[pid] {
			continue
		}
		for p := pid; p > 1; p = all[p].ppid {
			if seed[p] {
				out = append(out, pid)
				break
			}
			if _, ok := all[p]; !ok {
				break
			}
		}
	}
	sort.Ints(out)
	return out, nil
}

// --- files ---

func (a *auditor) fileModes(context.Context) audit.Result {
	var entries []audit.FileEntry
	var walkErrs []string
	err := filepath.WalkDir(a.l.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			walkErrs = append(walkErrs, err.Error())
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone meanwhile (a temporary file)
		}
		rel, _ := filepath.Rel(a.l.Dir, p)
		entries = append(entries, audit.FileEntry{Rel: filepath.ToSlash(rel), Mode: fi.Mode()})
		return nil
	})
	if err != nil {
		walkErrs = append(walkErrs, err.Error())
	}
	parts := []audit.Part{audit.DecideFileModes(entries)}
	if len(walkErrs) > 0 {
		parts = append(parts, audit.Part{Status: audit.Warn, Evidence: "could not read: " + strings.Join(walkErrs, ", ")})
	}
	return audit.Combine(parts)
}

// --- certificates ---

func (a *auditor) certificates() ([]audit.Cert, []audit.Part) {
	sec := a.cfgs[0].Secrets
	return probe.Certificates(a.store.Get,
		[]probe.CA{{Name: sec.ServerCA, ReadFrom: sec.ServerCA}, {Name: sec.ClientCA, ReadFrom: sec.ClientCA}},
		[]probe.Leaf{
			{Secret: sec.ServerTLS, CA: sec.ServerCA, Usage: x509.ExtKeyUsageServerAuth},
			{Secret: sec.Replication, CA: sec.ClientCA, Usage: x509.ExtKeyUsageClientAuth},
			{Secret: a.cluster.Name + "-controller", CA: sec.ClientCA, Usage: x509.ExtKeyUsageClientAuth},
		})
}

func (a *auditor) certExpiry(context.Context) audit.Result {
	certs, parts := a.certificates()
	return probe.CertExpiry(certs, parts, a.now)
}

func (a *auditor) certChain(context.Context) audit.Result {
	certs, parts := a.certificates()
	return probe.CertChain(a.store.Get, certs, parts)
}

// --- rendered configuration ---

func (a *auditor) hbaRules(context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		want, err := pgconf.RenderHBA(a.cluster, cfg.OSUser)
		if err != nil {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Warn, Evidence: "rendering the expected pg_hba.conf: " + err.Error()})
			want = nil
		}
		got, err := os.ReadFile(filepath.Join(cfg.ConfDir, "pg_hba.conf")) // #nosec G304 -- the instance's config dir, read as its owner
		if err != nil {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Fail, Evidence: err.Error()})
			continue
		}
		parts = append(parts, audit.DecideHBA(cfg.Name, string(got), string(want)))
	}
	return audit.Combine(parts)
}

func (a *auditor) identMaps(context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		want, err := pgconf.RenderIdent(a.cluster, cfg.OSUser)
		if err != nil {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Warn, Evidence: "rendering the expected pg_ident.conf: " + err.Error()})
			continue
		}
		got, err := os.ReadFile(filepath.Join(cfg.ConfDir, "pg_ident.conf")) // #nosec G304 -- the instance's config dir, read as its owner
		if err != nil {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Fail, Evidence: err.Error()})
			continue
		}
		parts = append(parts, audit.DecideIdent(cfg.Name, string(got), string(want)))
	}
	return audit.Combine(parts)
}

func (a *auditor) confEnforced(context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		got, err := os.ReadFile(filepath.Join(cfg.ConfDir, "postgresql.conf")) // #nosec G304 -- as above
		if err != nil {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Fail, Evidence: err.Error()})
			continue
		}
		parts = append(parts, audit.DecidePostgresConf(cfg.Name, string(got), instance.EnforcedSettings(a.cluster, cfg)))
	}
	return audit.Combine(parts)
}

func (a *auditor) autoConf(context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		got, err := os.ReadFile(filepath.Join(cfg.DataDir, "postgresql.auto.conf")) // #nosec G304 -- as above
		if err != nil {
			st := audit.Fail
			if errors.Is(err, fs.ErrNotExist) {
				st = audit.Warn // not initialized yet
			}
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: st, Evidence: err.Error()})
			continue
		}
		parts = append(parts, audit.DecideAutoConf(cfg.Name, string(got)))
	}
	return audit.Combine(parts)
}

// --- the running servers ---

// superuserConn connects through cfg's socket as postgres (pg_hba's peer
// map admits the instance's OS user, which the audit runs as).
func superuserConn(ctx context.Context, cfg *instance.Config) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cc.Host, cc.Port, cc.User, cc.Database = cfg.SocketDir, uint16(cfg.Port), "postgres", "postgres" // #nosec G115 -- validated port
	cc.Password, cc.TLSConfig, cc.Fallbacks = "", nil, nil
	cc.ConnectTimeout = 3 * time.Second
	cc.RuntimeParams["application_name"] = "pgward-audit"
	return pgx.ConnectConfig(ctx, cc)
}

func (a *auditor) liveSettings(ctx context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		var rows []audit.LiveSetting
		var roles []audit.RoleSetting
		err := func() error {
			conn, err := superuserConn(ctx, cfg)
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close(context.Background()) }()
			rows, roles, err = probe.Settings(ctx, conn)
			return err
		}()
		if err != nil {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Warn, Evidence: "could not read pg_settings and pg_db_role_setting: " + err.Error()})
			continue
		}
		want := instance.EnforcedSettings(a.cluster, cfg)
		delete(want, "unix_socket_permissions") // shown as a number by pg_settings
		parts = append(parts, audit.DecideLiveSettings(cfg.Name, rows, roles, want, filepath.Join(cfg.ConfDir, "postgresql.conf")))
	}
	return audit.Combine(parts)
}

func (a *auditor) streams(ctx context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		streams, err := func() ([]audit.Stream, error) {
			conn, err := superuserConn(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer func() { _ = conn.Close(context.Background()) }()
			return probe.Streams(ctx, conn)
		}()
		if err != nil {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Warn, Evidence: "could not read pg_stat_replication: " + err.Error()})
			continue
		}
		parts = append(parts, audit.DecideStreams(cfg.Name, streams))
	}
	return audit.Combine(parts)
}

func (a *auditor) serverCAFile() string {
	return filepath.Join(a.l.SecretsDir(), a.cfgs[0].Secrets.ServerCA, keyCACert)
}

func (a *auditor) tcp(cfg *instance.Config, rest string) string {
	return fmt.Sprintf("host=%s port=%d connect_timeout=3 %s", loopback, cfg.Port, rest)
}

func (a *auditor) postgresTLS12(ctx context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		// An attempt that gets past TLS is answered by authentication
		// (a PostgreSQL error): that counts as accepted.
		at := probe.Connect(ctx, a.tcp(cfg, "user=pgward_audit dbname=postgres sslmode=verify-full sslrootcert="+a.serverCAFile()), func(c *pgconn.Config) {
			c.TLSConfig.MaxVersion = tls.VersionTLS12
		})
		at = probe.TLS12Handshake(at)
		parts = append(parts, audit.DecideRefusal(cfg.Name+" TLS 1.2", at, "protocol version"))
	}
	return audit.Combine(parts)
}

func (a *auditor) replicationPassword(ctx context.Context) audit.Result {
	var parts []audit.Part
	pw := probe.RandomPassword()
	for _, cfg := range a.cfgs {
		for _, c := range []struct{ what, conninfo string }{
			{"password over TLS", "dbname=postgres"},
			{"replication with a password over TLS", "dbname=replication replication=true"},
		} {
			at := probe.Connect(ctx, a.tcp(cfg, "user=streaming_replica sslmode=verify-full sslrootcert="+a.serverCAFile()+" "+c.conninfo), func(cc *pgconn.Config) {
				cc.Password = pw
			})
			parts = append(parts, audit.DecideRefusal(cfg.Name+" "+c.what, at, "certificate"))
		}
	}
	return audit.Combine(parts)
}

func (a *auditor) replicationNoTLS(ctx context.Context) audit.Result {
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		for _, c := range []struct{ what, conninfo string }{
			{"replication without TLS", "dbname=replication replication=true"},
			{"login without TLS", "dbname=postgres"},
		} {
			at := probe.Connect(ctx, a.tcp(cfg, "user=streaming_replica sslmode=disable "+c.conninfo), nil)
			parts = append(parts, audit.DecideRefusal(cfg.Name+" "+c.what, at, "pg_hba.conf"))
		}
	}
	return audit.Combine(parts)
}

func (a *auditor) superuser(ctx context.Context) audit.Result {
	if a.cluster.Spec.EnableSuperuserAccess != nil && *a.cluster.Spec.EnableSuperuserAccess {
		return audit.Result{Status: audit.Pass, Evidence: "superuser access is on (spec.enableSuperuserAccess): postgres has a generated password by choice"}
	}
	var parts []audit.Part
	for _, cfg := range a.cfgs {
		if cfg.Secrets.Superuser != "" {
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Fail, Evidence: "the instance is configured with superuser secret " + cfg.Secrets.Superuser})
		}
	}
	if _, err := a.store.Get(a.cluster.Name + "-superuser"); err == nil {
		parts = append(parts, audit.Part{Status: audit.Fail, Evidence: "secret " + a.cluster.Name + "-superuser exists"})
	}
	pw := probe.RandomPassword()
	for _, cfg := range a.cfgs {
		at := probe.Connect(ctx, a.tcp(cfg, "user=postgres dbname=postgres sslmode=verify-full sslrootcert="+a.serverCAFile()), func(cc *pgconn.Config) {
			cc.Password = pw
		})
		parts = append(parts, audit.DecideRefusal(cfg.Name+" login as postgres over TLS", at))
		var hasPassword bool
		err := func() error {
			conn, err := superuserConn(ctx, cfg)
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close(context.Background()) }()
			hasPassword, err = probe.SuperuserHasPassword(ctx, conn)
			return err
		}()
		switch {
		case err != nil:
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Warn, Evidence: "could not read pg_authid: " + err.Error()})
		case hasPassword:
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Fail, Evidence: "postgres has a password although superuser access is off"})
		default:
			parts = append(parts, audit.Part{Subject: cfg.Name, Status: audit.Pass, Evidence: "postgres has no password"})
		}
	}
	return audit.Combine(parts)
}

// --- status port ---

// statusRequest makes a request to an instance's status port as an
// anonymous client (no certificate) offering at most maxVersion.
func (a *auditor) statusRequest(ctx context.Context, port int, method, path string, maxVersion uint16, cert ...tls.Certificate) audit.Attempt {
	caPEM, err := os.ReadFile(a.serverCAFile())
	if err != nil {
		return audit.Attempt{Unknown: err.Error()}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return probe.StatusRequest(ctx, loopback+":"+strconv.Itoa(port), localhost, roots, method, path, maxVersion, cert...)
}

func (a *auditor) statusAnonymous(ctx context.Context) audit.Result {
	var parts []audit.Part
	// A certificate of the cluster's client CA that is not the
	// controller's: every instance holds streaming_replica's.
	var repl []tls.Certificate
	data, err := a.store.Get(a.cfgs[0].Secrets.Replication)
	if err == nil {
		var c tls.Certificate
		if c, err = tls.X509KeyPair(data[keyTLSCert], data[keyTLSKey]); err == nil {
			repl = append(repl, c)
		}
	}
	if err != nil {
		parts = append(parts, audit.Part{Status: audit.Warn, Evidence: "streaming_replica's certificate not tried: " + err.Error()})
	}
	for _, is := range a.st.Instances {
		parts = append(parts,
			audit.DecideRefusal(is.Name+" GET /pg/status without a certificate", a.statusRequest(ctx, is.StatusPort, http.MethodGet, "/pg/status", tls.VersionTLS13), "HTTP 401"),
			audit.DecideRefusal(is.Name+" POST /pg/command without a certificate", a.statusRequest(ctx, is.StatusPort, http.MethodPost, "/pg/command", tls.VersionTLS13), "HTTP 401"))
		if len(repl) > 0 {
			parts = append(parts, audit.DecideRefusal(is.Name+" POST /pg/command with streaming_replica's certificate", a.statusRequest(ctx, is.StatusPort, http.MethodPost, "/pg/command", tls.VersionTLS13, repl...), "HTTP 403", "tls: "))
		}
	}
	return audit.Combine(parts)
}

func (a *auditor) statusTLS12(ctx context.Context) audit.Result {
	var parts []audit.Part
	for _, is := range a.st.Instances {
		parts = append(parts, audit.DecideRefusal(is.Name+" TLS 1.2", a.statusRequest(ctx, is.StatusPort, http.MethodGet, "/healthz", tls.VersionTLS12), "protocol version"))
	}
	return audit.Combine(parts)
}
