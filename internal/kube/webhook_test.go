package kube_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
)

// startOperator runs the operator as `pgward operator` does (kube.Run),
// with the generated RBAC only, leader election on, and its webhooks
// installed from dist/install.yaml, pointed at 127.0.0.1 since no Service
// routes here. The operator issues its own serving certificate and puts
// its CA into the installed configurations: the API server then calls it
// over TLS exactly as in a cluster.
func startOperator(t *testing.T) {
	t.Helper()
	startOperatorAs(t, opCfg, operatorNamespace, nil)
}

// startOperatorAs is startOperator acting with restCfg's identity, its
// configuration changed by edit; it is ready once a Cluster in probeNS
// passes both webhooks.
func startOperatorAs(t *testing.T, restCfg *rest.Config, probeNS string, edit func(*kube.Config)) {
	t.Helper()
	port := freePort(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	installWebhooks(t, base)

	cfg := kube.DefaultConfig()
	cfg.Namespace = operatorNamespace
	cfg.Build.OperatorNamespace = operatorNamespace
	// Metrics (HTTPS, authorized through the API server) and probes on
	// ephemeral ports: they start with the generated RBAC too.
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ProbeAddr = "127.0.0.1:0"
	cfg.WebhookHost = "127.0.0.1"
	cfg.WebhookPort = port
	cfg.WebhookCertDir = t.TempDir()
	cfg.WebhookHosts = []string{"127.0.0.1"}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { defer close(done); runErr = kube.Run(ctx, restCfg, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if runErr != nil {
				t.Errorf("operator: %v", runErr)
			}
		case <-time.After(30 * time.Second):
			t.Error("operator did not stop")
		}
	})
	// Registered after the stop, so it runs first: without the operator,
	// webhooks that fail closed would block every later Cluster write.
	t.Cleanup(func() { uninstallWebhooks(t) })

	// Ready once a valid Cluster passes both webhooks (dry run).
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := sampleCluster(t, probeNS)
		c.Name = "probe"
		err := admin.Create(context.Background(), c, client.DryRunAll)
		if err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("operator stopped: %v", runErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhooks not serving: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// installWebhooks creates the webhook configurations of dist/install.yaml
// with their Service replaced by a URL under base.
func installWebhooks(t *testing.T, base string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "dist", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	found := 0
	for _, doc := range strings.Split(string(data), "\n---\n") {
		switch {
		case strings.Contains(doc, "kind: MutatingWebhookConfiguration"):
			var m admissionv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &m); err != nil {
				t.Fatal(err)
			}
			for i := range m.Webhooks {
				m.Webhooks[i].ClientConfig.URL = new(base + *m.Webhooks[i].ClientConfig.Service.Path)
				m.Webhooks[i].ClientConfig.Service = nil
			}
			if err := admin.Create(ctx, &m); err != nil {
				t.Fatal(err)
			}
			found++
		case strings.Contains(doc, "kind: ValidatingWebhookConfiguration"):
			var v admissionv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &v); err != nil {
				t.Fatal(err)
			}
			for i := range v.Webhooks {
				v.Webhooks[i].ClientConfig.URL = new(base + *v.Webhooks[i].ClientConfig.Service.Path)
				v.Webhooks[i].ClientConfig.Service = nil
			}
			if err := admin.Create(ctx, &v); err != nil {
				t.Fatal(err)
			}
			found++
		}
	}
	if found != 2 {
		t.Fatalf("dist/install.yaml has %d webhook configurations, want 2", found)
	}
}

func uninstallWebhooks(t *testing.T) {
	ctx := context.Background()
	cfg := kube.DefaultConfig()
	for _, obj := range []client.Object{
		&admissionv1.MutatingWebhookConfiguration{}, &admissionv1.ValidatingWebhookConfiguration{},
	} {
		name := cfg.MutatingWebhook
		if _, ok := obj.(*admissionv1.ValidatingWebhookConfiguration); ok {
			name = cfg.ValidatingWebhook
		}
		obj.SetName(name)
		if err := admin.Delete(ctx, obj); err != nil {
			t.Errorf("deleting %s: %v", name, err)
		}
	}
}

