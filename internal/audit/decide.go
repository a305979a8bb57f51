package audit

import (
	"crypto/x509"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/pki"
)

// Attempt is the outcome of an attack: a connection or request that
// pgward's controls must refuse.
type Attempt struct {
	// Accepted: the server let the attacker in (or answered the request).
	Accepted bool
	// Refusal is the server's refusal (an authentication error, a TLS
	// alert, an HTTP status) when it refused; empty if Accepted.
	Refusal string
	// Unknown is set when the attempt could not tell (connection refused,
	// timeout): the control is neither shown to hold nor to fail.
	Unknown string
}

// DecideRefusal judges one attack: PASS when refused with a reason that
// contains one of want (case-insensitive; any refusal when want is empty),
// FAIL when accepted or refused for another reason than the control's,
// WARN when it could not tell.
func DecideRefusal(subject string, a Attempt, want ...string) Part {
	switch {
	case a.Accepted:
		return Part{subject, Fail, "accepted" + suffix(a.Refusal)}
	case a.Unknown != "":
		return Part{subject, Warn, "could not tell: " + a.Unknown}
	}
	if len(want) == 0 {
		return Part{subject, Pass, "refused: " + a.Refusal}
	}
	low := strings.ToLower(a.Refusal)
	for _, w := range want {
		if strings.Contains(low, strings.ToLower(w)) {
			return Part{subject, Pass, "refused: " + a.Refusal}
		}
	}
	return Part{subject, Fail, fmt.Sprintf("refused, but not for the expected reason (%s): %s", strings.Join(want, " or "), a.Refusal)}
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// HBA rules pgward writes first and last (fields joined by one space).
const (
	HBAFirstRule = "local all all peer map=pgward"
	HBALastRule  = "host all all all reject"
)

// bindPasswd matches a pg_hba ldapbindpasswd option, quoted or not.
var bindPasswd = regexp.MustCompile(`ldapbindpasswd=("[^"]*"|[^\s,]*)`)

// RuleLines returns the rules of a pg_hba.conf: no comments, no blank
// lines, fields joined by one space, the LDAP bind password masked.
func RuleLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, "#"); i >= 0 && !strings.Contains(l[:i], `"`) {
			l = l[:i]
		}
		// The LDAP bind password: compared by shape only, and never in an
		// audit's output.
		l = bindPasswd.ReplaceAllString(l, "ldapbindpasswd=***")
		if f := strings.Fields(l); len(f) > 0 {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

// ruleShape names a rule by its connection type and method only: the
// other fields (and a manifest line's options) may hold secrets, such as
// an LDAP bind password, and the audit's output ends up in CI logs.
func ruleShape(rule string) string {
	f := strings.Fields(rule)
	if len(f) == 0 {
		return ""
	}
	method := ""
	for _, m := range f[1:] {
		if isHBAMethod(m) {
			method = m
			break
		}
	}
	return strings.TrimSpace(f[0] + " ... " + method)
}

var hbaMethods = []string{"trust", "reject", "scram-sha-256", "md5", "password", "gss", "sspi", "ident", "peer", "ldap", "radius", "cert", "pam", "bsd"}

func isHBAMethod(s string) bool {
	for _, m := range hbaMethods {
		if s == m {
			return true
		}
	}
	return false
}

// DecideHBA checks an instance's pg_hba.conf as it is on disk against what
// pgward renders for the manifest (expected): pgward's peer rule first, the
// catch-all rules last and ending in host+reject, no trust on a network
// rule, and nothing else changed.
func DecideHBA(subject, actual, expected string) Part {
	got, want := RuleLines(actual), RuleLines(expected)
	var bad []string
	if len(got) == 0 {
		return Part{subject, Fail, "pg_hba.conf has no rule"}
	}
	if got[0] != HBAFirstRule {
		bad = append(bad, fmt.Sprintf("first rule is %q, want %q", ruleShape(got[0]), HBAFirstRule))
	}
	if last := got[len(got)-1]; last != HBALastRule {
		bad = append(bad, fmt.Sprintf("last rule is %q, want %q", ruleShape(last), HBALastRule))
	}
	for i, r := range got {
		f := strings.Fields(r)
		if f[0] != "local" && len(f) > 0 && containsField(f, "trust") {
			bad = append(bad, fmt.Sprintf("rule %d trusts the network (%s)", i+1, ruleShape(r)))
		}
	}
	if len(want) > 0 && strings.Join(got, "\n") != strings.Join(want, "\n") {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		what := "rules missing at the end"
		if i < len(got) {
			what = fmt.Sprintf("rule %d is %q", i+1, ruleShape(got[i]))
		}
		bad = append(bad, fmt.Sprintf("differs from what pgward renders for the manifest from rule %d on (%s)", i+1, what))
	}
	if len(bad) > 0 {
		return Part{subject, Fail, strings.Join(bad, ", ")}
	}
	return Part{subject, Pass, fmt.Sprintf("%d rules as rendered: %q first, %q last", len(got), HBAFirstRule, HBALastRule)}
}

// DecideIdent checks an instance's pg_ident.conf against what pgward
// renders for the manifest: the reserved map pgward (the instance's OS
// user to postgres, which the peer rule relies on) and the manifest's
// maps, nothing else. Only line numbers and map names are shown.
func DecideIdent(subject, actual, expected string) Part {
	got, want := RuleLines(actual), RuleLines(expected)
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return Part{subject, Pass, fmt.Sprintf("%d mappings as rendered", len(got))}
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	what := "mappings missing at the end"
	if i < len(got) {
		f := strings.Fields(got[i])
		what = fmt.Sprintf("line %d maps onto %s in map %s", i+1, f[len(f)-1], f[0])
	}
	return Part{subject, Fail, fmt.Sprintf("differs from what pgward renders for the manifest from mapping %d on (%s)", i+1, what)}
}

func containsField(f []string, s string) bool {
	for _, x := range f {
		if x == s {
			return true
		}
	}
	return false
}

// ConfSetting is one "name = value" line of postgresql.conf.
type ConfSetting struct {
	Line        int
	Name, Value string
}

// ParseConf reads the settings of a postgresql.conf in order (names in
// lower case, values unquoted). It understands what pgward writes, and
// flags any line it does not understand as a setting named "?".
func ParseConf(text string) []ConfSetting {
	var out []ConfSetting
	for i, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, value, ok := strings.Cut(t, "=")
		if !ok {
			// "include 'file'" needs no '='.
			f := strings.Fields(t)
			name, value = f[0], strings.TrimSpace(strings.TrimPrefix(t, f[0]))
		}
		out = append(out, ConfSetting{Line: i + 1, Name: strings.ToLower(strings.TrimSpace(name)), Value: unquote(strings.TrimSpace(value))})
	}
	return out
}

