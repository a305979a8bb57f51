package build

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var testOpts = Options{
	Image:             "pgward/postgresql:15",
	ImagePullPolicy:   "IfNotPresent",
	PGBinDir:          "/usr/lib/postgresql/15/bin",
	OperatorNamespace: "pgward-system",
	ClusterDomain:     "cluster.local",
	SelfFenceSeconds:  30,
}

// sample loads the repository's sample manifest, placed in namespace db.
func sample(t *testing.T) *v1.Cluster {
	t.Helper()
	data, err := os.ReadFile("../../../config/samples/cluster-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := v1.LoadAndValidate(data)
	if err != nil {
		t.Fatal(err)
	}
	c.Namespace = "db"
	c.UID = "0b8c3f6e-8f0f-4d7e-9d34-4a3f6f1c2d10"
	return c
}

// everything is the sample with superuser access, extra DNS names and
// NetworkPolicies on.
func everything(t *testing.T) *v1.Cluster {
	c := sample(t)
	c.Spec.EnableSuperuserAccess = new(true)
	c.Spec.Certificates = &v1.CertificatesConfiguration{ServerAltDNSNames: []string{"db.example.com"}}
	c.Spec.StorageConfiguration.StorageClass = new("fast-ssd")
	c.Spec.NetworkPolicy = &v1.NetworkPolicyConfiguration{Enabled: true, Clients: []v1.NetworkPolicyPeer{
		{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}},
	}, MetricsClients: []v1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
	}}}
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	return c
}

// fakeKeyPair stands in for issued material: the builders only wrap it.
func fakeKeyPair(name string) *pki.KeyPair {
	return &pki.KeyPair{CertPEM: []byte(name + " CERT PEM\n"), KeyPEM: []byte(name + " KEY PEM\n")}
}

// allObjects builds every object of c, in a fixed order.
func allObjects(t *testing.T, c *v1.Cluster) []runtime.Object {
	t.Helper()
	n := Secrets(c)
	objs := []runtime.Object{
		CASecret(c, fakeKeyPair("ca")),
		TLSSecret(c, n.ServerTLS, "server", fakeKeyPair("server"), []byte("ca CERT PEM\n")),
		TLSSecret(c, n.Replication, "replication", fakeKeyPair("replication"), []byte("ca CERT PEM\n")),
		TLSSecret(c, n.Controller, "controller", fakeKeyPair("controller"), []byte("ca CERT PEM\n")),
		TLSSecret(c, n.Metrics, "metrics", fakeKeyPair("metrics"), []byte("ca CERT PEM\n")),
		CredentialsSecret(c, n.App, map[string][]byte{"username": []byte("app"), "password": []byte("redacted")}),
	}
	for _, s := range Services(c, InstanceName(c, 1)) {
		objs = append(objs, s)
	}
	for _, p := range PodDisruptionBudgets(c) {
		objs = append(objs, p)
	}
	objs = append(objs, ServiceAccount(c), Role(c), RoleBinding(c))
	for _, np := range NetworkPolicies(c, testOpts) {
		objs = append(objs, np)
	}
	for i, name := range InstanceNames(c) {
		cfg, err := InstanceConfigSecret(c, name, InstanceName(c, 1), testOpts)
		if err != nil {
			t.Fatal(err)
		}
		pvc, err := PVC(c, name)
		if err != nil {
			t.Fatal(err)
		}
		role := RoleReplica
		if i == 0 {
			role = RolePrimary
		}
		objs = append(objs, cfg, pvc, Pod(c, name, role, testOpts))
	}
	return objs
}

