//go:build e2e_kube

package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// plainImage is PostgreSQL 15 without pgward (hack/image plain): the
// operand's root filesystem alone, standing for a user's image.
const plainImage = "pgward.local/postgresql-plain:15"

// importPlainImage builds plainImage from the cached root filesystem of
// `make images` and imports it into the node's containerd: no registry, no
// network.
func importPlainImage(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...) // #nosec G204 G702 -- the repository's own tools
		cmd.Dir = repoRoot
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				stderr = ee.Stderr
			}
			t.Fatalf("%s %v: %v\n%s%s", name, args, err, out, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	rootfs := run(filepath.Join(repoRoot, "hack", "rootfs.sh"))
	epoch := run("git", "log", "-1", "--format=%ct")
	tarball := filepath.Join(t.TempDir(), "plain.tar")
	run(filepath.Join(repoRoot, "bin", "image"), "plain", "-out", tarball, "-rootfs", rootfs, "-epoch", epoch)
	dir := os.Getenv("PGWARD_KUBE_DIR")
	if dir == "" {
		dir = "/var/lib/pgward-kube"
	}
	run("ctr", "--address", filepath.Join(dir, "containerd", "containerd.sock"), "-n", "k8s.io", "images", "import", tarball)
}

// TestUserImageWithoutPgward runs a Cluster on an image that has
// PostgreSQL 15 and no pgward: each pod's init container (pgward's image)
// copies the pgward binary into an emptyDir, from which the postgres
// container runs it as PID 1, as uid 26, under the restricted Pod Security
// Standard. An additional Service (spec.managed.services) reaches the
// primary with verify-full TLS; the disabled -r Service does not exist.
// Changing spec.imageName rolls the pods onto pgward's own image, one at a
// time, and the data stays.
func TestUserImageWithoutPgward(t *testing.T) {
	importPlainImage(t)
	ns := newNamespace(t, "e2e-userimage")
	ctx := context.Background()
	start := time.Now()
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "plain"
		c.Spec.Instances = 2
		c.Spec.ImageName = plainImage
		c.Spec.ImagePullPolicy = "Never" // imported, in no registry
		c.Spec.Managed = &v1.ManagedConfiguration{Services: &v1.ManagedServices{
			DisabledDefaultServices: []string{"r"},
			Additional: []v1.ManagedService{{SelectorType: "rw", ServiceTemplate: v1.ServiceTemplateSpec{
				ObjectMeta: v1.ServiceMetadata{Name: "plain-extra", Labels: map[string]string{"team": "db"}},
			}}},
		}}
	})
	t.Logf("healthy on %s in %s", plainImage, time.Since(start).Round(time.Second))
	primary := c.Status.CurrentPrimary
	for _, name := range c.Status.InstanceNames {
		var pod corev1.Pod
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
			t.Fatal(err)
		}
		if img := pod.Spec.Containers[0].Image; img != plainImage {
			t.Errorf("%s runs %s", name, img)
		}
		if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Image != operandImage {
			t.Errorf("%s init containers %+v", name, pod.Spec.InitContainers)
		}
		// The image has no pgward of its own: what runs is the copy.
		if out, err := podExecErr(ns, name, "test", "-e", "/usr/local/bin/pgward"); err == nil {
			t.Errorf("%s: the image has /usr/local/bin/pgward (%s): not the image wanted", name, out)
		}
		found := false
		for _, p := range containerProcs(t, &pod, "postgres") {
			cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/cmdline")
			if err != nil {
				continue
			}
			args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
			if args[0] == build.BinaryPath {
				found = true
				if p.status["Uid"] != "26" || p.status["NoNewPrivs"] != "1" || p.status["CapEff"] != "0000000000000000" || !p.readOnlyRoot {
					t.Errorf("%s: %s runs with %v, read-only root %v", name, build.BinaryPath, p.status, p.readOnlyRoot)
				}
			}
		}
		if !found {
			t.Errorf("%s: no process runs %s", name, build.BinaryPath)
		}
	}
	psqlLocal(t, ns, primary, "app", "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")

	// The additional Service selects the primary; its name is in the
	// server certificate, so verify-full works through it.
	out, ok := runPod(t, clientPod(ns, "via-extra", nil, pgClientScript("plain-app",
		`psql -h plain-extra -X -A -t -c "SELECT pg_is_in_recovery()"`), "plain-app"), 2*time.Minute)
	if !ok || strings.TrimSpace(out) != "f" {
		t.Errorf("through plain-extra: ok %v, %q", ok, out)
	}
	if out, err := kubectl("-n", ns, "get", "service", "plain-r"); err == nil {
		t.Errorf("plain-r exists though disabled: %s", out)
	}

	// A new image: the planner rolls it, the replica first, then the
	// primary after a switchover.
	start = time.Now()
	mustKubectl(t, "-n", ns, "patch", "clusters.postgresql.pgward.io", "plain", "--type", "merge",
		"-p", fmt.Sprintf(`{"spec":{"imageName":%q,"imagePullPolicy":"IfNotPresent"}}`, operandImage))
	eventually(t, 6*time.Minute, "pods on "+operandImage, func() error {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: "plain"}); err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image != operandImage {
				return fmt.Errorf("%s still runs %s", p.Name, p.Spec.Containers[0].Image)
			}
		}
		if len(pods.Items) != 2 {
			return fmt.Errorf("%d pods", len(pods.Items))
		}
		return healthy(getCluster(t, ns, "plain"))
	})
	c = getCluster(t, ns, "plain")
	t.Logf("rolled onto %s in %s; primary %s (was %s)", operandImage, time.Since(start).Round(time.Second), c.Status.CurrentPrimary, primary)
	if got := psqlLocal(t, ns, c.Status.CurrentPrimary, "app", "SELECT x FROM kept"); got != "42" {
		t.Errorf("after the rolling update: %q", got)
	}
}
