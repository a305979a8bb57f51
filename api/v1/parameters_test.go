package v1

import (
	"strings"
	"testing"
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
		{"pg_stat_statements.track", "all", ""},
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
		if err := checkText(value); err != nil {
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
