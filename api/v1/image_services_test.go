package v1

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidateImages(t *testing.T) {
	cnpg := CloudNativePGGroup
	other := "example.com"
	ref := func(kind, name string, major int) *ImageCatalogRef {
		return &ImageCatalogRef{APIGroup: &cnpg, Kind: kind, Name: name, Major: major}
	}
	tests := []struct {
		name   string
		mutate func(s *ClusterSpec)
		want   []string
	}{
		{"CloudNativePG's 15", func(s *ClusterSpec) { s.ImageName = "ghcr.io/cloudnative-pg/postgresql:15" }, nil},
		{"minor and suffix", func(s *ClusterSpec) { s.ImageName = "ghcr.io/cloudnative-pg/postgresql:15.8-3-bookworm" }, nil},
		{"registry port and digest", func(s *ClusterSpec) {
			s.ImageName = "registry.local:5000/pg/postgresql:15@sha256:" + strings.Repeat("ab", 32)
		}, nil},
		{"no tag: the instance manager checks", func(s *ClusterSpec) { s.ImageName = "pgward/postgresql" }, nil},
		{"latest: the instance manager checks", func(s *ClusterSpec) { s.ImageName = "postgres:latest" }, nil},
		{"major 18 in the tag", func(s *ClusterSpec) { s.ImageName = "ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie" },
			[]string{"spec.imageName|pgward supports PostgreSQL 15"}},
		{"major 16", func(s *ClusterSpec) { s.ImageName = "postgres:16" }, []string{"spec.imageName|PostgreSQL 16"}},
		{"shell metacharacters", func(s *ClusterSpec) { s.ImageName = "postgres:15;rm -rf /" }, []string{"spec.imageName|not an image reference"}},
		{"upper-case path", func(s *ClusterSpec) { s.ImageName = "Postgres:15" }, []string{"spec.imageName|not an image reference"}},
		{"newline", func(s *ClusterSpec) { s.ImageName = "postgres:15\nx" }, []string{"spec.imageName|not an image reference"}},
		{"too long", func(s *ClusterSpec) { s.ImageName = "a/" + strings.Repeat("b", 600) }, []string{"spec.imageName|"}},
		{"catalog 15", func(s *ClusterSpec) { s.ImageCatalogRef = ref(ImageCatalogKind, "cat", 15) }, nil},
		{"cluster catalog 15, pgward group", func(s *ClusterSpec) {
			s.ImageCatalogRef = ref(ClusterImageCatalogKind, "cat", 15)
			g := Group
			s.ImageCatalogRef.APIGroup = &g
		}, nil},
		{"catalog major 18", func(s *ClusterSpec) { s.ImageCatalogRef = ref(ImageCatalogKind, "cat", 18) },
			[]string{"spec.imageCatalogRef.major|pgward supports PostgreSQL 15"}},
		{"catalog of another group", func(s *ClusterSpec) {
			s.ImageCatalogRef = ref(ImageCatalogKind, "cat", 15)
			s.ImageCatalogRef.APIGroup = &other
		}, []string{"spec.imageCatalogRef.apiGroup|"}},
		{"catalog kind", func(s *ClusterSpec) { s.ImageCatalogRef = ref("ConfigMap", "cat", 15) }, []string{"spec.imageCatalogRef.kind|"}},
		{"catalog name", func(s *ClusterSpec) { s.ImageCatalogRef = ref(ImageCatalogKind, "Cat/../x", 15) }, []string{"spec.imageCatalogRef.name|"}},
		{"both", func(s *ClusterSpec) {
			s.ImageName = "postgres:15"
			s.ImageCatalogRef = ref(ImageCatalogKind, "cat", 15)
		}, []string{"spec.imageCatalogRef|exclude each other"}},
		{"pull policy", func(s *ClusterSpec) { s.ImagePullPolicy = "Sometimes" }, []string{"spec.imagePullPolicy|"}},
		{"pull secrets", func(s *ClusterSpec) {
			s.ImagePullPolicy = "Always"
			s.ImagePullSecrets = []LocalObjectReference{{Name: "regcred"}, {Name: "Bad_Name"}}
		}, []string{"spec.imagePullSecrets[1].name|"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster()
			tc.mutate(&c.Spec)
			checkErrors(t, c.Validate(), tc.want)
		})
	}
}

func TestValidateImageCatalog(t *testing.T) {
	img := func(image string, major int) CatalogImage { return CatalogImage{Image: image, Major: major} }
	tests := []struct {
		name   string
		images []CatalogImage
		want   []string
	}{
		{"several majors: a catalog may serve other clusters", []CatalogImage{
			img("ghcr.io/cloudnative-pg/postgresql:16", 16), img("ghcr.io/cloudnative-pg/postgresql:15", 15)}, nil},
		{"empty", nil, []string{"spec.images|"}},
		{"duplicate major", []CatalogImage{img("a:15", 15), img("b:15.2", 15)}, []string{"spec.images[1].major|Duplicate"}},
		{"tag contradicts major", []CatalogImage{img("postgres:16", 15)}, []string{"spec.images[0].image|the tag says PostgreSQL 16"}},
		{"bad reference", []CatalogImage{img("postgres 15", 15)}, []string{"spec.images[0].image|not an image reference"}},
		{"major too small", []CatalogImage{img("postgres", 1)}, []string{"spec.images[0].major|"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ImageCatalogSpec{Images: tc.images}
			checkErrors(t, s.Validate(field.NewPath("spec")), tc.want)
		})
	}
}

