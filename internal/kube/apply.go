package kube

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	forkedreflect "k8s.io/apimachinery/third_party/forked/golang/reflect"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
)

// ensure makes the object desired names exist as desired describes, writing
// only when something differs: it creates a missing object, and otherwise
// lets mutate copy the fields pgward manages from desired onto the current
// object, merges desired's labels, and patches only if that changed
// anything. The patch carries the resourceVersion it was computed from, so
// a concurrent change makes it fail and the next reconcile start over
// rather than overwrite.
//
// An object of that name that the cluster does not control is never
// adopted: that would let a Cluster take over (and garbage-collect) someone
// else's Secret or Service.
//
// It returns the object as it now is on the server.
func ensure[T client.Object](ctx context.Context, c client.Client, owner *v1.Cluster, desired T, mutate func(current, desired T)) (T, error) {
	// A zero object to read into: decoding into a copy of desired would
	// keep whatever the server's object lacks, and hide the difference.
	current := reflect.New(reflect.TypeOf(desired).Elem()).Interface().(T)
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), current)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, desired); err != nil {
			return desired, fmt.Errorf("creating %s %s: %w", kindOf(desired), desired.GetName(), err)
		}
		return desired, nil
	case err != nil:
		return desired, fmt.Errorf("reading %s %s: %w", kindOf(desired), desired.GetName(), err)
	}
	if !metav1.IsControlledBy(current, owner) {
		return current, fmt.Errorf("%s %s exists and is not controlled by cluster %s: refusing to take it over",
			kindOf(desired), desired.GetName(), owner.Name)
	}
	before := current.DeepCopyObject().(T)
	mutate(current, desired)
	labels := current.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, desired.GetLabels())
	current.SetLabels(labels)
	// Annotations too (spec.inheritedMetadata's, serviceAccountTemplate's),
	// merged like labels: those other controllers add stay.
	if want := desired.GetAnnotations(); len(want) > 0 {
		annotations := current.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		maps.Copy(annotations, want)
		current.SetAnnotations(annotations)
	}
	if semantic.DeepEqual(before, current) {
		return current, nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	if err := c.Patch(ctx, current, patch); err != nil {
		return current, fmt.Errorf("updating %s %s: %w", kindOf(desired), desired.GetName(), err)
	}
	return current, nil
}

// deleteOwned deletes obj if it exists and the cluster controls it.
func deleteOwned(ctx context.Context, c client.Client, owner *v1.Cluster, obj client.Object) error {
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	if !metav1.IsControlledBy(obj, owner) {
		return nil
	}
	if err := c.Delete(ctx, obj, client.Preconditions{UID: new(obj.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	return nil
}

// kindOf names an object's Go type for messages (typed objects read from
// the API carry no kind).
func kindOf(obj client.Object) string {
	return reflect.TypeOf(obj).Elem().Name()
}

// semantic is equality.Semantic, plus bytes compared as a whole: its
// reflection walks a []byte one element at a time, and Secrets (PEM
// certificates, config manifests) made that walk the largest part of a
// healthy Cluster's reconcile.
var semantic = func() conversion.Equalities {
	e := conversion.Equalities{Equalities: forkedreflect.Equalities{}}
	maps.Copy(e.Equalities, equality.Semantic.Equalities)
	if err := e.AddFunc(func(a, b []byte) bool { return bytes.Equal(a, b) }); err != nil {
		panic(err)
	}
	return e
}()
