package local

import (
	"strings"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestKubernetesOnlyNotes(t *testing.T) {
	ref := &v1.ImageCatalogRef{Kind: v1.ImageCatalogKind, Name: "cat", Major: 15}
	svcs := &v1.ManagedConfiguration{Services: &v1.ManagedServices{DisabledDefaultServices: []string{"ro"}}}
	for _, tc := range []struct {
		name string
		spec v1.ClusterSpec
		want []string
	}{
		{"nothing", v1.ClusterSpec{}, nil},
		{"image", v1.ClusterSpec{ImageName: "postgres:15", ImagePullPolicy: "Always"}, []string{`spec.imageName "postgres:15" applies on Kubernetes; locally PostgreSQL runs from /pg/bin`, "spec.imagePullPolicy"}},
		{"catalog", v1.ClusterSpec{ImageCatalogRef: ref, ImagePullSecrets: []v1.LocalObjectReference{{Name: "r"}}}, []string{`spec.imageCatalogRef (ImageCatalog "cat")`, "spec.imagePullSecrets"}},
		{"services", v1.ClusterSpec{Managed: svcs}, []string{"spec.managed.services applies on Kubernetes"}},
		{"primary lease", v1.ClusterSpec{PrimaryLease: &v1.PrimaryLeaseConfiguration{}}, []string{"spec.primaryLease applies on Kubernetes"}},
		{"WAL storage", v1.ClusterSpec{WalStorage: &v1.StorageConfiguration{Size: "1Gi"}}, []string{"spec.walStorage's size and storageClass apply on Kubernetes"}},
		{"WAL storage without size or class", v1.ClusterSpec{WalStorage: &v1.StorageConfiguration{}}, nil},
		{"resizeInUseVolumes, each place", v1.ClusterSpec{
			StorageConfiguration: v1.StorageConfiguration{ResizeInUseVolumes: new(false)},
			WalStorage:           &v1.StorageConfiguration{ResizeInUseVolumes: new(true)},
			Tablespaces:          []v1.TablespaceConfiguration{{Name: "a"}, {Name: "b", Storage: v1.StorageConfiguration{ResizeInUseVolumes: new(false)}}},
		}, []string{"note: spec.storage.resizeInUseVolumes, spec.walStorage.resizeInUseVolumes, spec.tablespaces[1].storage.resizeInUseVolumes applies on Kubernetes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kubernetesOnlyNotes(&v1.Cluster{Spec: tc.spec}, "/pg/bin")
			if len(got) != len(tc.want) {
				t.Fatalf("notes %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("note %d %q, want %q", i, got[i], w)
				}
			}
		})
	}
}

// TestRefuseFailureDomains: each failure-domain field is refused by name
// locally; a constraint turned off is not.
func TestRefuseFailureDomains(t *testing.T) {
	c := &v1.Cluster{}
	if err := refuseFailureDomains(c); err != nil {
		t.Fatal(err)
	}
	c.Spec.PostgresConfiguration.SyncReplicaElectionConstraint = &v1.SyncReplicaElectionConstraints{NodeLabelsAntiAffinity: []string{"az"}}
	if err := refuseFailureDomains(c); err != nil {
		t.Errorf("disabled constraint: %v", err)
	}
	c.Spec.PostgresConfiguration.SyncReplicaElectionConstraint.Enabled = true
	c.Spec.PostgresConfiguration.Synchronous = &v1.SynchronousReplicaConfiguration{PodFailureDomainKeys: []string{"z"}, NodeFailureDomainKeys: []string{"z"}}
	err := refuseFailureDomains(c)
	for _, f := range []string{"spec.postgresql.synchronous.podFailureDomainKeys", "spec.postgresql.synchronous.nodeFailureDomainKeys", "spec.postgresql.syncReplicaElectionConstraint", "one failure domain"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("error %v does not name %s", err, f)
		}
	}
}
