package v1

import (
	"strings"
	"testing"
)

func snapRef(name string) TypedLocalObjectReference {
	g := VolumeSnapshotGroup
	return TypedLocalObjectReference{APIGroup: &g, Kind: VolumeSnapshotKind, Name: name}
}

func TestValidateVolumeSnapshotBackup(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name   string
		mutate func(c *Cluster)
		want   string // "" valid; else a substring of the error
	}{
		{"class only", func(*Cluster) {}, ""},
		{"everything", func(c *Cluster) {
			c.Spec.WalStorage = &StorageConfiguration{Size: "1Gi"}
			vs := c.Spec.Backup.VolumeSnapshot
			vs.WalClassName = "wal-class"
			vs.Labels, vs.Annotations = map[string]string{"team": "db", "example.com/tier": "gold"}, map[string]string{"note": "free text, spaces & all"}
			vs.SnapshotOwnerReference, vs.Online = SnapshotOwnerCluster, &no
		}, ""},
		// Tablespaces with backups stay refused (tablespaces.go), so
		// tablespaceClassName has nothing to name yet.
		{"tablespaces", func(c *Cluster) {
			c.Spec.Tablespaces = []TablespaceConfiguration{{Name: "idx", Storage: StorageConfiguration{Size: "1Gi"}}}
			c.Spec.Backup.VolumeSnapshot.TablespaceClassName = map[string]string{"idx": "fast"}
		}, "tablespaces with spec.backup are not supported yet"},
		{"no object store needed", func(c *Cluster) { c.Spec.Backup.BarmanObjectStore = nil }, ""},
		{"online", func(c *Cluster) { c.Spec.Backup.VolumeSnapshot.Online = &yes }, "spec.backup.volumeSnapshot.online: Forbidden: pgward takes cold volume snapshots only"},
		{"class not a name", func(c *Cluster) { c.Spec.Backup.VolumeSnapshot.ClassName = "Fast Class" }, "spec.backup.volumeSnapshot.className"},
		{"wal class without a WAL volume", func(c *Cluster) { c.Spec.Backup.VolumeSnapshot.WalClassName = "w" }, "spec.backup.volumeSnapshot.walClassName: Forbidden"},
		{"tablespace class of no tablespace", func(c *Cluster) {
			c.Spec.Backup.VolumeSnapshot.TablespaceClassName = map[string]string{"nope": "c"}
		}, "spec.backup.volumeSnapshot.tablespaceClassName[nope]: Not found"},
		{"pgward's label", func(c *Cluster) {
			c.Spec.Backup.VolumeSnapshot.Labels = map[string]string{"pgward.io/backup": "other"}
		}, "spec.backup.volumeSnapshot.labels[pgward.io/backup]: Forbidden"},
		{"a sub-domain of pgward's", func(c *Cluster) {
			c.Spec.Backup.VolumeSnapshot.Annotations = map[string]string{"x.cnpg.io/role": "a"}
		}, "spec.backup.volumeSnapshot.annotations[x.cnpg.io/role]: Forbidden"},
		{"label key", func(c *Cluster) { c.Spec.Backup.VolumeSnapshot.Labels = map[string]string{"a b": "c"} }, "spec.backup.volumeSnapshot.labels[a b]: Invalid"},
		{"label value", func(c *Cluster) { c.Spec.Backup.VolumeSnapshot.Labels = map[string]string{"a": "b\nc"} }, "spec.backup.volumeSnapshot.labels[a]: Invalid"},
		{"owner", func(c *Cluster) { c.Spec.Backup.VolumeSnapshot.SnapshotOwnerReference = "namespace" }, "snapshotOwnerReference: Unsupported value"},
		{"nothing to back up to", func(c *Cluster) {
			c.Spec.Backup.VolumeSnapshot, c.Spec.Backup.BarmanObjectStore = nil, nil
		}, "spec.backup.barmanObjectStore: Required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := backupCluster(func(c *Cluster) {
				c.Spec.Backup.VolumeSnapshot = &VolumeSnapshotConfiguration{ClassName: "csi-hostpath-snapclass"}
				tc.mutate(c)
			})
			err := c.Validate().ToAggregate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateRecoveryFromVolumeSnapshots(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(c *Cluster)
		want   string
	}{
		{"data only", func(*Cluster) {}, ""},
		{"data and WAL", func(c *Cluster) {
			c.Spec.WalStorage = &StorageConfiguration{Size: "1Gi"}
			w := snapRef("data-wal")
			c.Spec.Bootstrap.Recovery.VolumeSnapshots.WalStorage = &w
		}, ""},
		// Tablespaces with a recovery stay refused (tablespaces.go).
		{"a tablespace", func(c *Cluster) {
			c.Spec.Tablespaces = []TablespaceConfiguration{{Name: "idx", Storage: StorageConfiguration{Size: "1Gi"}}}
			c.Spec.Bootstrap.Recovery.VolumeSnapshots.TablespaceStorage = map[string]TypedLocalObjectReference{"idx": snapRef("data-tbs-idx")}
		}, "tablespaces with bootstrap.recovery are not supported yet"},
		{"CloudNativePG's snapshot names", func(c *Cluster) {
			c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.Name = "snapshot-0bc6095db42768c7a1fe897494a966f541ef5fb29b2eb8e9399d80bd0a32408a-2023-11-13-7.41.53"
		}, ""},
		{"a claim, not a snapshot", func(c *Cluster) { c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.Kind = "PersistentVolumeClaim" },
			`spec.bootstrap.recovery.volumeSnapshots.storage.kind: Unsupported value: "PersistentVolumeClaim"`},
		{"core group", func(c *Cluster) { c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.APIGroup = nil },
			"spec.bootstrap.recovery.volumeSnapshots.storage.apiGroup: Unsupported value"},
		{"another group", func(c *Cluster) {
			g := "snapshot.storage.k8s.io.evil.example"
			c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.APIGroup = &g
		}, "spec.bootstrap.recovery.volumeSnapshots.storage.apiGroup: Unsupported value"},
		{"no name", func(c *Cluster) { c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.Name = "" }, "storage.name: Required"},
		{"path in the name", func(c *Cluster) { c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.Name = "../other" }, "storage.name: Invalid"},
		{"WAL snapshot without a WAL volume", func(c *Cluster) {
			w := snapRef("w")
			c.Spec.Bootstrap.Recovery.VolumeSnapshots.WalStorage = &w
		}, "volumeSnapshots.walStorage: Forbidden"},
		{"bad WAL snapshot", func(c *Cluster) {
			c.Spec.WalStorage = &StorageConfiguration{Size: "1Gi"}
			w := snapRef("w")
			w.Kind = "VolumeSnapshotContent"
			c.Spec.Bootstrap.Recovery.VolumeSnapshots.WalStorage = &w
		}, "volumeSnapshots.walStorage.kind: Unsupported value"},
		{"tablespace without its snapshot", func(c *Cluster) {
			c.Spec.Tablespaces = []TablespaceConfiguration{{Name: "idx", Storage: StorageConfiguration{Size: "1Gi"}}}
		}, "volumeSnapshots.tablespaceStorage[idx]: Required"},
		{"snapshot of no tablespace", func(c *Cluster) {
			c.Spec.Bootstrap.Recovery.VolumeSnapshots.TablespaceStorage = map[string]TypedLocalObjectReference{"gone": snapRef("t")}
		}, "volumeSnapshots.tablespaceStorage[gone]: Not found"},
		{"with a source", func(c *Cluster) {
			withRecovery(c, nil)
			c.Spec.Bootstrap.Recovery.VolumeSnapshots = &DataSource{Storage: snapRef("data")}
		}, "spec.bootstrap.recovery.source: Forbidden: pgward does not support yet replaying WAL from an object store"},
		{"with a target", func(c *Cluster) {
			c.Spec.Bootstrap.Recovery.RecoveryTarget = &RecoveryTarget{TargetTime: "2026-12-01T00:00:00Z"}
		}, "spec.bootstrap.recovery.recoveryTarget: Forbidden"},
		{"with a Backup", func(c *Cluster) { c.Spec.Bootstrap.Recovery.Backup = &LocalObjectReference{Name: "b"} },
			"spec.bootstrap.recovery.backup: Forbidden"},
		{"with initdb", func(c *Cluster) { c.Spec.Bootstrap.InitDB = &BootstrapInitDB{} }, "exclude each other"},
		{"owner checked as in any recovery", func(c *Cluster) { c.Spec.Bootstrap.Recovery.Owner = "bad\"name" }, "spec.bootstrap.recovery.owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster()
			c.Spec.Bootstrap = &BootstrapConfiguration{Recovery: &BootstrapRecovery{VolumeSnapshots: &DataSource{Storage: snapRef("data")}}}
			tc.mutate(c)
			SetDefaults(c)
			err := c.Validate().ToAggregate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLoadVolumeSnapshotFields: CloudNativePG's manifests load; what pgward
// does not do (online backups' options, group snapshots) is named as not
// supported, never as an unknown field, and the fields are reported as
// Kubernetes-only for the local runtime to refuse.
func TestLoadVolumeSnapshotFields(t *testing.T) {
	const base = `apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: c}
spec:
  instances: 1
  storage: {size: 1Gi}
`
	for _, tc := range []struct {
		name, yaml, want string
		kubeOnly         []string
	}{
		{"backup", base + "  backup:\n    volumeSnapshot:\n      className: csi\n      online: false\n", "", []string{"spec.backup.volumeSnapshot"}},
		{"recovery", base + "  bootstrap:\n    recovery:\n      volumeSnapshots:\n        storage: {name: s, kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io}\n", "",
			[]string{"spec.bootstrap.recovery.volumeSnapshots"}},
		{"group snapshot", base + "  backup:\n    volumeSnapshot:\n      className: csi\n      groupSnapshot: true\n", "spec.backup.volumeSnapshot.groupSnapshot", nil},
		{"online configuration", base + "  backup:\n    volumeSnapshot:\n      onlineConfiguration: {immediateCheckpoint: true}\n", "spec.backup.volumeSnapshot.onlineConfiguration", nil},
		{"online", base + "  backup:\n    volumeSnapshot:\n      online: true\n", "spec.backup.volumeSnapshot.online", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadAndValidate([]byte(tc.yaml))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Spec.KubernetesOnlySnapshotFields(); strings.Join(got, ",") != strings.Join(tc.kubeOnly, ",") {
					t.Fatalf("Kubernetes-only fields %v, want %v", got, tc.kubeOnly)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "unknown field") {
				t.Fatalf("got %v, want a refusal naming %s (not as an unknown field)", err, tc.want)
			}
		})
	}
}
