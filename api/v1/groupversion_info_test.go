package v1

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestAddToScheme(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []runtime.Object{&Cluster{}, &ClusterList{}} {
		gvks, _, err := scheme.ObjectKinds(obj)
		if err != nil || len(gvks) != 1 || gvks[0].GroupVersion() != SchemeGroupVersion {
			t.Errorf("ObjectKinds(%T) = %v, %v", obj, gvks, err)
		}
	}
	if gr := Resource("clusters"); gr.String() != "clusters.postgresql.pgward.io" {
		t.Errorf("Resource = %s", gr)
	}
}

func TestDeepCopy(t *testing.T) {
	c := validCluster()
	c.Labels = map[string]string{"a": "b"}
	c.Spec.PostgresConfiguration.Parameters = map[string]string{"work_mem": "4MB"}
	c.Spec.PostgresConfiguration.PgHBA = []string{"local all all peer"}
	c.Spec.Certificates = &CertificatesConfiguration{ServerAltDNSNames: []string{"a.example"}}

	cp, ok := c.DeepCopyObject().(*Cluster)
	if !ok || !reflect.DeepEqual(cp, c) {
		t.Fatalf("DeepCopyObject = %+v", cp)
	}
	cp.Labels["a"] = "x"
	cp.Spec.PostgresConfiguration.Parameters["work_mem"] = "8MB"
	cp.Spec.PostgresConfiguration.PgHBA[0] = "changed"
	cp.Spec.Certificates.ServerAltDNSNames[0] = "b.example"
	cp.Spec.Bootstrap.InitDB.Database = "other"
	*cp.Spec.EnableSuperuserAccess = true
	if c.Labels["a"] != "b" ||
		c.Spec.PostgresConfiguration.Parameters["work_mem"] != "4MB" ||
		c.Spec.PostgresConfiguration.PgHBA[0] != "local all all peer" ||
		c.Spec.Certificates.ServerAltDNSNames[0] != "a.example" ||
		c.Spec.Bootstrap.InitDB.Database != "app" || *c.Spec.EnableSuperuserAccess {
		t.Fatalf("changing the copy changed the original: %+v", c)
	}
}
