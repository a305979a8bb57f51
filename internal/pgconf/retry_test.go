package pgconf

import (
	"strings"
	"testing"
)

// TestStreamingRetryInterval: a standby streaming from its cluster's
// primary retries every StreamingRetryInterval; a primary and a standby
// that restores from an archive keep the general 1 s; the user's own value
// wins over both (it is a default, not an enforced setting).
func TestStreamingRetryInterval(t *testing.T) {
	standby := primaryInstance()
	standby.PrimaryConnInfo = "host=demo-rw port=5432 user=streaming_replica"
	archive := standby
	archive.RestoreCommand = "pgward backup restore-wal %f %p"
	for _, tc := range []struct {
		name string
		in   Instance
		user string
		want string
	}{
		{"primary", primaryInstance(), "", "1s"},
		{"streaming standby", standby, "", StreamingRetryInterval},
		{"standby with a restore_command", archive, "", "1s"},
		{"user's value on a streaming standby", standby, "3s", "3s"},
	} {
		c := sampleCluster()
		if tc.user != "" {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"wal_retrieve_retry_interval": tc.user}
		}
		out, err := RenderPostgresConf(c, tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// The last line wins in postgresql.conf.
		got := ""
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "wal_retrieve_retry_interval = "); ok {
				got = strings.Trim(v, "'")
			}
		}
		if got != tc.want {
			t.Errorf("%s: wal_retrieve_retry_interval %q, want %q", tc.name, got, tc.want)
		}
	}
}
