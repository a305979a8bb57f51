//go:build e2e_kube

// Package kube holds pgward's end-to-end tests on a real Kubernetes: the
// one-node cluster of hack/kube-up.sh (kubelet, containerd, runc, kube-proxy,
// CoreDNS, kube-router), the images of `make images`, and the operator
// installed from dist/install.yaml exactly as a user installs it. Run them
// with `make e2e` (everything) or `make e2e-smoke` (what CI runs on every
// change); both bring the cluster up and down around the tests.
//
// The tests are behind the e2e_kube build tag so that `go test ./...` does
// not need a cluster; without KUBECONFIG they fail instead of skipping.
package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

const (
	operatorNamespace = "pgward-system"
	operandImage      = "pgward/postgresql:15"
)

var (
	repoRoot string
	kubectlB string
	cl       client.Client
)

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// setup connects to the cluster KUBECONFIG names and installs the operator
// from dist/install.yaml, as the README tells users to.
func setup() error {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	kc := os.Getenv("KUBECONFIG")
	if kc == "" {
		return errors.New("KUBECONFIG is not set: start a cluster with `make kube-up` (or run `make e2e`, which does)")
	}
	kubectlB = os.Getenv("PGWARD_KUBECTL")
	if kubectlB == "" {
		p, err := exec.LookPath("kubectl")
		if err != nil {
			return errors.New("no kubectl: set PGWARD_KUBECTL (hack/kube-binaries.sh builds one)")
		}
		kubectlB = p
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return err
	}
	scheme, err := kube.NewScheme()
	if err != nil {
		return err
	}
	if cl, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	return installOperator()
}

func installOperator() error {
	return installOperatorFrom(filepath.Join(repoRoot, "dist", "install.yaml"), "default")
}