func TestGolden(t *testing.T) {
	for name, c := range map[string]*v1.Cluster{"sample": sample(t), "everything": everything(t)} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			for _, o := range allObjects(t, c) {
				// Secrets are shown as text so the golden files can be
				// reviewed (config.json above all).
				if sec, ok := o.(*corev1.Secret); ok {
					sec = sec.DeepCopy()
					sec.StringData = map[string]string{}
					for k, v := range sec.Data {
						sec.StringData[k] = string(v)
					}
					sec.Data = nil
					o = sec
				}
				b, err := yaml.Marshal(o)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&buf, "---\n# %s %s\n", reflect.TypeOf(o).Elem().Name(), o.(metav1.Object).GetName())
				buf.Write(b)
			}
			path := filepath.Join("testdata", name+".yaml")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(want, buf.Bytes()) {
				t.Errorf("objects differ from %s; run `go test ./internal/kube/build -update` and review the diff", path)
			}
		})
	}
}

func TestEveryObjectIsOwnedByTheCluster(t *testing.T) {
	c := everything(t)
	for _, o := range allObjects(t, c) {
		m := o.(metav1.Object)
		refs := m.GetOwnerReferences()
		if len(refs) != 1 {
			t.Fatalf("%s has %d owner references", m.GetName(), len(refs))
		}
		r := refs[0]
		if r.UID != c.UID || r.Kind != "Cluster" || r.APIVersion != v1.APIVersion || r.Name != c.Name ||
			r.Controller == nil || !*r.Controller || r.BlockOwnerDeletion == nil || !*r.BlockOwnerDeletion {
			t.Errorf("%s: owner reference %+v", m.GetName(), r)
		}
		if m.GetNamespace() != c.Namespace || m.GetLabels()[ClusterLabel] != c.Name {
			t.Errorf("%s: namespace %q labels %v", m.GetName(), m.GetNamespace(), m.GetLabels())
		}
	}
}

func TestPodSecurity(t *testing.T) {
	c := sample(t)
	p := Pod(c, InstanceName(c, 1), RolePrimary, testOpts)
	ps := p.Spec.SecurityContext
	if !*ps.RunAsNonRoot || *ps.RunAsUser != 26 || *ps.RunAsGroup != 26 || *ps.FSGroup != 26 ||
		ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", ps)
	}
	if *p.Spec.AutomountServiceAccountToken {
		t.Error("service account token is automounted")
	}
	if len(p.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(p.Spec.Containers))
	}
	ctr := p.Spec.Containers[0]
	sc := ctr.SecurityContext
	if *sc.AllowPrivilegeEscalation || *sc.Privileged || !*sc.ReadOnlyRootFilesystem ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container security context %+v", sc)
	}
	if got := strings.Join(ctr.Command, " "); got != "pgward instance run --config /etc/pgward/config.json" {
		t.Errorf("command %q", got)
	}
	// Writable places: the data volume and the two emptyDirs only.
	writable := map[string]bool{}
	for _, m := range ctr.VolumeMounts {
		if !m.ReadOnly {
			writable[m.MountPath] = true
		}
	}
	want := map[string]bool{DataMount: true, SocketDir: true, TmpDir: true}
	if len(writable) != len(want) {
		t.Errorf("writable mounts %v, want %v", writable, want)
	}
	for k := range want {
		if !writable[k] {
			t.Errorf("%s is not writable", k)
		}
	}
}

