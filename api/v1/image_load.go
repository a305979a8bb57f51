package v1

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// LoadImageCatalog decodes one ImageCatalog or ClusterImageCatalog
// document strictly (unknown fields, such as CloudNativePG's
// componentImages for its poolers, are refused) and validates it. The
// apiVersion may be CloudNativePG's, read as pgward's like a Cluster's.
func LoadImageCatalog(data []byte) (kind, name string, spec *ImageCatalogSpec, err error) {
	var doc struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       ImageCatalogSpec  `json:"spec"`
	}
	var generic struct {
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &generic); err == nil {
		if _, ok := generic.Spec["componentImages"]; ok {
			// CloudNativePG's images for its Pooler kind, which pgward
			// does not have: named as such, not as an unknown field.
			return "", "", nil, fmt.Errorf(`field "spec.componentImages" is a Cloud Native PostgreSQL field that pgward does not support yet (the images of its Pooler kind)`)
		}
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return "", "", nil, err
	}
	if !slices.Contains(append([]string{APIVersion}, foreignAPIVersions...), doc.APIVersion) {
		return "", "", nil, fmt.Errorf("apiVersion %q is not supported: use %s", doc.APIVersion, APIVersion)
	}
	if doc.Kind != ImageCatalogKind && doc.Kind != ClusterImageCatalogKind {
		return "", "", nil, fmt.Errorf("kind %q is not a catalog", doc.Kind)
	}
	if agg := doc.Spec.Validate(field.NewPath("spec")).ToAggregate(); agg != nil {
		return "", "", nil, agg
	}
	return doc.Kind, doc.Metadata.Name, &doc.Spec, nil
}
