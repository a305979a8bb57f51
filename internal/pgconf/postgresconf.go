package pgconf

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/safetext"
)

// Instance holds what the runtime decides for one PostgreSQL instance: its
// identity, where it listens and where it placed the files postgresql.conf
// refers to. These never come from the manifest, so they may be forced.
type Instance struct {
	// Name is the instance's name, such as "demo-1". It ends cluster_name,
	// which is also the application_name a standby's WAL receiver uses when
	// PrimaryConnInfo does not set one.
	Name string
	// ClusterName is the name of the Cluster the instance belongs to.
	ClusterName string
	// Port is the TCP port, which also names the Unix socket.
	Port int
	// ListenAddresses is listen_addresses: "127.0.0.1" locally, "*" on
	// Kubernetes. Empty means Unix socket only, useful while bootstrapping.
	ListenAddresses string
	// SocketDir is the absolute path of the directory holding the Unix
	// socket. The runtime must create it with mode 0700: pg_hba.conf trusts
	// the operating system to keep everyone but the instance's user out.
	SocketDir string
	// HBAFile and IdentFile are the absolute paths where the runtime writes
	// the output of RenderHBA and RenderIdent.
	HBAFile, IdentFile string
	// ServerCertFile and ServerKeyFile are the absolute paths of the server
	// certificate and key (PEM).
	ServerCertFile, ServerKeyFile string
	// ClientCAFile is the absolute path of the CA that signs client
	// certificates, such as streaming_replica's.
	ClientCAFile string
	// PrimaryConnInfo is primary_conninfo, empty on a primary. It should set
	// application_name to Name so synchronous_standby_names can name it.
	PrimaryConnInfo string
	// PrimarySlotName is primary_slot_name on a standby that streams
	// through a slot of its upstream (replicationSlots.highAvailability).
	PrimarySlotName string
	// SynchronousStandbyNames is synchronous_standby_names; empty means
	// asynchronous replication.
	SynchronousStandbyNames string
	// OSUser is the operating system user PostgreSQL runs as; the caller
	// passes the same name to RenderHBA and RenderIdent.
	OSUser string
	// ArchiveCommand, when set, turns WAL archiving on. archive_mode is
	// "on", not "always": only a primary archives, and a promoted replica
	// starts archiving its new timeline.
	ArchiveCommand string
	// RestoreCommand and Recovery (recovery_target* settings) make the
	// instance recover from an archive (with recovery.signal).
	RestoreCommand string
	Recovery       [][2]string
	// MinApplyDelay, on a standby of a replica cluster, is
	// recovery_min_apply_delay (spec.replica.minApplyDelay); 0 leaves it
	// out, which a reload turns back into no delay.
	MinApplyDelay time.Duration
}

// setting is one "name = 'value'" line of postgresql.conf.
type setting struct {
	name, value string
}

// defaultSettings are pgward's choices where PostgreSQL's own defaults do not
// suit a replicated, security-first cluster. Users may override each one.
var defaultSettings = []setting{
	// Logical decoding costs little and lets users add logical replication
	// without a restart.
	{"wal_level", "logical"},
	// pg_rewind needs hint-bit changes in the WAL to rejoin a former primary
	// (data checksums would do too, but may be off).
	{"wal_log_hints", "on"},
	// Keeps enough WAL for a briefly disconnected standby to catch up without
	// a new base backup; larger would make pg_rewind copy more.
	{"wal_keep_size", "512MB"},
	// Short timeouts notice a dead peer quickly, so a standby turns to a new
	// primary soon after a failover.
	{"wal_sender_timeout", "5s"},
	{"wal_receiver_timeout", "5s"},
	// How soon a standby whose stream ended tries again: PostgreSQL's
	// default, for a standby that also restores from an archive (each try
	// asks it); a standby streaming from its own cluster's primary retries
	// faster (StreamingRetryInterval).
	{"wal_retrieve_retry_interval", "1s"},
	{"max_wal_senders", "10"},
	{"max_replication_slots", "10"},
	// Feedback would let a standby's queries hold back vacuum on the primary.
	{"hot_standby_feedback", "off"},
	{"shared_buffers", "128MB"},
	{"max_connections", "100"},
	{"dynamic_shared_memory_type", "posix"},
	// An audit trail of who connected from where; %q drops the session
	// fields from lines of background processes.
	{"log_connections", "on"},
	{"log_disconnections", "on"},
	{"log_line_prefix", "%m [%p] %q%u@%d/%a "},
}

