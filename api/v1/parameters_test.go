package v1

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pgward/pgward/internal/safetext"
)

func TestIsFixedParameter(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"port", true},
		{"PORT", true},
		{"Listen_Addresses", true},
		{"archive_command", true},
		{"archive_library", true},
		{"shared_preload_libraries", true},
		{"ssl_min_protocol_version", true},
		{"ssl_key_file", true},
		{"password_encryption", true},
		{"recovery_target_time", true},
		{"recovery_min_apply_delay", true},
		{"unix_socket_directories", true},
		{"unix_socket_anything_new", true},
		{"include_dir", true},
		{"log_filename", true},
		{"primary_conninfo", true},
		{"max_connections", false},
		{"shared_buffers", false},
		{"wal_level", false}, // depends on instances: checked by Validate
		{"ssl_ciphers", true},
		{"ssl_ecdh_curve", true},
		{"data_sync_retry", true},
		{"zero_damaged_pages", true},
		{"bonjour", true},
		{"plperl.on_init", true},
		{"pltcl.start_proc", true},
		{"log_rotation_age", true},
		{"pg_stat_statements.max", false},
		{"recovery", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsFixedParameter(tt.name); got != tt.want {
			t.Errorf("IsFixedParameter(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidateParameter(t *testing.T) {
	tests := []struct {
		name, value string
		wantErr     string // substring; "" means valid
	}{
		{"max_connections", "100", ""},
		{"shared_buffers", "128MB", ""},
		{"search_path", `"$user", public`, ""},
		{"application_name", "", ""},
		{"log_line_prefix", "%m [%p] 'quoted' \\ back", ""},
		{"pg_trgm.similarity_threshold", "0.5", ""},
		{"plpgsql.variable_conflict", "use_column", ""},
		{"pg_stat_statements.track", "all", ""}, // whether it is loaded: CheckModuleParameter
		{"application_name", "héllo wörld", ""},
		{"search_path", strings.Repeat("9", MaxParameterValueLength), ""},

		// Names and values PostgreSQL 15 refuses (the whole class is
		// checked against the server in test/e2e).
		{"_private", "x", `PostgreSQL 15 has no parameter "_private"`},
		{"max_connection", "100", `no parameter "max_connection" (did you mean "max_connections"?)`},
		{"statement_timeout", "héllo wörld", `parameter "statement_timeout" requires a numeric value`},
		{"work_mem", strings.Repeat("9", MaxParameterValueLength), "requires a numeric value"},
		{"work_mem", "4XB", `valid units are "B", "kB", "MB", "GB" and "TB"`},
		{"work_mem", "4mb", "valid units are"},
		{"statement_timeout", "5MB", `valid units are "us", "ms", "s", "min", "h" and "d"`},
		{"max_connections", "10kB", "this parameter takes no unit"},
		{"shared_buffers", "1", "outside the valid range (16 .. 1073741823 8kB)"},
		{"shared_buffers", "64kB", "outside the valid range"},
		{"vacuum_cost_delay", "2s", "outside the valid range (0 .. 100 ms)"},
		{"enable_seqscan", "o", `parameter "enable_seqscan" requires a Boolean value`},
		{"synchronous_commit", "maybe", "must be one of local, remote_write, remote_apply, on, off"},
		{"work_mem", "0x", "invalid unit"},
		{"work_mem", "08", "valid units are"},
		{"wal_segment_size", "1GB", `parameter "wal_segment_size" is read-only`},
		// Spellings PostgreSQL accepts.
		{"shared_buffers", " 1.5GB ", ""},
		{"work_mem", "0x100", ""},
		{"work_mem", "1e3", ""},
		{"work_mem", "64 kB", ""},
		{"statement_timeout", "1.5min", ""},
		{"enable_seqscan", "TR", ""},
		{"enable_seqscan", "of", ""},
		{"synchronous_commit", "True", ""},
		{"huge_pages", "TRY", ""},
		{"DateStyle", "iso, mdy", `must be written in lower case ("datestyle")`},
		{"datestyle", "iso, mdy", ""},
		{"seq_page_cost", "1.5", ""},
		{"seq_page_cost", "-1", "outside the valid range"},

		{"port", "5433", `parameter "port" is managed by pgward and cannot be set`},
		{"Port", "5433", `parameter "Port" is managed by pgward and cannot be set`},
		{"ssl_min_protocol_version", "TLSv1.2", "managed by pgward"},
		{"recovery_target_lsn", "0/0", "managed by pgward"},
		{"Max_Connections", "1", `parameter "Max_Connections" must be written in lower case ("max_connections")`},
		{"", "1", "parameter name is empty"},
		{"1abc", "1", `parameter "1abc" is not a valid name`},
		{"a.b.c", "1", "is not a valid name"},
		{"a-b", "1", "is not a valid name"},
		{"a b", "1", "is not a valid name"},
		{"a\nb", "1", `parameter "a\nb" is not a valid name`},
		{"max_conn\u00e9ctions", "1", "is not a valid name"},
		{strings.Repeat("a", MaxParameterNameLength+1), "1", "is longer than 128 bytes"},
		{"work_mem", strings.Repeat("9", MaxParameterValueLength+1), "more than the 4096 allowed"},
		{"work_mem", "4MB\narchive_command = 'sh'", `parameter "work_mem": value contains the control or invisible character U+000A at byte 3`},
		{"work_mem", "4MB\r", "U+000D"},
		{"work_mem", "4\x00MB", "U+0000"},
		{"work_mem", "4\tMB", "U+0009"},
		{"work_mem", "4\x7fMB", "U+007F"},
		{"work_mem", "4\u0085MB", "U+0085"},
		{"work_mem", "4\u2028MB", "U+2028"},
		{"work_mem", "4\u202eMB", "U+202E"},
		{"work_mem", "4\xffMB", "is not valid UTF-8"},
	}
	for _, tt := range tests {
		err := ValidateParameter(tt.name, tt.value)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateParameter(%q, %q) = %v, want nil", tt.name, tt.value, err)
		case tt.wantErr != "" && err == nil:
			t.Errorf("ValidateParameter(%q, %q) = nil, want error containing %q", tt.name, tt.value, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("ValidateParameter(%q, %q) = %q, want it to contain %q", tt.name, tt.value, err, tt.wantErr)
		}
	}
}

// FuzzValidateParameter checks that an accepted parameter can always be
// rendered on a single postgresql.conf line.
func FuzzValidateParameter(f *testing.F) {
	f.Add("max_connections", "100")
	f.Add("work_mem", "4MB\n")
	f.Add("PORT", "1")
	f.Add("ext.setting", "a\u2028b")
	f.Fuzz(func(t *testing.T, name, value string) {
		if ValidateParameter(name, value) != nil {
			return
		}
		if err := safetext.Check(value); err != nil {
			t.Fatalf("accepted value %q %v", value, err)
		}
		for _, r := range value {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("accepted value %q holds control character %U", value, r)
			}
		}
		if !parameterNameRE.MatchString(name) || IsFixedParameter(name) || len(value) > MaxParameterValueLength {
			t.Fatalf("accepted parameter %q = %q", name, value)
		}
	})
}

// mustBeFixed is the whole list of parameters pgward renders itself, kept
// here on its own so that dropping one from parameters.go fails this test:
// each points PostgreSQL at files, programs, sockets or code, or belongs to
// pgward's replication, TLS, authentication or logging design.
var mustBeFixed = []string{
	// Files and places.
	"config_file", "data_directory", "external_pid_file", "hba_file", "ident_file",
	"include", "include_dir", "include_if_exists", "listen_addresses", "port", "krb_server_keyfile",
	"log_destination", "log_directory", "log_filename", "log_file_mode", "logging_collector",
	"log_rotation_age", "log_rotation_size", "log_truncate_on_rotation",
	"syslog_facility", "syslog_ident", "syslog_sequence_numbers", "syslog_split_messages", "event_source",
	// Programs and code.
	"archive_cleanup_command", "archive_command", "archive_library", "dynamic_library_path", "jit_provider",
	"local_preload_libraries", "restore_command", "session_preload_libraries", "shared_preload_libraries", "output_plugin_libraries",
	"ssl_passphrase_command", "plperl.on_init", "plperl.on_plperl_init", "plperl.on_plperlu_init",
	"pltcl.start_proc", "pltclu.start_proc",
	// Replication and high availability.
	"archive_mode", "cluster_name", "hot_standby", "primary_conninfo", "primary_slot_name",
	"promote_trigger_file", "restart_after_crash", "synchronous_standby_names",
	// TLS and authentication.
	"ssl", "ssl_ca_file", "ssl_cert_file", "ssl_crl_dir", "ssl_crl_file", "ssl_dh_params_file", "ssl_key_file",
	"ssl_max_protocol_version", "ssl_min_protocol_version", "ssl_passphrase_command_supports_reload",
	"password_encryption",
	// Integrity and exposure.
	"allow_alter_system", "allow_system_table_mods", "data_sync_retry", "zero_damaged_pages", "bonjour", "bonjour_name",
}

// mustBeFixedFamilies are prefixes fixed as a whole.
var mustBeFixedFamilies = []string{"recovery_", "unix_socket_", "ssl_"}

func TestCheckModuleParameter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		preloaded []string
		want      string
	}{
		{"work_mem", nil, ""},
		{"plpgsql.variable_conflict", nil, ""},
		{"pg_trgm.similarity_threshold", nil, ""},
		{"pg_stat_statements.track", []string{"pg_stat_statements"}, ""},
		{"pg_stat_statements.track", nil, "which is not loaded: add it to spec.postgresql.shared_preload_libraries"},
		{"auto_explain.log_min_duration", []string{"pg_stat_statements"}, "which is not loaded"},
		{"pgaudit.log", nil, "which pgward does not load (shared_preload_libraries takes pg_stat_statements, auto_explain): it would have no effect"},
	} {
		err := CheckModuleParameter(tc.name, tc.preloaded)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckModuleParameter(%q, %v) = %v, want %q", tc.name, tc.preloaded, err, tc.want)
		}
	}
}

