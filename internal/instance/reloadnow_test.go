package instance

import (
	"strings"
	"testing"

	"github.com/pgward/pgward/internal/instanceapi"
)

// TestCheckReloadRequest: what a reload request carries is echoed in the
// status and logged, so it is short printable text; the digest is hex.
func TestCheckReloadRequest(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		req  instanceapi.ReloadRequest
		bad  string
	}{
		{"ok", instanceapi.ReloadRequest{ID: "local-1700000000", ManifestSHA256: hex64}, ""},
		{"ok without digest", instanceapi.ReloadRequest{ID: "2026-12-06T18:00:00Z"}, ""},
		{"empty id", instanceapi.ReloadRequest{}, "id:"},
		{"long id", instanceapi.ReloadRequest{ID: strings.Repeat("x", 65)}, "id:"},
		{"newline in id", instanceapi.ReloadRequest{ID: "a\nlevel=ERROR"}, "id:"},
		{"space in id", instanceapi.ReloadRequest{ID: "a b"}, "id:"},
		{"non-ASCII id", instanceapi.ReloadRequest{ID: "ré"}, "id:"},
		{"short digest", instanceapi.ReloadRequest{ID: "a", ManifestSHA256: "abcd"}, "manifestSHA256"},
		{"non-hex digest", instanceapi.ReloadRequest{ID: "a", ManifestSHA256: strings.Repeat("zz", 32)}, "manifestSHA256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkReloadRequest(tc.req)
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("error %v, want one about %s", err, tc.bad)
			}
		})
	}
}