// includeDirectives are keywords that look like parameters in
// postgresql.conf but make PostgreSQL read other files.
var includeDirectives = []string{"include", "include_dir", "include_if_exists"}

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// MaxSocketPath is maxSocketPath for the runtimes' own checks.
const MaxSocketPath = maxSocketPath

const confHeader = `# postgresql.conf generated by pgward. Do not edit: pgward rewrites this
# file and discards changes made here.
#
# When a parameter appears more than once the last line wins, so the sections
# go from pgward's defaults, through the Cluster's parameters, to the settings
# pgward enforces.
`

// RenderPostgresConf renders postgresql.conf for instance in of cluster c.
//
// The file has three sections: pgward's defaults, then
// spec.postgresql.parameters sorted by name (one line each), then the
// settings pgward enforces, which come last so that they win. A parameter
// pgward must control, an include directive, or a value with a control
// character is refused even though admission should have refused it already:
// this is the last point before the text reaches PostgreSQL.
func RenderPostgresConf(c *v1.Cluster, in Instance) ([]byte, error) {
	if c == nil {
		return nil, errors.New("pgconf: nil Cluster")
	}
	forced, err := in.enforcedSettings()
	if err != nil {
		return nil, fmt.Errorf("pgconf: instance %q: %w", in.Name, err)
	}
	for _, lib := range c.Spec.PostgresConfiguration.SharedPreloadLibraries {
		if !slices.Contains(v1.PreloadableLibraries, lib) {
			return nil, fmt.Errorf("pgconf: spec.postgresql.shared_preload_libraries: %q is not a library pgward preloads", lib)
		}
	}
	// Always written, even empty, so that removing a library takes effect
	// at the next restart.
	forced = append(forced, setting{"shared_preload_libraries", strings.Join(c.Spec.PostgresConfiguration.SharedPreloadLibraries, ",")})
	// The tablespaces declared temporary (CloudNativePG does the same);
	// written only then, so a user's own value stays theirs otherwise
	// (validation refuses one beside temporary tablespaces). A name not
	// created yet is skipped by PostgreSQL in a configuration file.
	if tmp := c.Spec.TemporaryTablespaces(); len(tmp) > 0 {
		for _, t := range tmp {
			if !isIdentifier(t) {
				return nil, fmt.Errorf("pgconf: spec.tablespaces: %q is not a tablespace name", t)
			}
		}
		forced = append(forced, setting{"temp_tablespaces", strings.Join(tmp, ",")})
	}
	if c.Spec.PostgresConfiguration.HBAHoldsSecret() {
		// PostgreSQL logs the pg_hba line a failed authentication matched
		// in its DETAIL, the bind password or RADIUS secret included.
		forced = append(forced, setting{"log_error_verbosity", "terse"})
		if v, ok := c.Spec.PostgresConfiguration.Parameters["log_error_verbosity"]; ok && strings.EqualFold(v, "terse") {
			params := maps.Clone(c.Spec.PostgresConfiguration.Parameters)
			delete(params, "log_error_verbosity")
			user, err := userSettings(params, forced)
			if err != nil {
				return nil, fmt.Errorf("pgconf: %w", err)
			}
			return renderConf(in, user, forced)
		}
	}
	user, err := userSettings(c.Spec.PostgresConfiguration.Parameters, forced)
	if err != nil {
		return nil, fmt.Errorf("pgconf: %w", err)
	}
	return renderConf(in, user, forced)
}