// badCase is a manifest the API server must refuse, with the field the
// error must name.
type badCase struct {
	name  string
	spec  string // YAML of spec (and metadata overrides, see manifest)
	field string
	msg   string // optional part of the message
}

// manifest renders a Cluster named name whose spec is the sample's with
// the overrides in spec (a YAML mapping merged at the top of spec).
func manifest(t *testing.T, ns, name, spec string) *unstructured.Unstructured {
	t.Helper()
	base := map[string]any{
		"instances": 3,
		"postgresql": map[string]any{
			"parameters": map[string]any{"max_connections": "100"},
		},
		"storage": map[string]any{"size": "1Gi"},
	}
	over := map[string]any{}
	if err := yaml.Unmarshal([]byte(spec), &over); err != nil {
		t.Fatalf("case YAML: %v", err)
	}
	meta := map[string]any{"name": name, "namespace": ns}
	if m, ok := over["metadata"].(map[string]any); ok {
		for k, v := range m {
			meta[k] = v
		}
		delete(over, "metadata")
	}
	for k, v := range over {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1.APIVersion, "kind": v1.Kind, "metadata": meta, "spec": base,
	}}
}

var createCases = []badCase{
	// Refused by the CRD's schema (markers on api/v1) or strict field
	// validation, before the webhooks run.
	{"instances zero", `instances: 0`, "spec.instances", ""},
	{"instances negative", `instances: -2`, "spec.instances", ""},
	{"instances not a number", `instances: three`, "spec.instances", ""},
	{"unknown field", `foo: bar`, "spec.foo", "unknown field"},
	{"misspelt field", `postgresql: {params: {work_mem: 4MB}}`, "spec.postgresql.params", "unknown field"},
	{"CNPG field not supported", `nodeMaintenanceWindow: {inProgress: true}`, "spec.nodeMaintenanceWindow", "unknown field"},
	{"image of PostgreSQL 18", `imageName: ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie`, "spec.imageName", "pgward supports PostgreSQL 15"},
	{"catalog major 16", `imageCatalogRef: {apiGroup: postgresql.cnpg.io, kind: ImageCatalog, name: c, major: 16}`, "spec.imageCatalogRef.major", "pgward supports PostgreSQL 15"},
	{"image reference with spaces", `imageName: "postgres:15 --privileged"`, "spec.imageName", "not an image reference"},
	{"rw service disabled", `managed: {services: {disabledDefaultServices: [rw]}}`, "spec.managed.services.disabledDefaultServices[0]", "replicas reach the primary"},
	{"service selecting other pods", `managed: {services: {additional: [{selectorType: rw, serviceTemplate: {metadata: {name: x}, spec: {selector: {app: web}}}}]}}`, "spec.managed.services.additional[0].serviceTemplate.spec.selector", ""},
	{"service with externalIPs", `managed: {services: {additional: [{selectorType: r, serviceTemplate: {metadata: {name: x}, spec: {externalIPs: [10.0.0.1]}}}]}}`, "spec.managed.services.additional[0].serviceTemplate.spec.externalIPs", ""},
	{"negative minSyncReplicas", `minSyncReplicas: -1`, "spec.minSyncReplicas", ""},
	// Refused by the validating webhook (api/v1 Validate).
	{"fixed parameter port", `postgresql: {parameters: {port: "5433"}}`, "spec.postgresql.parameters[port]", "pgward"},
	{"fixed parameter ssl", `postgresql: {parameters: {ssl: "off"}}`, "spec.postgresql.parameters[ssl]", ""},
	{"fixed parameter archive_command", `postgresql: {parameters: {archive_command: "curl evil"}}`, "spec.postgresql.parameters[archive_command]", ""},
	{"fixed parameter listen_addresses", `postgresql: {parameters: {listen_addresses: "*"}}`, "spec.postgresql.parameters[listen_addresses]", ""},
	{"fixed parameter shared_preload_libraries", `postgresql: {parameters: {shared_preload_libraries: "evil"}}`, "spec.postgresql.parameters[shared_preload_libraries]", ""},
	{"fixed parameter by prefix", `postgresql: {parameters: {unix_socket_directories: "/tmp"}}`, "spec.postgresql.parameters[unix_socket_directories]", ""},
	{"fixed parameter in upper case", `postgresql: {parameters: {PORT: "1"}}`, "spec.postgresql.parameters[PORT]", ""},
	{"newline injection in a parameter", `postgresql: {parameters: {work_mem: "4MB\nssl = off"}}`, "spec.postgresql.parameters[work_mem]", ""},
	{"control character in a parameter", `postgresql: {parameters: {work_mem: "4MB\u0007"}}`, "spec.postgresql.parameters[work_mem]", ""},
	{"quote injection in a parameter", `postgresql: {parameters: {search_path: "x'\ninclude '/etc/passwd"}}`, "spec.postgresql.parameters[search_path]", ""},
	{"invalid parameter name", `postgresql: {parameters: {"bad name": "1"}}`, "spec.postgresql.parameters[bad name]", ""},
	{"parameter name with =", `postgresql: {parameters: {"work_mem=1GB #": "1"}}`, "spec.postgresql.parameters[work_mem=1GB #]", ""},
	{"duplicate parameter in another case", `postgresql: {parameters: {Work_Mem: "1MB", work_mem: "2MB"}}`, "spec.postgresql.parameters", "folds"},
	{"wal_level minimal with replicas", `postgresql: {parameters: {wal_level: minimal}}`, "spec.postgresql.parameters[wal_level]", "replicas"},
	{"wal_log_hints off with replicas", `postgresql: {parameters: {wal_log_hints: "off"}}`, "spec.postgresql.parameters[wal_log_hints]", "pg_rewind"},
	{"pg_hba newline injection", `postgresql: {pg_hba: ["host all all 10.0.0.0/8 scram-sha-256\nhost all all 0.0.0.0/0 trust"]}`, "spec.postgresql.pg_hba[0]", ""},
	{"pg_hba trust over the network", `postgresql: {pg_hba: ["host all all 0.0.0.0/0 trust"]}`, "spec.postgresql.pg_hba[0]", "trust"},
	{"pg_hba replication", `postgresql: {pg_hba: ["hostssl replication all all scram-sha-256"]}`, "spec.postgresql.pg_hba[0]", "replication"},
	{"pg_hba streaming_replica", `postgresql: {pg_hba: ["hostssl all streaming_replica all scram-sha-256"]}`, "spec.postgresql.pg_hba[0]", "streaming_replica"},
	{"pg_hba unknown method", `postgresql: {pg_hba: ["host all all all magic"]}`, "spec.postgresql.pg_hba[0]", "method"},
	{"pg_hba bad address", `postgresql: {pg_hba: ["host all all 999.1.1.0/24 scram-sha-256"]}`, "spec.postgresql.pg_hba[0]", "address"},
	{"pg_hba file inclusion", `postgresql: {pg_hba: ["host all @/etc/passwd all scram-sha-256"]}`, "spec.postgresql.pg_hba[0]", "inclusion"},
	{"pg_hba include directive", `postgresql: {pg_hba: ["include /etc/passwd"]}`, "spec.postgresql.pg_hba[0]", "not allowed"},
	{"pg_ident newline injection", `postgresql: {pg_ident: ["m alice app\nm root postgres"]}`, "spec.postgresql.pg_ident[0]", ""},
	{"maxSyncReplicas unreachable", `{minSyncReplicas: 1, maxSyncReplicas: 3}`, "spec.maxSyncReplicas", "less than instances"},
	{"minSyncReplicas above max", `{minSyncReplicas: 2, maxSyncReplicas: 1}`, "spec.minSyncReplicas", "maxSyncReplicas"},
	{"sync replicas on a single instance", `{instances: 1, minSyncReplicas: 1, maxSyncReplicas: 1}`, "spec.maxSyncReplicas", ""},
	{"no storage size", `storage: null`, "spec.storage.size", "Kubernetes"},
	{"storage size not a quantity", `storage: {size: lots}`, "spec.storage.size", "quantity"},
	{"storage size zero", `storage: {size: "0"}`, "spec.storage.size", "greater than zero"},
	{"storage size negative", `storage: {size: "-1Gi"}`, "spec.storage.size", ""},
	{"reserved database", `bootstrap: {initdb: {database: postgres}}`, "spec.bootstrap.initdb.database", "reserved"},
	{"database not an identifier", `bootstrap: {initdb: {database: App-DB}}`, "spec.bootstrap.initdb.database", ""},
	{"owner is the superuser", `bootstrap: {initdb: {owner: postgres}}`, "spec.bootstrap.initdb.owner", "reserved"},
	{"owner is a pg_ role", `bootstrap: {initdb: {owner: pg_monitor}}`, "spec.bootstrap.initdb.owner", "reserved"},
	{"SQL injection in owner", `bootstrap: {initdb: {owner: "app; DROP TABLE users"}}`, "spec.bootstrap.initdb.owner", ""},
	{"shell injection in encoding", `bootstrap: {initdb: {encoding: "UTF8; rm -rf /"}}`, "spec.bootstrap.initdb.encoding", ""},
	{"bad locale", `bootstrap: {initdb: {localeCollate: "en US"}}`, "spec.bootstrap.initdb.localeCollate", ""},
	{"bad app secret name", `bootstrap: {initdb: {secret: {name: Bad_Name}}}`, "spec.bootstrap.initdb.secret.name", ""},
	{"empty superuser secret name", `superuserSecret: {name: ""}`, "spec.superuserSecret.name", ""},
	{"server certificate without its CA", `certificates: {serverTLSSecret: my-server}`, "spec.certificates.serverCASecret", "CA"},
	{"replication certificate without its CA", `certificates: {replicationTLSSecret: my-repl}`, "spec.certificates.clientCASecret", "CA"},
	{"alt names with a user certificate", `certificates: {serverCASecret: my-ca, serverTLSSecret: my-server, serverAltDNSNames: [db.example.com]}`, "spec.certificates.serverAltDNSNames", ""},
	{"bad alt DNS name", `certificates: {serverAltDNSNames: ["not a name!"]}`, "spec.certificates.serverAltDNSNames[0]", ""},
	{"duplicate alt DNS name", `certificates: {serverAltDNSNames: [db.example.com, db.example.com]}`, "spec.certificates.serverAltDNSNames[1]", "Duplicate"},
	{"bad CA secret name", `certificates: {serverCASecret: UPPER}`, "spec.certificates.serverCASecret", ""},
	{"name too long", `metadata: {name: ` + strings.Repeat("a", 51) + `}`, "metadata.name", "50"},
	{"name not a DNS-1035 label", `metadata: {name: 1cluster}`, "metadata.name", ""},
	{"network policy clients while disabled", `networkPolicy: {clients: [{podSelector: {matchLabels: {app: web}}}]}`, "spec.networkPolicy.clients", "enabled"},
	{"network policy client without selector", `networkPolicy: {enabled: true, clients: [{}]}`, "spec.networkPolicy.clients[0]", ""},
	{"network policy bad label", `networkPolicy: {enabled: true, clients: [{podSelector: {matchLabels: {"bad key!": x}}}]}`, "spec.networkPolicy.clients[0].podSelector.matchLabels", ""},
	{"tablespace without a size", `tablespaces: [{name: fast}]`, "spec.tablespaces[0].storage.size", "persistent volume per tablespace"},
	{"tablespace named pg_", `tablespaces: [{name: pg_fast, storage: {size: 1Gi}}]`, "spec.tablespaces[0].name", "pg_"},
}

