package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// ConditionManagedRoles says whether spec.managed.roles is what the
// primary has, or why not: a password secret that does not exist or lacks
// its password (the operator reads them), or what the primary's instance
// manager, which reconciles the roles, reported.
const ConditionManagedRoles = "ManagedRoles"

// roleSecretProblems reads the password secrets spec.managed.roles names
// (directly from the API server: they carry no pgward label) and says what
// is wrong with each, by role; nothing about a role that is to be absent.
//
// versions identifies what the secrets hold (their names and
// resourceVersions, no value): markRoleSecrets passes a change on to the
// pods.
func (r *ClusterReconciler) roleSecretProblems(ctx context.Context, c *v1.Cluster) (out []string, versions string, err error) {
	var seen []string
	for i, role := range c.Spec.Managed.Roles {
		if role.PasswordSecret == nil || role.Ensure == "absent" {
			continue
		}
		where := fmt.Sprintf("spec.managed.roles[%d] (%s): passwordSecret %q", i, role.Name, role.PasswordSecret.Name)
		var s corev1.Secret
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: role.PasswordSecret.Name}, &s)
		switch {
		case apierrors.IsNotFound(err):
			out = append(out, where+": no such Secret in the Cluster's namespace")
		case err != nil:
			return nil, "", fmt.Errorf("%s: %w", where, err)
		case len(s.Data["password"]) == 0:
			out = append(out, where+": the Secret has no key \"password\"")
		case s.Data["username"] != nil && string(s.Data["username"]) != role.Name:
			// The value is a user name, not a secret.
			out = append(out, fmt.Sprintf("%s: the Secret is for user %q", where, s.Data["username"]))
		}
		if err == nil && !slices.Contains(seen, s.Name) {
			seen = append(seen, s.Name)
			versions += s.Name + "=" + s.ResourceVersion + ";"
		}
	}
	return out, versions, nil
}

// RoleSecretsAnnotation on a pod is a digest of the declared managed roles
// and of the version of their password secrets the operator last saw. The
// kubelet refreshes a pod's projected secrets (the manifest and the
// passwords) when it syncs the pod, which a change to the pod makes happen
// at once rather than at its next periodic sync, a minute or more away: a
// role declared, dropped, or its password changed in its Secret reaches
// the primary's instance manager, which applies it, within seconds.
const RoleSecretsAnnotation = "pgward.io/roleSecrets" // #nosec G101 -- an annotation name, no credential

// markRoleSecrets puts the digest of what on each pod that does not have
// it yet.
func (r *ClusterReconciler) markRoleSecrets(ctx context.Context, what string, pods map[string]*corev1.Pod) error {
	digest := shortDigest(what)
	for _, pod := range pods {
		if err := r.annotatePod(ctx, pod, RoleSecretsAnnotation, digest); err != nil {
			return err
		}
	}
	return nil
}

// managedRolesCondition is ConditionManagedRoles from the password
// secrets' problems and the primary's report (primaryErr, "" when it
// reconciled them; answered is false when the primary did not answer).
func managedRolesCondition(problems []string, primaryErr string, answered bool, generation int64) metav1.Condition {
	cond := metav1.Condition{Type: ConditionManagedRoles, ObservedGeneration: generation}
	switch {
	case len(problems) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, "PasswordSecretUnavailable"
		cond.Message = strings.Join(problems, "; ") + " (create it, with keys username and password: the pods pick it up without a restart)"
	case !answered:
		cond.Status, cond.Reason = metav1.ConditionUnknown, "PrimaryUnavailable"
		cond.Message = "the primary's instance manager, which reconciles the roles, did not answer"
	case primaryErr != "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "NotReconciled", "the primary retries: "+primaryErr
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, "Reconciled"
		cond.Message = "the primary has the declared roles, and repairs them when changed by hand"
	}
	if len(cond.Message) > 4096 {
		cond.Message = cond.Message[:4096]
	}
	return cond
}

// setManagedRolesCondition sets ConditionManagedRoles on conds (removes it
// without managed roles) and publishes a warning Event when it is False,
// at most every ten minutes for the same message; it passes a change of
// the password secrets on to the pods (markRoleSecrets).
func (r *ClusterReconciler) setManagedRolesCondition(ctx context.Context, c *v1.Cluster, primary string, obs []observation, pods map[string]*corev1.Pod, conds *[]metav1.Condition) error {
	if c.Spec.Managed == nil || len(c.Spec.Managed.Roles) == 0 {
		meta.RemoveStatusCondition(conds, ConditionManagedRoles)
		return nil
	}
	problems, versions, err := r.roleSecretProblems(ctx, c)
	if err != nil {
		return err
	}
	declared, err := json.Marshal(c.Spec.Managed.Roles)
	if err != nil {
		return fmt.Errorf("encoding spec.managed.roles: %w", err)
	}
	if err := r.markRoleSecrets(ctx, versions+string(declared), pods); err != nil {
		return err
	}
	answered, primaryErr := false, ""
	for _, o := range obs {
		if o.wire != nil && o.plan.Name == primary {
			answered, primaryErr = true, o.wire.RolesError
		}
	}
	cond := managedRolesCondition(problems, primaryErr, answered, c.Generation)
	if cond.Status == metav1.ConditionFalse && r.Recorder != nil && r.firstIn(client.ObjectKeyFromObject(c).String()+" roles "+cond.Message, 10*time.Minute) {
		r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, cond.Reason, "ManagedRoles", "%s", cond.Message)
	}
	meta.SetStatusCondition(conds, cond)
	return nil
}

// refuseRoleSecretChanges refuses naming, once the cluster exists, a
// password secret its pods do not project: a pod's volumes are fixed when
// it is created (the operator does not replace running pods for a new
// one yet), so its instance manager would never see the password. Roles
// without a password, or taking it from a secret already named, can be
// added; the secrets' content can change at any time.
func refuseRoleSecretChanges(o, n *v1.Cluster) field.ErrorList {
	had := build.RoleSecretNames(o)
	if n.Spec.Managed == nil {
		return nil
	}
	named := "none"
	if len(had) > 0 {
		named = strings.Join(had, ", ")
	}
	var errs field.ErrorList
	for i, role := range n.Spec.Managed.Roles {
		if role.PasswordSecret != nil && !slices.Contains(had, role.PasswordSecret.Name) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "managed", "roles").Index(i).Child("passwordSecret"),
				fmt.Sprintf("the pods project the password secrets named when they were created (%s): take the password from one of those, or declare the role when creating the Cluster; the operator does not replace running pods for a new secret yet",
					named)))
		}
	}
	return errs
}
