package v1

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// FencedInstancesAnnotation is CloudNativePG's fencing request: a JSON list
// of the Cluster's instance names, or ["*"] for all of them. A fenced
// instance has PostgreSQL shut down (cleanly) while its instance manager
// keeps running and reports it fenced; a fenced primary is not failed
// over. Removing a name (or the annotation) starts the instance again.
const FencedInstancesAnnotation = "cnpg.io/fencedInstances"

// HibernationAnnotation is CloudNativePG's hibernation request, "on" or
// "off": on shuts every instance down cleanly and keeps the data (on
// Kubernetes the pods are deleted, the PVCs kept); off brings the cluster
// back with the same data and primary.
const HibernationAnnotation = "cnpg.io/hibernation"

// RestartAnnotation asks the Kubernetes operator for a restart of
// PostgreSQL: "*" rolls through every instance (replicas one at a time,
// then a switchover, as for settings that need a restart), an instance
// name restarts that one. The operator removes it once taken
// (`kubectl pgward restart`); locally, `pgward local restart` does it.
const RestartAnnotation = "pgward.io/restart"

// ReloadAnnotation asks the Kubernetes operator to apply the configuration
// now on every instance (`kubectl pgward reload`): its value names the
// request (the time it was made, as `kubectl pgward reload` sets it), each
// instance reports the outcome under that name, and a new value is a new
// request. It stays on the Cluster, as kubectl's restartedAt does; locally,
// `pgward local reload` does it.
const ReloadAnnotation = "pgward.io/reloadedAt"

// FenceAll in the fencing list fences every instance.
const FenceAll = "*"

// Fenced returns the instance names the fencing annotation lists (FenceAll
// for every instance), nil when there is none.
func (c *Cluster) Fenced() ([]string, error) {
	v, ok := c.Annotations[FencedInstancesAnnotation]
	if !ok || strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var names []string
	if err := json.Unmarshal([]byte(v), &names); err != nil {
		return nil, fmt.Errorf("a JSON list of instance names (or [%q]) is expected: %w", FenceAll, err)
	}
	for _, n := range names {
		if n != FenceAll && !c.isInstanceName(n) {
			return nil, fmt.Errorf("%q is not an instance of cluster %s (%s-1 to %s-%d, or %q)", n, c.Name, c.Name, c.Name, c.Spec.Instances, FenceAll)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Hibernated reports whether the hibernation annotation is "on".
func (c *Cluster) Hibernated() (bool, error) {
	switch v := c.Annotations[HibernationAnnotation]; v {
	case "on":
		return true, nil
	case "", "off":
		return false, nil
	default:
		return false, fmt.Errorf("%q: on or off is expected", v)
	}
}

// RestartRequest returns the pgward.io/restart request (FenceAll or an
// instance name) and whether there is one.
func (c *Cluster) RestartRequest() (string, bool, error) {
	v, ok := c.Annotations[RestartAnnotation]
	if ok && v != FenceAll && !c.isInstanceName(v) {
		return "", true, fmt.Errorf("%q (every instance, rolling) or an instance of cluster %s is expected", FenceAll, c.Name)
	}
	return v, ok, nil
}

// ReloadRequest returns the pgward.io/reloadedAt request and whether there
// is one. Its value goes to the instances, which echo it in their status:
// 1 to 64 printable ASCII characters, no spaces.
func (c *Cluster) ReloadRequest() (string, bool, error) {
	v, ok := c.Annotations[ReloadAnnotation]
	if !ok {
		return "", false, nil
	}
	if v == "" || len(v) > 64 {
		return "", true, errors.New("1 to 64 characters are expected (kubectl pgward reload sets the time of the request)")
	}
	for _, r := range v {
		if r < '!' || r > '~' {
			return "", true, errors.New("printable ASCII without spaces is expected (kubectl pgward reload sets the time of the request)")
		}
	}
	return v, true, nil
}

// isInstanceName reports whether n is one of c's instances (both runtimes
// name them <cluster>-<i>, i from 1).
func (c *Cluster) isInstanceName(n string) bool {
	rest, ok := strings.CutPrefix(n, c.Name+"-")
	if !ok {
		return false
	}
	i, err := strconv.Atoi(rest)
	return err == nil && i >= 1 && i <= c.Spec.Instances && strconv.Itoa(i) == rest
}

// validateDayTwoAnnotations checks the fencing and hibernation requests.
func (c *Cluster) validateDayTwoAnnotations(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if _, err := c.Fenced(); err != nil {
		errs = append(errs, field.Invalid(path.Child("annotations").Key(FencedInstancesAnnotation), c.Annotations[FencedInstancesAnnotation], err.Error()))
	}
	if _, err := c.Hibernated(); err != nil {
		errs = append(errs, field.Invalid(path.Child("annotations").Key(HibernationAnnotation), c.Annotations[HibernationAnnotation], err.Error()))
	}
	if _, _, err := c.RestartRequest(); err != nil {
		errs = append(errs, field.Invalid(path.Child("annotations").Key(RestartAnnotation), c.Annotations[RestartAnnotation], err.Error()))
	}
	if _, _, err := c.ReloadRequest(); err != nil {
		errs = append(errs, field.Invalid(path.Child("annotations").Key(ReloadAnnotation), c.Annotations[ReloadAnnotation], err.Error()))
	}
	return errs
}