func TestPodsNeverHoldCAKeyOrControllerCert(t *testing.T) {
	c := everything(t)
	n := Secrets(c)
	p := Pod(c, InstanceName(c, 2), RoleReplica, testOpts)
	var projected []string
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			t.Errorf("volume %s mounts secret %s whole", v.Name, v.Secret.SecretName)
		}
		if v.Projected == nil {
			continue
		}
		if v.Name == volConfig && *v.Projected.DefaultMode != 0o400 {
			t.Errorf("config volume mode %o", *v.Projected.DefaultMode)
		}
		for _, src := range v.Projected.Sources {
			if src.Secret == nil {
				continue
			}
			if src.Secret.Name == n.Controller || src.Secret.Name == n.Metrics {
				t.Errorf("pod mounts the client certificate %s", src.Secret.Name)
			}
			for _, it := range src.Secret.Items {
				if it.Key == KeyCAKey {
					t.Errorf("pod mounts %s from %s", it.Key, src.Secret.Name)
				}
				projected = append(projected, it.Path)
			}
		}
	}
	for _, want := range []string{
		"config.json", "cluster.json",
		"secrets/cluster-example-ca/ca.crt",
		"secrets/cluster-example-server/tls.key",
		"secrets/cluster-example-replication/tls.crt",
		"secrets/cluster-example-app/password",
		"secrets/cluster-example-superuser/password",
	} {
		if !slices.Contains(projected, want) {
			t.Errorf("%s not projected; have %v", want, projected)
		}
	}
	seen := map[string]bool{}
	for _, p := range projected {
		if seen[p] {
			t.Errorf("%s projected twice", p)
		}
		seen[p] = true
	}
	role := Role(c)
	for _, r := range role.Rules {
		if len(r.ResourceNames) == 0 {
			t.Errorf("rule %+v is not limited to named objects", r)
		}
		// The one write: update of the cluster's own Lease, which the
		// primary renews (never create, patch or delete, nor another Lease).
		lease := slices.Equal(r.APIGroups, []string{"coordination.k8s.io"}) && slices.Equal(r.Resources, []string{"leases"}) &&
			slices.Equal(r.ResourceNames, []string{LeaseName(c)})
		for _, v := range r.Verbs {
			if v != "get" && v != "watch" && (v != "update" || !lease) {
				t.Errorf("rule %+v grants %s", r, v)
			}
		}
		if slices.Contains(r.ResourceNames, n.CA) || slices.Contains(r.ResourceNames, n.Controller) || slices.Contains(r.ResourceNames, n.Metrics) {
			t.Errorf("role grants %v", r.ResourceNames)
		}
	}
}

func TestServerDNSNames(t *testing.T) {
	c := everything(t)
	got := ServerDNSNames(c, "cluster.local")
	for _, svc := range []string{"cluster-example-rw", "cluster-example-r", "cluster-example-ro"} {
		for _, want := range []string{svc, svc + ".db", svc + ".db.svc", svc + ".db.svc.cluster.local"} {
			if !slices.Contains(got, want) {
				t.Errorf("missing %s in %v", want, got)
			}
		}
	}
	if !slices.Contains(got, "db.example.com") {
		t.Errorf("missing serverAltDNSNames in %v", got)
	}
}