// renderConf writes the three sections of postgresql.conf.
func renderConf(in Instance, user, forced []setting) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(confHeader)
	sections := []struct {
		title    string
		settings []setting
	}{
		{"pgward defaults", in.defaults()},
		{"spec.postgresql.parameters", user},
		{"Enforced by pgward", forced},
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "\n# %s\n", s.title)
		for _, st := range s.settings {
			q, err := quoteConfigString(st.value)
			if err != nil {
				return nil, fmt.Errorf("pgconf: parameter %q: value %w", st.name, err)
			}
			fmt.Fprintf(&b, "%s = %s\n", st.name, q)
		}
	}
	return b.Bytes(), nil
}

// StreamingRetryInterval is wal_retrieve_retry_interval on a standby that
// streams from its cluster's primary and restores nothing from an archive.
// After a failover its WAL receiver's first attempts may meet the old
// primary's address (refused) until the new one is reachable where it
// connects: on Kubernetes the read-write Service, which kube-proxy moves
// within its minimum sync period (1 s by default). The synchronous
// standby's reconnection is what the new primary's first commit waits for,
// so the retry interval adds to the failover directly; 200 ms costs one
// refused connection attempt per retry and only while the primary is away.
// A standby with a restore_command (a replica cluster's designated primary)
// keeps the general default: each retry would also ask the archive.
const StreamingRetryInterval = "200ms"

// defaults are defaultSettings for this instance.
func (in Instance) defaults() []setting {
	if in.PrimaryConnInfo == "" || in.RestoreCommand != "" {
		return defaultSettings
	}
	out := slices.Clone(defaultSettings)
	for i := range out {
		if out[i].name == "wal_retrieve_retry_interval" {
			out[i].value = StreamingRetryInterval
		}
	}
	return out
}

// enforcedSettings returns the settings pgward must control: where the
// instance listens and finds its files, TLS and password hashing, and what
// the instance manager needs to supervise PostgreSQL.
func (in Instance) enforcedSettings() ([]setting, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	s := []setting{
		{"listen_addresses", in.ListenAddresses},
		{"port", strconv.Itoa(in.Port)},
		{"unix_socket_directories", in.SocketDir},
		// Only the instance's OS user may reach the socket, which is what
		// makes the peer rule at the top of pg_hba.conf safe.
		{"unix_socket_permissions", "0700"},
		{"cluster_name", in.clusterName()},
		{"hba_file", in.HBAFile},
		{"ident_file", in.IdentFile},
		{"ssl", "on"},
		{"ssl_cert_file", in.ServerCertFile},
		{"ssl_key_file", in.ServerKeyFile},
		{"ssl_ca_file", in.ClientCAFile},
		{"ssl_min_protocol_version", "TLSv1.3"},
		{"password_encryption", "scram-sha-256"},
		{"hot_standby", "on"},
		// After a backend crash the instance manager decides what happens
		// (restart, or fail over if this was the primary), not the
		// postmaster on its own.
		{"restart_after_crash", "off"},
		// The instance manager captures stderr; a logging collector would
		// write files nobody collects.
		{"logging_collector", "off"},
		{"log_destination", "stderr"},
	}
	if in.ArchiveCommand != "" {
		s = append(s, setting{"archive_mode", "on"}, setting{"archive_command", in.ArchiveCommand})
	} else {
		s = append(s, setting{"archive_mode", "off"})
	}
	if in.RestoreCommand != "" {
		s = append(s, setting{"restore_command", in.RestoreCommand})
	}
	for _, kv := range in.Recovery {
		if !strings.HasPrefix(kv[0], "recovery_target") {
			return nil, fmt.Errorf("recovery setting %q is not a recovery target", kv[0])
		}
		s = append(s, setting{kv[0], kv[1]})
	}
	if in.PrimaryConnInfo != "" {
		s = append(s, setting{"primary_conninfo", in.PrimaryConnInfo})
	}
	if in.PrimarySlotName != "" {
		s = append(s, setting{"primary_slot_name", in.PrimarySlotName})
	}
	if in.MinApplyDelay > 0 {
		s = append(s, setting{"recovery_min_apply_delay", strconv.FormatInt(in.MinApplyDelay.Milliseconds(), 10) + "ms"})
	}
	// Always written, even empty, so that a reload after a change to
	// asynchronous replication clears the previous value.
	s = append(s, setting{"synchronous_standby_names", in.SynchronousStandbyNames})
	for _, st := range s {
		if err := safetext.Check(st.value); err != nil {
			return nil, fmt.Errorf("%s: value %w", st.name, err)
		}
	}
	return s, nil
}

