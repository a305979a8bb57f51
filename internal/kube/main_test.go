package kube_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// The tests run against a real kube-apiserver and etcd, built from source
// by hack/kube-binaries.sh (KUBEBUILDER_ASSETS names their directory),
// plus a kube-controller-manager running only the garbage collector and PVC
// protection (controllermanager_test.go), so deleting a Cluster really
// deletes what it owns. No kubelet runs: pods are admitted and stored but never start, so the
// instances' statuses are simulated (see failover_test.go).
var (
	env      *envtest.Environment
	adminCfg *rest.Config
	admin    client.Client // system:masters
	operator client.Client // only the operator's generated RBAC
	opCfg    *rest.Config
	opUser   *envtest.AuthenticatedUser
	scheme   *runtime.Scheme
)

// operatorNamespace is where the operator runs in the shipped manifests.
const operatorNamespace = "pgward-system"

// kubeVersion is what hack/kube-binaries.sh builds.
const kubeVersion = "v1.37.2"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	assets, err := kubeAssets()
	if err != nil {
		// Missing binaries fail the tests rather than skipping them: an
		// operator test that silently did not run proves nothing.
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	scheme, err = kube.NewScheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	snapCRDs, err := snapshotCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{filepath.Join("..", "..", "config", "crd", "bases")}, snapCRDs...),
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	// Room for the Services of the benchmark's 100 Clusters (envtest's
	// default range has 254 addresses).
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	adminCfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting kube-apiserver and etcd:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	if err := setupClients(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	kcm, err := startControllerManager(assets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer kcm.stop()
	return m.Run()
}

// snapshotCRDs are the VolumeSnapshot CRDs of the external-snapshotter
// client module pgward builds with (the versions a CSI snapshotter
// installs), so volume snapshot backups and recoveries run against the
// real API server's validation of them. No snapshot controller runs: the
// tests mark snapshots ready themselves.
func snapshotCRDs() ([]string, error) {
	out, err := exec.CommandContext(context.Background(), "go", "list", "-m", "-f", "{{.Dir}}", "github.com/kubernetes-csi/external-snapshotter/client/v8").Output()
	if err != nil {
		return nil, fmt.Errorf("locating the external-snapshotter client module (its CRDs): %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd")
	var files []string
	for _, f := range []string{"volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots"} {
		files = append(files, filepath.Join(dir, "snapshot.storage.k8s.io_"+f+".yaml"))
	}
	return files, nil
}

// kubeAssets finds kube-apiserver, etcd, kubectl and
// kube-controller-manager: KUBEBUILDER_ASSETS if
// set, else hack/kube-binaries.sh's cache.
func kubeAssets() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		cache := os.Getenv("PGWARD_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			cache = filepath.Join(home, ".cache", "pgward")
		}
		dir = filepath.Join(cache, "kube", kubeVersion)
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil { // #nosec G703 -- the developer's own asset directory
			return "", fmt.Errorf("no %s in %s: build the control plane with hack/kube-binaries.sh (make test does) and set KUBEBUILDER_ASSETS to the directory it prints", b, dir)
		}
	}
	return dir, nil
}

// setupClients makes the admin client and a client for a user that holds
// exactly the operator's generated RBAC (config/rbac/role.yaml), so every
// test of the reconciler also proves those permissions suffice.
func setupClients() error {
	var err error
	if admin, err = client.New(adminCfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}
	if err := admin.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating %s: %w", operatorNamespace, err)
	}
	roles, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		return err
	}
	const user = "system:serviceaccount:pgward-system:pgward-operator"
	for _, doc := range strings.Split(string(roles), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		var probe struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &probe); err != nil {
			return err
		}
		subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
		switch probe.Kind {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict([]byte(doc), &cr); err != nil {
				return err
			}
			if err := admin.Create(ctx, &cr); err != nil {
				return err
			}
			crb := &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: cr.Name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
				Subjects:   subject,
			}
			if err := admin.Create(ctx, crb); err != nil {
				return err
			}
		case "Role":
			var ro rbacv1.Role
			if err := yaml.UnmarshalStrict([]byte(doc), &ro); err != nil {
				return err
			}
			if err := admin.Create(ctx, &ro); err != nil {
				return err
			}
			rb := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: ro.Name, Namespace: ro.Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ro.Name},
				Subjects:   subject,
			}
			if err := admin.Create(ctx, rb); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %s in config/rbac/role.yaml", probe.Kind)
		}
	}
	opUser, err = env.AddUser(envtest.User{Name: user}, adminCfg)
	if err != nil {
		return fmt.Errorf("adding the operator's user: %w", err)
	}
	opCfg = opUser.Config()
	operator, err = client.New(opCfg, client.Options{Scheme: scheme})
	return err
}

// newNamespace creates a namespace for one test; restricted labels it to
// enforce the restricted Pod Security Standard.
func newNamespace(t *testing.T, restricted bool) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-")
	ns := namespaceObj(name)
	if restricted {
		ns.Labels = map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		}
	}
	if err := admin.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

func namespaceObj(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// sampleCluster is config/samples/cluster-example.yaml in namespace ns,
// defaulted as the webhook would.
func sampleCluster(t *testing.T, ns string) *v1.Cluster {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "cluster-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := v1.LoadAndValidate(data)
	if err != nil {
		t.Fatal(err)
	}
	c.Namespace = ns
	return c
}

// testOptions are the instance settings the tests use.
func testOptions() build.Options {
	o := kube.DefaultConfig().Build
	o.OperatorNamespace = operatorNamespace
	return o
}

// newReconciler returns a reconciler acting with the operator's RBAC and
// reading straight from the API server (no cache), so each Reconcile call
// sees the result of the previous one.
func newReconciler(instances kube.InstanceClient, now func() time.Time) *kube.ClusterReconciler {
	return &kube.ClusterReconciler{
		Client:    operator,
		APIReader: operator,
		Instances: instances,
		Options:   testOptions(),
		Timing:    kube.DefaultTiming(),
		Now:       now,
	}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
