package v1

import (
	"strings"
	"testing"
)

const tablespacesBase = `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: tbs
spec:
  instances: 2
`

// TestTablespacesValidation: every class of tablespace declaration that
// is refused, named by its field, and the accepted shapes.
func TestTablespacesValidation(t *testing.T) {
	long := strings.Repeat("a", 60)
	tests := []struct {
		name, spec, want string
	}{
		{"normal and temporary", "  tablespaces:\n  - {name: fast, owner: {name: app}, storage: {size: 1Gi, storageClass: standard}}\n  - {name: scratch, temporary: true}\n", ""},
		{"CloudNativePG names", "  tablespaces:\n  - {name: another_tablespace}\n  - {name: tablespacea1}\n", ""},
		{"owner a managed role", "  managed: {roles: [{name: dba}]}\n  tablespaces:\n  - {name: fast, owner: {name: dba}}\n", ""},
		{"owner postgres", "  tablespaces:\n  - {name: fast, owner: {name: postgres}}\n", ""},
		{"user temp_tablespaces without temporary ones", "  postgresql: {parameters: {temp_tablespaces: fast}}\n  tablespaces:\n  - {name: fast}\n", ""},
		{"missing name", "  tablespaces:\n  - {temporary: true}\n", "spec.tablespaces[0].name: Required"},
		{"pg_ prefix", "  tablespaces:\n  - {name: pg_fast}\n", "spec.tablespaces[0].name: Invalid value: \"pg_fast\": names starting with pg_"},
		{"pg_default", "  tablespaces:\n  - {name: pg_default}\n", "spec.tablespaces[0].name"},
		{"upper case", "  tablespaces:\n  - {name: Fast}\n", "spec.tablespaces[0].name: Invalid value"},
		{"quote", "  tablespaces:\n  - {name: \"a'b\"}\n", "spec.tablespaces[0].name: Invalid value"},
		{"path", "  tablespaces:\n  - {name: ../x}\n", "spec.tablespaces[0].name: Invalid value"},
		{"dash", "  tablespaces:\n  - {name: a-b}\n", "spec.tablespaces[0].name: Invalid value"},
		{"leading underscore", "  tablespaces:\n  - {name: _a}\n", "spec.tablespaces[0].name: Invalid value"},
		{"trailing underscore", "  tablespaces:\n  - {name: a_}\n", "spec.tablespaces[0].name: Invalid value"},
		{"too long", "  tablespaces:\n  - {name: " + long + "}\n", "spec.tablespaces[0].name: Too long"},
		{"duplicate", "  tablespaces:\n  - {name: a}\n  - {name: a}\n", "spec.tablespaces[1].name: Duplicate value"},
		{"owner syntax", "  tablespaces:\n  - {name: a, owner: {name: \"Bob; DROP\"}}\n", "spec.tablespaces[0].owner.name: Invalid value"},
		{"owner pg_ role", "  tablespaces:\n  - {name: a, owner: {name: pg_monitor}}\n", "spec.tablespaces[0].owner.name: Invalid value: \"pg_monitor\""},
		{"owner replication role", "  tablespaces:\n  - {name: a, owner: {name: streaming_replica}}\n", "spec.tablespaces[0].owner.name"},
		{"owner declared absent", "  managed: {roles: [{name: gone, ensure: absent}]}\n  tablespaces:\n  - {name: a, owner: {name: gone}}\n", "declares this role absent"},
		{"bad size", "  tablespaces:\n  - {name: a, storage: {size: lots}}\n", "spec.tablespaces[0].storage.size: Invalid value"},
		{"zero size", "  tablespaces:\n  - {name: a, storage: {size: \"0\"}}\n", "spec.tablespaces[0].storage.size"},
		{"bad storage class", "  tablespaces:\n  - {name: a, storage: {storageClass: \"Not_A_Class\"}}\n", "spec.tablespaces[0].storage.storageClass"},
		{"temp_tablespaces is pgward's", "  postgresql: {parameters: {temp_tablespaces: other}}\n  tablespaces:\n  - {name: a, temporary: true}\n", "spec.postgresql.parameters[temp_tablespaces]: Forbidden"},
		{"with backup", "  backup: {barmanObjectStore: {destinationPath: \"s3://b/p\", s3Credentials: {accessKeyId: {name: s, key: k}, secretAccessKey: {name: s, key: s}}}}\n  tablespaces:\n  - {name: a}\n", "tablespaces with spec.backup are not supported yet"},
		{"pvcTemplate", "  tablespaces:\n  - {name: a, storage: {pvcTemplate: {}}}\n", "spec.tablespaces[0].storage.pvcTemplate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadAndValidate([]byte(tablespacesBase + tt.spec))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	many := tablespacesBase + "  tablespaces:\n"
	for i := range MaxTablespaces + 1 {
		many += "  - {name: t" + strings.Repeat("x", i) + "}\n"
	}
	if _, err := LoadAndValidate([]byte(many)); err == nil || !strings.Contains(err.Error(), "spec.tablespaces: Too many") {
		t.Errorf("33 tablespaces: %v", err)
	}
}

// TestTablespacesUpdate: what cannot apply to a running cluster is refused
// (removal, renaming, shrinking); adding one, growing, changing the owner
// or temporary are not.
func TestTablespacesUpdate(t *testing.T) {
	load := func(t *testing.T, spec string) *Cluster {
		t.Helper()
		c, err := LoadAndValidate([]byte(tablespacesBase + "  tablespaces:\n" + spec))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := "  - {name: a, storage: {size: 2Gi}}\n  - {name: b}\n"
	tests := []struct{ name, updated, want string }{
		{"unchanged", base, ""},
		{"added", base + "  - {name: c}\n", ""},
		{"grown", "  - {name: a, storage: {size: 3Gi}}\n  - {name: b}\n", ""},
		{"owner and temporary", "  - {name: a, storage: {size: 2Gi}, owner: {name: app}, temporary: true}\n  - {name: b}\n", ""},
		{"reordered", "  - {name: b}\n  - {name: a, storage: {size: 2Gi}}\n", ""},
		{"removed", "  - {name: a, storage: {size: 2Gi}}\n", `spec.tablespaces[1]: Forbidden: tablespace "b" cannot be removed`},
		{"renamed", "  - {name: a, storage: {size: 2Gi}}\n  - {name: c}\n", `tablespace "b" cannot be removed or renamed`},
		{"shrunk", "  - {name: a, storage: {size: 1Gi}}\n  - {name: b}\n", "spec.tablespaces[0].storage.size: Forbidden: cannot shrink"},
		{"size removed", "  - {name: a}\n  - {name: b}\n", "spec.tablespaces[0].storage.size: Forbidden: cannot be removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateUpdate(load(t, base), load(t, tt.updated))
			agg := errs.ToAggregate()
			switch {
			case tt.want == "" && agg != nil:
				t.Fatalf("refused: %v", agg)
			case tt.want != "" && (agg == nil || !strings.Contains(agg.Error(), tt.want)):
				t.Fatalf("errors %v, want one containing %q", agg, tt.want)
			}
		})
	}
	old := load(t, base)
	noTbs, err := LoadAndValidate([]byte(tablespacesBase))
	if err != nil {
		t.Fatal(err)
	}
	if errs := ValidateUpdate(old, noTbs); len(errs) != 2 {
		t.Errorf("removing every tablespace: %v", errs)
	}
}
