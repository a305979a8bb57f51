package build

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/pgward/pgward/api/v1"
)

// maximal is a Cluster named name that makes every object a Cluster can
// make: every option on and the most instances. A Cluster's object names
// depend on nothing else, so any other Cluster of that name makes a subset.
func maximal(t *testing.T, name string) *v1.Cluster {
	t.Helper()
	c := everything(t)
	c.Name = name
	c.Spec.Instances = v1.MaxInstances
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	return c
}

// objectNames lists the names of the objects c makes, by kind: what
// allObjects builds, plus the generated superuser secret.
func objectNames(t *testing.T, c *v1.Cluster) map[string][]string {
	t.Helper()
	objs := allObjects(t, c)
	if n := Secrets(c); n.Superuser != "" {
		objs = append(objs, CredentialsSecret(c, n.Superuser, nil))
	}
	out := map[string][]string{}
	for _, o := range objs {
		kind := reflect.TypeOf(o).Elem().Name()
		out[kind] = append(out[kind], nameOf(o))
	}
	return out
}

func nameOf(o runtime.Object) string {
	return reflect.ValueOf(o).Elem().FieldByName("Name").String()
}

func validClusterName(name string) bool {
	return len(name) <= v1.MaxClusterNameLength && len(validation.IsDNS1035Label(name)) == 0
}

// TestObjectNamesNeverCollideAcrossClusters proves that no two Clusters of
// one namespace can want an object of the same kind and name, whatever
// their (valid) names. Every object is named c or c-…; write its name as
// c+s, s its suffix. If c1+s1 = c2+s2 with c1 ≠ c2, one name is a prefix
// of the other, say c2 = c1+d (d not empty), and then s1 = d+s2. So a
// collision exists exactly when a suffix ends with another suffix of the
// same kind and what is left over (d) can extend a valid name into a valid
// name; c1 = "a", the shortest name, leaves d the most room. The suffixes
// come from the builders themselves, not from a list kept by hand.
func TestObjectNamesNeverCollideAcrossClusters(t *testing.T) {
	c := maximal(t, "x")
	for kind, names := range objectNames(t, c) {
		var suffixes []string
		for _, n := range names {
			s, ok := strings.CutPrefix(n, c.Name)
			if !ok || (s != "" && !strings.HasPrefix(s, "-")) {
				t.Errorf("%s %s is not named after its cluster %s", kind, n, c.Name)
				continue
			}
			suffixes = append(suffixes, s)
		}
		for _, s1 := range suffixes {
			for _, s2 := range suffixes {
				d, ok := strings.CutSuffix(s1, s2)
				if !ok || d == "" {
					continue
				}
				if c2 := "a" + d; validClusterName(c2) {
					t.Errorf("%s: cluster a's %q is cluster %s's %q", kind, "a"+s1, c2, c2+s2)
				}
			}
		}
	}
}

// TestNoTwoClustersShareAnObjectName builds both Clusters of each
// adversarial pair (a name, and that name extended by one of its own
// objects' suffixes, like "a" and "a-primary") and checks that they want
// no object of the same kind and name: the builders, not only the rule
// above.
func TestNoTwoClustersShareAnObjectName(t *testing.T) {
	var suffixes []string
	x := maximal(t, "x")
	for _, names := range objectNames(t, x) {
		for _, n := range names {
			if s := strings.TrimPrefix(n, x.Name); s != "" && !slices.Contains(suffixes, s) {
				suffixes = append(suffixes, s)
			}
		}
	}
	slices.Sort(suffixes)
	pairs := 0
	for _, base := range []string{"a", "cluster-example", "a-1"} {
		bNames := objectNames(t, maximal(t, base))
		for _, s := range suffixes {
			other := base + s
			if !validClusterName(other) {
				continue
			}
			pairs++
			oNames := objectNames(t, maximal(t, other))
			for kind, names := range bNames {
				for _, n := range names {
					if slices.Contains(oNames[kind], n) {
						t.Errorf("clusters %s and %s both want %s %s", base, other, kind, n)
					}
				}
			}
		}
	}
	t.Logf("%d pairs of clusters built", pairs)
	if pairs < 100 {
		t.Errorf("only %d pairs checked", pairs)
	}
}
