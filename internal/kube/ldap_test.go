package kube_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
)

// TestLDAPOnTheAPIServer: a Cluster with postgresql.ldap passes the CRD
// schema and the operator; its pods project the bind password and the CA
// (only those keys) where the instance manager reads them, never in the
// environment. The operator's validation refuses LDAP in clear text.
func TestLDAPOnTheAPIServer(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)

	clear := sampleCluster(t, ns)
	clear.Name = "clear"
	clear.Spec.PostgresConfiguration.LDAP = &v1.LDAPConfig{Server: "ldap.example.org", BindAsAuth: &v1.LDAPBindAsAuth{Prefix: "uid="}}
	v1.SetDefaults(clear)
	// What the webhook and the reconciler (InvalidSpec) both run.
	if errs := kube.ValidateForKubernetes(clear); !strings.Contains(errs.ToAggregate().Error(), "spec.postgresql.ldap.scheme") {
		t.Errorf("LDAP in clear text: %v, want a refusal naming spec.postgresql.ldap.scheme", errs)
	}

	c := sampleCluster(t, ns)
	c.Spec.PostgresConfiguration.LDAP = &v1.LDAPConfig{Server: "ldap.example.org", Scheme: "ldaps",
		CASecret: &v1.SecretKeySelector{Name: "dir-ca", Key: "ca.crt"},
		BindSearchAuth: &v1.LDAPBindSearchAuth{BaseDN: "dc=example,dc=org", BindDN: "cn=search,dc=example,dc=org",
			BindPassword: &v1.SecretKeySelector{Name: "dir-bind", Key: "password"}, SearchAttribute: "uid"}}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)
	var pods corev1.PodList
	if err := admin.List(ctx, &pods, client.InNamespace(ns)); err != nil || len(pods.Items) == 0 {
		t.Fatalf("no pods (%v)", err)
	}
	for _, p := range pods.Items {
		got := map[string]string{}
		for _, v := range p.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.Secret == nil || (src.Secret.Name != "dir-ca" && src.Secret.Name != "dir-bind") {
					continue
				}
				for _, it := range src.Secret.Items {
					got[src.Secret.Name] += it.Key + "->" + it.Path + ";"
				}
			}
		}
		if got["dir-bind"] != "password->secrets/dir-bind/password;" || got["dir-ca"] != "ca.crt->secrets/dir-ca/ca.crt;" {
			t.Errorf("pod %s projects %v", p.Name, got)
		}
		for _, ctr := range p.Spec.Containers {
			for _, e := range ctr.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "dir-bind" {
					t.Errorf("pod %s: the bind password in the environment (%s)", p.Name, e.Name)
				}
			}
		}
	}
}