func unquote(v string) string {
	if i := strings.Index(v, "#"); i >= 0 && !strings.HasPrefix(v, "'") {
		v = strings.TrimSpace(v[:i])
	}
	if len(v) >= 2 && v[0] == '\'' {
		if j := strings.LastIndex(v, "'"); j > 0 {
			v = v[1:j]
		}
		return strings.ReplaceAll(v, "''", "'")
	}
	return v
}

// DecidePostgresConf checks a rendered postgresql.conf: every setting of
// want has its value (the last line wins, as in PostgreSQL), no include
// directive, and no fixed parameter set more than once (pgward writes each
// fixed parameter exactly once, in its enforced section: a second line is
// something else setting it).
func DecidePostgresConf(subject, text string, want map[string]string) Part {
	settings := ParseConf(text)
	last := map[string]string{}
	count := map[string]int{}
	var bad []string
	for _, s := range settings {
		last[s.Name] = s.Value
		count[s.Name]++
		if strings.HasPrefix(s.Name, "include") {
			bad = append(bad, fmt.Sprintf("line %d: %s (reads another file)", s.Line, s.Name))
		}
	}
	for _, name := range sortedKeys(want) {
		got, ok := last[name]
		switch {
		case !ok:
			bad = append(bad, name+" not set (want "+want[name]+")")
		case !strings.EqualFold(got, want[name]):
			bad = append(bad, fmt.Sprintf("%s = %s (want %s)", name, got, want[name]))
		}
	}
	for _, name := range sortedKeys(count) {
		if count[name] > 1 && v1.IsFixedParameter(name) {
			bad = append(bad, fmt.Sprintf("fixed parameter %s set %d times", name, count[name]))
		}
	}
	if len(bad) > 0 {
		return Part{subject, Fail, strings.Join(bad, ", ")}
	}
	return Part{subject, Pass, fmt.Sprintf("%d enforced settings as rendered (ssl = on, ssl_min_protocol_version = TLSv1.3, password_encryption = scram-sha-256, ...), each fixed parameter once", len(want))}
}

// LiveSetting is a row of pg_settings.
type LiveSetting struct {
	Name, Setting, Source, SourceFile string
}

