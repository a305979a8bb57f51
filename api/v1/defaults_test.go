package v1

import (
	"reflect"
	"testing"
)

func TestSetDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Cluster
		want ClusterSpec
	}{
		{
			name: "empty spec",
			in:   Cluster{},
			want: ClusterSpec{
				Instances:             1,
				EnableSuperuserAccess: new(false),
				Bootstrap: &BootstrapConfiguration{InitDB: &BootstrapInitDB{
					Database: "app", Owner: "app", DataChecksums: new(true),
					Encoding: "UTF8", LocaleCollate: "C", LocaleCType: "C",
				}},
			},
		},
		{
			name: "owner defaults to the database",
			in: Cluster{Spec: ClusterSpec{Bootstrap: &BootstrapConfiguration{
				InitDB: &BootstrapInitDB{Database: "shop"},
			}}},
			want: ClusterSpec{
				Instances:             1,
				EnableSuperuserAccess: new(false),
				Bootstrap: &BootstrapConfiguration{InitDB: &BootstrapInitDB{
					Database: "shop", Owner: "shop", DataChecksums: new(true),
					Encoding: "UTF8", LocaleCollate: "C", LocaleCType: "C",
				}},
			},
		},
		{
			name: "user values are kept, even invalid ones",
			in: Cluster{Spec: ClusterSpec{
				Instances:             -2,
				EnableSuperuserAccess: new(true),
				Bootstrap: &BootstrapConfiguration{InitDB: &BootstrapInitDB{
					Database: "db", Owner: "own", DataChecksums: new(false),
					Encoding: "LATIN1", LocaleCollate: "en_US.UTF-8", LocaleCType: "de_DE",
				}},
			}},
			want: ClusterSpec{
				Instances:             -2,
				EnableSuperuserAccess: new(true),
				Bootstrap: &BootstrapConfiguration{InitDB: &BootstrapInitDB{
					Database: "db", Owner: "own", DataChecksums: new(false),
					Encoding: "LATIN1", LocaleCollate: "en_US.UTF-8", LocaleCType: "de_DE",
				}},
			},
		},
		{
			name: "empty bootstrap gets initdb",
			in:   Cluster{Spec: ClusterSpec{Instances: 3, Bootstrap: &BootstrapConfiguration{}}},
			want: ClusterSpec{
				Instances:             3,
				EnableSuperuserAccess: new(false),
				Bootstrap: &BootstrapConfiguration{InitDB: &BootstrapInitDB{
					Database: "app", Owner: "app", DataChecksums: new(true),
					Encoding: "UTF8", LocaleCollate: "C", LocaleCType: "C",
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in.DeepCopy()
			SetDefaults(c)
			if !reflect.DeepEqual(c.Spec, tt.want) {
				t.Errorf("spec = %+v, want %+v", c.Spec, tt.want)
			}
			if c.APIVersion != APIVersion || c.Kind != Kind {
				t.Errorf("type meta = %q %q", c.APIVersion, c.Kind)
			}
			again := c.DeepCopy()
			SetDefaults(again)
			if !reflect.DeepEqual(again, c) {
				t.Errorf("SetDefaults is not idempotent: %+v then %+v", c, again)
			}
		})
	}
}

// TestExternalTLSDefaults: naming the server's CA without an sslmode means
// verify-full; an explicit sslmode is kept (and a weak one refused by
// Validate); without a CA nothing is assumed, so the manifest is refused.
func TestExternalTLSDefaults(t *testing.T) {
	ca := &SecretKeySelector{Name: "src-ca", Key: "ca.crt"}
	for _, tc := range []struct {
		name   string
		params map[string]string
		ca     *SecretKeySelector
		want   string
		valid  bool
	}{
		{"CA without sslmode", map[string]string{"host": "src", "user": "app"}, ca, "verify-full", true},
		{"CA with verify-ca", map[string]string{"host": "src", "user": "app", "sslmode": "verify-ca"}, ca, "verify-ca", true},
		{"CA with require", map[string]string{"host": "src", "user": "app", "sslmode": "require"}, ca, "require", false},
		{"no CA, no sslmode", map[string]string{"host": "src", "user": "app"}, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{}
			c.Name = "pg"
			c.Spec.ExternalClusters = []ExternalCluster{{Name: "src", ConnectionParameters: tc.params, SSLRootCert: tc.ca}}
			SetDefaults(c)
			if got := c.Spec.ExternalClusters[0].ConnectionParameters["sslmode"]; got != tc.want {
				t.Errorf("sslmode %q, want %q", got, tc.want)
			}
			errs := c.Validate()
			if valid := len(errs) == 0; valid != tc.valid {
				t.Errorf("valid %v, want %v: %v", valid, tc.valid, errs)
			}
		})
	}
}
