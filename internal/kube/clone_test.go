package kube_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestCloneProjectsTheSourceSecrets: on a real API server the operator
// takes a Cluster bootstrapped by bootstrap.pg_basebackup (CloudNativePG's
// TLS sample shape) and its instances' pods project exactly the keys the
// external cluster names, read-only, beside the Cluster's own secrets; the
// instance manager clones from those files (test/kube TestCloneOnPods on
// real pods).
func TestCloneProjectsTheSourceSecrets(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	for name, keys := range map[string][]string{"src-replication-copy": {"tls.crt", "tls.key", "other"}, "src-ca-copy": {"ca.crt", "ca.key"}} {
		data := map[string][]byte{}
		for _, k := range keys {
			data[k] = []byte("x")
		}
		if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	c := sampleCluster(t, ns)
	c.Name = "clone"
	c.Spec.Bootstrap = &v1.BootstrapConfiguration{PgBaseBackup: &v1.BootstrapPgBaseBackup{Source: "src"}}
	c.Spec.ExternalClusters = []v1.ExternalCluster{{Name: "src",
		ConnectionParameters: map[string]string{"host": "src-rw", "user": "streaming_replica", "dbname": "postgres", "sslmode": "verify-full"},
		SSLCert:              &v1.SecretKeySelector{Name: "src-replication-copy", Key: "tls.crt"},
		SSLKey:               &v1.SecretKeySelector{Name: "src-replication-copy", Key: "tls.key"},
		SSLRootCert:          &v1.SecretKeySelector{Name: "src-ca-copy", Key: "ca.crt"},
	}}
	createCluster(t, c)
	reconcileOnce(t, newReconciler(&kube.MTLSInstances{}, nil), c)
	var pod corev1.Pod
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.InstanceNames(c)[0]}, &pod); err != nil {
		t.Fatalf("the clone's first instance: %v", err)
	}
	projected := map[string][]string{}
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.Secret != nil {
				for _, it := range src.Secret.Items {
					projected[src.Secret.Name] = append(projected[src.Secret.Name], it.Key)
				}
			}
		}
	}
	for name, want := range map[string][]string{"src-replication-copy": {"tls.crt", "tls.key"}, "src-ca-copy": {"ca.crt"}} {
		got := projected[name]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("secret %s: the pod projects keys %v, want exactly %v", name, got, want)
		}
	}
}
