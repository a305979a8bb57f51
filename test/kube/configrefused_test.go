//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
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

// TestConfigurationRefusedOnPods: a change the admission webhook cannot
// judge (a time zone only PostgreSQL knows) reaches the pod; its instance
// manager asks the server, keeps the running configuration, and the
// Cluster's ConfigurationApplied condition says why, with no restart. A
// good change after it is applied.
func TestConfigurationRefusedOnPods(t *testing.T) {
	ns := newNamespace(t, "cfgrefused")
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "cfg"
		c.Spec.Instances = 1
		c.Spec.PostgresConfiguration.Parameters = map[string]string{"timezone": "UTC"}
	})
	primary := c.Status.CurrentPrimary
	restarts := func() int32 {
		var p corev1.Pod
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: primary}, &p); err != nil {
			t.Fatal(err)
		}
		var n int32
		for _, s := range p.Status.ContainerStatuses {
			n += s.RestartCount
		}
		return n
	}
	before := restarts()
	condition := func(want metav1.ConditionStatus, says string) {
		t.Helper()
		eventually(t, 3*time.Minute, fmt.Sprintf("ConfigurationApplied %s", want), func() error {
			got := getCluster(t, ns, c.Name)
			cond := meta.FindStatusCondition(got.Status.Conditions, kube.ConditionConfigurationApplied)
			if cond == nil || cond.Status != want || !strings.Contains(cond.Message, says) {
				return fmt.Errorf("condition %+v", cond)
			}
			return nil
		})
	}
	condition(metav1.ConditionTrue, "")
	mustKubectl(t, "-n", ns, "patch", "cluster", c.Name, "--type=merge", "-p", `{"spec":{"postgresql":{"parameters":{"timezone":"Mars/Olympus"}}}}`)
	condition(metav1.ConditionFalse, `spec.postgresql.parameters[timezone]: invalid value for parameter "TimeZone"`)
	if got := psqlLocal(t, ns, primary, "postgres", "SHOW timezone"); got != "UTC" {
		t.Errorf("timezone %q after a refused change", got)
	}
	mustKubectl(t, "-n", ns, "patch", "cluster", c.Name, "--type=merge", "-p", `{"spec":{"postgresql":{"parameters":{"timezone":"Europe/Paris"}}}}`)
	condition(metav1.ConditionTrue, "")
	eventually(t, time.Minute, "the good change", func() error {
		if got := psqlLocal(t, ns, primary, "postgres", "SHOW timezone"); got != "Europe/Paris" {
			return fmt.Errorf("timezone %q", got)
		}
		return nil
	})
	if after := restarts(); after != before {
		t.Errorf("containers restarted %d times during the changes", after-before)
	}
}
