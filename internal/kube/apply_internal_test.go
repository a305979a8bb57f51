package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestSemanticEquality: the faster comparison ensure uses decides as
// equality.Semantic does: bytes by value (nil and empty alike, as
// Semantic treats nil and empty slices), quantities by value.
func TestSemanticEquality(t *testing.T) {
	secret := func(data map[string][]byte) *corev1.Secret { return &corev1.Secret{Data: data} }
	for _, tc := range []struct {
		name string
		a, b any
		want bool
	}{
		{"same bytes", secret(map[string][]byte{"k": []byte("abc")}), secret(map[string][]byte{"k": []byte("abc")}), true},
		{"one byte differs", secret(map[string][]byte{"k": []byte("abc")}), secret(map[string][]byte{"k": []byte("abd")}), false},
		{"longer", secret(map[string][]byte{"k": []byte("abc")}), secret(map[string][]byte{"k": []byte("abcd")}), false},
		{"nil and empty", secret(map[string][]byte{"k": nil}), secret(map[string][]byte{"k": {}}), true},
		{"key missing", secret(map[string][]byte{"k": []byte("a")}), secret(map[string][]byte{}), false},
		{"quantities by value", resource.MustParse("1Gi"), resource.MustParse("1024Mi"), true},
		{"quantities differ", resource.MustParse("1Gi"), resource.MustParse("2Gi"), false},
	} {
		if got := semantic.DeepEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