func TestEveryFixedParameterIsRefused(t *testing.T) {
	for _, name := range mustBeFixed {
		if !IsFixedParameter(name) {
			t.Errorf("%s is no longer fixed", name)
		}
		if err := ValidateParameter(name, "x"); err == nil || !strings.Contains(err.Error(), "managed by pgward") {
			t.Errorf("ValidateParameter(%q) = %v, want it refused as managed by pgward", name, err)
		}
	}
	for _, prefix := range mustBeFixedFamilies {
		if !IsFixedParameter(prefix + "anything_new") {
			t.Errorf("the %s* family is no longer fixed", prefix)
		}
	}
	// And the other way round: every fixed name is listed above (so that
	// this list stays the whole truth), and is a real parameter (a typo
	// would fix nothing).
	for name := range fixedParameters {
		if !slices.Contains(mustBeFixed, name) {
			t.Errorf("%s is fixed in parameters.go but missing from mustBeFixed", name)
		}
		_, known := settings[name]
		if !known && !strings.Contains(name, ".") && !slices.Contains([]string{"include", "include_dir", "include_if_exists", "allow_alter_system", "event_source"}, name) {
			t.Errorf("%s is fixed but PostgreSQL 15 has no such parameter", name)
		}
	}
	// Every PostgreSQL parameter that names a file, a directory or a
	// program must be fixed, whatever its name.
	for name, s := range settings {
		if s.vartype != "string" || s.context == "internal" {
			continue
		}
		for _, hint := range []string{"_file", "_dir", "_directory", "_command", "_library", "_libraries", "_path", "_prefix"} {
			if strings.HasSuffix(name, hint) && !IsFixedParameter(name) && !pathLikeAllowed[name] {
				t.Errorf("%s looks like a file, program or code setting and is not fixed", name)
			}
		}
	}
}

