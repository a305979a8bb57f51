package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCloudNativePGSamples runs CloudNativePG's own Cluster samples,
// unmodified, through `pgward validate`: none may be refused as an
// "unknown field" (a field CloudNativePG has is either implemented or
// named as not supported yet), and every sample pgward accepts today must
// stay accepted. The samples live outside the repository
// (../shared/cnpg-samples, or PGWARD_CNPG_SAMPLES).
func TestCloudNativePGSamples(t *testing.T) {
	dir := os.Getenv("PGWARD_CNPG_SAMPLES")
	if dir == "" {
		dir = filepath.Join(repoRoot, "..", "shared", "cnpg-samples")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Skipf("no CloudNativePG samples in %s (set PGWARD_CNPG_SAMPLES)", dir)
	}
	accepted := 0
	for _, f := range files {
		out, err := pgward(context.Background(), "validate", "-f", f)
		if err == nil {
			accepted++
			continue
		}
		if strings.Contains(out, "unknown field") {
			t.Errorf("%s: refused with an unknown field:\n%s", filepath.Base(f), out)
		}
	}
	t.Logf("%d of %d CloudNativePG samples accepted", accepted, len(files))
	// Today's floor (docs/compatibility.md): it may only rise.
	if accepted < 33 {
		t.Errorf("only %d samples accepted, fewer than before", accepted)
	}
}