// RoleSetting is a parameter set for a role or a database (ALTER ROLE
// ... SET, ALTER DATABASE ... SET: pg_db_role_setting). Database and Role
// are empty for "all".
type RoleSetting struct {
	Database, Role, Name string
}

// DecideLiveSettings checks what the running server uses: want's values;
// every fixed parameter set from a file comes from pgward's rendered
// configuration (confFile), not postgresql.auto.conf or any other file;
// and no fixed parameter is set on the command line or for a role or a
// database (a role may set its own password_encryption, for one).
func DecideLiveSettings(subject string, rows []LiveSetting, roles []RoleSetting, want map[string]string, confFile string) Part {
	var bad []string
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Name] = true
		if w, ok := want[r.Name]; ok && !strings.EqualFold(r.Setting, w) {
			bad = append(bad, fmt.Sprintf("%s = %s (want %s)", r.Name, r.Setting, w))
		}
		if !v1.IsFixedParameter(r.Name) {
			continue
		}
		if r.SourceFile != "" && r.SourceFile != confFile {
			bad = append(bad, fmt.Sprintf("fixed parameter %s comes from %s", r.Name, r.SourceFile))
		}
		switch r.Source {
		case "command line", "database", "user", "database user", "environment variable":
			bad = append(bad, fmt.Sprintf("fixed parameter %s set by %s", r.Name, r.Source))
		}
	}
	for _, r := range roles {
		if v1.IsFixedParameter(r.Name) {
			bad = append(bad, fmt.Sprintf("fixed parameter %s set for role %s in database %s", r.Name, orAll(r.Role), orAll(r.Database)))
		}
	}
	for _, name := range sortedKeys(want) {
		if !seen[name] {
			bad = append(bad, name+" not reported by the server")
		}
	}
	if len(bad) > 0 {
		return Part{subject, Fail, strings.Join(bad, ", ")}
	}
	return Part{subject, Pass, "the running server uses the enforced values; every fixed parameter comes from pgward's postgresql.conf, none is set for a role or a database"}
}

// DecideAutoConf checks postgresql.auto.conf: pgward empties it at every
// start, so any setting in it was written since by ALTER SYSTEM and
// overrides the declared configuration on the next reload. FAIL, not
// WARN: the running configuration is no longer the manifest's, and
// pg_basebackup copies the file to new replicas. Only the names are shown.
func DecideAutoConf(subject, text string) Part {
	var names []string
	for _, s := range ParseConf(text) {
		names = append(names, s.Name)
	}
	return DecideAutoConfNames(subject, names)
}

// DecideAutoConfNames is DecideAutoConf on the names the file sets, as an
// instance manager reports them.
func DecideAutoConfNames(subject string, names []string) Part {
	if len(names) > 0 {
		return Part{subject, Fail, "postgresql.auto.conf sets " + strings.Join(names, ", ") + " (ALTER SYSTEM since the last start)"}
	}
	return Part{subject, Pass, "postgresql.auto.conf sets nothing"}
}

// FileEntry is one entry of the state directory, not followed if a link.
type FileEntry struct {
	// Rel is the path relative to the state directory ("." for itself).
	Rel  string
	Mode fs.FileMode
}