// updateCases start from a valid stored Cluster and apply a change that
// the update rules refuse.
var updateCases = []badCase{
	{"storage shrink", `storage: {size: 512Mi}`, "spec.storage.size", "shrink"},
	{"storage removed", `storage: null`, "spec.storage.size", ""},
	{"bootstrap database changed", `bootstrap: {initdb: {database: other}}`, "spec.bootstrap", "immutable"},
	{"instances to zero", `instances: 0`, "spec.instances", ""},
	{"fixed parameter added", `postgresql: {parameters: {data_directory: /tmp}}`, "spec.postgresql.parameters[data_directory]", ""},
	{"tablespace added to running pods", `tablespaces: [{name: late, storage: {size: 1Gi}}]`, "spec.tablespaces[0]", "cannot be added to a running cluster"},
}

// TestAdmissionRefusesBadManifests sends every bad manifest through the
// real API server, which runs the CRD schema and then the operator's
// webhooks over TLS; each is refused with an error naming its field.
func TestAdmissionRefusesBadManifests(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	total := 0
	for i, tc := range createCases {
		total++
		t.Run("create/"+tc.name, func(t *testing.T) {
			u := manifest(t, ns, "bad-"+strconv.Itoa(i), tc.spec)
			err := admin.Create(ctx, u, client.FieldValidation("Strict"))
			checkRefusal(t, err, tc)
		})
	}
	for i, tc := range updateCases {
		total++
		t.Run("update/"+tc.name, func(t *testing.T) {
			name := "upd-" + strconv.Itoa(i)
			if err := admin.Create(ctx, manifest(t, ns, name, `{}`)); err != nil {
				t.Fatalf("creating the valid cluster: %v", err)
			}
			var stored unstructured.Unstructured
			stored.SetGroupVersionKind(v1.SchemeGroupVersion.WithKind(v1.Kind))
			if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &stored); err != nil {
				t.Fatal(err)
			}
			changed := manifest(t, ns, name, tc.spec)
			// Keep the defaulted bootstrap unless the case changes it.
			if _, ok := changed.Object["spec"].(map[string]any)["bootstrap"]; !ok {
				changed.Object["spec"].(map[string]any)["bootstrap"] = stored.Object["spec"].(map[string]any)["bootstrap"]
			}
			changed.SetResourceVersion(stored.GetResourceVersion())
			err := admin.Update(ctx, changed, client.FieldValidation("Strict"))
			checkRefusal(t, err, tc)
		})
	}
	if total < 40 {
		t.Errorf("only %d bad manifests", total)
	}
	t.Logf("%d bad manifests refused", total)

	// And a good one is admitted, defaulted by the mutating webhook.
	good := manifest(t, ns, "good", `{}`)
	if err := admin.Create(ctx, good); err != nil {
		t.Fatalf("valid cluster refused: %v", err)
	}
	var c v1.Cluster
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "good"}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Bootstrap == nil || c.Spec.Bootstrap.InitDB == nil || c.Spec.Bootstrap.InitDB.Database != "app" ||
		c.Spec.EnableSuperuserAccess == nil || *c.Spec.EnableSuperuserAccess {
		t.Errorf("not defaulted: %+v", c.Spec)
	}
	// The operator running beside the webhooks reconciles it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pod corev1.Pod
		err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "good-1"}, &pod)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator did not create good-1: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func checkRefusal(t *testing.T, err error, tc badCase) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted; want an error naming %s", tc.field)
	}
	msg := err.Error()
	if !strings.Contains(msg, tc.field) {
		t.Errorf("error does not name %s: %s", tc.field, msg)
	}
	if tc.msg != "" && !strings.Contains(msg, tc.msg) {
		t.Errorf("error does not say %q: %s", tc.msg, msg)
	}
	if testing.Verbose() {
		t.Log(msg)
	}
}

