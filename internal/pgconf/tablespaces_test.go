package pgconf

import (
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestTempTablespaces: the temporary tablespaces make temp_tablespaces,
// in the enforced section; a user's own value is refused beside them and
// kept without them; a name that is not an identifier never reaches the
// file.
func TestTempTablespaces(t *testing.T) {
	c := sampleCluster()
	c.Spec.Tablespaces = []v1.TablespaceConfiguration{{Name: "fast"}, {Name: "a", Temporary: true}, {Name: "b", Temporary: true}}
	out, err := RenderPostgresConf(c, primaryInstance())
	if err != nil {
		t.Fatal(err)
	}
	enforced := string(out[strings.Index(string(out), "# Enforced by pgward"):])
	if !strings.Contains(enforced, "temp_tablespaces = 'a,b'\n") {
		t.Errorf("temp_tablespaces not enforced:\n%s", out)
	}
	c.Spec.PostgresConfiguration.Parameters = map[string]string{"temp_tablespaces": "fast"}
	if _, err := RenderPostgresConf(c, primaryInstance()); err == nil || !strings.Contains(err.Error(), `parameters["temp_tablespaces"]`) {
		t.Errorf("a user's temp_tablespaces beside temporary ones: %v", err)
	}
	c.Spec.Tablespaces = []v1.TablespaceConfiguration{{Name: "fast"}}
	out, err = RenderPostgresConf(c, primaryInstance())
	if err != nil || !strings.Contains(string(out), "temp_tablespaces = 'fast'\n") || strings.Count(string(out), "temp_tablespaces") != 1 {
		t.Errorf("a user's temp_tablespaces without temporary ones: %v\n%s", err, out)
	}
	c.Spec.PostgresConfiguration.Parameters = nil
	c.Spec.Tablespaces = []v1.TablespaceConfiguration{{Name: "x', listen_addresses = '*", Temporary: true}}
	if _, err := RenderPostgresConf(c, primaryInstance()); err == nil || !strings.Contains(err.Error(), "spec.tablespaces") {
		t.Errorf("a name that is not an identifier: %v", err)
	}
}
