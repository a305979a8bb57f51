package local

import (
	"os"
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestLiveChangeOfTimings: on a running cluster the instance managers
// take stopDelay, smartShutdownTimeout and logLevel from the rewritten
// manifest, but switchoverDelay is the running planner's too, which reads
// its spec at start: a change of it is refused with how to apply it.
func TestLiveChangeOfTimings(t *testing.T) {
	const base = "apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  instances: 2\n  switchoverDelay: 60\n"
	l := Layout{Dir: t.TempDir()}
	if err := os.WriteFile(l.ClusterFile(), []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, extra string
		refused     bool
	}{
		{"stopDelay and smartShutdownTimeout", "  stopDelay: 300\n  smartShutdownTimeout: 60\n", false},
		{"logLevel", "  logLevel: debug\n", false},
		{"switchoverDelay", "  switchoverDelay: 120\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := base + tc.extra
			if tc.refused {
				doc = strings.Replace(base, "  switchoverDelay: 60\n", tc.extra, 1)
			}
			next, err := v1.LoadAndValidate([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			err = checkLiveChange(l, next)
			if tc.refused != (err != nil) || (err != nil && !strings.Contains(err.Error(), "switchoverDelay cannot change while the cluster runs")) {
				t.Errorf("refused %v: %v", tc.refused, err)
			}
		})
	}
}
