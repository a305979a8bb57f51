package customqueries

import (
	"errors"
	"fmt"
	"slices"

	v1 "github.com/pgward/pgward/api/v1"
)

// Sources resolves spec.monitoring's references through get
// (kind "ConfigMap" or "Secret", name) into the sources of
// customqueries.Parse, naming the field of a missing object or key.
func Sources(c *v1.Cluster, get func(kind, name string) (map[string][]byte, error)) ([]Source, error) {
	m := c.Spec.Monitoring
	if m == nil {
		return nil, nil
	}
	type ref struct{ field, kind, name, key string }
	var refs []ref
	for i, r := range m.CustomQueriesConfigMap {
		refs = append(refs, ref{fmt.Sprintf("spec.monitoring.customQueriesConfigMap[%d]", i), "ConfigMap", r.Name, r.Key})
	}
	for i, r := range m.CustomQueriesSecret {
		refs = append(refs, ref{fmt.Sprintf("spec.monitoring.customQueriesSecret[%d]", i), "Secret", r.Name, r.Key})
	}
	var (
		out  []Source
		errs []error
	)
	generated := v1.GeneratedSecretNames(c.Name)
	for _, r := range refs {
		if r.kind == "Secret" && slices.Contains(generated, r.name) {
			errs = append(errs, fmt.Errorf("%s: pgward generates secret %q (credentials or certificates): name a secret of your own", r.field, r.name))
			continue
		}
		data, err := get(r.kind, r.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %q: %w", r.field, r.kind, r.name, err))
			continue
		}
		b, ok := data[r.key]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s %q has no key %q", r.field, r.kind, r.name, r.key))
			continue
		}
		out = append(out, Source{Origin: fmt.Sprintf("%s (%s %s, key %s)", r.field, r.kind, r.name, r.key), Data: b})
	}
	return out, errors.Join(errs...)
}
