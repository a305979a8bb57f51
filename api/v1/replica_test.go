package v1

import (
	"strings"
	"testing"
)

const replicaBase = `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rep
spec:
  instances: 2
  externalClusters:
  - name: src
    connectionParameters: {host: src.example.org, user: streaming_replica, dbname: postgres, sslmode: verify-full}
    sslCert: {name: src-replication, key: tls.crt}
    sslKey: {name: src-replication, key: tls.key}
    sslRootCert: {name: src-ca, key: ca.crt}
  - name: other
    connectionParameters: {host: other.example.org, user: streaming_replica, sslmode: verify-full}
    sslRootCert: {name: other-ca, key: ca.crt}
`

// TestReplicaValidation: spec.replica is accepted only when the
// designated primary can follow its source (an existing entry, bootstrapped
// from it, no recovery target), and refused naming the field otherwise.
func TestReplicaValidation(t *testing.T) {
	tests := []struct {
		name, spec string
		replica    bool
		wantErr    string // "" for accepted
	}{
		{"streaming replica", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: src}`, true, ""},
		{"promoted (enabled false)", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: false, source: src}`, false, ""},
		{"distributed topology: primary is another cluster", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {primary: src, source: src}`, true, ""},
		{"distributed topology: primary is self", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {primary: rep, source: src}`, false, ""},
		{"distributed topology: primary is the named self", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {primary: dc-a, self: dc-a, source: src}`, false, ""},
		{"enabled and primary together", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, primary: src, source: src}`, true, "spec.replica.enabled"},
		{"no source", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true}`, true, "spec.replica.source: Required"},
		{"unknown source", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: nope}`, true, "spec.replica.source: Not found"},
		{"bootstrapped from another source", `
  bootstrap: {pg_basebackup: {source: other}}
  replica: {enabled: true, source: src}`, true, "must be the cluster bootstrap.pg_basebackup copies"},
		{"initdb", `
  replica: {enabled: true, source: src}`, true, "spec.bootstrap: Required"},
		{"synchronous replication", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: src}
  minSyncReplicas: 1
  maxSyncReplicas: 1`, true, "synchronous replication"},
		{"promotionToken not supported yet", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: src, promotionToken: abc}`, true, "spec.replica.promotionToken"},
		{"minApplyDelay", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: src, minApplyDelay: 1h}`, true, ""},
		{"negative minApplyDelay", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: src, minApplyDelay: -1s}`, true, "spec.replica.minApplyDelay"},
		{"minApplyDelay beyond PostgreSQL's range", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: src, minApplyDelay: 600h}`, true, "spec.replica.minApplyDelay"},
		{"minApplyDelay not a duration", `
  bootstrap: {pg_basebackup: {source: src}}
  replica: {enabled: true, source: src, minApplyDelay: soon}`, true, "spec.replica.minApplyDelay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadAndValidate([]byte(replicaBase + tt.spec))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.IsReplica() != tt.replica {
					t.Errorf("IsReplica = %v, want %v", c.IsReplica(), tt.replica)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestReplicaUpdate: promotion is one way, and a replica keeps its source.
func TestReplicaUpdate(t *testing.T) {
	load := func(t *testing.T, replica string) *Cluster {
		t.Helper()
		c, err := LoadAndValidate([]byte(replicaBase + "\n  bootstrap: {pg_basebackup: {source: src}}\n  replica: " + replica))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name, old, updated, want string
	}{
		{"promote", `{enabled: true, source: src}`, `{enabled: false, source: src}`, ""},
		{"promote in the distributed topology", `{primary: src, source: src}`, `{primary: rep, source: src}`, ""},
		{"demote", `{enabled: false, source: src}`, `{enabled: true, source: src}`, "demotion is not supported"},
		{"change source", `{enabled: true, source: src}`, `{enabled: true, source: other}`, "spec.replica.source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := load(t, tt.old)
			updated := old.DeepCopy()
			if tt.name == "change source" {
				updated.Spec.Replica.Source = "other"
			} else {
				updated = load(t, tt.updated)
			}
			errs := ValidateUpdate(old, updated)
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				return
			}
			if agg := errs.ToAggregate(); agg == nil || !strings.Contains(agg.Error(), tt.want) {
				t.Fatalf("errors %v, want one containing %q", errs, tt.want)
			}
		})
	}
}