// installOperatorFrom applies an install manifest and waits until every
// replica of the operator runs what it describes and its webhooks admit a
// Cluster in probeNS (a namespace it watches).
func installOperatorFrom(manifest, probeNS string) error {
	start := time.Now()
	if out, err := kubectl("apply", "--server-side", "-f", manifest); err != nil {
		return fmt.Errorf("kubectl apply -f %s: %w\n%s", manifest, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := poll(ctx, time.Second, func() error {
		var d appsv1.Deployment
		if err := cl.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "pgward-operator"}, &d); err != nil {
			return err
		}
		// No replica of a previous version left either (a change of the
		// Deployment rolls them).
		if d.Status.ObservedGeneration < d.Generation || d.Status.Replicas != *d.Spec.Replicas ||
			d.Status.AvailableReplicas != *d.Spec.Replicas || d.Status.UpdatedReplicas != *d.Spec.Replicas {
			return fmt.Errorf("operator: %d of %d replicas available and updated (%d running)",
				d.Status.AvailableReplicas, *d.Spec.Replicas, d.Status.Replicas)
		}
		// The webhook answers through its Service: a server-side dry run
		// of a Cluster goes through both webhooks.
		probe := `{"apiVersion":"postgresql.pgward.io/v1","kind":"Cluster","metadata":{"name":"probe","namespace":"` + probeNS + `"},` +
			`"spec":{"instances":1,"storage":{"size":"1Gi"}}}`
		if out, err := kubectlIn(probe, "create", "--dry-run=server", "-f", "-"); err != nil {
			return fmt.Errorf("webhook not answering yet: %s", out)
		}
		return nil
	})
	if err != nil {
		out, _ := kubectl("-n", operatorNamespace, "get", "pods,events", "-o", "wide")
		return fmt.Errorf("%w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "operator installed from %s and serving in %.1fs\n", filepath.Base(manifest), time.Since(start).Seconds())
	return nil
}

// kubectl runs the cluster's kubectl and returns its combined output.
func kubectl(args ...string) (string, error) { return kubectlIn("", args...) }

func kubectlIn(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlB, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// exec runs a command in a pod's container (as the container's user) and
// returns its standard output; stderr is returned in the error.
func podExec(ctx context.Context, ns, pod string, cmd ...string) (string, error) {
	args := append([]string{"-n", ns, "exec", pod, "--"}, cmd...)
	c := exec.CommandContext(ctx, kubectlB, args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.String(), fmt.Errorf("exec in %s/%s %q: %w: %s", ns, pod, cmd, err, stderr.String())
	}
	return stdout.String(), nil
}

func mustExec(t testing.TB, ns, pod string, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := podExec(ctx, ns, pod, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// psqlLocal runs SQL in an instance pod over its Unix socket, as the OS
// user the pod runs as (who may become postgres there, and nothing else).
func psqlLocal(t testing.TB, ns, pod, db, sql string) string {
	t.Helper()
	return strings.TrimSpace(mustExec(t, ns, pod, "psql", "-h", "/run/postgresql", "-U", "postgres", "-d", db,
		"-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c", sql))
}

// poll calls f every interval until it returns nil or ctx ends; the error
// then says what f last said.
func poll(ctx context.Context, interval time.Duration, f func() error) error {
	var last error
	for {
		if last = f(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %w: %w", ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := poll(ctx, 500*time.Millisecond, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// newNamespace makes a namespace that enforces the restricted Pod Security
// Standard, deleted (and waited for) when the test ends.
func newNamespace(t testing.TB, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	ctx := context.Background()
	if err := cl.Create(ctx, ns); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, name)
		}
		w := watchDeparture(t, name)
		start := time.Now()
		_ = cl.Delete(ctx, ns)
		// A pod may take up to its grace period to stop (spec.stopDelay,
		// 180 s by default) and the namespace goes after its pods: the
		// watch says which pod held it when that is slow.
		defer func() { w.report(t, time.Since(start)) }()
		eventually(t, 4*time.Minute, "namespace "+name+" deleted", func() error {
			err := cl.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("namespace %s still exists (%w)", name, err)
		})
	})
	return name
}

// slowDeletion is a namespace deletion worth explaining in the test's log.
const slowDeletion = 30 * time.Second

// departure follows a namespace's pods while it is deleted: when each one
// went, and what its containers logged on the way (kubectl logs -f from
// before the deletion, since a pod's log goes with it).
type departure struct {
	ns     string
	start  time.Time
	cancel context.CancelFunc
	mu     sync.Mutex
	gone   map[string]time.Duration
	logs   map[string]*bytes.Buffer
	done   chan struct{}
}

// watchDeparture starts following ns's pods; call report once the
// namespace is gone (or given up on).
func watchDeparture(t testing.TB, ns string) *departure {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	d := &departure{ns: ns, start: time.Now(), cancel: cancel, gone: map[string]time.Duration{},
		logs: map[string]*bytes.Buffer{}, done: make(chan struct{})}
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Logf("namespace %s: listing pods to follow their deletion: %v", ns, err)
	}
	var streams sync.WaitGroup
	for _, p := range pods.Items {
		var buf bytes.Buffer
		d.logs[p.Name] = &buf
		cmd := exec.CommandContext(ctx, kubectlB, "-n", ns, "logs", "-f", "--tail=0", "--timestamps", "--all-containers", "--prefix", p.Name)
		cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &d.mu, w: &buf}, &lockedWriter{mu: &d.mu, w: &buf}
		if err := cmd.Start(); err != nil {
			t.Logf("follow %s: %v", p.Name, err)
			continue
		}
		streams.Go(func() { _ = cmd.Wait() })
	}
	go func() {
		defer close(d.done)
		left := map[string]bool{}
		for _, p := range pods.Items {
			left[p.Name] = true
		}
		_ = poll(ctx, 250*time.Millisecond, func() error {
			var now corev1.PodList
			if err := cl.List(ctx, &now, client.InNamespace(ns)); err != nil {
				return err
			}
			present := map[string]bool{}
			for _, p := range now.Items {
				present[p.Name] = true
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			for name := range left {
				if !present[name] {
					d.gone[name] = time.Since(d.start)
					delete(left, name)
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("%d pods left", len(left))
			}
			return nil
		})
		streams.Wait()
	}()
	return d
}

// report logs when each pod went (always one line) and, when the deletion
// was slow, the shutdown log of the pods that went last.
func (d *departure) report(t testing.TB, took time.Duration) {
	if took < slowDeletion {
		// The pods are gone: their log streams end by themselves.
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
		}
	}
	d.cancel()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.logs))
	for n := range d.logs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return d.goneAt(names[i]) < d.goneAt(names[j]) })
	var line []string
	for _, n := range names {
		if g, ok := d.gone[n]; ok {
			line = append(line, fmt.Sprintf("%s %.1fs", n, g.Seconds()))
		} else {
			line = append(line, n+" still there")
		}
	}
	t.Logf("namespace %s deleted in %.1fs; pods gone: %s", d.ns, took.Seconds(), strings.Join(line, ", "))
	if took < slowDeletion {
		return
	}
	for _, n := range names {
		if g, ok := d.gone[n]; ok && g < slowDeletion {
			continue
		}
		t.Logf("slow namespace deletion: pod %s logged from the deletion on:\n%s", n, d.logs[n])
	}
}

// goneAt orders pods by departure, those never seen gone last.
func (d *departure) goneAt(name string) time.Duration {
	if g, ok := d.gone[name]; ok {
		return g
	}
	return time.Duration(1 << 62)
}

// lockedWriter serialises writes into a buffer shared with a reader.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// dumpNamespace logs what a failed test leaves behind: the Clusters, pods,
// events, and the operator's and instances' recent logs.
func dumpNamespace(t testing.TB, ns string) {
	for _, args := range [][]string{
		{"-n", ns, "get", "clusters.postgresql.pgward.io", "-o", "yaml"},
		{"-n", ns, "get", "pods,pvc,svc,endpointslices", "-o", "wide", "--show-labels"},
		{"-n", ns, "get", "events", "--sort-by", ".lastTimestamp"},
		{"-n", operatorNamespace, "logs", "-l", "app.kubernetes.io/name=pgward-operator", "--tail", "60", "--prefix"},
		{"-n", ns, "logs", "-l", build.ClusterLabel, "--tail", "40", "--prefix"},
	} {
		out, _ := kubectl(args...)
		t.Logf("kubectl %s\n%s", strings.Join(args, " "), out)
	}
}