// TestWebhookCertificate: the operator's managed certificate is in its
// Secret, the configurations trust its CA, and a second Ensure (another
// replica, or the hourly check) changes nothing.
func TestWebhookCertificate(t *testing.T) {
	startOperator(t)
	ctx := ctxFor(t)
	cfg := kube.DefaultConfig()
	var s corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: cfg.WebhookSecret}, &s); err != nil {
		t.Fatal(err)
	}
	var m admissionv1.MutatingWebhookConfiguration
	if err := admin.Get(ctx, types.NamespacedName{Name: cfg.MutatingWebhook}, &m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, s.Data["ca.crt"]) {
		t.Error("the mutating webhook does not trust the operator's CA")
	}
	leaf := parseCert(t, s.Data["tls.crt"])
	if !strings.Contains(strings.Join(leaf.DNSNames, ","), "pgward-webhook.pgward-system.svc") {
		t.Errorf("webhook certificate names %v", leaf.DNSNames)
	}
	w := &kube.WebhookCerts{
		Client: operator, Namespace: operatorNamespace, SecretName: cfg.WebhookSecret,
		ServiceName: cfg.WebhookService, ClusterDomain: "cluster.local", Hosts: []string{"127.0.0.1"},
		CertDir: t.TempDir(), MutatingName: cfg.MutatingWebhook, ValidatingName: cfg.ValidatingWebhook,
	}
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var again corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: cfg.WebhookSecret}, &again); err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != s.ResourceVersion {
		t.Error("a second Ensure rewrote the certificate")
	}
	if _, err := os.Stat(filepath.Join(w.CertDir, "tls.crt")); err != nil {
		t.Error(errors.Join(errors.New("certificate not written"), err))
	}
}

