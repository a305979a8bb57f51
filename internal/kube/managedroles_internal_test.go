package kube

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestManagedRolesCondition(t *testing.T) {
	cases := []struct {
		name       string
		problems   []string
		primaryErr string
		answered   bool
		status     metav1.ConditionStatus
		reason     string
		msg        string
	}{
		{"reconciled", nil, "", true, metav1.ConditionTrue, "Reconciled", "repairs them"},
		{"a secret missing wins", []string{"roles[0] (a): no such Secret"}, "role a: reading secret", true, metav1.ConditionFalse, "PasswordSecretUnavailable", "no such Secret"},
		{"missing, primary away", []string{"x"}, "", false, metav1.ConditionFalse, "PasswordSecretUnavailable", "without a restart"},
		{"primary failed", nil, "spec.managed.roles a: permission denied", true, metav1.ConditionFalse, "NotReconciled", "the primary retries: spec.managed.roles a"},
		{"primary away", nil, "", false, metav1.ConditionUnknown, "PrimaryUnavailable", "did not answer"},
	}
	for _, c := range cases {
		got := managedRolesCondition(c.problems, c.primaryErr, c.answered, 7)
		if got.Type != ConditionManagedRoles || got.Status != c.status || got.Reason != c.reason || !strings.Contains(got.Message, c.msg) || got.ObservedGeneration != 7 {
			t.Errorf("%s: %+v", c.name, got)
		}
	}
	long := managedRolesCondition([]string{strings.Repeat("x", 5000)}, "", true, 1)
	if len(long.Message) > 4096 {
		t.Errorf("message of %d bytes", len(long.Message))
	}
}

func TestRefuseRoleSecretChanges(t *testing.T) {
	role := func(name, secret string) v1.RoleConfiguration {
		r := v1.RoleConfiguration{Name: name, Login: true}
		if secret != "" {
			r.PasswordSecret = &v1.LocalObjectReference{Name: secret}
		}
		return r
	}
	cluster := func(roles ...v1.RoleConfiguration) *v1.Cluster {
		c := &v1.Cluster{}
		if roles != nil {
			c.Spec.Managed = &v1.ManagedConfiguration{Roles: roles}
		}
		return c
	}
	cases := []struct {
		name     string
		old, new *v1.Cluster
		want     string
	}{
		{"unchanged", cluster(role("a", "s")), cluster(role("a", "s")), ""},
		{"a role without a password", cluster(role("a", "s")), cluster(role("a", "s"), role("b", "")), ""},
		{"a role sharing a secret", cluster(role("a", "s")), cluster(role("a", "s"), role("b", "s")), ""},
		{"a secret dropped", cluster(role("a", "s"), role("b", "t")), cluster(role("a", "s")), ""},
		{"roles removed", cluster(role("a", "s")), cluster(), ""},
		{"a new secret", cluster(role("a", "s")), cluster(role("a", "s"), role("b", "t")), "spec.managed.roles[1].passwordSecret: Forbidden: the pods project the password secrets named when they were created (s)"},
		{"a secret where none was", cluster(), cluster(role("a", "s")), "(none)"},
		{"a role's secret renamed", cluster(role("a", "s")), cluster(role("a", "s2")), "spec.managed.roles[0].passwordSecret"},
	}
	for _, c := range cases {
		errs := refuseRoleSecretChanges(c.old, c.new)
		got := errs.ToAggregate()
		switch {
		case c.want == "" && got != nil:
			t.Errorf("%s: refused: %v", c.name, got)
		case c.want != "" && (got == nil || !strings.Contains(got.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, got, c.want)
		}
	}
}
