package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube/build"
)

// ReloadClient asks instance managers to apply their configuration now.
// MTLSInstances is one; a client without it (a test's simulation) gets no
// reload requests.
type ReloadClient interface {
	Reload(ctx context.Context, in Instance, req instanceapi.ReloadRequest) error
}

var _ ReloadClient = (*MTLSInstances)(nil)

// Reload implements ReloadClient.
func (m *MTLSInstances) Reload(ctx context.Context, in Instance, req instanceapi.ReloadRequest) error {
	c, err := m.client(in)
	if err != nil {
		return err
	}
	if err := c.Reload(ctx, in.Addr, req); err != nil {
		return fmt.Errorf("asking %s to reload: %w", in.Name, err)
	}
	return nil
}

// reloadTargets decides which instances still need the reload request id:
// those whose PostgreSQL runs (one that is down reads the configuration
// when it starts) and that have not reported this request, done or under
// way. Pure, so that it is table-tested.
func reloadTargets(id string, obs []observation) []string {
	var out []string
	for _, o := range obs {
		st := o.wire
		if st == nil || !st.PostmasterRunning {
			continue
		}
		if st.Reload != nil && st.Reload.ID == id {
			continue
		}
		out = append(out, o.plan.Name)
	}
	return out
}

// requestReloads passes the Cluster's pgward.io/reloadedAt request to
// every instance that needs it. Each instance's configuration reaches its
// pod through its config Secret, mounted as a volume, which the kubelet
// refreshes when it syncs the pod: a change to the pod (the same
// annotation on it) makes it sync at once rather than at its next periodic
// sync, up to a minute or more away. The request names the digest of the
// manifest the Secret holds, and the instance waits until its file has it
// before it reloads. A failure is logged and retried at the next reconcile.
func (r *ClusterReconciler) requestReloads(ctx context.Context, c *v1.Cluster, obs []observation, pods map[string]*corev1.Pod, tlsm *tlsMaterial) {
	id, ok, err := c.ReloadRequest()
	if !ok || err != nil {
		return // the webhook refuses a bad value; one that got in is not passed on
	}
	rc, ok := r.Instances.(ReloadClient)
	if !ok {
		return
	}
	logger := log.FromContext(ctx)
	for _, name := range reloadTargets(id, obs) {
		pod := pods[name]
		if pod == nil {
			continue
		}
		if err := r.annotatePod(ctx, pod, v1.ReloadAnnotation, id); err != nil {
			logger.Info("reload request: annotating the pod", "instance", name, "error", err.Error())
			continue
		}
		digest := r.manifestOf(c, name)
		if digest == "" {
			continue // not written in this operator's life yet: the next reconcile
		}
		rctx, cancel := context.WithTimeout(ctx, r.Timing.RequestTimeout)
		err := rc.Reload(rctx, r.instanceFor(c, pod, tlsm), instanceapi.ReloadRequest{ID: id, ManifestSHA256: digest})
		cancel()
		if err != nil {
			logger.Info("reload request", "instance", name, "error", err.Error())
			continue
		}
		logger.Info("reload requested", "instance", name, "request", id)
	}
}

// noteManifest records the digest of the manifest name's config Secret was
// just written with: what a reload request must wait for. Not read back
// from the Secret, which the operator's cache may show as it was before
// this reconcile wrote it.
func (r *ClusterReconciler) noteManifest(c *v1.Cluster, name string, manifest []byte) {
	sum := sha256.Sum256(manifest)
	key := client.ObjectKeyFromObject(c).String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.manifests == nil {
		r.manifests = map[string]map[string]string{}
	}
	if r.manifests[key] == nil {
		r.manifests[key] = map[string]string{}
	}
	r.manifests[key][name] = hex.EncodeToString(sum[:])
}

// manifestsOf is plan.Spec.Manifests: each instance's manifest as this
// operator last wrote it into its config Secret. A rolling update waits
// until an instance reports it loaded (its kubelet refreshes the Secret's
// volume at its own next sync). Empty until this operator has written
// them, which it does before every planner step (ensureInstances).
func (r *ClusterReconciler) manifestsOf(c *v1.Cluster) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.manifests[client.ObjectKeyFromObject(c).String()])
}

func (r *ClusterReconciler) manifestOf(c *v1.Cluster, name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifests[client.ObjectKeyFromObject(c).String()][name]
}