// pathLikeAllowed are parameters whose names look like files or code but
// are neither: each is harmless for a user to set.
var pathLikeAllowed = map[string]bool{
	"search_path":          true, // schemas, not files
	"log_line_prefix":      true, // a format string
	"stats_temp_directory": true, // ignored since PostgreSQL 15
}

// FuzzSettingValue drives the PostgreSQL value parser (numbers, units,
// Booleans, enums) with arbitrary values for real parameters: it must not
// panic, must be deterministic, must never echo the value in its error,
// and must accept a number only if it is within the parameter's bounds
// once converted (re-checked here from the table by another route).
func FuzzSettingValue(f *testing.F) {
	for _, seed := range [][2]string{
		{"work_mem", "4MB"}, {"work_mem", "0x10zz9secret"}, {"shared_buffers", " 1.5GB "}, {"statement_timeout", "1.5min"},
		{"enable_seqscan", "tr"}, {"synchronous_commit", "True"}, {"vacuum_cost_delay", "2e1ms"}, {"max_connections", "010"},
		{"seq_page_cost", "-0.5"}, {"work_mem", "1e400"}, {"work_mem", "-"}, {"work_mem", "9223372036854775808"},
		{"work_mem", "010000000000"}, {"work_mem", "-010"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		s, ok := settings[name]
		if !ok || s.context == "internal" {
			return
		}
		err := checkSettingValue(name, value)
		if again := checkSettingValue(name, value); (err == nil) != (again == nil) {
			t.Fatalf("%s = %q: not deterministic", name, value)
		}
		if err != nil && len(value) >= 4 && strings.Contains(err.Error(), value) && !strings.Contains(s.name+strings.Join(s.enumvals, ", "), value) {
			t.Fatalf("%s = %q: the error echoes the value: %v", name, value, err)
		}
		if err != nil || (s.vartype != "integer" && s.vartype != "real") {
			return
		}
		// An accepted plain decimal number without a unit must lie within
		// the bounds as written (a leading 0 makes an integer octal, as
		// C's strtol reads it: not decimal).
		trimmed := strings.TrimLeft(strings.TrimSpace(value), "+-")
		octal := s.vartype == "integer" && len(trimmed) > 1 && trimmed[0] == '0' && trimmed[1] >= '0' && trimmed[1] <= '9'
		if v, perr := strconv.ParseFloat(strings.TrimSpace(value), 64); perr == nil && !strings.ContainsAny(value, "xX") && !octal {
			if s.vartype == "integer" {
				v = math.RoundToEven(v)
			}
			if v < s.min || v > s.max {
				t.Fatalf("%s = %q accepted outside %v..%v", name, value, s.min, s.max)
			}
		}
	})
}
