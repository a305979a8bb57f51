package v1

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pgward/pgward/internal/safetext"
)

const (
	// MaxParameterNameLength bounds a parameter name. PostgreSQL has no hard
	// limit, but no real setting comes close and a bound keeps errors readable.
	MaxParameterNameLength = 128
	// MaxParameterValueLength bounds a parameter value in bytes.
	MaxParameterValueLength = 4096
)

// parameterNameRE is the syntax of a GUC name: a plain name or a
// "prefix.name" placeholder for extensions. Lower case only: PostgreSQL folds
// names to lower case, and accepting both spellings would let one map hold
// two entries for the same setting.
var parameterNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)

// fixedParameters are the settings that pgward renders itself. Each one either
// points PostgreSQL at files, sockets, ports or programs (so setting it would
// escape the pod's sandbox or break the instance manager), loads code, or is
// part of the replication, TLS and authentication design that pgward owns.
var fixedParameters = map[string]struct{}{
	// Files, directories, sockets and ports.
	"config_file":        {},
	"data_directory":     {},
	"external_pid_file":  {},
	"hba_file":           {},
	"ident_file":         {},
	"include":            {},
	"include_dir":        {},
	"include_if_exists":  {},
	"listen_addresses":   {},
	"port":               {},
	"krb_server_keyfile": {},
	// Logging: a log file is written by the server and part of its content is
	// chosen by clients, so its location and mode must not be user-controlled.
	"log_destination":   {},
	"log_directory":     {},
	"log_filename":      {},
	"log_file_mode":     {},
	"logging_collector": {},
	// Shell commands and loadable code.
	"archive_cleanup_command":   {},
	"archive_command":           {},
	"archive_library":           {},
	"dynamic_library_path":      {},
	"jit_provider":              {},
	"local_preload_libraries":   {},
	"restore_command":           {},
	"session_preload_libraries": {},
	// An allowlist of the libraries a REPLICATION user may load as logical
	// decoding output plugins: widening it loads code.
	"output_plugin_libraries":  {},
	"shared_preload_libraries": {},
	"ssl_passphrase_command":   {},
	// Replication and high availability.
	"archive_mode":              {},
	"cluster_name":              {},
	"hot_standby":               {},
	"primary_conninfo":          {},
	"primary_slot_name":         {},
	"promote_trigger_file":      {},
	"restart_after_crash":       {},
	"synchronous_standby_names": {},
	// pgward repoints replicas with ALTER SYSTEM.
	"allow_alter_system": {},
	// TLS: pgward renders the certificates and requires TLS 1.3.
	"ssl":                                    {},
	"ssl_ca_file":                            {},
	"ssl_cert_file":                          {},
	"ssl_crl_dir":                            {},
	"ssl_crl_file":                           {},
	"ssl_dh_params_file":                     {},
	"ssl_key_file":                           {},
	"ssl_max_protocol_version":               {},
	"ssl_min_protocol_version":               {},
	"ssl_passphrase_command_supports_reload": {},
	// Authentication: passwords are always stored as SCRAM verifiers.
	"password_encryption": {},
	// Catalog safety.
	"allow_system_table_mods": {},
	// Integrity: data_sync_retry on retries a failed fsync, which may have
	// dropped the data it was writing; zero_damaged_pages destroys the
	// pages it cannot read.
	"data_sync_retry":    {},
	"zero_damaged_pages": {},
	// Advertising the server on the network.
	"bonjour":      {},
	"bonjour_name": {},
	// Logging to places other than pgward's (the Windows event log, syslog)
	// or rotation of a log file pgward does not keep: accepted, they would
	// do nothing.
	"event_source":             {},
	"log_rotation_age":         {},
	"log_rotation_size":        {},
	"log_truncate_on_rotation": {},
	"syslog_facility":          {},
	"syslog_ident":             {},
	"syslog_sequence_numbers":  {},
	"syslog_split_messages":    {},
	// Code that procedural languages run when their interpreter starts,
	// as the role that loaded it.
	"plperl.on_init":         {},
	"plperl.on_plperl_init":  {},
	"plperl.on_plperlu_init": {},
	"pltcl.start_proc":       {},
	"pltclu.start_proc":      {},
}

// fixedParameterPrefixes are families of settings that are fixed as a whole:
// recovery_* steers how a standby replays WAL (targets, delays, end
// commands), unix_socket_* places and protects the local socket, and ssl_*
// is pgward's TLS design (certificates, TLS 1.3 only, so no cipher list or
// curve choice either).
var fixedParameterPrefixes = []string{"recovery_", "unix_socket_", "ssl_"}

// IsFixedParameter reports whether the PostgreSQL parameter name is managed
// by pgward and may not be set by users. The comparison ignores case, as
// PostgreSQL does.
func IsFixedParameter(name string) bool {
	name = strings.ToLower(name)
	if _, ok := fixedParameters[name]; ok {
		return true
	}
	for _, prefix := range fixedParameterPrefixes {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// ValidateParameter checks one postgresql.conf setting a user asked for:
// the name must be a lower-case GUC name that pgward does not manage, and the
// value must be bounded and free of control characters so that it stays on
// its own line when rendered. The error names the parameter and the reason.
//
// Settings whose validity depends on the rest of the Cluster (wal_level,
// wal_log_hints, full_page_writes with replicas) are checked by Validate.
func ValidateParameter(name, value string) error {
	if err := validateParameterName(name); err != nil {
		return err
	}
	if len(value) > MaxParameterValueLength {
		return fmt.Errorf("parameter %q: value is %d bytes long, more than the %d allowed",
			name, len(value), MaxParameterValueLength)
	}
	if err := safetext.Check(value); err != nil {
		return fmt.Errorf("parameter %q: value %w", name, err)
	}
	return checkSettingValue(name, value)
}

// validateParameterName checks the syntax of a parameter name and that
// pgward does not manage it.
func validateParameterName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("parameter name is empty")
	case len(name) > MaxParameterNameLength:
		return fmt.Errorf("parameter name %.32q... is longer than %d bytes", name, MaxParameterNameLength)
	case IsFixedParameter(name):
		return fmt.Errorf("parameter %q is managed by pgward and cannot be set", name)
	case name != strings.ToLower(name) && parameterNameRE.MatchString(strings.ToLower(name)):
		return fmt.Errorf("parameter %q must be written in lower case (%q)", name, strings.ToLower(name))
	case !parameterNameRE.MatchString(name):
		return fmt.Errorf("parameter %q is not a valid name: use lower-case letters, digits and "+
			"underscores, with at most one dot (extension.setting)", name)
	}
	return nil
}