// ManifestAnnotation on a pod is the digest of the manifest its config
// Secret holds. The kubelet refreshes a Secret's volume when it syncs the
// pod, which a change to the pod makes happen at once; otherwise at its
// periodic sync, a minute or more away (measured: a rolling update on real
// pods took 77-96 s of waiting for it). With the annotation, a manifest
// change (a parameter, pg_hba, a restart-needing setting a rolling update
// waits for each instance to load) reaches the instance manager within
// seconds.
const ManifestAnnotation = "pgward.io/manifest"

// annotatePod sets one annotation on pod when it differs. Each caller
// puts there a digest of what reaches the pod through a projected volume
// (its manifest, its role secrets, its declared databases) or a reload
// request: a change to a pod makes its kubelet sync it, and refresh those
// volumes, at once rather than at its periodic sync, a minute or more
// away. A pod already gone is not an error.
func (r *ClusterReconciler) annotatePod(ctx context.Context, pod *corev1.Pod, key, value string) error {
	if pod == nil || pod.Annotations[key] == value {
		return nil
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, pod.DeepCopy(), client.RawPatch(types.MergePatchType, b)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("annotating pod %s with %s: %w", pod.Name, key, err)
	}
	return nil
}

// shortDigest is the annotation value standing for what: the first 8 bytes
// of its SHA-256, in hex.
func shortDigest(what string) string {
	sum := sha256.Sum256([]byte(what))
	return hex.EncodeToString(sum[:8])
}

// RequestReload sets the Cluster's pgward.io/reloadedAt to a new request
// (`kubectl pgward reload`) and returns its name.
func RequestReload(ctx context.Context, cl client.Client, key types.NamespacedName, now time.Time) (string, error) {
	id := now.UTC().Format(time.RFC3339Nano)
	err := patchAnnotations(ctx, cl, key, func(c *v1.Cluster) error {
		c.Annotations[v1.ReloadAnnotation] = id
		_, _, err := c.ReloadRequest()
		return err
	})
	return id, err
}

// WaitReload waits, as `kubectl pgward reload` does, until every instance
// of the Cluster whose PostgreSQL runs reports request id done, asking
// each on its status port through fw (as `status` does), and returns what
// each said. An instance whose pod or PostgreSQL is not running is
// skipped: it reads the configuration when it starts. At timeout the
// outcomes say which instances did not answer.
func WaitReload(ctx context.Context, cl client.Client, fw PodForwarder, key types.NamespacedName, id string, timeout time.Duration) ([]instanceapi.ReloadOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var c v1.Cluster
	if err := cl.Get(ctx, key, &c); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", key, err)
	}
	tlsm, err := pluginTLS(ctx, cl, &c)
	if err != nil {
		return nil, err
	}
	names := c.Status.InstanceNames
	if len(names) == 0 {
		names = build.InstanceNames(&c)
	}
	outcomes := make([]instanceapi.ReloadOutcome, len(names))
	for i, n := range names {
		outcomes[i].Instance = n
	}
	ask := func(i int) *instanceapi.Status {
		o := &outcomes[i]
		o.Skipped = ""
		var pod corev1.Pod
		if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: o.Instance}, &pod); err != nil {
			o.Skipped = "no pod: " + err.Error()
			return nil
		}
		if pod.Status.Phase != corev1.PodRunning {
			o.Skipped = "the pod is " + orUnknown(string(pod.Status.Phase))
			return nil
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		addr, stop, err := fw.Forward(actx, c.Namespace, pod.Name, build.StatusPort)
		if err != nil {
			o.Err = err.Error()
			return nil
		}
		defer stop()
		st, _, err := statusOver(actx, addr, build.ServerName(&c), tlsm)
		if err != nil {
			o.Err = err.Error()
			return nil
		}
		o.Err = ""
		if !st.PostmasterRunning {
			o.Skipped = "PostgreSQL is not running there (" + instanceapi.StateOf(st) + ")"
			return nil
		}
		return st
	}
	asked := map[int]bool{}
	for i := range outcomes {
		if st := ask(i); st != nil || outcomes[i].Err != "" {
			asked[i] = true
		}
	}
	instanceapi.WaitReloads(ctx, id, time.Second, func() map[int]*instanceapi.Status {
		out := map[int]*instanceapi.Status{}
		for i := range asked {
			if instanceapi.ReloadDone(&instanceapi.Status{Reload: outcomes[i].Result}, id) {
				out[i] = &instanceapi.Status{Reload: outcomes[i].Result}
				continue
			}
			out[i] = ask(i)
		}
		return out
	}, outcomes)
	return outcomes, nil
}