// loadSample reads a sample Cluster from config/samples.
func loadSample(t testing.TB, file string) *v1.Cluster {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	var c v1.Cluster
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &c
}

// createCluster creates c in ns through kubectl (so through the admission
// webhooks, as a user would).
func createCluster(t testing.TB, ns string, c *v1.Cluster) {
	t.Helper()
	c.Namespace = ns
	c.APIVersion, c.Kind = v1.APIVersion, v1.Kind
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kubectlIn(string(b), "create", "-f", "-"); err != nil {
		t.Fatalf("kubectl create cluster %s: %v\n%s", c.Name, err, out)
	}
}

// newCluster creates a sample Cluster in ns, changed by edit if not nil,
// and returns it once it is healthy.
func newCluster(t testing.TB, ns, sample string, edit func(*v1.Cluster)) *v1.Cluster {
	t.Helper()
	c := loadSample(t, sample)
	if edit != nil {
		edit(c)
	}
	createCluster(t, ns, c)
	return waitHealthy(t, ns, c.Name, 4*time.Minute)
}

func getCluster(t testing.TB, ns, name string) *v1.Cluster {
	t.Helper()
	var c v1.Cluster
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// waitHealthy waits until the Cluster says every instance is ready and the
// current primary is the target, and returns it.
func waitHealthy(t testing.TB, ns, name string, timeout time.Duration) *v1.Cluster {
	t.Helper()
	var c v1.Cluster
	eventually(t, timeout, "cluster "+name+" healthy", func() error {
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &c); err != nil {
			return err
		}
		return healthy(&c)
	})
	return &c
}

func healthy(c *v1.Cluster) error {
	st := c.Status
	if st.Phase != kube.PhaseHealthy || st.ReadyInstances != c.Spec.Instances || st.CurrentPrimary == "" ||
		st.CurrentPrimary != st.TargetPrimary {
		return fmt.Errorf("phase %q, %d of %d ready, primary %q (target %q)",
			st.Phase, st.ReadyInstances, c.Spec.Instances, st.CurrentPrimary, st.TargetPrimary)
	}
	return nil
}

// clientPod describes a short-lived pod of the operand image (psql, pgward)
// that passes the restricted Pod Security Standard, with secrets mounted
// under /secrets/<name>.
func clientPod(ns, name string, labels map[string]string, script string, secrets ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  new(false),
			EnableServiceLinks:            new(false),
			TerminationGracePeriodSeconds: new(int64(1)),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: new(true), RunAsUser: new(int64(26)), RunAsGroup: new(int64(26)), FSGroup: new(int64(26)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "client", Image: operandImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/bin/sh", "-c", script},
				Env:     []corev1.EnvVar{{Name: "HOME", Value: "/tmp"}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
			}},
			Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	for _, s := range secrets {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "s-" + s, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: s, DefaultMode: new(int32(0o440))},
		}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: "s-" + s, MountPath: "/secrets/" + s, ReadOnly: true})
	}
	return p
}

// runPod runs a client pod to completion and returns its log and whether
// it succeeded.
func runPod(t testing.TB, p *corev1.Pod, timeout time.Duration) (string, bool) {
	t.Helper()
	ctx := context.Background()
	if err := cl.Create(ctx, p); err != nil {
		t.Fatalf("pod %s: %v", p.Name, err)
	}
	defer func() { _ = cl.Delete(ctx, p, client.GracePeriodSeconds(0)) }()
	var phase corev1.PodPhase
	eventually(t, timeout, "pod "+p.Name+" finished", func() error {
		var cur corev1.Pod
		if err := cl.Get(ctx, client.ObjectKeyFromObject(p), &cur); err != nil {
			return err
		}
		phase = cur.Status.Phase
		if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			return nil
		}
		return fmt.Errorf("phase %s", phase)
	})
	out, _ := kubectl("-n", p.Namespace, "logs", p.Name)
	return out, phase == corev1.PodSucceeded
}

// pgClientScript prefixes script with the environment libpq needs to reach
// the cluster as the application user of secret app: the CA to verify the
// server with (sslmode=verify-full), and the password from the secret's
// pgpass line, copied to a 0600 file as libpq requires and widened to any
// host so that the -ro and -r Services match it too. No password on a
// command line.
func pgClientScript(app, script string) string {
	return fmt.Sprintf(`set -e
s=/secrets/%[1]s
sed 's/^[^:]*:/*:/' $s/pgpass > /tmp/pgpass
chmod 0600 /tmp/pgpass
export PGPASSFILE=/tmp/pgpass PGSSLMODE=verify-full PGSSLROOTCERT=$s/ca.crt PGCONNECT_TIMEOUT=5
export PGUSER="$(cat $s/username)" PGDATABASE="$(cat $s/dbname)"
%[2]s`, app, script)
}

func objectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
