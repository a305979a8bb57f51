package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginValidate: `kubectl pgward validate -f` is `pgward validate -f`:
// the same summary for a valid file, the same refusal naming the field
// for an invalid one, and no kubeconfig needed (it makes no API call:
// KUBECONFIG names a file that does not exist).
func TestPluginValidate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-such-kubeconfig"))
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(validCluster), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(validCluster, "instances: 2", "instances: 0", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(argv0 string, args ...string) (string, error) {
		cmd := NewRootCmdFor(argv0)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		if err != nil {
			out.WriteString(err.Error())
		}
		return out.String(), err
	}
	for _, f := range []string{good, bad} {
		plugin, perr := run("/usr/local/bin/"+PluginName, "validate", "-f", f)
		main, merr := run("/usr/local/bin/pgward", "validate", "-f", f)
		if (perr == nil) != (merr == nil) || plugin != main {
			t.Errorf("%s: the plugin says %q (%v), pgward %q (%v)", filepath.Base(f), plugin, perr, main, merr)
		}
	}
	if out, err := run("/usr/local/bin/"+PluginName, "validate", "-f", good); err != nil || !strings.Contains(out, `Cluster "shop" is valid`) {
		t.Errorf("valid file: %v %s", err, out)
	}
	if out, err := run("/usr/local/bin/"+PluginName, "validate", "-f", bad); err == nil || !strings.Contains(out, "spec.instances") {
		t.Errorf("invalid file: %v %s", err, out)
	}
}
