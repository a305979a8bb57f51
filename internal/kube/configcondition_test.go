package kube

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/plan"
)

func TestConfigCondition(t *testing.T) {
	obs := func(errs ...string) []observation {
		var out []observation
		for i, e := range errs {
			o := observation{plan: plan.InstanceStatus{Name: "c-" + string(rune('1'+i))}}
			if e != "-" {
				o.wire = &instanceapi.Status{ConfigError: e}
			}
			out = append(out, o)
		}
		return out
	}
	if _, ok := configCondition(obs("-", "-"), 1); ok {
		t.Error("a condition with no instance answering")
	}
	c, ok := configCondition(obs("", "-", ""), 2)
	if !ok || c.Status != metav1.ConditionTrue || c.Type != ConditionConfigurationApplied || c.ObservedGeneration != 2 {
		t.Errorf("all applied: %+v", c)
	}
	c, _ = configCondition(obs("", `spec.postgresql.parameters[timezone]: invalid value for parameter "TimeZone"`, "-"), 3)
	if c.Status != metav1.ConditionFalse || c.Reason != "RefusedByPostgreSQL" || !strings.HasPrefix(c.Message, "c-2: spec.postgresql.parameters[timezone]") {
		t.Errorf("refused: %+v", c)
	}
}
