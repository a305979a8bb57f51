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
