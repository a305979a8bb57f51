//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
)

// TestMetricsOnPods scrapes the exporters of real pods over TLS 1.3 with
// the <c>-metrics certificate, from the node's network (where Prometheus
// would reach pod addresses): the primary reports itself and its standby,
// the replica its WAL receiver, and a custom query from a ConfigMap (read
// by the operator, handed over in the config secret) appears with its
// label on both; a certificate other than the metrics one is refused.
func TestMetricsOnPods(t *testing.T) {
	ns := newNamespace(t, "metrics")
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "queries"}, Data: map[string]string{
		"q": "pods_e2e:\n  query: SELECT current_database() AS datname, 1 AS present\n  metrics:\n    - datname: {usage: LABEL}\n    - present: {usage: GAUGE, description: From a ConfigMap}\n",
	}}
	if err := cl.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Spec.Instances = 2
		c.Spec.Monitoring = &v1.MonitoringConfiguration{CustomQueriesConfigMap: []v1.ConfigMapKeySelector{{Name: "queries", Key: "q"}}}
	})
	if cond := meta.FindStatusCondition(c.Status.Conditions, kube.ConditionMonitoring); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("MonitoringConfigured: %+v", cond)
	}

	dir := t.TempDir()
	writeSecret := func(name string) {
		var s corev1.Secret
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
			if err := os.WriteFile(filepath.Join(dir, name+"-"+k), s.Data[k], 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeSecret(c.Name + "-metrics")
	writeSecret(c.Name + "-replication")
	scrape := func(pod, cert string) (string, error) {
		var p corev1.Pod
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &p); err != nil {
			return "", err
		}
		host := c.Name + "-rw"
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// #nosec G204 -- the test's own arguments
		cmd := exec.CommandContext(cctx, "ip", "netns", "exec", nodeNetns, "curl", "-sS", "--fail", "--max-time", "15", "--tlsv1.3",
			"--cacert", filepath.Join(dir, c.Name+"-metrics-ca.crt"),
			"--cert", filepath.Join(dir, cert+"-tls.crt"), "--key", filepath.Join(dir, cert+"-tls.key"),
			"--resolve", fmt.Sprintf("%s:9187:%s", host, p.Status.PodIP), "https://"+host+":9187/metrics")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var primary, replica string
	eventually(t, time.Minute, "the custom query on both pods", func() error {
		var err error
		if primary, err = scrape(c.Name+"-1", c.Name+"-metrics"); err != nil {
			return fmt.Errorf("%w: %s", err, primary)
		}
		if replica, err = scrape(c.Name+"-2", c.Name+"-metrics"); err != nil {
			return fmt.Errorf("%w: %s", err, replica)
		}
		for _, body := range []string{primary, replica} {
			if !strings.Contains(body, `cnpg_pods_e2e_present{datname="app"} 1`) {
				return fmt.Errorf("no custom metric yet")
			}
		}
		return nil
	})
	for _, want := range []string{"pgward_up 1", `pgward_role{role="primary"} 1`, "pgward_custom_queries_valid 1",
		`pgward_replication_standby{application_name="` + c.Name + `-2",state="streaming"`, `pgward_replication_lag_bytes{application_name="` + c.Name + `-2",stage="replay"}`} {
		if !strings.Contains(primary, want) {
			t.Errorf("the primary's metrics lack %q", want)
		}
	}
	for _, want := range []string{"pgward_up 1", `pgward_role{role="replica"} 1`, "pg_replication_is_wal_receiver_up 1"} {
		if !strings.Contains(replica, want) {
			t.Errorf("the replica's metrics lack %q", want)
		}
	}
	// The replication certificate every instance holds does not scrape.
	if out, err := scrape(c.Name+"-1", c.Name+"-replication"); err == nil || strings.Contains(out, "pgward_up") {
		t.Errorf("the replication certificate scraped: %v %s", err, out)
	}
}