// TestServicesSelectByRole: -ro and -r select by the role label; -rw
// selects the target primary by name and not by role, so that moving it
// is one change of the Service (PrimarySelector).
func TestServicesSelectByRole(t *testing.T) {
	c := sample(t)
	want := map[string]string{"cluster-example-rw": "", "cluster-example-ro": RoleReplica, "cluster-example-r": ""}
	for _, s := range Services(c, InstanceName(c, 2)) {
		if s.Spec.Selector[ClusterLabel] != c.Name || s.Spec.Selector[RoleLabel] != want[s.Name] {
			t.Errorf("%s selects %v", s.Name, s.Spec.Selector)
		}
		if inst := s.Spec.Selector[InstanceLabel]; (s.Name == "cluster-example-rw") != (inst == InstanceName(c, 2)) {
			t.Errorf("%s selects instance %q", s.Name, inst)
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != PostgresPort {
			t.Errorf("%s ports %v: only PostgreSQL is exposed", s.Name, s.Spec.Ports)
		}
	}
}

func TestNetworkPolicies(t *testing.T) {
	if got := NetworkPolicies(sample(t), testOpts); got != nil {
		t.Fatalf("policies without the option: %v", got)
	}
	c := everything(t)
	nps := NetworkPolicies(c, testOpts)
	if len(nps) != 3 {
		t.Fatalf("%d policies", len(nps))
	}
	pg, status, metrics := nps[0], nps[1], nps[2]
	if r := pg.Spec.Ingress; len(r) != 1 || r[0].Ports[0].Port.IntVal != PostgresPort || len(r[0].From) != 3 {
		t.Errorf("postgresql policy %+v", r)
	} else if r[0].From[0].PodSelector.MatchLabels[ClusterLabel] != c.Name {
		t.Errorf("first peer %+v is not the cluster's own pods", r[0].From[0])
	}
	if r := status.Spec.Ingress; len(r) != 1 || r[0].Ports[0].Port.IntVal != StatusPort || len(r[0].From) != 1 ||
		r[0].From[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "pgward-system" {
		t.Errorf("status policy %+v", r)
	}
	// The metrics port: only the listed scrapers, on 9187 only.
	if r := metrics.Spec.Ingress; metrics.Name != "cluster-example-metrics" || len(r) != 1 || len(r[0].Ports) != 1 ||
		r[0].Ports[0].Port.IntVal != MetricsPort || len(r[0].From) != 1 ||
		r[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" ||
		r[0].From[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "monitoring" {
		t.Errorf("metrics policy %s %+v", metrics.Name, r)
	}
	// Without metrics clients the policy admits nobody (an Ingress policy
	// with no rule), not everybody.
	c.Spec.NetworkPolicy.MetricsClients = nil
	m := NetworkPolicies(c, testOpts)[2]
	if len(m.Spec.Ingress) != 0 || len(m.Spec.PolicyTypes) != 1 || m.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
		t.Errorf("metrics policy without clients: %+v", m.Spec)
	}
}

// The pod exposes the exporter on CloudNativePG's port, named metrics, and
// the instance manager listens there.
func TestMetricsPort(t *testing.T) {
	c := sample(t)
	p := Pod(c, InstanceName(c, 1), RolePrimary, testOpts)
	if !slices.ContainsFunc(p.Spec.Containers[0].Ports, func(cp corev1.ContainerPort) bool {
		return cp.Name == "metrics" && cp.ContainerPort == 9187 && cp.Protocol == corev1.ProtocolTCP
	}) {
		t.Errorf("container ports %+v", p.Spec.Containers[0].Ports)
	}
	if cfg := InstanceConfig(c, InstanceName(c, 1), InstanceName(c, 1), testOpts); cfg.MetricsAddress != ":9187" {
		t.Errorf("metrics address %q", cfg.MetricsAddress)
	}
	for _, s := range Services(c, InstanceName(c, 1)) {
		for _, sp := range s.Spec.Ports {
			if sp.Port == MetricsPort {
				t.Errorf("Service %s exposes the metrics port: scrapers reach each pod", s.Name)
			}
		}
	}
}

// The instance manager must accept what the operator gives it: the config
// passes its checks and the manifest its strict loader.
func TestInstanceManagerAcceptsConfig(t *testing.T) {
	c := everything(t)
	s, err := InstanceConfigSecret(c, InstanceName(c, 2), InstanceName(c, 1), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, s.Data[configKeyJSON], 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := instanceapi.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "cluster-example-2" || cfg.IsPrimary() || cfg.Primary.Host != "cluster-example-rw" ||
		cfg.Secrets.Superuser != "cluster-example-superuser" || cfg.SelfFence.Seconds() != 30 {
		t.Errorf("config %+v", cfg)
	}
	loaded, err := v1.LoadAndValidate(s.Data[clusterKeyJSON])
	if err != nil {
		t.Fatalf("instance manager would refuse cluster.json: %v", err)
	}
	if loaded.Name != c.Name || loaded.Spec.Instances != 3 {
		t.Errorf("cluster.json: %+v", loaded)
	}
	var raw map[string]any
	if err := json.Unmarshal(s.Data[clusterKeyJSON], &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["status"]; ok {
		t.Error("cluster.json carries a status")
	}
}

func TestInstanceIndex(t *testing.T) {
	c := sample(t)
	for name, want := range map[string]int{
		"cluster-example-1": 1, "cluster-example-12": 12, "cluster-example-01": 0,
		"cluster-example-0": 0, "cluster-example-x": 0, "other-1": 0, "cluster-example-": 0,
	} {
		if got := InstanceIndex(c, name); got != want {
			t.Errorf("InstanceIndex(%q) = %d, want %d", name, got, want)
		}
	}
}