// DecideFileModes checks the state directory's modes: the directory
// itself, secrets' directories, data directories and socket directories
// (run) 0700, sockets nothing for group or others; private keys,
// pgpass and password files 0600; every other regular file (secrets,
// logs, state, manifests, rendered configuration) no access for group or
// others; no directory writable by group or others. Symbolic links are
// reported: pgward creates none.
func DecideFileModes(entries []FileEntry) Part {
	var bad []string
	n := 0
	for _, e := range entries {
		perm := e.Mode.Perm()
		base := path.Base(e.Rel)
		isDir := e.Mode.IsDir()
		switch {
		case e.Mode&fs.ModeSymlink != 0:
			bad = append(bad, e.Rel+" is a symbolic link")
		case isDir && (e.Rel == "." || e.Rel == "secrets" || strings.HasPrefix(e.Rel, "secrets/") || strings.HasSuffix(e.Rel, "/data") || strings.HasSuffix(e.Rel, "/run")):
			n++
			if perm != 0o700 {
				bad = append(bad, fmt.Sprintf("%s is %04o (want 0700)", e.Rel, perm))
			}
		case isDir:
			n++
			if perm&0o022 != 0 {
				bad = append(bad, fmt.Sprintf("%s is %04o (want no write for group or others)", e.Rel, perm))
			}
		case e.Mode&fs.ModeSocket != 0:
			// PostgreSQL's socket: the peer rule trusts whoever reaches it.
			n++
			if perm&0o077 != 0 {
				bad = append(bad, fmt.Sprintf("%s is %04o (want 0700: unix_socket_permissions)", e.Rel, perm))
			}
		case !e.Mode.IsRegular():
			// Lock files of sockets are regular; nothing else is expected.
		case strings.HasSuffix(base, ".key") || base == "pgpass" || base == "password":
			n++
			if perm != 0o600 {
				bad = append(bad, fmt.Sprintf("%s is %04o (want 0600)", e.Rel, perm))
			}
		default:
			n++
			if perm&0o077 != 0 {
				bad = append(bad, fmt.Sprintf("%s is %04o (want 0600: no access for group or others)", e.Rel, perm))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return Part{"", Fail, strings.Join(bad, ", ")}
	}
	return Part{"", Pass, fmt.Sprintf("%d files and directories: keys, pgpass and password files 0600, secrets, data and socket directories 0700, nothing open to group or others", n)}
}

// Cert is a certificate found in a secret, with the CA it must chain to.
type Cert struct {
	// Name is secret/key.
	Name string
	Cert *x509.Certificate
	// CA is nil for a CA certificate itself.
	CA    *x509.Certificate
	Usage x509.ExtKeyUsage
}

// DecideExpiry gives FAIL if expired or not valid yet, WARN within pki's
// renewal window (pgward renews generated certificates then; one still
// there was not renewed, e.g. a user-provided one), PASS otherwise.
func DecideExpiry(c Cert, now time.Time) Part {
	left := c.Cert.NotAfter.Sub(now)
	switch {
	case now.After(c.Cert.NotAfter):
		return Part{c.Name, Fail, fmt.Sprintf("expired %s ago (%s)", roundDay(-left), c.Cert.NotAfter.UTC().Format(time.RFC3339))}
	case now.Before(c.Cert.NotBefore):
		return Part{c.Name, Fail, "not valid before " + c.Cert.NotBefore.UTC().Format(time.RFC3339)}
	case left < pki.RenewBefore:
		return Part{c.Name, Warn, fmt.Sprintf("expires in %s (%s), within the %s renewal window", roundDay(left), c.Cert.NotAfter.UTC().Format(time.RFC3339), roundDay(pki.RenewBefore))}
	}
	return Part{c.Name, Pass, "expires in " + roundDay(left)}
}

// DecideChain checks that a leaf is be signed by its CA and carry the right usage.
// The whole chain is verified at a time within both validities when there
// is one, so that an expired certificate is reported by DecideExpiry, not
// here; otherwise the signature and the usage are checked on their own.
func DecideChain(c Cert) Part {
	if c.CA == nil {
		return Part{c.Name, Pass, "CA"}
	}
	if err := c.Cert.CheckSignatureFrom(c.CA); err != nil {
		return Part{c.Name, Fail, "not signed by its CA " + c.CA.Subject.CommonName + ": " + err.Error()}
	}
	usage := false
	for _, u := range c.Cert.ExtKeyUsage {
		usage = usage || u == c.Usage
	}
	if !usage {
		return Part{c.Name, Fail, "lacks the extended key usage it is used for"}
	}
	from, to := c.Cert.NotBefore, c.Cert.NotAfter
	if c.CA.NotBefore.After(from) {
		from = c.CA.NotBefore
	}
	if c.CA.NotAfter.Before(to) {
		to = c.CA.NotAfter
	}
	if at := from.Add(time.Second); at.Before(to) {
		if err := pki.Verify(c.CA, c.Cert, c.Usage, at); err != nil {
			return Part{c.Name, Fail, "does not chain to its CA: " + err.Error()}
		}
	}
	return Part{c.Name, Pass, "chains to " + c.CA.Subject.CommonName}
}

func roundDay(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return d.Round(time.Minute).String()
}

// Proc is a process of the cluster.
type Proc struct {
	PID  int
	UID  int
	Name string
}

// DecideProcesses checks that no process of the cluster runs as root.
func DecideProcesses(procs []Proc) Part {
	if len(procs) == 0 {
		return Part{"", Warn, "no process of the cluster found (is it running?)"}
	}
	var bad []string
	for _, p := range procs {
		if p.UID == 0 {
			bad = append(bad, fmt.Sprintf("pid %d (%s) runs as root", p.PID, p.Name))
		}
	}
	if len(bad) > 0 {
		return Part{"", Fail, strings.Join(bad, ", ")}
	}
	return Part{"", Pass, fmt.Sprintf("%d processes, none as root (uid %d)", len(procs), procs[0].UID)}
}

// AllowedEnvironment is every variable pgward passes to the processes it
// starts (the controller, the instance managers, PostgreSQL): nothing a
// user's shell had (PGPASSWORD, PGSSLMODE, LD_PRELOAD...) reaches them.
// The LDAPTLS_ pair is PostgreSQL's with postgresql.ldap: certificate
// verification on, and the cluster's LDAP CA file (instance ldapEnv).
var AllowedEnvironment = []string{"LC_ALL", "LANG", "PATH", "TZ", "PGWARD_LOG_LEVEL", "LDAPTLS_REQCERT", "LDAPTLS_CACERT"}

// ProcEnv is the environment a process of the cluster started with
// (/proc/<pid>/environ): names only, values may be secrets.
type ProcEnv struct {
	PID  int
	Name string
	Vars []string
}

// DecideEnvironment checks that no process of the cluster started with a
// variable pgward does not pass on (only the names are shown).
func DecideEnvironment(procs []ProcEnv) Part {
	if len(procs) == 0 {
		return Part{"", Warn, "no readable environment of a process of the cluster (is it running?)"}
	}
	allowed := map[string]bool{}
	for _, v := range AllowedEnvironment {
		allowed[v] = true
	}
	var bad []string
	for _, p := range procs {
		var extra []string
		for _, v := range p.Vars {
			if !allowed[v] {
				extra = append(extra, v)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			bad = append(bad, fmt.Sprintf("pid %d (%s) has %s", p.PID, p.Name, strings.Join(extra, ", ")))
		}
	}
	if len(bad) > 0 {
		return Part{"", Fail, strings.Join(bad, "; ")}
	}
	return Part{"", Pass, fmt.Sprintf("%d processes started with only %s", len(procs), strings.Join(AllowedEnvironment, ", "))}
}

// Stream is a replication connection as the primary sees it
// (pg_stat_replication joined with pg_stat_ssl).
type Stream struct {
	Application string
	SSL         bool
	Version     string
	ClientDN    string
}

// DecideStreams checks that every replication connection to an instance
// uses TLS 1.3 and streaming_replica's certificate.
func DecideStreams(subject string, streams []Stream) Part {
	var bad, good []string
	for _, s := range streams {
		switch {
		case !s.SSL:
			bad = append(bad, s.Application+" streams without TLS")
		case s.Version != "TLSv1.3":
			bad = append(bad, s.Application+" streams over "+s.Version)
		case s.ClientDN != "/CN="+pki.ReplicationCommonName:
			bad = append(bad, fmt.Sprintf("%s streams with client certificate %q", s.Application, s.ClientDN))
		default:
			good = append(good, s.Application)
		}
	}
	switch {
	case len(bad) > 0:
		return Part{subject, Fail, strings.Join(bad, ", ")}
	case len(good) == 0:
		return Part{subject, Pass, "no replication connection"}
	}
	return Part{subject, Pass, strings.Join(good, ", ") + ": TLSv1.3, /CN=" + pki.ReplicationCommonName}
}

func orAll(s string) string {
	if s == "" {
		return "(all)"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WalDir is an instance's separate WAL directory (spec.walStorage) as the
// instance manager found it.
type WalDir struct {
	// Dir is where the WAL must be; Link where pg_wal points.
	Dir, Link string
	Mode      fs.FileMode
	UID       int
}

// DecideWalDir checks that pg_wal is a link to the configured WAL
// directory (the WAL is on its own volume, not filling the data volume)
// and that the directory is PostgreSQL's alone: owned by uid, no access
// for others and no write for the group (PostgreSQL makes it 0700, 0750
// with group access).
func DecideWalDir(subject string, w WalDir, uid int) Part {
	var bad []string
	if w.Link != w.Dir {
		link := w.Link
		if link == "" {
			link = "not a symbolic link"
		}
		bad = append(bad, fmt.Sprintf("pg_wal is %s, want a link to %s", link, w.Dir))
	}
	if w.Mode.Perm()&^0o750 != 0 {
		bad = append(bad, fmt.Sprintf("%s is %04o (want 0700)", w.Dir, w.Mode.Perm()))
	}
	if w.UID != uid {
		bad = append(bad, fmt.Sprintf("%s is owned by uid %d (want %d)", w.Dir, w.UID, uid))
	}
	if len(bad) > 0 {
		return Part{subject, Fail, strings.Join(bad, "; ")}
	}
	return Part{subject, Pass, fmt.Sprintf("pg_wal links to %s, mode %04o, owned by uid %d", w.Dir, w.Mode.Perm(), uid)}
}
