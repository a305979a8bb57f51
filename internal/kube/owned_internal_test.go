package kube

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"
)

// The operator's ClusterRole is generated from kubebuilder markers, a list
// apart from ownedKinds: a kind watched and cached without list and watch
// in the role would leave its informer failing forever (and the Cluster
// never woken by changes of that kind).
func TestOwnedKindsAreWatchableWithTheOperatorsRole(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		t.Fatal(err)
	}
	for _, o := range ownedKinds() {
		gvk, err := apiutil.GVKForObject(o, scheme.Scheme)
		if err != nil {
			t.Fatal(err)
		}
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		for _, verb := range []string{"get", "list", "watch"} {
			granted := slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
				return len(r.ResourceNames) == 0 && slices.Contains(r.APIGroups, gvk.Group) &&
					slices.Contains(r.Resources, plural.Resource) && slices.Contains(r.Verbs, verb)
			})
			if !granted {
				t.Errorf("the operator watches %s but config/rbac/role.yaml does not grant %q on %s", gvk.Kind, verb, plural.Resource)
			}
		}
	}
}
