package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get

// resolveSQLRefs reads the Secrets and ConfigMaps bootstrap.initdb's SQL
// references name (directly from the API server: they carry no pgward
// label), for the instance config Secret. Once an instance config holds
// the SQL, it is kept: the references matter only at bootstrap, and a
// ConfigMap deleted after it must not stop the reconciliation.
func (r *ClusterReconciler) resolveSQLRefs(ctx context.Context, c *v1.Cluster) (*v1.ResolvedSQL, error) {
	if !c.Spec.HasSQLRefs() {
		return nil, nil
	}
	sql, err := c.Spec.ResolveSQLRefs(func(secret bool, name, key string) (string, error) {
		nn := types.NamespacedName{Namespace: c.Namespace, Name: name}
		if secret {
			var s corev1.Secret
			if err := r.APIReader.Get(ctx, nn, &s); err != nil {
				return "", describeGetError("Secret", name, err)
			}
			v, ok := s.Data[key]
			if !ok {
				return "", fmt.Errorf("the Secret %q has no key %q", name, key)
			}
			return string(v), nil
		}
		var cm corev1.ConfigMap
		if err := r.APIReader.Get(ctx, nn, &cm); err != nil {
			return "", describeGetError("ConfigMap", name, err)
		}
		v, ok := cm.Data[key]
		if !ok {
			return "", fmt.Errorf("the ConfigMap %q has no key %q", name, key)
		}
		return v, nil
	})
	if err == nil {
		return sql, nil
	}
	for _, name := range build.InstanceNames(c) {
		var cur corev1.Secret
		if gerr := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: build.InstanceConfigSecretName(name)}, &cur); gerr != nil {
			continue
		}
		if b, ok := cur.Data[build.BootstrapSQLKey]; ok {
			var kept v1.ResolvedSQL
			if json.Unmarshal(b, &kept) == nil {
				return &kept, nil
			}
		}
	}
	return nil, err
}

func describeGetError(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("no %s %q in the Cluster's namespace", kind, name)
	}
	return errors.Join(fmt.Errorf("reading %s %q", kind, name), err)
}
