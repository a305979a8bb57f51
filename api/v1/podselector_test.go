package v1

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidatePodSelectorRefs(t *testing.T) {
	app := PodSelectorRef{Name: "app-pods", Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "myapp"}}}
	cases := []struct {
		name string
		refs []PodSelectorRef
		hba  []string
		want []string // substrings of the errors, "" none
	}{
		{"CloudNativePG's sample", []PodSelectorRef{app}, []string{"hostssl mydb myuser ${podselector:app-pods} scram-sha-256", "host all all 10.244.0.0/16 md5"}, nil},
		{"unknown reference", []PodSelectorRef{app}, []string{"hostssl all all ${podselector:other} scram-sha-256"}, []string{"pg_hba[0]", "names no entry"}},
		{"reference outside the address", []PodSelectorRef{app}, []string{"hostssl ${podselector:app-pods} all 10.0.0.0/8 scram-sha-256"}, []string{"pg_hba[0]", "whole address"}},
		{"twice on a line", []PodSelectorRef{app}, []string{`hostssl all all ${podselector:app-pods} ldap ldapserver=x ldapprefix="${podselector:app-pods}"`}, []string{"pg_hba[0]"}},
		{"a name that is no DNS label", []PodSelectorRef{app}, []string{"hostssl all all ${podselector:a_b} scram-sha-256"}, []string{"pg_hba[0]", "DNS label"}},
		{"an injection in the name", []PodSelectorRef{app}, []string{"hostssl all all ${podselector:x}trust scram-sha-256"}, []string{"pg_hba[0]"}},
		{"on a local rule", []PodSelectorRef{app}, []string{"local all all ${podselector:app-pods} peer"}, []string{"pg_hba[0]"}},
		{"duplicate, bad and empty selectors", []PodSelectorRef{app, app, {Name: "Bad_Name", Selector: metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}},
			{Name: "all", Selector: metav1.LabelSelector{}},
			{Name: "expr", Selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Maybe"}}}}}, nil,
			[]string{"podSelectorRefs[1].name: Duplicate", "podSelectorRefs[2].name", "podSelectorRefs[3].selector: Required", "podSelectorRefs[4].selector"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{}
			c.Name = "pg"
			c.Spec.Instances = 1
			SetDefaults(c)
			c.Spec.PodSelectorRefs = tc.refs
			c.Spec.PostgresConfiguration.PgHBA = tc.hba
			errs := c.Validate()
			got := errs.ToAggregate()
			if len(tc.want) == 0 {
				if got != nil {
					t.Fatalf("unexpected errors: %v", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("accepted, want %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("errors lack %q: %v", w, got)
				}
			}
		})
	}
}

// TestExpandPodSelectors: one rule per address, /32 or /128 from parsed
// addresses, nothing for a selector matching no pod, other rules as they
// were; every expanded line is a valid rule again.
func TestExpandPodSelectors(t *testing.T) {
	lines := []string{
		"hostssl mydb myuser ${podselector:app} scram-sha-256",
		"host all all 10.244.0.0/16 md5",
		"hostssl postgres monitor ${podselector:mon} scram-sha-256 clientcert=verify-full",
	}
	ips := map[string][]netip.Addr{
		"app": {netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00::5"), netip.MustParseAddr("::ffff:10.9.9.9")},
	}
	got := ExpandPodSelectors(lines, ips)
	want := []string{
		"hostssl mydb myuser 10.1.2.3/32 scram-sha-256",
		"hostssl mydb myuser fd00::5/128 scram-sha-256",
		"hostssl mydb myuser 10.9.9.9/32 scram-sha-256",
		"host all all 10.244.0.0/16 md5",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range got {
		if _, err := ParseHBARule(l); err != nil {
			t.Errorf("%q: %v", l, err)
		}
	}
}