// conflictingClient lets another writer change each webhook configuration
// right before the first patch of it, as a second operator replica starting
// at the same moment does.
type conflictingClient struct {
	client.Client
	interfered map[string]bool
}

func (c *conflictingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if _, ok := obj.(*admissionv1.MutatingWebhookConfiguration); ok && !c.interfered[obj.GetName()] {
		c.interfered[obj.GetName()] = true
		var m admissionv1.MutatingWebhookConfiguration
		if err := admin.Get(ctx, types.NamespacedName{Name: obj.GetName()}, &m); err != nil {
			return err
		}
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations["pgward.io/test-interference"] = time.Now().String()
		if err := admin.Update(ctx, &m); err != nil {
			return err
		}
	}
	return c.Client.Patch(ctx, obj, patch, opts...)
}

// TestWebhookCertificateRacingReplicas: a replica whose CA-bundle patch
// loses a race reads again and succeeds, instead of exiting (which made one
// of two fresh replicas crash once on every install).
func TestWebhookCertificateRacingReplicas(t *testing.T) {
	startOperator(t)
	ctx := ctxFor(t)
	cfg := kube.DefaultConfig()
	var m admissionv1.MutatingWebhookConfiguration
	if err := admin.Get(ctx, types.NamespacedName{Name: cfg.MutatingWebhook}, &m); err != nil {
		t.Fatal(err)
	}
	for i := range m.Webhooks {
		m.Webhooks[i].ClientConfig.CABundle = []byte("stale")
	}
	if err := admin.Update(ctx, &m); err != nil {
		t.Fatal(err)
	}
	cc := &conflictingClient{Client: operator, interfered: map[string]bool{}}
	w := &kube.WebhookCerts{
		Client: cc, Namespace: operatorNamespace, SecretName: cfg.WebhookSecret,
		ServiceName: cfg.WebhookService, ClusterDomain: "cluster.local", Hosts: []string{"127.0.0.1"},
		CertDir: t.TempDir(), MutatingName: cfg.MutatingWebhook, ValidatingName: cfg.ValidatingWebhook,
	}
	if err := w.Ensure(ctx); err != nil {
		t.Fatalf("Ensure after a conflicting write: %v", err)
	}
	if !cc.interfered[cfg.MutatingWebhook] {
		t.Fatal("the test did not interfere")
	}
	var s corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: cfg.WebhookSecret}, &s); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, types.NamespacedName{Name: cfg.MutatingWebhook}, &m); err != nil {
		t.Fatal(err)
	}
	for _, wh := range m.Webhooks {
		if !bytes.Equal(wh.ClientConfig.CABundle, s.Data["ca.crt"]) {
			t.Errorf("webhook %s: CA bundle not set after the conflict", wh.Name)
		}
	}
}
