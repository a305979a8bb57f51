package v1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateNetworkPolicy(t *testing.T) {
	app := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tests := []struct {
		name string
		np   *NetworkPolicyConfiguration
		want []string
	}{
		{"absent", nil, nil},
		{"enabled, no clients", &NetworkPolicyConfiguration{Enabled: true}, nil},
		{"enabled with clients", &NetworkPolicyConfiguration{Enabled: true, Clients: []NetworkPolicyPeer{
			{PodSelector: app},
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}},
			{PodSelector: app, NamespaceSelector: &metav1.LabelSelector{}},
		}}, nil},
		{"clients while disabled", &NetworkPolicyConfiguration{Clients: []NetworkPolicyPeer{{PodSelector: app}}},
			[]string{"spec.networkPolicy.clients|no effect unless networkPolicy.enabled"}},
		{"peer without selector", &NetworkPolicyConfiguration{Enabled: true, Clients: []NetworkPolicyPeer{{}}},
			[]string{"spec.networkPolicy.clients[0]|podSelector"}},
		{"metrics clients", &NetworkPolicyConfiguration{Enabled: true, MetricsClients: []NetworkPolicyPeer{{PodSelector: app}}}, nil},
		{"metrics clients while disabled", &NetworkPolicyConfiguration{MetricsClients: []NetworkPolicyPeer{{PodSelector: app}}},
			[]string{"spec.networkPolicy.metricsClients|no effect unless networkPolicy.enabled"}},
		{"metrics peer without selector", &NetworkPolicyConfiguration{Enabled: true, MetricsClients: []NetworkPolicyPeer{{}}},
			[]string{"spec.networkPolicy.metricsClients[0]|podSelector"}},
		{"bad label key", &NetworkPolicyConfiguration{Enabled: true, Clients: []NetworkPolicyPeer{
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}}},
		}}, []string{"spec.networkPolicy.clients[0].podSelector.matchLabels"}},
		{"bad operator", &NetworkPolicyConfiguration{Enabled: true, Clients: []NetworkPolicyPeer{
			{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "team", Operator: "Near", Values: []string{"a"}},
			}}},
		}}, []string{"spec.networkPolicy.clients[0].namespaceSelector.matchExpressions[0].operator"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCluster()
			c.Spec.NetworkPolicy = tt.np
			checkErrors(t, c.Validate(), tt.want)
		})
	}
}

func TestLoadAcceptsNetworkPolicy(t *testing.T) {
	c, err := LoadAndValidate([]byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata: {name: pg}
spec:
  instances: 2
  networkPolicy:
    enabled: true
    clients:
      - podSelector: {matchLabels: {app: web}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if np := c.Spec.NetworkPolicy; np == nil || !np.Enabled || np.Clients[0].PodSelector.MatchLabels["app"] != "web" {
		t.Fatalf("networkPolicy not loaded: %+v", np)
	}
}