func TestImageTagMajor(t *testing.T) {
	for image, want := range map[string]int{
		"postgres:15": 15, "a/b:16.2-bookworm": 16, "host:5000/a:17_1": 17, "host:5000/a": 0,
		"a:latest": 0, "a:20240101": 0, "a@sha256:" + strings.Repeat("0", 64): 0, "a:9.6": 9, "a:1": 0,
	} {
		got, ok := ImageTagMajor(image)
		if (want != 0) != ok || got != want {
			t.Errorf("ImageTagMajor(%q) = %d, %v; want %d", image, got, ok, want)
		}
	}
}

func TestValidateManagedServices(t *testing.T) {
	svc := func(name, selector string, spec corev1.ServiceSpec) ManagedService {
		return ManagedService{SelectorType: selector, ServiceTemplate: ServiceTemplateSpec{
			ObjectMeta: ServiceMetadata{Name: name}, Spec: spec}}
	}
	lb := corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}
	tests := []struct {
		name string
		ms   ManagedServices
		want []string
	}{
		{"CloudNativePG's sample", ManagedServices{DisabledDefaultServices: []string{"ro", "r"},
			Additional: []ManagedService{{SelectorType: "rw", ServiceTemplate: ServiceTemplateSpec{
				ObjectMeta: ServiceMetadata{Name: "test-rw", Labels: map[string]string{"test-label": "true"}, Annotations: map[string]string{"test-annotation": "true"}},
				Spec:       lb}}}}, nil},
		{"rw cannot be disabled", ManagedServices{DisabledDefaultServices: []string{"rw"}},
			[]string{"spec.managed.services.disabledDefaultServices[0]|replicas reach the primary"}},
		{"unknown default", ManagedServices{DisabledDefaultServices: []string{"ro", "ro", "x"}},
			[]string{"spec.managed.services.disabledDefaultServices[1]|Duplicate", "spec.managed.services.disabledDefaultServices[2]|"}},
		{"name of a default", ManagedServices{Additional: []ManagedService{svc("pg-ro", "ro", lb)}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.metadata.name|pgward's own Services"}},
		{"duplicate and bad names", ManagedServices{Additional: []ManagedService{svc("a", "r", lb), svc("a", "r", lb), svc("B.c", "r", lb), svc("", "r", lb)}},
			[]string{"spec.managed.services.additional[1].serviceTemplate.metadata.name|Duplicate",
				"spec.managed.services.additional[2].serviceTemplate.metadata.name|",
				"spec.managed.services.additional[3].serviceTemplate.metadata.name|"}},
		{"selector type and strategy", ManagedServices{Additional: []ManagedService{{SelectorType: "all", UpdateStrategy: "merge",
			ServiceTemplate: ServiceTemplateSpec{ObjectMeta: ServiceMetadata{Name: "a"}}}}},
			[]string{"spec.managed.services.additional[0].selectorType|", "spec.managed.services.additional[0].updateStrategy|"}},
		{"pgward's labels", ManagedServices{Additional: []ManagedService{{SelectorType: "rw",
			ServiceTemplate: ServiceTemplateSpec{ObjectMeta: ServiceMetadata{Name: "a", Labels: map[string]string{"pgward.io/role": "primary"}}}}}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.metadata.labels[pgward.io/role]|pgward's"}},
		// The class: choosing other pods, routing elsewhere, or to instances that are not ready.
		{"selector", ManagedServices{Additional: []ManagedService{svc("a", "rw", corev1.ServiceSpec{Selector: map[string]string{"app": "x"}})}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.spec.selector|"}},
		{"externalIPs", ManagedServices{Additional: []ManagedService{svc("a", "rw", corev1.ServiceSpec{ExternalIPs: []string{"1.2.3.4"}})}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.spec.externalIPs|"}},
		{"externalName", ManagedServices{Additional: []ManagedService{svc("a", "rw", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "evil.example.com"})}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.spec.externalName|", "spec.managed.services.additional[0].serviceTemplate.spec.type|"}},
		{"not ready addresses", ManagedServices{Additional: []ManagedService{svc("a", "rw", corev1.ServiceSpec{PublishNotReadyAddresses: true})}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.spec.publishNotReadyAddresses|"}},
		{"another target port", ManagedServices{Additional: []ManagedService{svc("a", "rw", corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432, TargetPort: intstr.FromInt32(8000)}}})}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.spec.ports[0].targetPort|PostgreSQL's port only"}},
		{"two ports, UDP", ManagedServices{Additional: []ManagedService{svc("a", "rw", corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}, {Port: 6432, Protocol: corev1.ProtocolUDP}}})}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.spec.ports|", "spec.managed.services.additional[0].serviceTemplate.spec.ports[1].protocol|"}},
		{"node port and source ranges", ManagedServices{Additional: []ManagedService{svc("a", "ro", corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Port: 5433, NodePort: 30432, TargetPort: intstr.FromString("postgresql")}}})}}, nil},
		{"node port on ClusterIP", ManagedServices{Additional: []ManagedService{svc("a", "ro", corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Port: 5433, NodePort: 30432}}})}},
			[]string{"spec.managed.services.additional[0].serviceTemplate.spec.ports[0].nodePort|"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster()
			c.Spec.Managed = &ManagedConfiguration{Services: &tc.ms}
			checkErrors(t, c.Validate(), tc.want)
		})
	}
}
