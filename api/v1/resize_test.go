package v1

import (
	"strings"
	"testing"
)

// TestResizeInUseVolumes: CloudNativePG's resizeInUseVolumes is accepted in
// its three places (it was refused as "does not support yet"), keeps its
// value through loading and validation, and means true when unset.
func TestResizeInUseVolumes(t *testing.T) {
	for _, tc := range []struct {
		name, yaml          string
		data, wal, tbs, tb2 bool
	}{
		{"unset: CloudNativePG's default, true", `  storage: {size: 1Gi}
  walStorage: {size: 1Gi}
  tablespaces: [{name: a, storage: {size: 1Gi}}, {name: b, storage: {size: 1Gi}}]
`, true, true, true, true},
		{"each set", `  storage: {size: 1Gi, resizeInUseVolumes: false}
  walStorage: {size: 1Gi, resizeInUseVolumes: true}
  tablespaces: [{name: a, storage: {size: 1Gi, resizeInUseVolumes: false}}, {name: b, storage: {size: 1Gi}}]
`, false, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadAndValidate([]byte(minimalManifest + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			s := c.Spec
			got := []bool{s.StorageConfiguration.ResizeInUse(), s.WalStorage.ResizeInUse(), s.Tablespaces[0].Storage.ResizeInUse(), s.Tablespaces[1].Storage.ResizeInUse()}
			want := []bool{tc.data, tc.wal, tc.tbs, tc.tb2}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("resizeInUse %v, want %v", got, want)
					break
				}
			}
		})
	}
	// A value of the wrong type is still refused, naming the field.
	_, err := LoadCluster([]byte(minimalManifest + "  walStorage: {size: 1Gi, resizeInUseVolumes: maybe}\n"))
	if err == nil || !strings.Contains(err.Error(), "spec.walStorage.resizeInUseVolumes") {
		t.Errorf("a string for a bool: %v", err)
	}
}