// validate checks the fields that PostgreSQL would misread rather than
// reject; enforcedSettings checks every value for control characters.
func (in Instance) validate() error {
	if in.Name == "" || in.ClusterName == "" {
		return errors.New("both Name and ClusterName are required")
	}
	if in.Port < 1 || in.Port > 65535 {
		return fmt.Errorf("port %d is out of range 1-65535", in.Port)
	}
	paths := []struct{ field, value string }{
		{"SocketDir", in.SocketDir},
		{"HBAFile", in.HBAFile},
		{"IdentFile", in.IdentFile},
		{"ServerCertFile", in.ServerCertFile},
		{"ServerKeyFile", in.ServerKeyFile},
		{"ClientCAFile", in.ClientCAFile},
	}
	for _, p := range paths {
		// A relative path would be resolved against the data directory,
		// which pg_basebackup and pg_rewind overwrite from another instance.
		if !path.IsAbs(p.value) {
			return fmt.Errorf("%s %q is not an absolute path", p.field, p.value)
		}
	}
	// unix_socket_directories is a comma-separated list with double-quoted
	// elements: either character would change which directories are used.
	if strings.ContainsAny(in.SocketDir, `,"`) {
		return fmt.Errorf("SocketDir %q contains a comma or a double quote", in.SocketDir)
	}
	socket := path.Join(in.SocketDir, ".s.PGSQL."+strconv.Itoa(in.Port))
	if len(socket) > maxSocketPath {
		return fmt.Errorf("socket path %q is longer than %d bytes", socket, maxSocketPath)
	}
	return nil
}

// clusterName is the cluster_name setting, shown in process titles. With the
// usual "<cluster>-<n>" instance names it is the instance name itself.
func (in Instance) clusterName() string {
	if strings.HasPrefix(in.Name, in.ClusterName+"-") {
		return in.Name
	}
	return in.ClusterName + "-" + in.Name
}

// userSettings checks the Cluster's parameters and returns them sorted by
// name. The API already refuses everything checked here; repeating the checks
// keeps this package safe on its own, whoever calls it.
func userSettings(params map[string]string, enforced []setting) ([]setting, error) {
	out := make([]setting, 0, len(params))
	for _, name := range slices.Sorted(maps.Keys(params)) {
		value := params[name]
		field := fmt.Sprintf("spec.postgresql.parameters[%q]", name)
		if err := v1.ValidateParameter(name, value); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if !isParameterName(name) {
			return nil, fmt.Errorf("%s: not a valid lower-case parameter name", field)
		}
		if slices.Contains(includeDirectives, name) {
			return nil, fmt.Errorf("%s: include directives are not allowed", field)
		}
		managed := slices.ContainsFunc(enforced, func(s setting) bool { return s.name == name })
		if managed || v1.IsFixedParameter(name) {
			return nil, fmt.Errorf("%s: parameter is managed by pgward and cannot be set", field)
		}
		if err := safetext.Check(value); err != nil {
			return nil, fmt.Errorf("%s: value %w", field, err)
		}
		out = append(out, setting{name, value})
	}
	return out, nil
}
